"""Arrow <-> Snowflake types.

Written: integers and decimals as NUMBER (exact), floats as FLOAT, text as VARCHAR, BOOLEAN,
DATE, TIME(n), naive timestamps as TIMESTAMP_NTZ(n), zoned timestamps as TIMESTAMP_TZ(n) in UTC,
binary as BINARY, and nested values (struct, list, map) as VARIANT from their JSON text.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import decimal
import json
import math
from typing import Any

import pyarrow as pa

from dataloader import ConnectorError

_PRECISION = {"s": 0, "ms": 3, "us": 6, "ns": 9}


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


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _json_value(value: Any) -> Any:
    """A map arrives as a list of (key, value) pairs: store it as a JSON object."""
    if isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
        return {str(k): _json_value(v) for k, v in value}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def to_stageable(data: pa.RecordBatch) -> pa.RecordBatch:
    """The batch as it is written to Parquet: nested columns as JSON text (parsed into
    VARIANT when moved from the staging table), timestamps with a zone in UTC."""
    columns: list[pa.Array] = []
    fields: list[pa.Field] = []
    for field, column in zip(data.schema, data.columns, strict=True):
        if is_nested(field.type):
            texts = [
                None if v is None else json.dumps(_json_value(v), default=_json_default)
                for v in column.to_pylist()
            ]
            column = pa.array(texts, pa.string())
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
