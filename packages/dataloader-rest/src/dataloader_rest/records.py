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
  kept as text (text as it is, other values as JSON text, numbers exact) rather than
  failing the page; in objects and lists only the members without one;
- integers beside decimals, or past int64, are decimals.
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
    return table_from_columns(list(names), columns)


def table_from_columns(names: list[str], columns: list[pa.Array]) -> pa.Table:
    """The table of columns built from a page's values, RFC 3339 text turned into instants."""
    if not names:
        return pa.table({})
    return pa.Table.from_arrays([_instants(column) for column in columns], names=names)


def _column(values: list[Any]) -> pa.Array:
    """`values` as an array of the type Arrow infers, except that integers beside decimals
    (or past int64) are decimals too, and objects and lists whose members share no type are
    built member by member; text when the values share no type."""
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if Decimal in kinds and kinds <= {Decimal, int}:
        decimals = _decimals(values)
        if decimals is not None:
            return decimals
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        array = None
    # Arrow's own inference sizes a nested decimal from the decimals alone, and may fit
    # integers beside them into it (`[0, 0.0]` as decimal(1, 1)): nested numbers are sized
    # member by member, as at the top.
    if array is not None and not (kinds & {dict, list} and _has_decimal(array.type)):
        return array
    if kinds == {dict}:
        return _struct(values)
    if kinds == {list}:
        return _list(values)
    if kinds == {int}:  # past int64
        decimals = _decimals(values)
        if decimals is not None:
            return decimals
    # Text as it is, anything else as JSON text: the same text whichever values share a page.
    return pa.array(
        [v if v is None or isinstance(v, str) else json_text(v) for v in values], pa.string()
    )


def _has_decimal(kind: pa.DataType) -> bool:
    if pa.types.is_decimal(kind):
        return True
    if pa.types.is_struct(kind):
        return any(_has_decimal(kind.field(i).type) for i in range(kind.num_fields))
    if pa.types.is_list(kind):
        return _has_decimal(kind.value_type)
    return False


def _struct(values: list[dict[str, Any] | None]) -> pa.Array:
    names = dict.fromkeys(chain.from_iterable(v for v in values if v is not None))
    children = [_column([None if v is None else v.get(n) for v in values]) for n in names]
    mask = pa.array([v is None for v in values]) if None in values else None
    return pa.StructArray.from_arrays(children, names=list(names), mask=mask)


def _list(values: list[list[Any] | None]) -> pa.Array:
    offsets, end = [0], 0
    for value in values:
        end += len(value) if value is not None else 0
        offsets.append(end)
    items = _column([item for value in values if value is not None for item in value])
    mask = pa.array([v is None for v in values]) if None in values else None
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), items, mask=mask)


def _decimals(values: list[Any]) -> pa.Array | None:
    """Decimals and integers (and nulls) as the decimal that holds them all, the type Arrow
    infers from decimals alone but without its per-value inference (ten times slower);
    None past 76 digits."""
    whole, scale = 0, 0  # digits before and after the point, as Arrow counts them
    for value in values:
        if value is None:
            continue
        if type(value) is int:
            whole = max(whole, len(str(abs(value))))
            continue
        _, digits, exponent = value.as_tuple()
        if not isinstance(exponent, int):  # NaN or infinity
            return None
        scale = max(scale, -exponent)
        whole = max(whole, len(digits) + exponent)
    precision = max(1, whole + scale)
    if precision > 76:
        return None
    kind = pa.decimal128 if precision <= 38 else pa.decimal256
    return pa.array([Decimal(v) if type(v) is int else v for v in values], kind(precision, scale))


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
