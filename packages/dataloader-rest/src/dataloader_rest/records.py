"""Records (JSON objects) into one Arrow table per page, converted once.

Types come from the values, as `pyarrow.Table.from_pylist` infers them: integers, booleans,
text, nested objects as structs and arrays as lists (which the recipe's `normalization:`
turns into child tables). Numbers with a fraction or an exponent arrive as `Decimal`
(`bodies` parses them so) and become exact decimals: `10.5` on one page and `10` or `3.25`
on the next widen the column's decimal, never round it through a float. Two more
refinements a loader needs:
- text that is an RFC 3339 instant with a zone in every row of the page becomes
  `timestamp[us, UTC]`, so cursors compare as times, not as text;
- a field whose values have no common type (a number in one record, text in another) is
  kept as JSON text rather than failing the page.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_INSTANT = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})$"
)
INSTANT_TYPE = pa.timestamp("us", "UTC")


def records_to_table(records: list[dict[str, Any]]) -> pa.Table:
    """One page's records as an Arrow table (columns in the order fields first appear)."""
    if not records:
        return pa.table({})
    try:
        table = pa.Table.from_pylist(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        table = _column_by_column(records)
    return _instants(table)


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
                [
                    None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                    for v in values
                ],
                pa.string(),
            )
    return pa.table(columns)


def _instants(table: pa.Table) -> pa.Table:
    for index, field in enumerate(table.schema):
        if not pa.types.is_string(field.type):
            continue
        column = table.column(index)
        valid = column.drop_null()
        if len(valid) == 0 or not _INSTANT.match(valid[0].as_py()):
            continue
        if not pc.all(pc.match_substring_regex(valid, _INSTANT.pattern)).as_py():
            continue
        try:
            converted = pc.cast(column, INSTANT_TYPE)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        table = table.set_column(index, field.with_type(INSTANT_TYPE), converted)
    return table
