"""Records (JSON objects) into one Arrow table per page, converted once.

Types come from the values, as Arrow infers them column by column: integers, booleans,
text, nested objects as structs and arrays as lists (which the recipe's `normalization:`
turns into child tables). Numbers with a fraction or an exponent arrive as `Decimal`
(`bodies` parses them so) and become exact decimals: `10.5` on one page and `10` or `3.25`
on the next widen the column's decimal, never round it through a float. Two more
refinements a loader needs:
- text that is an RFC 3339 instant with a zone in every row of the page becomes
  `timestamp[us, UTC]` (`[ns, UTC]` when a value has nanoseconds), at any depth, so
  cursors compare as times, not as text;
- a field whose values have no common type (a number in one record, text in another) is
  kept as JSON text (numbers exact) rather than failing the page.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from itertools import chain
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dataloader import ConnectorError

_INSTANT = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$"
)
_FINER_THAN_MICROS = r"\.\d{7}"
INSTANT_TYPE = pa.timestamp("us", "UTC")
NANO_INSTANT_TYPE = pa.timestamp("ns", "UTC")


def records_to_table(records: list[dict[str, Any]]) -> pa.Table:
    """One page's records as an Arrow table: a column for every field of any record, in the
    order fields first appear, null where a record lacks the field.

    :raises ConnectorError: a text value is not valid Unicode (a lone UTF-16 surrogate).
    """
    if not records:
        return pa.table({})
    names = dict.fromkeys(chain.from_iterable(records))
    try:
        columns = [_column([record.get(name) for record in records]) for name in names]
    except UnicodeEncodeError:
        raise _bad_text(records) from None
    return pa.Table.from_arrays([_instants(column) for column in columns], names=list(names))


def _column(values: list[Any]) -> pa.Array:
    """`values` as an array of the type Arrow infers; JSON text when they have none."""
    if Decimal in set(map(type, values)):
        decimals = _decimals(values)
        if decimals is not None:
            return decimals
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return pa.array([None if v is None else json_text(v) for v in values], pa.string())


def _decimals(values: list[Any]) -> pa.Array | None:
    """Only decimals (and nulls) as the `decimal128` Arrow would infer, but without its
    per-value inference (ten times slower); None when another type is among them or the
    precision needs `decimal256`."""
    whole, scale = 0, 0  # digits before and after the point, as Arrow counts them
    for value in values:
        if value is None:
            continue
        if type(value) is not Decimal:
            return None
        _, digits, exponent = value.as_tuple()
        if not isinstance(exponent, int):  # NaN or infinity: Arrow decides
            return None
        scale = max(scale, -exponent)
        whole = max(whole, len(digits) + exponent)
    precision = max(1, whole + scale)
    if precision > 38:
        return None
    return pa.array(values, pa.decimal128(precision, scale))


def json_text(value: Any) -> str:
    """`value` (parsed JSON) as JSON text again, its numbers exact (a `Decimal` is written
    as the number it is, not as a string or a rounded float)."""
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else json.dumps(str(value))
    if isinstance(value, dict):
        items = (
            f"{json.dumps(str(k), ensure_ascii=False)}:{json_text(v)}" for k, v in value.items()
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(json_text(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _instants(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """`column` with RFC 3339 text (an instant with its zone in every value) as UTC
    timestamps, in microseconds or, when a value has finer digits, nanoseconds; in struct
    fields and list items too."""
    if isinstance(column, pa.ChunkedArray):
        chunks = [_instants(chunk) for chunk in column.chunks]
        return pa.chunked_array(chunks) if chunks else column
    kind = column.type
    if pa.types.is_struct(kind):
        children = [_instants(child) for child in column.flatten()]  # parent nulls applied
        if all(child.type == kind.field(i).type for i, child in enumerate(children)):
            return column
        return pa.StructArray.from_arrays(
            children,
            fields=[kind.field(i).with_type(c.type) for i, c in enumerate(children)],
            mask=column.is_null() if column.null_count else None,
        )
    if pa.types.is_list(kind):
        values = _instants(column.values)
        if values.type == kind.value_type:
            return column
        offsets = column.offsets
        return pa.ListArray.from_arrays(
            offsets, values, mask=column.is_null() if column.null_count else None
        )
    if not pa.types.is_string(kind):
        return column
    valid = column.drop_null()
    if len(valid) == 0 or not _INSTANT.match(valid[0].as_py()):
        return column
    if not pc.all(pc.match_substring_regex(valid, _INSTANT.pattern)).as_py():
        return column
    fine = pc.any(pc.match_substring_regex(valid, _FINER_THAN_MICROS)).as_py()
    try:
        return pc.cast(column, NANO_INSTANT_TYPE if fine else INSTANT_TYPE)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return column


def _bad_text(records: list[dict[str, Any]]) -> ConnectorError:
    """The error naming the first field whose text cannot be encoded."""

    def bad(value: Any) -> bool:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return True
            return False
        if isinstance(value, dict):
            return any(bad(v) for v in value.values())
        if isinstance(value, list):
            return any(bad(v) for v in value)
        return False

    for position, record in enumerate(records):
        for name, value in record.items():
            if bad(value):
                return ConnectorError(
                    f"record {position + 1} of a page has text that is not valid Unicode in "
                    f"field {name!r} (a lone UTF-16 surrogate, such as half of an emoji cut "
                    "by the API)",
                    key="source.resource",
                    value=name,
                    expected="text the API encodes as valid UTF-16 surrogate pairs",
                )
    return ConnectorError("a page has text that is not valid Unicode", key="source.resource")
