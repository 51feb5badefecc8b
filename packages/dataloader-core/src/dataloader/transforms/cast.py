"""The `cast` transform: change column types, with formats and time zones for datetimes.

A cast never loses digits silently: a value the target type cannot hold exactly (123.456 into
`decimal(12,2)`, 3.5 into `int`, nanoseconds into a microsecond timestamp) fails the step,
unless the column's spec asks for rounding with `round:`.
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dataloader.batch import ArrowBatch
from dataloader.context import RunContext
from dataloader.errors import TransformError
from dataloader.schema.types import parse_type
from dataloader.transforms.base import Transform, TransformStepConfig
from dataloader.transforms.columns import require_columns

SAMPLE_SIZE = 5

RoundMode = Literal["half_even", "half_away_from_zero", "towards_zero"]
# Arrow's names for them: its "towards infinity" means away from zero, on either side.
_ARROW_ROUND_MODES: dict[str, str] = {
    "half_even": "half_to_even",
    "half_away_from_zero": "half_towards_infinity",
    "towards_zero": "towards_zero",
}


class CastSpec(BaseModel):
    """One column's target: a type name, for datetimes an input `format` and `timezone`, and for
    `int` and `decimal(p,s)` targets an optional `round` mode for the digits they cannot hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    format: str | None = None
    timezone: str | None = None
    round: RoundMode | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        parse_type(value)
        return value

    @model_validator(mode="after")
    def _round_needs_digits_to_drop(self) -> CastSpec:
        target = parse_type(self.type)
        if self.round is not None and not _is_exact_number(target):
            raise ValueError(
                f"`round: {self.round}` applies to int and decimal(p,s) targets, not {self.type!r}"
            )
        return self


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
        hint = (
            "; to round instead, set `round:` (half_even, half_away_from_zero or towards_zero)"
            if _is_exact_number(target) and spec.round is None
            else ""
        )
        raise TransformError(
            f"cast: column {column!r} cannot be cast from {values.type} to {spec.type}"
            + (f"; offending values: {bad}" if bad else f" ({exc})")
            + hint,
            key=f"columns.{column}",
            expected=spec.type,
            context={"column": column, "offending_values": bad},
        ) from exc


def _is_exact_number(target: pa.DataType) -> bool:
    return pa.types.is_integer(target) or pa.types.is_decimal(target)


def _convert(values: pa.Array, target: pa.DataType, spec: CastSpec) -> pa.Array:
    if pa.types.is_timestamp(target):
        if pa.types.is_null(values.type):  # a batch where the column has no value yet
            values = values.cast(pa.timestamp("us"))
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
    if pa.types.is_string(values.type) and (
        _is_exact_number(target) or pa.types.is_floating(target)
    ):
        values = pc.utf8_trim_whitespace(values)
    if _is_exact_number(target):
        return _to_exact_number(values, target, spec.round)
    return values.cast(target, safe=True)


def _to_exact_number(values: pa.Array, target: pa.DataType, mode: str | None) -> pa.Array:
    """Cast to an int or decimal type, failing on any value it cannot hold exactly, or, with
    `mode`, rounding the digits beyond its scale first.

    Arrow's safe casts already refuse to drop digits from strings, decimals and ints; a float
    cast to a decimal it rounds silently, so a float goes through its shortest decimal text (the
    digits it shows, `0.1` for 0.1) and is held to exactly those digits.
    """
    scale = target.scale if pa.types.is_decimal(target) else 0
    if pa.types.is_floating(values.type):
        if pa.types.is_integer(target):  # Arrow refuses a float with a fraction (3.5) itself
            if mode is not None:
                values = pc.round(values, round_mode=_ARROW_ROUND_MODES[mode])
            return values.cast(target, safe=True)
        values = values.cast(pa.string())
    if mode is not None:
        if pa.types.is_string(values.type):
            values = _parse_for_rounding(values, target, scale)
        if pa.types.is_decimal(values.type) and values.type.scale > scale:
            values = pc.round(values, ndigits=scale, round_mode=_ARROW_ROUND_MODES[mode])
    if pa.types.is_integer(values.type) and pa.types.is_decimal(target):
        # Arrow sizes an int-to-decimal cast for the widest int of the type (int64 needs
        # precision 19 + scale), whatever the values; widen first, then narrow checking each.
        wide = 19 + scale
        values = values.cast(
            pa.decimal128(wide, scale) if wide <= 38 else pa.decimal256(wide, scale)
        )
    return values.cast(target, safe=True)


def _parse_for_rounding(values: pa.Array, target: pa.DataType, scale: int) -> pa.Array:
    """Parse decimal text keeping the digits `round` is to drop: a decimal with the target's
    integer digits and all the scale that fits (128 bits, or 256 for very long fractions)."""
    whole_digits = (target.precision - scale) if pa.types.is_decimal(target) else 19
    if whole_digits < 38:
        try:
            return values.cast(pa.decimal128(38, 38 - whole_digits), safe=True)
        except pa.ArrowInvalid:
            pass
    return values.cast(pa.decimal256(76, 76 - whole_digits), safe=True)


def _parse_iso_timestamps(values: pa.Array) -> pa.Array:
    """Parse ISO-8601 strings; values with a zone offset become UTC-aware."""
    has_zone = pc.match_substring_regex(values, r"(Z|[+-]\d\d:?\d\d)$")
    if pc.any(has_zone).as_py():
        if not pc.all(pc.or_(has_zone, pc.is_null(values))).as_py():
            raise pa.ArrowInvalid("mixes values with and without a time zone")
        return values.cast(pa.timestamp("us", tz="UTC"))
    return values.cast(pa.timestamp("us"))


def _offending_values(values: pa.Array, target: pa.DataType, spec: CastSpec) -> list[Any]:
    """Up to `SAMPLE_SIZE` distinct values that fail the cast (only run once a cast has failed)."""
    bad: list[Any] = []
    distinct = pc.unique(values.drop_null())
    for index in range(len(distinct)):
        value = distinct.slice(index, 1)
        try:
            _convert(value, target, spec)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            bad.append(_readable(value[0]))
            if len(bad) >= SAMPLE_SIZE:
                break
    return bad


def _readable(scalar: pa.Scalar) -> Any:
    """The scalar as a Python value, or as text when Python has no type for it (nanoseconds)."""
    try:
        return scalar.as_py()
    except ValueError:
        return str(scalar.cast(pa.string()).as_py())
