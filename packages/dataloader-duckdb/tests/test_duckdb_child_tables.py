"""The DuckDB destination's child tables of normalized nested data: tables beside the main one,
written in its transactions. Append adds rows, merge deletes the children of the merged roots
first, overwrite stages each table and swaps them all in with the main table at the commit; an
abort, a failed commit or a killed process leaves every table at the last commit.

The connector is driven step by step, as the engine drives it, on real database files."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dataloader import ArrowBatch, RunContext, State
from dataloader.testing import begun_destination
from dataloader.testing import change_plan as change
from dataloader.testing import create_plan as create
from dataloader.testing import described_shape as shape
from dataloader.testing import schema_field as field
from dataloader_duckdb import DuckDBConfig, DuckDBConnector

Open = Callable[..., DuckDBConnector]

ROOT = pa.schema(
    [field("id", pa.int64(), nullable=False), field("_dl_id", pa.string(), nullable=False)]
)
KEYS = [
    field("_dl_id", pa.string(), nullable=False),
    field("_dl_parent_id", pa.string(), nullable=False),
    field("_dl_root_id", pa.string(), nullable=False),
    field("_dl_list_idx", pa.int64(), nullable=False),
]
ORDERS = pa.schema([field("sku", pa.string()), *KEYS])
ITEMS = pa.schema([field("value", pa.int64()), *KEYS])


@pytest.fixture
def destination(dest_db: Path) -> Iterator[Open]:
    """`destination(write_mode=…, table=…)`: a DuckDB destination (of table `t` unless told),
    opened and begun as one run of recipe `r` would; closed at the end of the test."""
    opened: list[DuckDBConnector] = []

    def open_one(
        write_mode: str = "append", run_id: str = "run-1", table: str = "t", **context: Any
    ) -> DuckDBConnector:
        connector = DuckDBConnector(DuckDBConfig(database=str(dest_db), table=table))
        begun_destination(connector, write_mode, run_id, **context)
        opened.append(connector)
        return connector

    yield open_one
    for connector in opened:
        connector.close()


def roots(*ids: int) -> ArrowBatch:
    rows = [{"id": i, "_dl_id": f"r{i}"} for i in ids]
    return ArrowBatch(pa.RecordBatch.from_pylist(rows, schema=ROOT))


def orders(root: int, *skus: str) -> ArrowBatch:
    """One order per sku, children of root `root`."""
    rows = [
        {
            "sku": sku,
            "_dl_id": f"r{root}o{i}",
            "_dl_parent_id": f"r{root}",
            "_dl_root_id": f"r{root}",
            "_dl_list_idx": i,
        }
        for i, sku in enumerate(skus)
    ]
    return ArrowBatch(pa.RecordBatch.from_pylist(rows, schema=ORDERS))


def items(root: int, order: int, *values: int) -> ArrowBatch:
    """Items of order `order` of root `root`."""
    rows = [
        {
            "value": value,
            "_dl_id": f"r{root}o{order}i{i}",
            "_dl_parent_id": f"r{root}o{order}",
            "_dl_root_id": f"r{root}",
            "_dl_list_idx": i,
        }
        for i, value in enumerate(values)
    ]
    return ArrowBatch(pa.RecordBatch.from_pylist(rows, schema=ITEMS))


def load(
    connector: DuckDBConnector,
    root_ids: list[int],
    children: dict[str, list[ArrowBatch]],
    *,
    known: tuple[str, ...] = (),
    commit: bool = True,
) -> None:
    """One batch as the engine writes it: the roots, under merge the deletion of their children
    from every known child table, then each child table's rows (fitted first)."""
    assert connector.context is not None
    mode = connector.context.write_mode
    if connector.describe() is None:
        connector.apply_schema(create(ROOT))
    connector.write_batch(roots(*root_ids), State())
    if mode == "merge":
        ids = pa.array([f"r{i}" for i in root_ids])
        for name in dict.fromkeys([*known, *children]):
            connector.delete_children(name, ids)
    for name, batches in children.items():
        schema = batches[0].to_arrow().schema
        if connector.describe_child(name) is None:
            connector.apply_child_schema(name, create(schema))
        for batch in batches:
            connector.write_child_batch(name, batch, State())
    if mode == "overwrite":
        for name in known:
            if name not in children:
                connector.delete_children(name, None)
    if commit:
        connector.commit(State(cursor_values={"run": connector.context.run_id}))


def contents(sql: Any, database: Path, table: str = "t") -> list[tuple[Any, ...]]:
    return sql.query(database, f'SELECT * EXCLUDE ("_dl_id") FROM {table} ORDER BY ALL')


def child_rows(sql: Any, database: Path, table: str) -> list[tuple[Any, ...]]:
    """The data column and the row key of each row of a child table."""
    return sql.query(
        database,
        f'SELECT * EXCLUDE ("_dl_parent_id", "_dl_root_id", "_dl_list_idx") FROM {table} ORDER BY ALL',
    )


def snapshot(sql: Any, database: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table but the state's, with its rows."""
    return {
        name: sql.query(database, f"SELECT * FROM {name} ORDER BY ALL")
        for name in sql.tables(database)
        if name != "main._dataloader_state"
    }


def first_load(destination: Open) -> None:
    """Roots 1 and 2 with their orders and items, committed by run-0 (closed after)."""
    connector = destination(run_id="run-0")
    load(
        connector,
        [1, 2],
        {
            "t__orders": [orders(1, "a", "b"), orders(2, "c")],
            "t__orders__items": [items(1, 0, 10, 11), items(2, 0, 20)],
        },
    )
    connector.close()


def test_capabilities_and_table_name() -> None:
    assert DuckDBConnector.capabilities.child_tables
    assert DuckDBConnector.capabilities.max_identifier_length is None
    connector = DuckDBConnector(DuckDBConfig(database=":memory:", table='an."Odd T"'))
    assert connector.table_name() == "Odd T"
    assert DuckDBConnector(DuckDBConfig(database=":memory:", query="SELECT 1")).table_name() is None


def test_append_writes_child_tables_beside_the_table_in_its_transaction(
    destination: Open, dest_db: Path, sql: Any
) -> None:
    connector = destination()
    load(
        connector,
        [1, 2],
        {"t__orders": [orders(1, "a", "b"), orders(2, "c")], "t__orders__items": [items(1, 0, 10)]},
        commit=False,
    )
    assert sql.tables(dest_db) == ["main._dataloader_state"]  # nothing before the commit
    connector.commit(State())

    load(destination(run_id="run-2"), [3], {"t__orders": [orders(3, "d")]})

    assert contents(sql, dest_db) == [(1,), (2,), (3,)]
    assert child_rows(sql, dest_db, "t__orders") == [
        ("a", "r1o0"),
        ("b", "r1o1"),
        ("c", "r2o0"),
        ("d", "r3o0"),
    ]
    assert sql.query(dest_db, "SELECT * FROM t__orders__items") == [(10, "r1o0i0", "r1o0", "r1", 0)]
    assert shape(destination().describe_child("t__orders")) == shape(ORDERS)
    assert destination().describe_child("t__missing") is None


def test_child_rows_read_back_through_the_connector_as_a_source(
    destination: Open, dest_db: Path
) -> None:
    first_load(destination)
    source = DuckDBConnector(DuckDBConfig(database=str(dest_db), table="t__orders__items"))
    source.open(
        RunContext(recipe_name="read", run_id="x", started_at=datetime.now(UTC), role="source")
    )
    try:
        read = pa.Table.from_batches([b.to_arrow() for b in source.read_batches(State())])
    finally:
        source.close()
    assert read.schema.names == ITEMS.names
    assert sorted(read.column("_dl_id").to_pylist()) == ["r1o0i0", "r1o0i1", "r2o0i0"]


def test_a_merge_replaces_the_children_of_the_merged_roots_in_its_commit(
    destination: Open, dest_db: Path, sql: Any
) -> None:
    first_load(destination)
    connector = destination("merge", run_id="run-2", merge_keys=("id",))
    # root 1 now has one order with one item; root 2 is not in the batch
    load(
        connector,
        [1],
        {"t__orders": [orders(1, "z")], "t__orders__items": [items(1, 0, 99)]},
        commit=False,
    )
    before = child_rows(sql, dest_db, "t__orders")
    assert before == [("a", "r1o0"), ("b", "r1o1"), ("c", "r2o0")]  # the old ones until the commit
    connector.commit(State())

    assert contents(sql, dest_db) == [(1,), (2,)]
    assert child_rows(sql, dest_db, "t__orders") == [("c", "r2o0"), ("z", "r1o0")]
    assert child_rows(sql, dest_db, "t__orders__items") == [(20, "r2o0i0"), (99, "r1o0i0")]


def test_a_merge_of_a_root_without_list_items_removes_its_children_from_every_known_table(
    destination: Open, dest_db: Path, sql: Any
) -> None:
    first_load(destination)
    load(
        destination("merge", run_id="run-2", merge_keys=("id",)),
        [1],
        {},
        known=("t__orders", "t__orders__items", "t__never_created"),
    )
    assert child_rows(sql, dest_db, "t__orders") == [("c", "r2o0")]
    assert child_rows(sql, dest_db, "t__orders__items") == [(20, "r2o0i0")]
    assert "main.t__never_created" not in sql.tables(dest_db)


def test_overwrite_swaps_every_child_table_in_with_the_table_and_empties_known_ones_not_written(
    destination: Open, dest_db: Path, sql: Any
) -> None:
    first_load(destination)
    sql.execute(dest_db, "COMMENT ON TABLE t__orders IS 'kept'")
    connector = destination("overwrite", run_id="run-2")
    assert connector.describe_child("t__orders") is None  # a new, empty stage
    load(
        connector,
        [5],
        {"t__orders": [orders(5, "n")]},
        known=("t__orders", "t__orders__items", "t__never_created"),
        commit=False,
    )
    assert child_rows(sql, dest_db, "t__orders") == [("a", "r1o0"), ("b", "r1o1"), ("c", "r2o0")]
    assert len(child_rows(sql, dest_db, "t__orders__items")) == 3  # until the commit
    connector.commit(State())

    assert contents(sql, dest_db) == [(5,)]
    assert child_rows(sql, dest_db, "t__orders") == [("n", "r5o0")]
    assert child_rows(sql, dest_db, "t__orders__items") == []
    assert sql.tables(dest_db) == [
        "main._dataloader_state",
        "main.t",
        "main.t__orders",
        "main.t__orders__items",
    ]
    assert sql.query(
        dest_db, "SELECT comment FROM duckdb_tables() WHERE table_name = 't__orders'"
    ) == [("kept",)]


def test_overwrite_fits_each_child_stage_to_its_plans(
    destination: Open, dest_db: Path, sql: Any
) -> None:
    first_load(destination)
    connector = destination("overwrite", run_id="run-2")
    narrow = pa.schema([field("value", pa.int32()), *KEYS])
    connector.apply_schema(create(ROOT))
    connector.write_batch(roots(1), State())
    connector.apply_child_schema("t__orders__items", create(narrow))
    connector.apply_child_schema("t__orders__items", change(narrow, ITEMS, value="widen_type"))
    connector.write_child_batch("t__orders__items", items(1, 0, 2**40), State())
    connector.commit(State())

    assert sql.query(dest_db, "SELECT value FROM t__orders__items") == [(2**40,)]
    assert child_rows(sql, dest_db, "t__orders") == [("a", "r1o0"), ("b", "r1o1"), ("c", "r2o0")]


@pytest.mark.parametrize("mode", ["append", "merge", "overwrite"])
def test_an_abort_after_child_rows_leaves_every_table_at_the_last_commit(
    destination: Open, dest_db: Path, sql: Any, mode: str
) -> None:
    first_load(destination)
    committed = snapshot(sql, dest_db)
    connector = destination(mode, run_id="run-2", merge_keys=("id",) if mode == "merge" else ())
    load(
        connector,
        [1, 7],
        {"t__orders": [orders(1, "x"), orders(7, "y")], "t__new": [orders(7, "w")]},
        known=("t__orders", "t__orders__items"),
        commit=False,
    )
    before = child_rows(sql, dest_db, "t__orders")
    connector.abort()

    assert before == [("a", "r1o0"), ("b", "r1o1"), ("c", "r2o0")]
    assert snapshot(sql, dest_db) == committed


def test_child_rows_alone_wait_for_the_commit(destination: Open, dest_db: Path, sql: Any) -> None:
    first_load(destination)
    connector = destination(run_id="run-2")
    connector.write_child_batch("t__orders", orders(9, "s"), State())
    connector.abort()
    assert len(child_rows(sql, dest_db, "t__orders")) == 3

    connector = destination(run_id="run-3")
    connector.write_child_batch("t__orders", orders(9, "s"), State())
    assert len(child_rows(sql, dest_db, "t__orders")) == 3
    connector.commit(State())
    assert len(child_rows(sql, dest_db, "t__orders")) == 4


def test_a_deletion_of_children_alone_waits_for_the_commit(
    destination: Open, dest_db: Path, sql: Any
) -> None:
    first_load(destination)
    connector = destination("merge", run_id="run-2", merge_keys=("id",))
    connector.delete_children("t__orders", pa.array(["r1"]))
    connector.abort()
    assert len(child_rows(sql, dest_db, "t__orders")) == 3

    connector = destination("merge", run_id="run-3", merge_keys=("id",))
    connector.delete_children("t__orders", pa.array(["r1"]))
    assert len(child_rows(sql, dest_db, "t__orders")) == 3
    connector.commit(State())
    assert child_rows(sql, dest_db, "t__orders") == [("c", "r2o0")]


def test_a_child_schema_change_commits_with_the_rows_and_vanishes_with_an_abort(
    destination: Open, dest_db: Path, sql: Any
) -> None:
    first_load(destination)
    wider = pa.schema([*ORDERS, field("qty", pa.int64())])
    connector = destination(run_id="run-2")
    before = connector.describe_child("t__orders")
    assert before is not None
    connector.apply_child_schema("t__orders", change(before, wider, qty="add_column"))
    connector.abort()
    assert "qty" not in dict(sql.query(dest_db, "SELECT column_name, 1 FROM (DESCRIBE t__orders)"))

    connector = destination(run_id="run-3")
    connector.apply_child_schema("t__orders", change(before, wider, qty="add_column"))
    row = orders(4, "q").to_arrow().append_column("qty", pa.array([3]))
    connector.write_child_batch("t__orders", ArrowBatch(row), State())
    connector.commit(State())
    assert sql.query(dest_db, "SELECT sku, qty FROM t__orders WHERE qty IS NOT NULL") == [("q", 3)]


ODD_TABLE = '"My ""T"" ñ"'
ODD_CHILD = 'My "T" ñ__or ders 🙂'


@pytest.mark.parametrize("mode", ["append", "merge", "overwrite"])
def test_names_that_need_quoting(destination: Open, dest_db: Path, sql: Any, mode: str) -> None:
    load(
        destination(table=ODD_TABLE, run_id="run-0"),
        [1],
        {ODD_CHILD: [orders(1, "a", "b")]},
    )
    connector = destination(
        mode, run_id="run-2", table=ODD_TABLE, merge_keys=("id",) if mode == "merge" else ()
    )
    assert connector.table_name() == 'My "T" ñ'
    load(connector, [1], {ODD_CHILD: [orders(1, "c")]}, known=(ODD_CHILD,))

    quoted = '"My ""T"" ñ__or ders 🙂"'
    expected = {
        "append": [("a", "r1o0"), ("b", "r1o1"), ("c", "r1o0")],
        "merge": [("c", "r1o0")],
        "overwrite": [("c", "r1o0")],
    }
    assert child_rows(sql, dest_db, quoted) == expected[mode]
    assert not [name for name in sql.tables(dest_db) if "_dl_stage_" in name]


def test_child_tables_of_a_schema_qualified_table_are_in_its_schema(
    destination: Open, dest_db: Path, sql: Any
) -> None:
    for mode in ("append", "overwrite"):
        load(
            destination(mode, run_id=f"run-{mode}", table="an.t"),
            [1],
            {"t__orders": [orders(1, "a")]},
        )
    assert sql.tables(dest_db) == ["an.t", "an.t__orders", "main._dataloader_state"]


KILLED_RUN = """
import os, sys
from datetime import UTC, datetime
import pyarrow as pa
from dataloader import RunContext, State
from dataloader_duckdb import DuckDBConnector, DuckDBConfig
sys.path.insert(0, sys.argv[4])
from test_duckdb_child_tables import load, orders, items

database, mode, point = sys.argv[1:4]
connector = DuckDBConnector(DuckDBConfig(database=database, table="t"))
connector.open(RunContext(recipe_name="r", run_id="killed", started_at=datetime.now(UTC),
                          role="destination", write_mode=mode,
                          merge_keys=("id",) if mode == "merge" else ()))
connector.begin(State())
cls = type(connector)
if point == "before-commit":
    cls.commit = lambda self, state: os._exit(9)
elif point == "in-commit":  # every table's changes made, the state row not yet
    cls._save_state = lambda self, state: os._exit(9)
elif point == "in-swap":  # the first table swapped in, the next not yet
    swap, swapped = cls._swap_in, []
    def swap_one(self, stage, target):
        if swapped:
            os._exit(9)
        swap(self, stage, target)
        swapped.append(target)
    cls._swap_in = swap_one
load(connector, [1, 7], {"t__orders": [orders(1, "x"), orders(7, "y")],
                         "t__orders__items": [items(7, 0, 70)]},
     known=("t__orders", "t__orders__items"))
sys.exit("not killed")
"""


@pytest.mark.parametrize(
    ("mode", "point"),
    [
        ("append", "before-commit"),
        ("append", "in-commit"),
        ("merge", "before-commit"),
        ("merge", "in-commit"),
        ("overwrite", "before-commit"),
        ("overwrite", "in-commit"),
        ("overwrite", "in-swap"),
    ],
)
def test_a_killed_run_leaves_every_table_at_the_last_commit(
    destination: Open, dest_db: Path, sql: Any, mode: str, point: str
) -> None:
    first_load(destination)
    committed = snapshot(sql, dest_db)
    state = sql.committed_state(dest_db, "r")

    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(dest_db), mode, point, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert killed.returncode == 9, killed.stderr

    stages = [name for name in sql.tables(dest_db) if "_dl_stage_" in name]
    assert {k: v for k, v in snapshot(sql, dest_db).items() if "_dl_stage_" not in k} == committed
    assert sql.committed_state(dest_db, "r") == state
    if stages:  # an overwrite's committed stages: dead, the recipe's next run drops them
        destination("overwrite", run_id="run-next")
        assert not [name for name in sql.tables(dest_db) if "_dl_stage_" in name]
