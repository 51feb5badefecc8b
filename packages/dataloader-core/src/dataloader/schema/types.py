"""The type names recipes use (`int`, `decimal(12,2)`, `list<int>`, `struct<a: int>`, …) and
their Arrow types, both ways: `parse_type` for `cast`, `add_column`, `column_types` and the
`schema:` section; `type_name` to show an Arrow type in the same words."""

from __future__ import annotations

import re

import pyarrow as pa

_SIMPLE: dict[str, pa.DataType] = {
    "str": pa.string(),
    "string": pa.string(),
    "text": pa.string(),
    "json": pa.string(),
    "int": pa.int64(),
    "integer": pa.int64(),
    "bigint": pa.int64(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "int16": pa.int16(),
    "int8": pa.int8(),
    "float": pa.float64(),
    "double": pa.float64(),
    "float64": pa.float64(),
    "float32": pa.float32(),
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "datetime": pa.timestamp("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "time": pa.time64("us"),
    "binary": pa.binary(),
}
_DECIMAL = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
TYPE_NAMES = ", ".join([*sorted(_SIMPLE), "decimal(p,s)", "list<T>", "struct<name: T, …>"])
JSON_TAG = b"json"
"""The field metadata value (under `TYPE_TAG`) marking a string column that holds JSON."""
UUID_TAG = b"uuid"
"""The field metadata value (under `TYPE_TAG`) marking a string column that holds UUIDs."""
TYPE_TAG = b"pg_type"
"""The field metadata key under which a column's database type travels with its Arrow field."""


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
    inner = _bracketed(key, "list")
    if inner is not None:
        return pa.list_(parse_type(inner))
    inner = _bracketed(key, "struct")
    if inner is not None:
        fields = []
        for part in _split_top_level(inner):
            field_name, colon, field_type = part.partition(":")
            if not colon or not field_name.strip():
                raise ValueError(f"struct field {part.strip()!r} is not `name: type`")
            fields.append(pa.field(field_name.strip(), parse_type(field_type)))
        if not fields:
            raise ValueError("struct<…> needs at least one field")
        names = [field.name for field in fields]
        if len(set(names)) != len(names):
            raise ValueError(f"struct<…> names a field twice: {names}")
        return pa.struct(fields)
    from difflib import get_close_matches

    close = get_close_matches(key, [*_SIMPLE, "decimal(p,s)", "list<T>", "struct<…>"], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown type {name!r}{hint}; expected one of {TYPE_NAMES}")


def is_json_name(name: str) -> bool:
    """Whether a recipe type name is `json` (a string column the destination stores as JSON)."""
    return name.strip().lower() == "json"


def type_name(arrow_type: pa.DataType) -> str:
    """`arrow_type` in the recipe's words (`int`, `decimal(20,1)`, `list<string>`, …); Arrow's
    own name for types the vocabulary has no word for."""
    if pa.types.is_decimal(arrow_type):
        return f"decimal({arrow_type.precision},{arrow_type.scale})"
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return f"list<{type_name(arrow_type.value_type)}>"
    if pa.types.is_struct(arrow_type):
        fields = ", ".join(
            f"{arrow_type.field(i).name}: {type_name(arrow_type.field(i).type)}"
            for i in range(arrow_type.num_fields)
        )
        return f"struct<{fields}>"
    if pa.types.is_timestamp(arrow_type):
        base = "timestamptz" if arrow_type.tz is not None else "timestamp"
        return base if arrow_type.unit == "us" else f"{base}[{arrow_type.unit}]"
    words = {
        pa.string(): "string",
        pa.large_string(): "string",
        pa.int64(): "int",
        pa.int32(): "int32",
        pa.int16(): "int16",
        pa.int8(): "int8",
        pa.float64(): "float",
        pa.float32(): "float32",
        pa.bool_(): "bool",
        pa.date32(): "date",
        pa.time64("us"): "time",
        pa.binary(): "binary",
        pa.large_binary(): "binary",
    }
    return words.get(arrow_type, str(arrow_type))


def _bracketed(key: str, word: str) -> str | None:
    """The text between `word<` and the final `>`, or None when `key` is not such a type."""
    if key.startswith(word) and key[len(word) :].lstrip().startswith("<") and key.endswith(">"):
        return key[len(word) :].lstrip()[1:-1]
    return None


def _split_top_level(text: str) -> list[str]:
    """`text` cut at the commas that are not inside `<…>` or `(…)`."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char in "<(":
            depth += 1
        elif char in ">)":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [part for part in parts if part.strip()]
