"""Arrow <-> Snowflake types.

Written: integers and decimals as NUMBER (exact), floats as FLOAT, text as VARCHAR, BOOLEAN,
DATE, TIME(n), naive timestamps as TIMESTAMP_NTZ(n), zoned timestamps as TIMESTAMP_TZ(n) in UTC,
binary as BINARY, and nested values (struct, list, map) as VARIANT from their JSON text.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import math
import re
from typing import Any

import pyarrow as pa

from dataloader import ConnectorError
from dataloader.normalize.json_text import to_json_text
from dataloader.schema.types import JSON_TAG, TYPE_TAG

_PRECISION = {"s": 0, "ms": 3, "us": 6, "ns": 9}
_TYPE = re.compile(r"([A-Z_]+)(?:\((\d+)(?:,(\d+))?\))?")


def is_nested(arrow_type: pa.DataType) -> bool:
    return (
        pa.types.is_struct(arrow_type)
        or pa.types.is_list(arrow_type)
        or pa.types.is_large_list(arrow_type)
        or pa.types.is_map(arrow_type)
    )


def snowflake_type(field: pa.Field) -> str:
    """The Snowflake column type that holds `field`'s values exactly."""
    t = field.type
    if pa.types.is_integer(t):
        return "NUMBER(38,0)"
    if pa.types.is_decimal(t):
        if t.precision > 38:
            raise ConnectorError(
                f"column {field.name!r} is {t}: Snowflake's NUMBER holds 38 digits at most",
                key="destination.table",
                value=str(t),
                expected="a decimal of precision 38 or less",
            )
        return f"NUMBER({t.precision},{t.scale})"
    if pa.types.is_floating(t):
        return "FLOAT"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "VARCHAR"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_time(t):
        return f"TIME({_PRECISION[t.unit]})"
    if pa.types.is_timestamp(t):
        kind = "TIMESTAMP_TZ" if t.tz else "TIMESTAMP_NTZ"
        return f"{kind}({_PRECISION[t.unit]})"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "BINARY"
    if is_nested(t):
        return "VARIANT"
    if pa.types.is_null(t):
        return "VARCHAR"
    raise ConnectorError(
        f"column {field.name!r} has type {t}, which the Snowflake destination cannot store",
        key="destination.table",
        value=str(t),
        expected="numbers, text, booleans, dates, times, timestamps, binary or nested values",
    )


def to_stageable(data: pa.RecordBatch) -> pa.RecordBatch:
    """The batch as it is written to Parquet: nested columns as JSON text (parsed into
    VARIANT when moved from the staging table), timestamps with a zone in UTC."""
    columns: list[pa.Array] = []
    fields: list[pa.Field] = []
    for field, column in zip(data.schema, data.columns, strict=True):
        if is_nested(field.type):
            column = to_json_text(column)
            field = pa.field(field.name, pa.string())
        elif pa.types.is_timestamp(field.type) and field.type.tz:
            column = column.cast(pa.timestamp(field.type.unit, tz="UTC"))
            field = pa.field(field.name, column.type)
        elif pa.types.is_null(field.type):
            column = column.cast(pa.string())
            field = pa.field(field.name, pa.string())
        columns.append(column)
        fields.append(field)
    return pa.record_batch(columns, schema=pa.schema(fields))


def from_snowflake(table: pa.Table) -> pa.Table:
    """A result of `fetch_arrow_batches` without the connector's field metadata, timestamps
    in microseconds when no value needs nanoseconds, and zones named `UTC`."""
    columns: list[pa.ChunkedArray] = []
    fields: list[pa.Field] = []
    for field, column in zip(table.schema, table.columns, strict=True):
        t = field.type
        if pa.types.is_timestamp(t) and t.unit == "ns":
            target = pa.timestamp("us", tz="UTC" if t.tz else None)
            try:
                column = column.cast(target)
            except pa.ArrowInvalid:
                column = column.cast(pa.timestamp("ns", tz="UTC" if t.tz else None))
        elif pa.types.is_timestamp(t) and t.tz:
            column = column.cast(pa.timestamp(t.unit, tz="UTC"))
        elif pa.types.is_time(t) and t.unit == "ns":
            with contextlib.suppress(pa.ArrowInvalid):
                column = column.cast(pa.time64("us"))
        columns.append(column)
        fields.append(pa.field(field.name, column.type, field.nullable))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def literal(value: Any) -> str:
    """`value` (a cursor bound) as a Snowflake SQL literal."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if math.isnan(value):
            return "'NaN'::FLOAT"
        if math.isinf(value):
            return "'inf'::FLOAT" if value > 0 else "'-inf'::FLOAT"
        return repr(value)
    if isinstance(value, int | decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            return f"'{value.isoformat()}'::TIMESTAMP_TZ"
        return f"'{value.isoformat()}'::TIMESTAMP_NTZ"
    if isinstance(value, datetime.date):
        return f"'{value.isoformat()}'::DATE"
    if isinstance(value, datetime.time):
        return f"'{value.isoformat()}'::TIME"
    if isinstance(value, bytes):
        return f"TO_BINARY('{value.hex()}', 'HEX')"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def number_type(kind: str) -> tuple[int, int] | None:
    """The (precision or length, scale) of a type such as `NUMBER(10,2)` or `VARCHAR(3)`."""
    found = _TYPE.fullmatch(kind.strip().upper())
    if found is None or found.group(2) is None:
        return None
    return int(found.group(2)), int(found.group(3) or 0)


def _unit(precision: int | None) -> str:
    """Fractional digits as an Arrow unit; 7-9 digits read as microseconds, as the source
    reads them when no value needs more."""
    if precision is None or precision > 3:
        return "us"
    return "s" if precision == 0 else "ms"


def arrow_type_of(column: str, kind: str) -> tuple[pa.DataType, dict[bytes, bytes]]:
    """The Arrow type (and field metadata) of a Snowflake column type from `DESCRIBE TABLE`.

    NUMBER(38,0), what integers are written as, is int64; VARIANT, OBJECT and ARRAY are JSON
    text (the engine turns nested values into it)."""
    found = _TYPE.fullmatch(kind.strip().upper())
    base = found.group(1) if found else kind.strip().upper()
    size = number_type(kind)
    if base in ("NUMBER", "DECIMAL", "NUMERIC"):
        precision, scale = size or (38, 0)
        if precision == 38 and scale == 0:
            return pa.int64(), {}
        return pa.decimal128(precision, scale), {}
    if base in ("FLOAT", "FLOAT4", "FLOAT8", "DOUBLE", "REAL", "DOUBLE PRECISION"):
        return pa.float64(), {}
    if base in ("VARCHAR", "TEXT", "STRING", "CHAR", "CHARACTER"):
        return pa.string(), {}
    if base == "BOOLEAN":
        return pa.bool_(), {}
    if base == "DATE":
        return pa.date32(), {}
    if base == "TIME":
        unit = _unit(size[0] if size else None)
        return (pa.time64(unit) if unit == "us" else pa.time32(unit)), {}
    if base in ("TIMESTAMP_NTZ", "DATETIME", "TIMESTAMP"):
        return pa.timestamp(_unit(size[0] if size else None)), {}
    if base in ("TIMESTAMP_TZ", "TIMESTAMP_LTZ"):
        return pa.timestamp(_unit(size[0] if size else None), tz="UTC"), {}
    if base in ("BINARY", "VARBINARY"):
        return pa.binary(), {}
    if base in ("VARIANT", "OBJECT", "ARRAY"):
        return pa.string(), {TYPE_TAG: JSON_TAG}
    raise ConnectorError(
        f"column {column!r} is {kind}, a type the Snowflake destination cannot write",
        key="destination.table",
        value=kind,
        expected="numbers, text, booleans, dates, times, timestamps, binary or VARIANT",
    )
