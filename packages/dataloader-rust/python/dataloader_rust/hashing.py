"""Row hashing in Rust: `dataloader.normalize.keys.hash_rows`, bit for bit, without the GIL.

The core defines the hash; this module hands the columns to the native module over the Arrow
PyCapsule interface together with the core's named constants, and returns None for the column
types it does not port (the core then hashes them itself).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa

from dataloader.normalize import keys
from dataloader_rust import _native
from dataloader_rust.arrow_import import importable

__all__ = ["hash_rows"]

log = logging.getLogger(__name__)

# Every tag the native hash needs a constant for, besides the "field:" names.
_TAGS = ("null", "decimal", "string", "binary", "position", "elements")
_MIX_TAGS = ("bool", "int", "float", "date", "time", "timestamp", "duration", "struct", "list")


def _field_names(t: pa.DataType) -> Iterator[str]:
    """The names of every struct field (map entries included) nested in `t`."""
    if isinstance(t, pa.BaseExtensionType):
        yield from _field_names(t.storage_type)
    elif pa.types.is_dictionary(t):
        yield from _field_names(t.value_type)
    elif pa.types.is_struct(t):
        for field in t:
            yield field.name
            yield from _field_names(field.type)
    elif pa.types.is_map(t):
        for field in (t.key_field, t.item_field):
            yield field.name
            yield from _field_names(field.type)
    elif (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
        or pa.types.is_list_view(t)
        or pa.types.is_large_list_view(t)
    ):
        yield from _field_names(t.value_type)


def _core_hashes(t: pa.DataType) -> bool:
    """Whether the core's path hashes `t`'s extension types (if any) as their storage: it
    does for Python-defined ones, not for pyarrow's built-in ones (UUID, JSON, ...)."""
    if isinstance(t, pa.BaseExtensionType):
        return isinstance(t, pa.ExtensionType) and _core_hashes(t.storage_type)
    if pa.types.is_dictionary(t):
        return _core_hashes(t.value_type)
    return all(_core_hashes(t.field(i).type) for i in range(t.num_fields))


def _constants(
    columns: Sequence[pa.Array | pa.ChunkedArray], names: Sequence[str]
) -> dict[str, tuple[int, int]]:
    wanted = set(_TAGS)
    for tag in (*_MIX_TAGS, "row"):
        wanted.update((tag, tag + ":hi"))
    wanted.update("field:" + name for name in names)
    for column in columns:
        wanted.update("field:" + name for name in _field_names(column.type))
    constants = {}
    for name in wanted:
        c0, c1 = keys._const(name)
        constants[name] = (int(c0), int(c1))
    return constants


def hash_rows(
    columns: Sequence[pa.Array | pa.ChunkedArray], names: Sequence[str] | None = None
) -> np.ndarray | None:
    """`keys.hash_rows(columns, names)` computed natively: an (n, 2) uint64 array equal to the
    core's, or None when a column's type (or a shape of its data) is not ported here."""
    if names is not None and len(names) != len(columns):
        raise ValueError(f"hash_rows: {len(columns)} columns but {len(names)} names")
    if not columns:
        raise ValueError("hash_rows: no columns to hash")
    n = len(columns[0])
    for i, column in enumerate(columns):
        if len(column) != n:
            raise ValueError(f"hash_rows: column {i} has {len(column)} rows, expected {n}")
    if not all(_core_hashes(column.type) for column in columns):
        log.debug("row hash left to the core: a built-in extension type")
        return None
    labels = list(names) if names is not None else [str(i) for i in range(len(columns))]
    out = _native.hash_rows([importable(c) for c in columns], labels, _constants(columns, labels))
    if isinstance(out, str):
        log.debug("row hash left to the core: %s", out)
        return None
    return np.frombuffer(out, dtype="<u8").reshape(n, 2)
