"""The `add_column` transform: a constant, a rendered template, or run metadata."""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa
from pydantic import model_validator

from dataloader.batch import ArrowBatch
from dataloader.context import RunContext
from dataloader.errors import TransformError
from dataloader.schema.types import parse_type
from dataloader.transforms.base import Transform, TransformStepConfig

RunField = Literal["load_time", "run_id", "recipe_name", "source_file"]


class AddColumnConfig(TransformStepConfig):
    name: str
    value: Any = None
    from_: RunField | None = None
    type: str | None = None
    overwrite: bool = False

    model_config = {"populate_by_name": True, "extra": "forbid", "frozen": True}

    @model_validator(mode="before")
    @classmethod
    def _alias_from(cls, data: Any) -> Any:
        if isinstance(data, dict) and "from" in data:
            data = {**data, "from_": data["from"]}
            del data["from"]
        return data

    @model_validator(mode="after")
    def _value_or_from(self) -> AddColumnConfig:
        if self.type is not None:
            parse_type(self.type)
        if self.from_ is not None and self.value is not None:
            raise ValueError("give either `value` or `from`, not both")
        return self


class AddColumn(Transform):
    """Add a column: `value` (constant or template such as `{{ recipe.name }}`) or
    `from: load_time | run_id | recipe_name | source_file`."""

    name = "add_column"
    config_model = AddColumnConfig

    def apply(self, batch: ArrowBatch, context: RunContext) -> ArrowBatch:
        config = self.config
        data = batch.to_arrow()
        exists = config.name in batch.columns
        if exists and not config.overwrite:
            raise TransformError(
                f"add_column: column {config.name!r} already exists (set `overwrite: true` to replace it)",
                context={"column": config.name},
            )
        value, arrow_type = self._value(batch, context)
        if config.type is not None:
            arrow_type = parse_type(config.type)
        try:
            scalar = _typed_scalar(value, arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError) as exc:
            raise TransformError(
                f"add_column: value {value!r} is not a valid {config.type or arrow_type}",
                context={"column": config.name},
            ) from exc
        column = (
            pa.repeat(scalar, data.num_rows) if data.num_rows else pa.array([], type=scalar.type)
        )
        if exists:
            index = data.schema.get_field_index(config.name)
            return batch.with_data(data.set_column(index, config.name, column))
        return batch.with_data(data.append_column(config.name, column))

    def _value(self, batch: ArrowBatch, context: RunContext) -> tuple[Any, pa.DataType | None]:
        source = self.config.from_
        if source == "load_time":
            return context.started_at, pa.timestamp("us", tz="UTC")
        if source == "run_id":
            return context.run_id, pa.string()
        if source == "recipe_name":
            return context.recipe_name, pa.string()
        if source == "source_file":
            return batch.metadata.get("source_file"), pa.string()
        return self.config.value, None


def _typed_scalar(value: Any, arrow_type: pa.DataType | None) -> pa.Scalar:
    try:
        return pa.scalar(value, type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        if arrow_type is None:
            raise
        # templates render to strings and YAML gives floats: "5" -> int, 1.25 -> decimal(6,2)
        return pa.scalar(value).cast(arrow_type, safe=True)
