"""The `upper_case` transform."""

from __future__ import annotations

from typing import Any

import pyarrow.compute as pc
from pydantic import Field

from dataloader import ArrowBatch, Transform, TransformStepConfig


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
