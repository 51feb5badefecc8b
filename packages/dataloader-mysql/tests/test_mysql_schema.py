"""The destination's schema as the engine sees it: `describe` (types, nullability, keys, JSON
and UTC tags) and `apply_schema` (create, add, widen), applied before any row is moved."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from dataloader import ArrowBatch, State
from dataloader.testing import (
    begun_destination,
    change_plan,
    create_plan,
    described_shape,
    schema_field,
)
from dataloader_mysql import MySQLConfig, MySQLConnector


def connector(my: Any, mode: str = "append", **context: Any) -> MySQLConnector:
    return begun_destination(
        MySQLConnector(MySQLConfig(**my.settings(), table="dst")), mode, **context
    )


def test_describe_gives_types_nullability_keys_and_tags(my: Any) -> None:
    target = pa.schema(
        [
            schema_field("id", pa.int64(), nullable=False),
            schema_field("doc", pa.string(), pg_type="json"),
            schema_field("at", pa.timestamp("us", tz="UTC")),
            schema_field("n", pa.decimal256(65, 30)),
        ]
    )
    dest = connector(my, "merge", merge_keys=("id",))
    try:
        assert dest.describe() is None
        dest.apply_schema(create_plan(target))
        assert described_shape(dest.describe()) == [
            ("id", pa.int64(), False, "primary", b""),
            ("doc", pa.string(), True, None, b"json"),
            ("at", pa.timestamp("us", tz="UTC"), True, None, b""),
            ("n", pa.decimal256(65, 30), True, None, b""),
        ]
    finally:
        dest.close()


def test_apply_schema_adds_and_widens_columns_keeping_rows(my: Any) -> None:
    before = pa.schema([schema_field("id", pa.int32()), schema_field("v", pa.int16())])
    dest = connector(my)
    try:
        dest.apply_schema(create_plan(before))
        dest.write_batch(ArrowBatch(pa.record_batch([[1], [7]], schema=before)), State())
        dest.commit(State())
        after = pa.schema(
            [
                schema_field("id", pa.int32()),
                schema_field("v", pa.int64()),
                schema_field("note", pa.string()),
            ]
        )
        dest.apply_schema(change_plan(before, after, v="widen_type", note="add_column"))
        assert my.column_types("dst") == {"id": "int(11)", "v": "bigint(20)", "note": "longtext"}
        row = pa.record_batch([[2], [2**40], ["x"]], schema=after)
        dest.write_batch(ArrowBatch(row), State())
        dest.commit(State())
    finally:
        dest.close()
    assert my.query("SELECT id, v, note FROM dst ORDER BY id") == [(1, 7, None), (2, 2**40, "x")]
