"""Records (JSON objects) into one Arrow table per page, converted once.

Types come from the values, as `pyarrow.Table.from_pylist` infers them: integers, booleans,
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
    """One page's records as an Arrow table (columns in the order fields first appear).

    :raises ConnectorError: a text value is not valid Unicode (a lone UTF-16 surrogate).
    """
    if not records:
        return pa.table({})
    try:
        table = pa.Table.from_pylist(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        table = _column_by_column(records)
    except UnicodeEncodeError:
        raise _bad_text(records) from None
    columns = [_instants(column) for column in table.columns]
    return pa.Table.from_arrays(columns, names=table.column_names)


def _column_by_column(records: list[dict[str, Any]]) -> pa.Table:
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    columns = {}
    for name in names:
        values = [record.get(name) for record in records]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            columns[name] = pa.array(
                [None if v is None else json_text(v) for v in values], pa.string()
            )
    return pa.table(columns)


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
