"""Arrow types as SQLite declared types and back, and Arrow values as what SQLite stores.

SQLite keeps a value's type per value, not per column; a column's declared type only gives it
an *affinity* (INTEGER, REAL, TEXT, NUMERIC or BLOB, chosen by substrings of the declared
text: `INT` first, then `CHAR`/`CLOB`/`TEXT`, `BLOB`, `REAL`/`FLOA`/`DOUB`, else NUMERIC).
So the declared text is where the Arrow type lives, and it is chosen so that the affinity
loses no digit:

- a decimal is declared `DECIMAL_TEXT(p,s)`: TEXT affinity, so `'6.50'` stays `'6.50'`.
  `DECIMAL(p,s)` would get NUMERIC affinity, which stores `'6.50'` as the REAL 6.5 (and
  `'12345678901234567.1'` as the nearest double);
- JSON and UUID text are `JSON_TEXT` and `UUID_TEXT` (plain `JSON` is NUMERIC: `'1.50'` would
  become 1.5);
- dates, times and timestamps are ISO text (`2024-01-04 06:30:00.000000`, a zone as `Z`)
  under `DATE`, `TIME`, `TIMESTAMP(n)` and `TIMESTAMPTZ(n)` (`n` digits of fraction; none for
  microseconds): NUMERIC affinity, which keeps ISO text as text (it is no number);
- integers are `TINYINT`, `SMALLINT`, `INT`, `BIGINT` (int8 to int64), floats `FLOAT` and
  `DOUBLE`, booleans `BOOLEAN` (0 or 1), strings `TEXT`, bytes `BLOB`.

A table made by hand is read by the same words (`INT` is int32 and `FLOAT` float32, as in
DuckDB), and otherwise by SQLite's affinity rules: any other declared type with `INT` is int64
(`INTEGER` included), `REAL` and `DOUBLE PRECISION` float64, `DECIMAL(p,s)`/`NUMERIC(p,s)`
decimal(p,s), `DATETIME` a timestamp, `VARCHAR(n)` a string, none a binary, a bare `NUMERIC`
float64 (what SQLite stores there).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import time
from decimal import Decimal
from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dataloader import ConnectorError
from dataloader.schema.types import JSON_TAG, TYPE_TAG, type_name

_INTEGERS = {
    pa.int8(): "TINYINT",
    pa.int16(): "SMALLINT",
    pa.int32(): "INT",
    pa.int64(): "BIGINT",
}
_PLAIN = {
    **_INTEGERS,
    pa.float32(): "FLOAT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.string(): "TEXT",
    pa.large_string(): "TEXT",
    pa.binary(): "BLOB",
    pa.large_binary(): "BLOB",
    pa.date32(): "DATE",
    pa.time64("us"): "TIME",
}
_TAGGED = {b"json": "JSON_TEXT", b"uuid": "UUID_TEXT"}
_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}
_UNITS = {digits: unit for unit, digits in _DIGITS.items()}
_DECIMAL = re.compile(r"^(?:DECIMAL|NUMERIC)(?:_TEXT)?\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
_TIMESTAMP = re.compile(r"^(TIMESTAMPTZ|TIMESTAMP|DATETIME)\s*(?:\(\s*(\d)\s*\))?$")
# Hand-made declared types read by their name, before SQLite's affinity rules decide.
_NAMED = {
    "TINYINT": pa.int8(),
    "SMALLINT": pa.int16(),
    "INT": pa.int32(),
    "FLOAT": pa.float32(),
    "BOOLEAN": pa.bool_(),
    "BOOL": pa.bool_(),
    "DATE": pa.date32(),
    "TIME": pa.time64("us"),
    "JSON": pa.string(),
    "JSON_TEXT": pa.string(),
    "UUID_TEXT": pa.string(),
}


def declared_type(field: pa.Field) -> str:
    """The declared type a column holding `field` is created with."""
    kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
    tag = (field.metadata or {}).get(TYPE_TAG)
    if pa.types.is_string(kind) and tag in _TAGGED:
        return _TAGGED[tag]
    if kind in _PLAIN:
        return _PLAIN[kind]
    if pa.types.is_decimal(kind):
        return f"DECIMAL_TEXT({kind.precision},{kind.scale})"
    if pa.types.is_timestamp(kind):
        base = "TIMESTAMP" if kind.tz is None else "TIMESTAMPTZ"
        return base if kind.unit == "us" else f"{base}({_DIGITS[kind.unit]})"
    raise ConnectorError(
        f"column {field.name!r} is {type_name(kind)}, which the SQLite example destination "
        "does not store",
        key="destination.table",
        value=field.name,
        expected="integers, floats, decimals, booleans, text, bytes, dates, times, timestamps",
    )


@lru_cache(maxsize=256)
def arrow_field(name: str, declared: str) -> pa.Field:
    """The Arrow field (type, and a `pg_type` tag for JSON/UUID text) a column of declared type
    `declared` is read as."""
    text = " ".join(declared.upper().split())
    if text in ("JSON", "JSON_TEXT", "UUID_TEXT"):
        tag = JSON_TAG if text.startswith("JSON") else b"uuid"
        return pa.field(name, pa.string(), metadata={TYPE_TAG: tag})
    return pa.field(name, _arrow_type(text))


def _arrow_type(text: str) -> pa.DataType:
    if text in _NAMED:
        return _NAMED[text]
    match = _DECIMAL.match(text)
    if match:
        precision, scale = int(match.group(1)), int(match.group(2))
        return (pa.decimal128 if precision <= 38 else pa.decimal256)(precision, scale)
    match = _TIMESTAMP.match(text)
    if match:
        unit = _UNITS.get(int(match.group(2) or 6), "us")
        return pa.timestamp(unit, tz="UTC" if match.group(1) == "TIMESTAMPTZ" else None)
    # SQLite's affinity rules, in its order.
    if "INT" in text:
        return pa.int64()
    if any(word in text for word in ("CHAR", "CLOB", "TEXT")):
        return pa.string()
    if "BLOB" in text or not text:
        return pa.binary()
    return pa.float64()  # REAL affinity, and NUMERIC without a scale: SQLite stores doubles


def stored_values(column: pa.Array | pa.ChunkedArray) -> list[Any]:
    """The column's values as Python values sqlite3 binds: decimals and timestamps as their
    exact text (`6.50`, `2024-01-04 06:30:00.000000Z`), dates and times as ISO text."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = kind.value_type
    if pa.types.is_timestamp(kind) and kind.tz is not None:
        column = column.cast(pa.timestamp(kind.unit, tz="UTC"))  # one text per instant
    if (
        pa.types.is_decimal(kind)
        or pa.types.is_timestamp(kind)
        or pa.types.is_date(kind)
        or pa.types.is_time(kind)
    ):
        column = pc.cast(column, pa.string())
    return column.to_pylist()


def arrow_values(values: Iterable[Any], kind: pa.DataType) -> pa.Array:
    """Values as SQLite returns them from a column read as `kind`, back as an Arrow array."""
    values = list(values)
    if pa.types.is_decimal(kind):
        exact = [None if v is None else Decimal(str(v)) for v in values]
        return pa.array(exact, kind)
    if pa.types.is_time(kind):
        return pa.array([None if v is None else time.fromisoformat(v) for v in values], kind)
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return pc.cast(pa.array(values, pa.string()), kind)
    if pa.types.is_boolean(kind):
        return pc.cast(pa.array(values, pa.int64()), kind)
    return pa.array(values, kind)


def widened_value(value: Any, before: str, after: str) -> Any:
    """`value`, stored in a column declared `before`, as a column declared `after` stores it:
    read as the old Arrow type, cast by Arrow to the new one (which fails rather than lose a
    digit). SQLite calls it per row while a table is rewritten."""
    if value is None:
        return None
    old = arrow_field("", before).type
    new = arrow_field("", after).type
    return stored_values(pc.cast(arrow_values([value], old), new))[0]
