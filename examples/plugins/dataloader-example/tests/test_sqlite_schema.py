"""The SQLite destination's side of schema handling, driven step by step as the engine drives
it: `describe` reads back what `apply_schema` created (and tables made by hand), a widening
rewrites the table keeping every value exact, and `abort` undoes DDL and rows alike."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlite_support import Open, Sql

from dataloader import ArrowBatch, ConnectorError, State
from dataloader.schema.types import JSON_TAG
from dataloader.testing import change_plan as change
from dataloader.testing import create_plan as create
from dataloader.testing import described_shape as shape
from dataloader.testing import schema_field as field


def batch(schema: pa.Schema, rows: list[dict[str, Any]]) -> ArrowBatch:
    return ArrowBatch(pa.RecordBatch.from_pylist(rows, schema=schema))


EVERY_TYPE = pa.schema(
    [
        field("id", pa.int64(), nullable=False, key=b"primary"),
        field("code", pa.string(), nullable=False, key=b"unique"),
        field("i8", pa.int8()),
        field("i16", pa.int16()),
        field("i32", pa.int32()),
        field("f32", pa.float32()),
        field("f64", pa.float64()),
        field("amount", pa.decimal128(20, 2)),
        field("huge", pa.decimal256(50, 10)),
        field("flag", pa.bool_()),
        field("day", pa.date32()),
        field("clock", pa.time64("us")),
        field("at_s", pa.timestamp("s")),
        field("at", pa.timestamp("us")),
        field("at_ns", pa.timestamp("ns")),
        field("at_tz", pa.timestamp("us", tz="UTC")),
        field("blob", pa.binary()),
        field("doc", pa.string(), pg_type=JSON_TAG),
        field("uid", pa.string(), pg_type=b"uuid"),
    ]
)
EVERY_VALUE = {
    "id": 2**62,
    "code": "a'b\"c",
    "i8": -128,
    "i16": 32767,
    "i32": -(2**31),
    "f32": 0.1,
    "f64": 1e308,
    "amount": Decimal("6.50"),
    "huge": Decimal("1234567890123456789012345678901234567890.0123456789"),
    "flag": True,
    "day": date(2024, 2, 29),
    "clock": time(6, 30, 0, 1),
    "at_s": datetime(1999, 12, 31, 23, 59, 59),
    "at": datetime(2024, 1, 4, 6, 30, 0, 123456),
    "at_ns": datetime(2024, 1, 4, 6, 30),
    "at_tz": datetime(2024, 1, 4, 6, 30, tzinfo=UTC),
    "blob": b"\x00\xff",
    "doc": '{"n": 1.50}',
    "uid": "8e3a1f6c-5d2b-4f1e-9c3d-2a1b0c9d8e7f",
}


def test_describe_gives_back_the_table_apply_schema_created_and_values_round_trip(
    destination: Open, database: Path, sql: Sql
) -> None:
    connector = destination()
    assert connector.describe() is None

    connector.apply_schema(create(EVERY_TYPE))
    rows = [EVERY_VALUE, {"id": 1, "code": "nulls"}]
    connector.write_batch(batch(EVERY_TYPE, rows), State())
    connector.commit(State())

    assert shape(destination().describe()) == shape(EVERY_TYPE)
    assert (
        sql.table(database, "t").to_pylist()
        == pa.Table.from_pylist(rows, schema=EVERY_TYPE).to_pylist()
    )
    declared = sql.declared(database, "t")
    assert declared["amount"] == "DECIMAL_TEXT(20,2)"
    assert declared["at_ns"] == "TIMESTAMP(9)"
    stored = sql.query(database, "SELECT amount, typeof(amount), doc, day, at_tz FROM t")[0]
    assert stored == ("6.50", "text", '{"n": 1.50}', "2024-02-29", "2024-01-04 06:30:00.000000Z")


def test_describe_reads_a_table_made_by_hand(destination: Open, database: Path, sql: Sql) -> None:
    sql.execute(
        database,
        "CREATE TABLE t (a INTEGER NOT NULL, b VARCHAR(10), c NUMERIC(10,2), d REAL, e, "
        "f DATETIME, g DECIMAL(20,1), h DOUBLE PRECISION, u TEXT UNIQUE, p INT, q INT, "
        "PRIMARY KEY (a, b), UNIQUE (p, q))",
        "CREATE UNIQUE INDEX t_d ON t (d)",
    )

    assert shape(destination().describe()) == [
        ("a", pa.int64(), False, "primary", b""),
        ("b", pa.string(), True, "primary", b""),
        ("c", pa.decimal128(10, 2), True, None, b""),
        ("d", pa.float64(), True, "unique", b""),
        ("e", pa.binary(), True, None, b""),
        ("f", pa.timestamp("us"), True, None, b""),
        ("g", pa.decimal128(20, 1), True, None, b""),
        ("h", pa.float64(), True, None, b""),
        ("u", pa.string(), True, "unique", b""),
        ("p", pa.int32(), True, None, b""),  # unique only together with q: no key alone
        ("q", pa.int32(), True, None, b""),
    ]


def test_an_int_column_widens_to_decimal_by_a_rewrite_that_keeps_keys_indexes_and_values(
    destination: Open, database: Path, sql: Sql
) -> None:
    sql.execute(
        database,
        "CREATE TABLE t (id BIGINT NOT NULL PRIMARY KEY, qty BIGINT DEFAULT 0, code TEXT UNIQUE)",
        "CREATE INDEX t_qty ON t (qty)",
        f"INSERT INTO t VALUES (1, {2**62}, 'a'), (2, -3, 'b')",
    )
    connector = destination()
    before = connector.describe()
    assert before is not None
    target = before.set(1, before.field("qty").with_type(pa.decimal128(20, 1)))

    connector.apply_schema(change(before, target, qty="widen_type"))
    connector.write_batch(batch(target, [{"id": 3, "qty": Decimal("6.5"), "code": "c"}]), State())
    connector.commit(State())

    assert sql.table(database, "t").to_pydict() == {
        "id": [1, 2, 3],
        "qty": [Decimal(2**62), Decimal(-3), Decimal("6.5")],
        "code": ["a", "b", "c"],
    }
    assert shape(destination().describe()) == shape(target)
    assert sql.declared(database, "t")["qty"] == "DECIMAL_TEXT(20,1)"
    assert ("t_qty", "CREATE INDEX t_qty ON t (qty)") in sql.ddl(database)
    assert sql.query(
        database, "SELECT dflt_value FROM pragma_table_info('t') WHERE name = 'qty'"
    ) == [("0",)]
    assert sql.query(database, "SELECT qty FROM t ORDER BY id") == [
        (f"{2**62}.0",),
        ("-3.0",),
        ("6.5",),
    ]


@pytest.mark.parametrize(
    ("before", "after", "stored", "expected"),
    [
        (pa.int32(), pa.int64(), 7, 7),
        (pa.float32(), pa.float64(), 0.5, 0.5),
        (pa.decimal128(5, 1), pa.decimal128(12, 3), "1234.5", Decimal("1234.500")),
        (pa.date32(), pa.timestamp("us"), "2024-01-03", datetime(2024, 1, 3)),
        (pa.timestamp("us"), pa.timestamp("ns"), "2024-01-03 06:30:00.000001", None),
        (pa.int64(), pa.string(), 12, "12"),
    ],
)
def test_each_widening_keeps_the_stored_value(
    destination: Open,
    database: Path,
    sql: Sql,
    before: pa.DataType,
    after: pa.DataType,
    stored: Any,
    expected: Any,
) -> None:
    old = pa.schema([field("v", before)])
    connector = destination()
    connector.apply_schema(create(old))
    value = pa.array([stored]) if not isinstance(stored, str) else pa.array([stored]).cast(before)
    connector.write_batch(ArrowBatch(pa.record_batch([value.cast(before)], schema=old)), State())
    connector.commit(State())

    new = pa.schema([field("v", after)])
    connector = destination(run_id="run-2")
    connector.apply_schema(change(old, new, v="widen_type"))
    connector.commit(State())

    read = sql.table(database, "t").column("v")
    assert read.type == after
    assert read.to_pylist() == [expected if expected is not None else value.cast(after)[0].as_py()]


def test_apply_schema_then_abort_leaves_table_rows_and_state_as_they_were(
    destination: Open, database: Path, sql: Sql
) -> None:
    old = pa.schema([field("id", pa.int64()), field("qty", pa.int64())])
    connector = destination()
    connector.apply_schema(create(old))
    connector.write_batch(batch(old, [{"id": 1, "qty": 10}]), State())
    committed = State(cursor_values={"id": 1})
    connector.commit(committed)
    ddl, rows = sql.ddl(database), sql.table(database, "t")

    target = pa.schema(
        [field("id", pa.int64()), field("qty", pa.decimal128(20, 1)), field("note", pa.string())]
    )
    connector.apply_schema(change(old, target, qty="widen_type", note="add_column"))
    connector.write_batch(batch(target, [{"id": 2, "qty": Decimal("6.5"), "note": "x"}]), State())
    connector.abort()

    assert sql.ddl(database) == ddl
    assert sql.table(database, "t").equals(rows)
    assert connector.describe() == old  # the same connection, after the rollback
    assert connector.load_state() == committed
    assert destination(run_id="run-2").load_state() == committed


KILLED_MID_CHANGE = """
import os, signal, sys
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa

from dataloader import ArrowBatch, RunContext, State
from dataloader.schema.plan import ColumnChange, SchemaPlan
from dataloader_example.config import SQLiteConfig
from dataloader_example.sqlite.connector import SQLiteDestination

connector = SQLiteDestination(SQLiteConfig(database=sys.argv[1], table="t"))
connector.open(RunContext("r", "run-2", datetime.now(UTC), role="destination"))
connector.begin(State())
old = connector.describe()
target = pa.schema([("id", pa.int64()), ("qty", pa.decimal128(20, 1)), ("note", pa.string())])
connector.apply_schema(SchemaPlan(False, target, (
    ColumnChange("widen_type", "qty", old.field("qty").type, target.field("qty").type, "test"),
    ColumnChange("add_column", "note", None, pa.string(), "test"),
)))
rows = [{"id": 2, "qty": Decimal("6.5"), "note": "x"}]
connector.write_batch(ArrowBatch(pa.RecordBatch.from_pylist(rows, schema=target)), State())
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_kill_between_the_change_and_the_commit_leaves_neither(
    destination: Open, database: Path, sql: Sql
) -> None:
    old = pa.schema([field("id", pa.int64()), field("qty", pa.int64())])
    connector = destination()
    connector.apply_schema(create(old))
    connector.write_batch(batch(old, [{"id": 1, "qty": 10}]), State())
    connector.commit(State(cursor_values={"id": 1}))
    connector.close()
    ddl, rows = sql.ddl(database), sql.table(database, "t")

    killed = subprocess.run([sys.executable, "-c", KILLED_MID_CHANGE, str(database)], check=False)

    assert killed.returncode == -9
    assert sql.ddl(database) == ddl
    assert sql.table(database, "t").equals(rows)
    assert destination(run_id="run-3").load_state() == State(cursor_values={"id": 1})


def test_overwrite_fills_a_stage_that_replaces_the_table_at_commit_and_vanishes_on_abort(
    destination: Open, database: Path, sql: Sql
) -> None:
    old = pa.schema([field("id", pa.int64())])
    connector = destination()
    connector.apply_schema(create(old))
    connector.write_batch(batch(old, [{"id": 1}]), State())
    connector.commit(State())

    new = pa.schema([field("id", pa.int64()), field("amount", pa.decimal128(9, 2))])
    aborted = destination("overwrite", run_id="run-2")
    aborted.apply_schema(create(new))
    aborted.write_batch(batch(new, [{"id": 9, "amount": Decimal("1.10")}]), State())
    aborted.abort()
    assert [name for name, _ in sql.ddl(database)] == [
        "_dataloader_state",
        "sqlite_autoindex__dataloader_state_1",
        "t",
    ]
    assert sql.table(database, "t").to_pydict() == {"id": [1]}

    replacing = destination("overwrite", run_id="run-3")
    replacing.apply_schema(create(new))
    replacing.write_batch(batch(new, [{"id": 9, "amount": Decimal("1.10")}]), State())
    replacing.commit(State())
    assert sql.table(database, "t").to_pydict() == {"id": [9], "amount": [Decimal("1.10")]}
    assert sorted(name for name, _ in sql.ddl(database) if not name.startswith("sqlite_")) == [
        "_dataloader_state",
        "t",
    ]


def test_quarantined_rows_commit_and_abort_with_the_data(
    destination: Open, database: Path, sql: Sql
) -> None:
    rows = pa.table(
        {
            "row": ['{"id": 2, "name": null}'],
            "rule": ["not_null"],
            "column": ["name"],
            "run_id": ["run-1"],
            "quarantined_at": pa.array(
                [datetime(2024, 1, 4, 6, 30, tzinfo=UTC)], pa.timestamp("us", tz="UTC")
            ),
        }
    )
    connector = destination()
    connector.write_quarantine(rows)
    connector.abort()
    assert "t__quarantine" not in {name for name, _ in sql.ddl(database)}

    connector.write_quarantine(rows)
    connector.commit(State())
    assert sql.table(database, "t__quarantine").to_pylist() == rows.to_pylist()
    assert sql.declared(database, "t__quarantine")["row"] == "JSON_TEXT"


def test_a_nested_type_is_refused_naming_the_column(destination: Open) -> None:
    plan = create(pa.schema([field("tags", pa.list_(pa.string()))]))

    with pytest.raises(ConnectorError, match=r"'tags' is list<string>"):
        destination().apply_schema(plan)
