"""JSON records to Arrow in Rust, for the REST source: from the response bytes to Arrow
columns without Python objects in between.

`JsonRecords.to_arrays` gives the columns `dataloader_rest.records.records_to_table` builds
from `json.loads(content, parse_float=Decimal)` before its instants step, or None when the
content is outside what the native module reproduces (the caller then takes the Python path).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from dataloader_rust import _native

__all__ = ["JsonRecords"]


def _as_bytes(content: bytes | bytearray | memoryview) -> bytes:
    return content if isinstance(content, bytes) else bytes(content)


class JsonRecords:
    """The native JSON record reader (stateless; one instance serves every thread)."""

    def locate(
        self, content: bytes | bytearray | memoryview, keys: Sequence[str]
    ) -> tuple[int, int, int] | None:
        """`(start, end, count)`: the byte span in `content` (one JSON document) of the array
        of objects found by following `keys` through objects, and its number of records; None
        when the document is invalid or outside the subset read natively, the path is missing
        or the value there is not an array of objects."""
        if isinstance(keys, str):
            raise TypeError("locate: keys must be a sequence of strings, not one string")
        return _native.json_locate(_as_bytes(content), [str(key) for key in keys])

    def to_arrays(
        self, content: bytes | bytearray | memoryview
    ) -> tuple[list[str], list[pa.Array]] | None:
        """The field names and one Arrow array per field of `content`, a JSON array of
        objects; None when it is outside the subset read natively."""
        data = _as_bytes(content)
        if b"\\u0000" in data:
            return None  # a NUL may be in a field name, which the C data interface refuses
        out = _native.json_records_to_arrow(data)
        if out is None:
            return None
        names, arrays = out
        try:
            return list(names), [pa.array(array) for array in arrays]
        except pa.ArrowInvalid:  # nested deeper than pyarrow imports (64 levels)
            return None
