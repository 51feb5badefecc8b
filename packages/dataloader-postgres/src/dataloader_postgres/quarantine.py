"""The quarantine table beside a destination table: `<table>__quarantine`, its `row` column
`jsonb` so the rows that broke the contract can be queried like any JSON."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from dataloader.schema.types import TYPE_TAG
from dataloader.sql import TableName

# A `\u0000` escape (not preceded by an escaped backslash), or a raw NUL: jsonb can hold
# neither, so NUL is kept as the six characters `\u0000`.
NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000|\x00")


def quarantine_table(table: TableName) -> TableName:
    """Where the rows that broke `table`'s contract go."""
    return table.sibling(f"{table.name}__quarantine")


def stored_rows(rows: pa.Table) -> pa.Table:
    """`rows` (see `BaseConnector.write_quarantine`) as they are stored: `row` as `jsonb`, its
    NUL characters (which jsonb cannot hold) as the text `\\u0000`."""
    index = rows.schema.get_field_index("row")
    field = rows.schema.field(index)
    field = field.with_metadata({**(field.metadata or {}), TYPE_TAG: b"jsonb"})
    column = rows.column(index)
    if pc.any(pc.match_substring_regex(column, r"\\u0000|\x00")).as_py():
        column = pa.chunked_array(
            [[None if text is None else _without_nul(text) for text in column.to_pylist()]],
            pa.string(),
        )
    return rows.set_column(index, field, column)


def _without_nul(text: str) -> str:
    return NUL.sub(lambda match: (match.group(1) or "") + "\\\\u0000", text)
