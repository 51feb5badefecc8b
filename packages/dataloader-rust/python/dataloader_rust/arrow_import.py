"""Arrow columns prepared for import into arrow-rs over the PyCapsule interface.

arrow-rs (59) applies the offset of a struct nested in a struct or in a fixed-size list to
that struct's children twice when it imports a sliced parent: it then reads past the end of
the children, or asserts (a panic). `importable` rebuilds such columns with offsets at 0.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = ["importable", "sliced_struct_in"]


def sliced_struct_in(t: pa.DataType, parent_slices: bool = False) -> bool:
    """Whether `t` holds a struct inside a struct or a fixed-size list (whose offsets arrow-rs
    misreads on import when the parent is sliced)."""
    if isinstance(t, pa.BaseExtensionType):
        return sliced_struct_in(t.storage_type, parent_slices)
    if pa.types.is_dictionary(t):
        return sliced_struct_in(t.value_type)
    if pa.types.is_struct(t) and parent_slices:
        return True
    slices = pa.types.is_struct(t) or pa.types.is_fixed_size_list(t)
    return any(sliced_struct_in(t.field(i).type, slices) for i in range(t.num_fields))


def importable(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """`column`, with offsets rebuilt to 0 (a copy) when arrow-rs would misread them."""
    if not sliced_struct_in(column.type):
        return column
    if isinstance(column, pa.ChunkedArray):
        return pa.chunked_array([pa.concat_arrays([c]) for c in column.chunks], column.type)
    return pa.concat_arrays([column])
