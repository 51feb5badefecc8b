"""Plain Python rows into an `ArrowBatch`: converted once, no key lost."""

from __future__ import annotations

import pyarrow as pa

from dataloader import ArrowBatch


def test_a_key_the_first_row_lacks_becomes_a_column() -> None:
    batch = ArrowBatch.from_pylist([{"a": 1}, {"b": "x", "a": 2}, {"c": 1.5}], file="f")
    assert batch.columns == ["a", "b", "c"]
    assert batch.to_arrow().to_pylist() == [
        {"a": 1, "b": None, "c": None},
        {"a": 2, "b": "x", "c": None},
        {"a": None, "b": None, "c": 1.5},
    ]
    assert batch.metadata == {"file": "f"}


def test_a_schema_decides_the_columns() -> None:
    schema = pa.schema([("a", pa.int32())])
    batch = ArrowBatch.from_pylist([{"a": 1, "b": 2}], schema=schema)
    assert batch.to_arrow().schema == schema
    assert ArrowBatch.from_pylist([]).row_count == 0
