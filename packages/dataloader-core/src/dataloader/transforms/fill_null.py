"""The `fill_null` transform: replace nulls with a value per column."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from dataloader.batch import ArrowBatch
from dataloader.context import RunContext
from dataloader.errors import TransformError
from dataloader.transforms.base import Transform, TransformStepConfig
from dataloader.transforms.columns import require_columns


class FillNullConfig(TransformStepConfig):
    values: dict[str, Any] = Field(min_length=1)


class FillNull(Transform):
    """Replace nulls: `values: {country: unknown, amount: 0}`."""

    name = "fill_null"
    config_model = FillNullConfig

    def apply(self, batch: ArrowBatch, context: RunContext) -> ArrowBatch:
        data = batch.to_arrow()
        require_columns(batch, list(self.config.values), self.name)
        for column, value in self.config.values.items():
            index = data.schema.get_field_index(column)
            array = data.column(index)
            try:
                filled = pc.fill_null(array, pa.scalar(value, type=array.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
                raise TransformError(
                    f"fill_null: {value!r} is not a valid {array.type} for column {column!r}",
                    key=f"values.{column}",
                    context={"column": column},
                ) from exc
            data = data.set_column(index, data.schema.field(index), filled)
        return batch.with_data(data)
