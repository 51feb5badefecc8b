"""Column-shape transforms: rename_columns, select_columns, drop_columns."""

from __future__ import annotations

from pydantic import Field

from dataloader.batch import ArrowBatch
from dataloader.context import RunContext
from dataloader.errors import TransformError
from dataloader.transforms.base import Transform, TransformStepConfig


def require_columns(batch: ArrowBatch, names: list[str], step: str) -> None:
    """Raise a `TransformError` naming the first column in `names` that the batch lacks."""
    present = set(batch.columns)
    for name in names:
        if name not in present:
            raise TransformError(
                f"{step}: column {name!r} is not in the batch",
                key="column",
                value=name,
                expected=f"one of {batch.columns}",
                context={"column": name},
            )


class RenameColumnsConfig(TransformStepConfig):
    mapping: dict[str, str] = Field(min_length=1)


class RenameColumns(Transform):
    """Rename columns: `mapping: {old: new}`."""

    name = "rename_columns"
    config_model = RenameColumnsConfig

    def apply(self, batch: ArrowBatch, context: RunContext) -> ArrowBatch:
        mapping = self.config.mapping
        require_columns(batch, list(mapping), self.name)
        names = [mapping.get(column, column) for column in batch.columns]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise TransformError(
                f"rename_columns: renaming would give two columns named {duplicates[0]!r}",
                context={"column": duplicates[0]},
            )
        return batch.with_data(batch.to_arrow().rename_columns(names))


class ColumnListConfig(TransformStepConfig):
    columns: list[str] = Field(min_length=1)


class SelectColumns(Transform):
    """Keep only `columns`, in that order."""

    name = "select_columns"
    config_model = ColumnListConfig

    def apply(self, batch: ArrowBatch, context: RunContext) -> ArrowBatch:
        require_columns(batch, self.config.columns, self.name)
        return batch.with_data(batch.to_arrow().select(self.config.columns))


class DropColumnsConfig(ColumnListConfig):
    ignore_missing: bool = False


class DropColumns(Transform):
    """Remove `columns`; a missing one is an error unless `ignore_missing: true`."""

    name = "drop_columns"
    config_model = DropColumnsConfig

    def apply(self, batch: ArrowBatch, context: RunContext) -> ArrowBatch:
        if not self.config.ignore_missing:
            require_columns(batch, self.config.columns, self.name)
        dropped = set(self.config.columns)
        return batch.with_data(
            batch.to_arrow().select([c for c in batch.columns if c not in dropped])
        )
