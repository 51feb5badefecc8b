"""Parsing of the type names recipes use (`int`, `decimal(12,2)`, `datetime`…) into Arrow types."""

from __future__ import annotations

import re

import pyarrow as pa

_SIMPLE: dict[str, pa.DataType] = {
    "str": pa.string(),
    "string": pa.string(),
    "text": pa.string(),
    "int": pa.int64(),
    "integer": pa.int64(),
    "bigint": pa.int64(),
    "int32": pa.int32(),
    "int16": pa.int16(),
    "float": pa.float64(),
    "double": pa.float64(),
    "float32": pa.float32(),
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "datetime": pa.timestamp("us"),
    "timestamp": pa.timestamp("us"),
    "time": pa.time64("us"),
    "binary": pa.binary(),
}
_DECIMAL = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
TYPE_NAMES = ", ".join([*sorted(_SIMPLE), "decimal(p,s)"])


def parse_type(name: str) -> pa.DataType:
    """The Arrow type for a recipe type name; `ValueError` naming the accepted names otherwise."""
    key = name.strip().lower()
    if key in _SIMPLE:
        return _SIMPLE[key]
    match = _DECIMAL.match(key)
    if match:
        precision, scale = int(match.group(1)), int(match.group(2))
        if not 1 <= precision <= 76 or scale > precision:
            raise ValueError(
                f"decimal({precision},{scale}) needs 1 <= precision <= 76 and scale <= precision"
            )
        return (
            pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
        )
    raise ValueError(f"unknown type {name!r}; expected one of {TYPE_NAMES}")
