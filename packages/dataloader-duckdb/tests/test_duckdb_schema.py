"""The DuckDB destination's side of schema management: `describe` reports the table as Arrow
(types, nullability, keys), `apply_schema` creates, extends and widens it in the transaction of
the data (in place, or by a rewrite where DuckDB cannot alter), and `write_quarantine` keeps
rejected rows beside the data, committed and aborted with it.

The connector is driven step by step, as the engine drives it, on real database files."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dataloader import ArrowBatch, ConnectorError, State
from dataloader.schema.plan import key_of
from dataloader.schema.types import JSON_TAG
from dataloader.testing import begun_destination, host_time_zone
from dataloader.testing import change_plan as change
from dataloader.testing import create_plan as create
from dataloader.testing import described_shape as shape
from dataloader.testing import schema_field as field
from dataloader_duckdb import DuckDBConfig, DuckDBConnector

Open = Callable[..., DuckDBConnector]


@pytest.fixture
def destination(dest_db: Path) -> Iterator[Open]:
    """`destination(write_mode=…, table=…)`: a DuckDB destination (of table `t` unless told),
    opened and begun as one run of recipe `r` would; closed at the end of the test."""
    opened: list[DuckDBConnector] = []

    def open_one(
        write_mode: str = "append", run_id: str = "run-1", table: str = "t"
    ) -> DuckDBConnector:
        connector = DuckDBConnector(DuckDBConfig(database=str(dest_db), table=table))
        begun_destination(connector, write_mode, run_id)
        opened.append(connector)
        return connector

    yield open_one
    for connector in opened:
        connector.close()


def batch(schema: pa.Schema, rows: list[dict[str, Any]]) -> ArrowBatch:
    return ArrowBatch(pa.RecordBatch.from_pylist(rows, schema=schema))


def types(sql: Any, database: Path, table: str = "t") -> dict[str, str]:
    return dict(sql.query(database, f"SELECT column_name, column_type FROM (DESCRIBE {table})"))


def test_describe_gives_back_the_table_apply_schema_created(
    destination: Open, dest_db: Path, sql: Any
) -> None:
    target = pa.schema(
        [
            field("id", pa.int64(), nullable=False, key=b"primary"),
            field("code", pa.string(), nullable=False, key=b"unique"),
            field("i8", pa.int8()),
            field("i16", pa.int16()),
            field("i32", pa.int32(), nullable=False),
            field("f32", pa.float32()),
            field("f64", pa.float64()),
            field("amount", pa.decimal128(20, 1)),
            field("flag", pa.bool_()),
            field("day", pa.date32()),
            field("at", pa.timestamp("us")),
            field("at_ns", pa.timestamp("ns")),
            field("at_tz", pa.timestamp("us", tz="UTC")),
            field("ats", pa.list_(pa.timestamp("us", tz="UTC"))),
            field("clock", pa.time64("us")),
            field("blob", pa.binary()),
            field("tags", pa.list_(pa.int32())),
            field("point", pa.struct([("x", pa.int64()), ("label", pa.string())])),
            field("doc", pa.string(), pg_type=JSON_TAG),
            field("uid", pa.string(), pg_type=b"uuid"),
        ]
    )
    connector = destination()
    assert connector.describe() is None

    connector.apply_schema(create(target))
    connector.commit(State())

    assert shape(destination().describe()) == shape(target)
    assert types(sql, dest_db)["doc"] == "JSON"
    assert types(sql, dest_db)["uid"] == "UUID"


def test_describe_reads_keys_and_not_null_of_a_table_made_by_hand(
    destination: Open, dest_db: Path, sql: Any
) -> None:
    sql.execute(
        dest_db,
        "CREATE TABLE t (a INTEGER, b VARCHAR, u UUID UNIQUE, n BIGINT NOT NULL, "
        "p INTEGER, q INTEGER, seen TIMESTAMPTZ, PRIMARY KEY (a, b), UNIQUE (p, q))",
    )

    with host_time_zone("America/New_York"):  # a read shows TIMESTAMPTZ in this zone
        described = destination().describe()

    assert shape(described)[:6] == [
        ("a", pa.int32(), False, "primary", b""),
        ("b", pa.string(), False, "primary", b""),
        ("u", pa.string(), True, "unique", b"uuid"),
        ("n", pa.int64(), False, None, b""),
        ("p", pa.int32(), True, None, b""),  # unique only together with q: no key alone
        ("q", pa.int32(), True, None, b""),
    ]
    assert described is not None
    assert described.field("seen").type == pa.timestamp("us", tz="UTC")


def test_an_added_column_is_committed_with_the_rows(
    destination: Open, dest_db: Path, sql: Any
) -> None:
    sql.execute(dest_db, "CREATE TABLE t (id BIGINT)", "INSERT INTO t VALUES (1)")
    connector = destination()
    before = connector.describe()
    assert before is not None
    target = before.append(field("note", pa.string()))

    connector.apply_schema(change(before, target, note="add_column"))
    connector.write_batch(batch(target, [{"id": 2, "note": "new"}]), State())
    connector.commit(State())

    assert sql.query(dest_db, "SELECT id, note FROM t ORDER BY id") == [(1, None), (2, "new")]
    assert types(sql, dest_db) == {"id": "BIGINT", "note": "VARCHAR"}


# `plain`: DuckDB alters the column in place; `key`/`index`: it cannot, the table is rewritten.
TABLES = {
    "plain": "CREATE TABLE t (id INTEGER, q INTEGER)",
    "key": "CREATE TABLE t (id INTEGER, q INTEGER PRIMARY KEY)",
    "index": "CREATE TABLE t (id INTEGER, q INTEGER); CREATE INDEX t_q ON t (q)",
}


@pytest.mark.parametrize("table", TABLES)
def test_int32_widens_to_int64_then_decimal_keeping_every_value_exact(
    destination: Open, dest_db: Path, sql: Any, table: str
) -> None:
    sql.execute(
        dest_db,
        *TABLES[table].split("; "),
        "COMMENT ON TABLE t IS 'orders'",
        "INSERT INTO t VALUES (1, 2147483647), (2, -2147483648)",
    )
    steps = [
        (pa.int64(), 2**62, "BIGINT"),
        (pa.decimal128(20, 1), Decimal("1234567890123456789.5"), "DECIMAL(20,1)"),
    ]
    for row_id, (kind, value, duck_type) in enumerate(steps, start=3):
        connector = destination(run_id=f"run-{row_id}")
        before = connector.describe()
        assert before is not None
        target = before.set(1, before.field("q").with_type(kind))
        connector.apply_schema(change(before, target, q="widen_type"))
        connector.write_batch(batch(target, [{"id": row_id, "q": value}]), State())
        connector.commit(State())
        assert types(sql, dest_db)["q"] == duck_type

    assert sql.query(dest_db, "SELECT id, q FROM t ORDER BY id") == [
        (1, Decimal("2147483647.0")),
        (2, Decimal("-2147483648.0")),
        (3, Decimal(2**62)),
        (4, Decimal("1234567890123456789.5")),
    ]
    # what the rewrite must keep: the key, the index, the comment
    described = destination(run_id="check").describe()
    assert described is not None
    assert key_of(described.field("q")) == ("primary" if table == "key" else None)
    indexes = sql.query(dest_db, "SELECT index_name FROM duckdb_indexes() WHERE table_name = 't'")
    assert indexes == ([("t_q",)] if table == "index" else [])
    assert sql.query(dest_db, "SELECT comment FROM duckdb_tables() WHERE table_name = 't'") == [
        ("orders",)
    ]
    assert sql.tables(dest_db) == ["main._dataloader_state", "main.t"]


def test_a_table_of_another_schema_is_rewritten_there_with_its_index_and_comments(
    destination: Open, dest_db: Path, sql: Any
) -> None:
    sql.execute(
        dest_db,
        "CREATE SCHEMA sales",
        "CREATE TABLE sales.t (id INTEGER UNIQUE, q INTEGER NOT NULL DEFAULT 0)",
        "CREATE TABLE main.t (id INTEGER)",  # same name, other schema: untouched
        "CREATE INDEX t_q ON sales.t (q)",
        "COMMENT ON COLUMN sales.t.q IS 'quantity'",
        "INSERT INTO sales.t VALUES (1, 5)",
    )
    connector = destination(table="sales.t")
    before = connector.describe()
    assert before is not None
    target = before.set(0, before.field("id").with_type(pa.int64()))

    connector.apply_schema(change(before, target, id="widen_type"))
    connector.write_batch(batch(target, [{"id": 2**40, "q": 6}]), State())
    connector.commit(State())

    assert shape(connector.describe()) == shape(target)
    assert sql.query(dest_db, "SELECT id, q FROM sales.t ORDER BY id") == [(1, 5), (2**40, 6)]
    assert sql.query(
        dest_db,
        "SELECT schema_name, table_name, column_name, data_type, column_default, comment "
        "FROM duckdb_columns() WHERE table_name = 't' ORDER BY ALL",
    ) == [
        ("main", "t", "id", "INTEGER", None, None),
        ("sales", "t", "id", "BIGINT", None, None),
        ("sales", "t", "q", "INTEGER", "0", "quantity"),
    ]
    assert sql.query(dest_db, "SELECT schema_name, sql FROM duckdb_indexes()") == [
        ("sales", "CREATE INDEX t_q ON sales.t(q);")
    ]


def test_date_widens_to_timestamp(destination: Open, dest_db: Path, sql: Any) -> None:
    sql.execute(dest_db, "CREATE TABLE t (day DATE)", "INSERT INTO t VALUES ('2024-02-29')")
    connector = destination()
    before = connector.describe()
    assert before is not None
    target = pa.schema([field("day", pa.timestamp("us"))])

    connector.apply_schema(change(before, target, day="widen_type"))
    connector.write_batch(batch(target, [{"day": datetime(2024, 3, 1, 12, 30)}]), State())
    connector.commit(State())

    assert types(sql, dest_db) == {"day": "TIMESTAMP"}
    assert sql.query(dest_db, "SELECT day FROM t ORDER BY day") == [
        (datetime(2024, 2, 29),),
        (datetime(2024, 3, 1, 12, 30),),
    ]


@pytest.mark.parametrize("table", ["plain", "key"])
def test_abort_after_apply_schema_leaves_the_table_as_it_was(
    destination: Open, dest_db: Path, sql: Any, table: str
) -> None:
    sql.execute(dest_db, TABLES[table], "INSERT INTO t VALUES (1, 10)")
    connector = destination()
    before = connector.describe()
    assert before is not None
    target = before.set(1, before.field("q").with_type(pa.int64())).append(
        field("note", pa.string())
    )

    connector.apply_schema(change(before, target, q="widen_type", note="add_column"))
    connector.write_batch(batch(target, [{"id": 2, "q": 2**40, "note": "x"}]), State())
    connector.abort()

    assert shape(connector.describe()) == shape(before)
    assert sql.query(dest_db, "SELECT * FROM t") == [(1, 10)]
    # and the connector forgot the shape it had fitted: the next plan applies again
    connector.apply_schema(change(before, target, q="widen_type", note="add_column"))
    connector.write_batch(batch(target, [{"id": 3, "q": 2**40, "note": "y"}]), State())
    connector.commit(State())
    assert sql.query(dest_db, "SELECT * FROM t ORDER BY id") == [(1, 10, None), (3, 2**40, "y")]


def test_abort_after_create_leaves_no_table(destination: Open, dest_db: Path, sql: Any) -> None:
    connector = destination()
    target = pa.schema([field("id", pa.int64(), nullable=False, key=b"primary")])

    connector.apply_schema(create(target))
    connector.write_batch(batch(target, [{"id": 1}]), State())
    connector.abort()

    assert connector.describe() is None
    assert "main.t" not in sql.tables(dest_db)


KILLED_RUN = """
import os, signal, sys
from datetime import UTC, datetime
import pyarrow as pa
from dataloader import ArrowBatch, RunContext, State
from dataloader.schema.plan import ColumnChange, SchemaPlan
from dataloader_duckdb import DuckDBConfig, DuckDBConnector

connector = DuckDBConnector(DuckDBConfig(database=sys.argv[1], table="t"))
connector.open(RunContext(recipe_name="r", run_id="killed", started_at=datetime.now(UTC),
                          role="destination"))
connector.begin(State())
before = connector.describe()
target = pa.schema([pa.field("id", pa.int64()), pa.field("note", pa.string())])
connector.apply_schema(SchemaPlan(False, target, (
    ColumnChange("widen_type", "id", before.field("id").type, pa.int64(), "test"),
    ColumnChange("add_column", "note", None, pa.string(), "test"),
)))
rows = pa.RecordBatch.from_pylist([{"id": 2**40, "note": "x"}], schema=target)
connector.write_batch(ArrowBatch(rows), State())
os.kill(os.getpid(), signal.SIGKILL)  # after the DDL and the rows, before the commit
"""


@pytest.mark.parametrize("key", ["", " PRIMARY KEY"], ids=["in-place", "rewrite"])
def test_a_kill_between_apply_schema_and_commit_leaves_neither_change_nor_rows(
    dest_db: Path, sql: Any, key: str
) -> None:
    sql.execute(dest_db, f"CREATE TABLE t (id INTEGER{key})", "INSERT INTO t VALUES (1)")
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(dest_db)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr

    assert types(sql, dest_db) == {"id": "INTEGER"}
    assert sql.query(dest_db, "SELECT id FROM t") == [(1,)]
    assert sql.tables(dest_db) == ["main._dataloader_state", "main.t"]


QUARANTINE = pa.schema(
    [
        pa.field("row", pa.string()),
        pa.field("rule", pa.string()),
        pa.field("column", pa.string()),
        pa.field("run_id", pa.string()),
        pa.field("quarantined_at", pa.timestamp("us", tz="UTC")),
    ]
)


def rejected(run_id: str, qty: str) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "row": f'{{"id": 9, "qty": "{qty}"}}',
                "rule": "type",
                "column": "qty",
                "run_id": run_id,
                "quarantined_at": datetime(2024, 1, 1, tzinfo=UTC),
            }
        ],
        schema=QUARANTINE,
    )


def test_quarantined_rows_commit_with_the_data_and_vanish_with_an_abort(
    destination: Open, dest_db: Path, sql: Any
) -> None:
    target = pa.schema([field("id", pa.int64()), field("qty", pa.int64())])
    connector = destination()
    assert connector.capabilities.quarantine

    connector.apply_schema(create(target))
    connector.write_quarantine(rejected("run-1", "3.5"))
    connector.write_batch(batch(target, [{"id": 1, "qty": 3}]), State())
    connector.commit(State())

    connector.write_quarantine(rejected("run-1", "lots"))
    connector.write_batch(batch(target, [{"id": 2, "qty": 4}]), State())
    connector.abort()

    assert sql.query(dest_db, "SELECT id, qty FROM t") == [(1, 3)]
    assert sql.query(
        dest_db, """SELECT "row"->>'qty', rule, "column", run_id FROM t__quarantine"""
    ) == [("3.5", "type", "qty", "run-1")]
    assert types(sql, dest_db, "t__quarantine")["row"] == "JSON"


def test_overwrite_creates_and_widens_the_stage_and_swaps_it_in_at_commit(
    destination: Open, dest_db: Path, sql: Any
) -> None:
    sql.execute(
        dest_db,
        "CREATE TABLE t (id INTEGER, v VARCHAR)",
        "COMMENT ON TABLE t IS 'kept'",
        "INSERT INTO t VALUES (1, 'old')",
    )
    connector = destination("overwrite")
    first = pa.schema([field("id", pa.int32(), nullable=False, key=b"primary")])
    wider = pa.schema(
        [field("id", pa.int64(), nullable=False, key=b"primary"), field("d", pa.date32())]
    )

    connector.apply_schema(create(first))
    connector.write_batch(batch(first, [{"id": 7}]), State())
    connector.apply_schema(change(first, wider, id="widen_type", d="add_column"))
    connector.write_batch(batch(wider, [{"id": 2**40, "d": date(2024, 1, 2)}]), State())

    # until the commit, the table is the old one
    assert types(sql, dest_db) == {"id": "INTEGER", "v": "VARCHAR"}
    connector.write_quarantine(rejected("run-1", "x"))
    connector.commit(State())

    assert types(sql, dest_db) == {"id": "BIGINT", "d": "DATE"}
    assert sql.query(dest_db, "SELECT id, d FROM t ORDER BY id") == [
        (7, None),
        (2**40, date(2024, 1, 2)),
    ]
    assert shape(destination().describe()) == shape(wider.set(1, field("d", pa.date32())))
    assert sql.query(dest_db, "SELECT comment FROM duckdb_tables() WHERE table_name = 't'") == [
        ("kept",)
    ]
    assert sql.tables(dest_db) == ["main._dataloader_state", "main.t", "main.t__quarantine"]


def test_a_run_widens_adds_and_quarantines_through_the_engine(
    run: Callable[..., Any], rows_source: str, dest_db: Path, sql: Any
) -> None:
    def recipe(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "name": "daily",
            "source": {"type": rows_source, "batches": [rows]},
            "destination": {"type": "duckdb", "database": str(dest_db), "table": "t"},
            "schema": {
                "columns": [{"name": "id", "nullable": False}],
                "on_violation": "quarantine",
            },
        }

    run(recipe([{"id": 1, "qty": 1}, {"id": 2, "qty": 2}]))
    run(recipe([{"id": 3, "qty": Decimal("3.5"), "note": "day 2"}, {"id": None, "qty": 1}]))

    assert types(sql, dest_db) == {"id": "BIGINT", "qty": "DECIMAL(20,1)", "note": "VARCHAR"}
    assert sql.query(dest_db, "SELECT sum(qty) FROM t") == [(Decimal("6.5"),)]
    assert sql.query(dest_db, """SELECT "row"->>'qty', "column" FROM t__quarantine""") == [
        ("1.0", "id")
    ]
    assert types(sql, dest_db, "t__quarantine")["row"] == "JSON"


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


@pytest.mark.parametrize("table", ["plain", "index"], ids=["in-place", "rewrite"])
def test_naive_timestamps_and_dates_becoming_instants_are_read_as_utc_in_any_host_zone(
    destination: Open, dest_db: Path, sql: Any, table: str
) -> None:
    sql.execute(
        dest_db,
        'CREATE TABLE t (id INTEGER, "at" TIMESTAMP, day DATE, ats TIMESTAMP[], '
        'ev STRUCT("at" TIMESTAMP, n INTEGER))',
        "INSERT INTO t VALUES (1, '2024-01-01 10:00', '2024-01-02', ['2024-01-03 10:00', NULL], "
        "{'at': '2024-01-04 10:00', 'n': 1}), (2, NULL, NULL, NULL, NULL)",
        *(["CREATE INDEX t_id ON t (id)"] if table == "index" else []),
    )
    instant = pa.timestamp("us", tz="UTC")
    with host_time_zone("America/New_York"):
        connector = destination()
        before = connector.describe()
        assert before is not None
        target = pa.schema(
            [
                before.field("id"),
                field("at", instant),
                field("day", instant),
                field("ats", pa.list_(instant)),
                field("ev", pa.struct([("at", instant), ("n", pa.int32()), ("note", pa.string())])),
            ]
        )
        connector.apply_schema(
            change(
                before, target, at="widen_type", day="widen_type", ats="widen_type", ev="widen_type"
            )
        )
        connector.commit(State())

    # aware datetimes compare as instants, whatever zone a read shows them in
    assert sql.query(dest_db, 'SELECT "at", day, ats, ev FROM t ORDER BY id') == [
        (
            utc(2024, 1, 1, 10),
            utc(2024, 1, 2),
            [utc(2024, 1, 3, 10), None],
            {"at": utc(2024, 1, 4, 10), "n": 1, "note": None},
        ),
        (None, None, None, None),
    ]
    assert types(sql, dest_db)["ats"] == "TIMESTAMP WITH TIME ZONE[]"


def test_instants_becoming_text_are_written_in_utc_in_any_host_zone(
    destination: Open, dest_db: Path, sql: Any
) -> None:
    sql.execute(
        dest_db,
        'CREATE TABLE t ("at" TIMESTAMPTZ)',
        "INSERT INTO t VALUES ('2024-01-01 10:00:00.5+00'), ('infinity'), (NULL)",
    )
    with host_time_zone("America/New_York"):
        connector = destination()
        before = connector.describe()
        assert before is not None
        target = pa.schema([field("at", pa.string())])
        connector.apply_schema(change(before, target, at="widen_type"))
        connector.commit(State())

    assert sql.query(dest_db, 'SELECT "at" FROM t') == [
        ("2024-01-01 10:00:00.5+00",),
        ("infinity",),
        (None,),
    ]


def test_a_run_reads_naive_timestamps_as_utc_when_they_become_instants(
    run: Callable[..., Any], rows_source: str, dest_db: Path, sql: Any
) -> None:
    def recipe(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "name": "events",
            "source": {"type": rows_source, "batches": [rows]},
            "destination": {"type": "duckdb", "database": str(dest_db), "table": "t"},
            "schema": {"evolution": {"naive_timestamps_as_utc": True}},
        }

    with host_time_zone("America/New_York"):
        run(recipe([{"id": 1, "at": datetime(2024, 1, 1, 10)}]))
        run(recipe([{"id": 2, "at": utc(2024, 1, 1, 10)}]))

    assert types(sql, dest_db)["at"] == "TIMESTAMP WITH TIME ZONE"
    assert sql.query(dest_db, 'SELECT "at" FROM t ORDER BY id') == [
        (utc(2024, 1, 1, 10),),
        (utc(2024, 1, 1, 10),),
    ]


def test_describe_under_overwrite_is_the_empty_stage_not_the_table(
    destination: Open, dest_db: Path, sql: Any
) -> None:
    sql.execute(dest_db, "CREATE TABLE t (id INTEGER NOT NULL)", "INSERT INTO t VALUES (1)")

    assert destination("overwrite").describe() is None
    assert destination("append", run_id="run-2").describe() is not None


def quarantined(database: Path, sql: Any) -> list[tuple[Any, ...]]:
    return sql.query(database, """SELECT "row"->>'qty', run_id FROM t__quarantine ORDER BY ALL""")


def test_overwrite_replaces_the_quarantine_with_the_rows_this_run_quarantined(
    destination: Open, dest_db: Path, sql: Any
) -> None:
    target = pa.schema([field("id", pa.int64()), field("qty", pa.int64())])
    first = destination(run_id="run-1")
    first.apply_schema(create(target))
    first.write_quarantine(rejected("run-1", "a"))
    first.write_batch(batch(target, [{"id": 1, "qty": 1}]), State())
    first.commit(State())

    second = destination("overwrite", run_id="run-2")
    second.write_quarantine(rejected("run-2", "b"))  # before the stage exists
    second.apply_schema(create(target))
    second.write_batch(batch(target, [{"id": 2, "qty": 2}]), State())
    second.write_quarantine(rejected("run-2", "c"))
    assert quarantined(dest_db, sql) == [("a", "run-1")]  # until the commit
    second.commit(State())
    assert quarantined(dest_db, sql) == [("b", "run-2"), ("c", "run-2")]

    aborted = destination("overwrite", run_id="run-3")
    aborted.apply_schema(create(target))
    aborted.write_quarantine(rejected("run-3", "d"))
    aborted.write_batch(batch(target, [{"id": 3, "qty": 3}]), State())
    aborted.abort()
    assert quarantined(dest_db, sql) == [("b", "run-2"), ("c", "run-2")]

    clean = destination("overwrite", run_id="run-4")
    clean.apply_schema(create(target))
    clean.write_batch(batch(target, [{"id": 4, "qty": 4}]), State())
    clean.commit(State())
    assert quarantined(dest_db, sql) == []
    assert sql.query(dest_db, "SELECT id FROM t") == [(4,)]


def test_an_overwrite_of_no_rows_empties_the_quarantine_too(
    destination: Open, dest_db: Path, sql: Any
) -> None:
    target = pa.schema([field("id", pa.int64()), field("qty", pa.int64())])
    first = destination(run_id="run-1")
    first.apply_schema(create(target))
    first.write_quarantine(rejected("run-1", "a"))
    first.commit(State())

    destination("overwrite", run_id="run-2").commit(State())

    assert quarantined(dest_db, sql) == []


def test_nanosecond_durations_are_refused_not_cut_to_microseconds(destination: Open) -> None:
    connector = destination()
    with pytest.raises(ConnectorError, match=r"'d' holds nanosecond durations"):
        connector.apply_schema(create(pa.schema([field("d", pa.duration("ns"))])))
