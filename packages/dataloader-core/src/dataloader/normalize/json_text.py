"""Arrow values as strict JSON text (RFC 8259), built column-wise with pyarrow compute.

A top-level null stays null (SQL NULL); a null inside a struct, list or map is `null`. Structs
and maps are objects, lists arrays; strings are escaped (`"`, `\\` and every control character
below U+0020; other characters are kept as they are); floats are their shortest round-trip
text (NaN and ±infinity are `null`); decimals are their exact digits; dates, times and
timestamps are quoted ISO 8601 (a timestamp with a zone in UTC, ending in `Z`); durations are
their count of the type's unit; binaries are quoted base64.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_CONTROL = "[\x00-\x1f]"
_ESCAPES = [("\\", "\\\\"), ('"', '\\"')] + [
    (chr(c), json.dumps(chr(c))[1:-1]) for c in range(0x20)
]


def to_json_text(array: pa.Array | pa.ChunkedArray) -> pa.StringArray | pa.ChunkedArray:
    """Each value of `array` as JSON text; nulls stay null.

    :returns: a string array (a chunked one for chunked input) of the same length.
    """
    if isinstance(array, pa.ChunkedArray):
        return pa.chunked_array([to_json_text(chunk) for chunk in array.chunks], pa.string())
    return _text(array)


def _wrap(left: str, text: pa.Array, right: str) -> pa.Array:
    def typed(value: str) -> pa.Scalar:
        return pa.scalar(value, text.type)

    return pc.binary_join_element_wise(typed(left), text, typed(right), typed(""))


def _constant(length: int, text: str) -> pa.Array:
    return pa.nulls(length, pa.string()).fill_null(text)


def _with_nulls(text: pa.Array, array: pa.Array) -> pa.Array:
    if array.null_count == 0:
        return text
    return pc.if_else(array.is_null(), pa.scalar(None, text.type), text)


def _quoted_string(array: pa.Array) -> pa.Array:
    """A JSON string literal per value of a string array."""
    text = array
    if pa.types.is_string_view(text.type):
        text = text.cast(pa.large_string())
    text = pc.replace_substring(text, "\\", "\\\\")
    text = pc.replace_substring(text, '"', '\\"')
    if pc.any(pc.match_substring_regex(text, _CONTROL)).as_py():
        for char, escaped in _ESCAPES[2:]:
            text = pc.replace_substring(text, char, escaped)
    return _wrap('"', text, '"')


def _base64(array: pa.Array) -> pa.Array:
    # a Python loop over the binary values: pyarrow compute has no base64 kernel, and binary
    # columns inside nested data are rare
    encoded = [
        None if v is None else base64.b64encode(v).decode("ascii") for v in array.to_pylist()
    ]
    return _wrap('"', pa.array(encoded, pa.string()), '"')


def _float_text(array: pa.Array) -> pa.Array:
    text = pc.cast(array, pa.string())
    finite = pc.is_finite(array)
    return pc.if_else(pc.fill_null(finite, True), text, "null")


def _timestamp_text(array: pa.Array) -> pa.Array:
    t = array.type
    if t.tz is not None:
        return _wrap(
            '"', pc.strftime(array.cast(pa.timestamp(t.unit, "UTC")), "%Y-%m-%dT%H:%M:%S"), 'Z"'
        )
    return _wrap('"', pc.strftime(array, "%Y-%m-%dT%H:%M:%S"), '"')


def _struct_text(array: pa.StructArray) -> pa.Array:
    if array.type.num_fields == 0:
        return _with_nulls(_constant(len(array), "{}"), array)
    members = []
    for field, child in zip(array.type, array.flatten(), strict=True):
        key = json.dumps(field.name, ensure_ascii=False) + ":"
        members.append(_wrap(key, _nested(child), ""))
    joined = pc.binary_join_element_wise(*members, ",")
    return _with_nulls(_wrap("{", joined, "}"), array)


def _list_parts(array: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The flattened elements of a list-like array and the offsets of each row in them."""
    values = pc.list_flatten(array)
    lengths = pc.list_value_length(array).fill_null(0).to_numpy(zero_copy_only=False)
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    return values, offsets


def _joined(
    items: pa.Array, offsets: np.ndarray, array: pa.Array, left: str, right: str
) -> pa.Array:
    """`left` + the items of each row joined by `,` + `right`; null rows stay null."""
    items = items.cast(pa.large_string())
    lists = pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), items)
    text = _wrap(left, pc.binary_join(lists, pa.scalar(",", pa.large_string())), right)
    return _with_nulls(text, array)


def _list_text(array: pa.Array) -> pa.Array:
    values, offsets = _list_parts(array)
    return _joined(_nested(values), offsets, array, "[", "]")


def _map_text(array: pa.MapArray) -> pa.Array:
    entries = array.cast(pa.list_(pa.struct([array.type.key_field, array.type.item_field])))
    values, offsets = _list_parts(entries)
    keys, items = values.flatten()
    if pa.types.is_string(keys.type) or pa.types.is_large_string(keys.type):
        key_text = _quoted_string(keys)
    else:
        key_text = _quoted_string(_text(keys))
    members = _wrap("", pc.binary_join_element_wise(key_text, _nested(items), ":"), "")
    return _joined(members, offsets, array, "{", "}")


def _nested(array: pa.Array) -> pa.Array:
    """JSON text of values inside a container: nulls are `null`."""
    return _text(array).fill_null("null")


def _text(array: pa.Array) -> pa.Array:
    """JSON text of each value; null values stay null."""
    text = _typed_text(array)
    return text if text.type == pa.string() else text.cast(pa.string())


def _typed_text(array: pa.Array) -> pa.Array:
    t = array.type
    if isinstance(t, pa.ExtensionType):
        return _text(array.storage)
    if pa.types.is_dictionary(t):
        return pc.take(_text(array.dictionary), array.indices)
    if pa.types.is_null(t):
        return pa.nulls(len(array), pa.string())
    if pa.types.is_boolean(t):
        return pc.if_else(array, "true", "false")
    if pa.types.is_integer(t) or pa.types.is_decimal(t):
        return pc.cast(array, pa.string())
    if pa.types.is_floating(t):
        return _float_text(array)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return _quoted_string(array)
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    ):
        return _base64(array)
    if pa.types.is_date(t) or pa.types.is_time(t):
        return _wrap('"', pc.cast(array, pa.string()), '"')
    if pa.types.is_timestamp(t):
        return _timestamp_text(array)
    if pa.types.is_duration(t):
        return pc.cast(array.cast(pa.int64()), pa.string())
    if pa.types.is_struct(t):
        return _struct_text(array)
    if pa.types.is_map(t):
        return _map_text(array)
    if (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
        or pa.types.is_list_view(t)
        or pa.types.is_large_list_view(t)
    ):
        return _list_text(array)
    raise TypeError(f"cannot write values of Arrow type {t} as JSON")
