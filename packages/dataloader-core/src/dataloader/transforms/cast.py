"""The `cast` transform: change column types, with formats and time zones for datetimes."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator

from dataloader.batch import ArrowBatch
from dataloader.context import RunContext
from dataloader.errors import TransformError
from dataloader.transforms.base import Transform, TransformStepConfig
from dataloader.transforms.columns import require_columns
from dataloader.transforms.types import parse_type

SAMPLE_SIZE = 5


class CastSpec(BaseModel):
    """One column's target: a type name, and for datetimes an input `format` and `timezone`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    format: str | None = None
    timezone: str | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        parse_type(value)
        return value


class CastConfig(TransformStepConfig):
    columns: dict[str, CastSpec] = Field(min_length=1)

    @field_validator("columns", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value


class Cast(Transform):
    """Cast columns: `columns: {age: int, price: "decimal(12,2)", at: {type: datetime, format: "%d/%m/%Y", timezone: UTC}}`."""

    name = "cast"
    config_model = CastConfig

    def apply(self, batch: ArrowBatch, context: RunContext) -> ArrowBatch:
        data = batch.to_arrow()
        require_columns(batch, list(self.config.columns), self.name)
        arrays = list(data.columns)
        fields = list(data.schema)
        for column, spec in self.config.columns.items():
            index = data.schema.get_field_index(column)
            converted = _cast_column(column, data.column(index), spec)
            arrays[index] = converted
            fields[index] = pa.field(column, converted.type, nullable=fields[index].nullable)
        return batch.with_data(pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields)))


def _cast_column(column: str, values: pa.Array, spec: CastSpec) -> pa.Array:
    target = parse_type(spec.type)
    try:
        return _convert(values, target, spec)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        bad = _offending_values(values, target, spec)
        raise TransformError(
            f"cast: column {column!r} cannot be cast from {values.type} to {spec.type}"
            + (f"; offending values: {bad}" if bad else f" ({exc})"),
            key=f"columns.{column}",
            expected=spec.type,
            context={"column": column, "offending_values": bad},
        ) from exc


def _convert(values: pa.Array, target: pa.DataType, spec: CastSpec) -> pa.Array:
    if pa.types.is_timestamp(target):
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            if spec.format:
                values = pc.strptime(values, format=spec.format, unit="us", error_is_null=False)
            else:
                values = _parse_iso_timestamps(values)
        if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
            values = values.cast(pa.timestamp("us", tz=getattr(values.type, "tz", None)))
        if spec.timezone:
            if getattr(values.type, "tz", None) is None:
                values = pc.assume_timezone(values, timezone=spec.timezone)
            values = values.cast(pa.timestamp("us", tz=spec.timezone))
            return values
        return values.cast(pa.timestamp("us", tz=getattr(values.type, "tz", None)))
    if pa.types.is_boolean(target) and pa.types.is_string(values.type):
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(values))
        truthy = pc.is_in(lowered, value_set=pa.array(["true", "t", "yes", "y", "1"]))
        falsy = pc.is_in(lowered, value_set=pa.array(["false", "f", "no", "n", "0"]))
        invalid = pc.and_(pc.invert(pc.or_(truthy, falsy)), pc.is_valid(values))
        if pc.any(invalid).as_py():
            raise pa.ArrowInvalid("not a boolean")
        return pc.if_else(pc.is_null(values), pa.scalar(None, pa.bool_()), truthy)
    if pa.types.is_date(target) and spec.format and pa.types.is_string(values.type):
        return pc.strptime(values, format=spec.format, unit="s").cast(pa.date32())
    if (
        pa.types.is_integer(target) or pa.types.is_decimal(target) or pa.types.is_floating(target)
    ) and pa.types.is_string(values.type):
        values = pc.utf8_trim_whitespace(values)
    return values.cast(target, safe=True)


def _parse_iso_timestamps(values: pa.Array) -> pa.Array:
    """Parse ISO-8601 strings; values with a zone offset become UTC-aware."""
    has_zone = pc.match_substring_regex(values, r"(Z|[+-]\d\d:?\d\d)$")
    if pc.any(has_zone).as_py():
        if not pc.all(pc.or_(has_zone, pc.is_null(values))).as_py():
            raise pa.ArrowInvalid("mixes values with and without a time zone")
        return values.cast(pa.timestamp("us", tz="UTC"))
    return values.cast(pa.timestamp("us"))


def _offending_values(values: pa.Array, target: pa.DataType, spec: CastSpec) -> list[Any]:
    bad: list[Any] = []
    for value in pc.unique(values.drop_null()).to_pylist():
        try:
            _convert(pa.array([value], type=values.type), target, spec)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            bad.append(value)
            if len(bad) >= SAMPLE_SIZE:
                break
    return bad
