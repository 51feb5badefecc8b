"""What the engine does around the normalizer: one row per merge key before a batch is split
into tables, the key columns each table's contract implies, and the children of rows a
contract took out."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataloader.normalize.key_text import key_text
from dataloader.normalize.keys import LIST_INDEX, PARENT_ID, ROOT_ID, ROW_ID
from dataloader.schema.config import ColumnSpec

_ORDINAL = "__dl_ordinal"
_KEY_TYPES = {ROW_ID: "string", PARENT_ID: "string", ROOT_ID: "string", LIST_INDEX: "int"}


def one_row_per_key(
    data: pa.RecordBatch, keys: Sequence[str], cursor: str | None
) -> pa.RecordBatch:
    """`data` with one row per merge key (keys equal as SQL compares them, `key_text`), the
    one a merge keeps: the highest cursor value (NULL lowest), then the row read last; rows
    stay in read order.

    A merge writes a key's row once, and its children must be that row's only: children of
    two rows of one key would share the key's row id.
    """
    if data.num_rows < 2 or not set(keys) <= set(data.schema.names):
        return data  # a missing key column is the normalizer's error to name
    # Keys compared as SQL compares them: 0.0 and -0.0, 1 and 1.00 are one key.
    groups = [f"__dl_key{i}" for i in range(len(keys))]
    table = pa.table([key_text(data.column(key)) for key in keys], names=groups)
    counts = table.group_by(groups, use_threads=False).aggregate([([], "count_all")])
    if counts.num_rows == data.num_rows:
        return data
    table = table.append_column(_ORDINAL, pa.array(np.arange(data.num_rows, dtype=np.int64)))
    order = []
    if cursor and cursor in data.schema.names:
        table = table.append_column("__dl_cursor", data.column(cursor))
        order.append(("__dl_cursor", "ascending", "at_start"))
    order.append((_ORDINAL, "ascending", "at_start"))
    ranked = table.take(pc.sort_indices(table, sort_keys=order))
    last = ranked.group_by(groups, use_threads=False).aggregate([(_ORDINAL, "last")])
    kept = pc.sort_indices(last.column(f"{_ORDINAL}_last"))
    rows = pc.take(last.column(f"{_ORDINAL}_last"), kept)
    return data.take(rows.combine_chunks() if isinstance(rows, pa.ChunkedArray) else rows)


def keys_as_stored(
    data: pa.RecordBatch, keys: Sequence[str], stored: pa.Schema | None
) -> pa.RecordBatch:
    """`data` with its key columns cast to the types the table stores them in, where that
    cast is exact: the table compares keys in its types (text `01` read into an integer
    column is the key 1), and a row's id must be the hash of the key it is merged by."""
    if stored is None:
        return data
    for key in keys:
        if key not in data.schema.names or key not in stored.names:
            continue
        index = data.schema.get_field_index(key)
        wanted = stored.field(key).type
        if data.schema.field(index).type.equals(wanted):
            continue
        with suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            cast = pc.cast(data.column(index), wanted)  # safe: refuses what it would change
            data = data.set_column(index, data.schema.field(index).with_type(wanted), cast)
    return data


def keep_children_of(data: pa.RecordBatch, parents: pa.Array) -> pa.RecordBatch:
    """The rows of a child table whose parent (`_dl_parent_id`) is among `parents`' ids."""
    mask = pc.is_in(data.column(PARENT_ID), value_set=parents)
    return data.filter(mask)


def implied_columns(names: Sequence[str]) -> list[ColumnSpec]:
    """The key columns (`_dl_id`, …) among `names`, as contract columns: a `strict` contract
    accepts them without the recipe declaring them."""
    return [
        ColumnSpec(name=name, type=_KEY_TYPES[name], nullable=False)
        for name in names
        if name in _KEY_TYPES
    ]
