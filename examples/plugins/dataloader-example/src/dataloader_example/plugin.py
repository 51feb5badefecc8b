"""The plugin module named by the `dataloader` entry point."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from dataloader import (
    ArrowBatch,
    BaseConnector,
    Capabilities,
    ConnectorConfig,
    State,
    Transform,
    TransformStepConfig,
    hookimpl,
)


class SequenceConfig(ConnectorConfig):
    start: int = 1
    stop: int = Field(ge=0)
    label: str = "row"


class SequenceSource(BaseConnector):
    """Rows `id` from `start` to `stop` (inclusive) with `label` = "<label>-<id>"."""

    name = "sequence"
    config_model = SequenceConfig
    capabilities = Capabilities(read=True, incremental=True)

    def read_batches(self, state: State) -> Iterator[ArrowBatch]:
        assert self.context is not None
        start = self.config.start
        incremental = self.context.incremental
        if incremental is not None and incremental.cursor_column in state.cursor_values:
            start = max(start, int(state.cursor_values[incremental.cursor_column]) + 1)
        step = self.context.batch_size
        for low in range(start, self.config.stop + 1, step):
            ids = pa.array(range(low, min(low + step, self.config.stop + 1)), type=pa.int64())
            labels = pc.binary_join_element_wise(self.config.label, pc.cast(ids, pa.string()), "-")
            yield ArrowBatch(pa.RecordBatch.from_arrays([ids, labels], names=["id", "label"]))

    def estimate_rows(self) -> int | None:
        return max(0, self.config.stop - self.config.start + 1)


class UpperCaseConfig(TransformStepConfig):
    columns: list[str] = Field(min_length=1)


class UpperCase(Transform):
    """Upper-case the named string columns."""

    name = "upper_case"
    config_model = UpperCaseConfig

    def apply(self, batch: ArrowBatch, context: Any) -> ArrowBatch:
        data = batch.to_arrow()
        for column in self.config.columns:
            index = data.schema.get_field_index(column)
            data = data.set_column(
                index, data.schema.field(index), pc.utf8_upper(data.column(index))
            )
        return batch.with_data(data)


@hookimpl
def register_connectors() -> list[Any]:
    return [SequenceSource]


@hookimpl
def register_transforms() -> list[Any]:
    return [UpperCase]
