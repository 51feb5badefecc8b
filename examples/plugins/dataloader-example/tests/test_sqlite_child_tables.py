"""The SQLite destination's child tables of normalized nested data, driven as the engine drives
them: append, merge and overwrite across a root table and two child tables, each change of
every table visible at one commit and gone with an abort or a killed process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from itertools import count
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from child_support import (
    ITEMS,
    MAIN,
    ORDERS,
    SCHEMAS,
    Driver,
    in_key_order,
    nested,
    snapshot,
    stored,
)
from sqlite_support import Open, Sql

from dataloader import RunResult, State
from dataloader.registry import get_registry
from dataloader.testing import change_plan as change
from dataloader.testing import described_shape as shape
from dataloader.testing import schema_field as field
from dataloader_example.sqlite.connector import SQLiteDestination

FIRST = {1: [("apple", [1, 2]), ("pear", [3])], 2: [("fig", [4])]}
RUNS = count(1)


def load(destination: Open, customers: dict, mode: str = "append", **extra: Any) -> Any:
    """One run writing `customers` in one batch and committing; returns the connector."""
    merge = {"merge_keys": ("id",)} if mode == "merge" else {}
    connector = destination(mode, run_id=f"load-{next(RUNS)}", **merge, **extra)
    known = (ORDERS, ITEMS) if mode == "merge" else ()
    Driver(connector).batch(nested(customers), known)
    connector.commit(State(cursor_values={"id": max(customers)}))
    return connector


def test_the_plugin_declares_child_tables_as_its_class_does() -> None:
    registration = get_registry().connector("sqlite")

    assert registration.capabilities is not None and registration.capabilities.child_tables
    assert registration.implementation is SQLiteDestination  # the agreement check passes
    assert registration.capabilities.max_identifier_length is None  # SQLite has no limit


def test_append_adds_rows_to_the_root_and_both_child_tables(
    destination: Open, database: Path
) -> None:
    connector = destination()
    assert connector.table_name() == MAIN
    assert connector.describe_child(ORDERS) is None

    load(destination, FIRST)
    load(destination, {3: [("plum", [5, 6])]})

    assert stored(database, MAIN, ORDERS, ITEMS) == in_key_order(
        nested({**FIRST, 3: [("plum", [5, 6])]})
    )
    described = destination(run_id="run-3").describe_child(ORDERS)
    assert shape(described) == shape(SCHEMAS[ORDERS])


def test_a_child_table_is_widened_and_extended_like_the_main_table(
    destination: Open, database: Path, sql: Sql
) -> None:
    load(destination, FIRST)
    before = SCHEMAS[ITEMS]
    target = before.set(0, field("qty", pa.decimal128(21, 2))).append(field("note", pa.string()))

    connector = destination(run_id="run-2")
    connector.apply_child_schema(ITEMS, change(before, target, qty="widen_type", note="add_column"))
    connector.commit(State())

    assert shape(destination(run_id="run-3").describe_child(ITEMS)) == shape(target)
    assert sql.declared(database, ITEMS)["qty"] == "DECIMAL_TEXT(21,2)"
    assert ("index", f"{ITEMS}___dl_root_id") in [  # the rewrite keeps the merge's index
        (kind, name) for kind, name, _ in snapshot(database)["ddl"]
    ]


def test_a_merge_replaces_the_children_of_merged_roots_and_keeps_the_others(
    destination: Open, database: Path
) -> None:
    load(destination, FIRST)

    load(destination, {1: [("kiwi", [7])], 3: [("plum", [])]}, "merge")

    # Customer 1 had two orders and three items: the one order it has now replaces them.
    assert stored(database, MAIN, ORDERS, ITEMS) == in_key_order(
        nested({1: [("kiwi", [7])], 2: FIRST[2], 3: [("plum", [])]})
    )


def test_a_merge_deletes_children_in_the_transaction_of_its_rows(
    destination: Open, database: Path, sql: Sql
) -> None:
    load(destination, FIRST)
    connector = destination("merge", run_id="run-2", merge_keys=("id",))
    Driver(connector).batch(nested({1: []}), (ORDERS, ITEMS))

    before_commit = stored(database, ORDERS)[ORDERS]  # another connection sees the last commit
    connector.commit(State())

    assert before_commit == in_key_order(nested(FIRST))[ORDERS] and before_commit
    assert stored(database, MAIN, ORDERS, ITEMS) == in_key_order(nested({1: [], 2: FIRST[2]}))


def test_deleting_children_of_a_table_that_does_not_exist_is_a_no_op(
    destination: Open, database: Path
) -> None:
    connector = destination("merge", merge_keys=("id",))

    connector.delete_children("t__never", pa.array(["c1"]))
    connector.delete_children("t__never", None)
    connector.commit(State())

    assert "t__never" not in snapshot(database)["rows"]


def test_an_overwrite_replaces_every_child_table_it_writes_at_its_commit(
    destination: Open, database: Path
) -> None:
    load(destination, FIRST)
    connector = destination("overwrite", run_id="run-2")
    assert connector.describe_child(ORDERS) is None  # the run writes a new stage
    Driver(connector).batch(nested({5: [("lime", [8])]}))

    assert stored(database, ORDERS)[ORDERS] == in_key_order(nested(FIRST))[ORDERS]
    connector.commit(State())

    assert stored(database, MAIN, ORDERS, ITEMS) == in_key_order(nested({5: [("lime", [8])]}))
    assert sorted(snapshot(database)["rows"]) == ["_dataloader_state", MAIN, ORDERS, ITEMS]


def test_an_overwrite_empties_a_known_child_table_it_writes_nothing_to(
    destination: Open, database: Path
) -> None:
    load(destination, FIRST)
    connector = destination("overwrite", run_id="run-2")
    Driver(connector).batch({**nested({5: []}), ORDERS: [], ITEMS: []})

    connector.delete_children(ORDERS, None)
    connector.delete_children(ITEMS, None)
    assert len(stored(database, ITEMS)[ITEMS]) == 4  # not before the commit
    connector.commit(State())

    assert stored(database, MAIN, ORDERS, ITEMS) == in_key_order(nested({5: []}))
    assert shape(destination(run_id="run-3").describe_child(ITEMS)) == shape(SCHEMAS[ITEMS])


def test_a_merge_recipes_full_refresh_merges_children_within_its_stage(
    destination: Open, database: Path
) -> None:
    load(destination, FIRST)
    connector = destination("overwrite", run_id="run-2", merge_keys=("id",))
    driver = Driver(connector)
    driver.batch(nested({1: [("kiwi", [7, 8])], 3: [("plum", [9])]}), (ORDERS, ITEMS))
    driver.batch(nested({1: [("lime", [])]}), (ORDERS, ITEMS))  # the stage's key 1 again
    connector.commit(State())

    assert stored(database, MAIN, ORDERS, ITEMS) == in_key_order(
        nested({1: [("lime", [])], 3: [("plum", [9])]})
    )


@pytest.mark.parametrize("mode", ["append", "merge", "overwrite"])
def test_abort_after_child_writes_leaves_every_table_at_the_last_commit(
    destination: Open, database: Path, mode: str
) -> None:
    load(destination, FIRST)
    committed = snapshot(database)
    merge = {"merge_keys": ("id",)} if mode == "merge" else {}
    connector = destination(mode, run_id="run-2", **merge)
    grown = SCHEMAS[ORDERS].append(field("note", pa.string()))
    if mode != "overwrite":
        connector.apply_child_schema(ORDERS, change(SCHEMAS[ORDERS], grown, note="add_column"))
    Driver(connector, {**SCHEMAS, ORDERS: grown}).batch(
        nested({1: [("kiwi", [7])], 3: [("plum", [9])]}), (ORDERS, ITEMS)
    )
    connector.delete_children(ITEMS, None)

    connector.abort()

    assert snapshot(database) == committed
    if mode == "overwrite":
        assert connector.describe_child(ORDERS) is None
    else:  # the same connection, after the rollback
        assert shape(connector.describe_child(ORDERS)) == shape(SCHEMAS[ORDERS])
    load(destination, {4: [("date", [1])]})  # the connection and the names are usable again
    assert len(stored(database, MAIN)[MAIN]) == 3


KILLED = """
import os, sys
sys.path.insert(0, sys.argv[1])
from child_support import ITEMS, ORDERS, Driver, nested
from dataloader import State
from dataloader.testing import begun_destination
from dataloader_example.config import SQLiteConfig
from dataloader_example.sqlite.connector import SQLiteDestination


class Gate:
    '''The connection, but the process exits at the `count`th statement starting `prefix`.'''

    def __init__(self, con, prefix, count):
        self.con, self.prefix, self.count = con, prefix, count

    def execute(self, sql, *args):
        if sql.startswith(self.prefix):
            self.count -= 1
            if self.count == 0:
                os._exit(7)
        return self.con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.con, name)


database, mode, prefix, count = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
connector = SQLiteDestination(SQLiteConfig(database=database, table="t"))
merge = {"merge_keys": ("id",)} if mode == "merge" else {}
begun_destination(connector, mode, "run-killed", **merge)
connector.con = Gate(connector.con, prefix, count)
Driver(connector).batch(nested({1: [("kiwi", [7])], 3: [("plum", [9])]}), (ORDERS, ITEMS))
if prefix == "after child write":
    os._exit(7)
connector.commit(State(cursor_values={"id": 3}))
os._exit(0)
"""


@pytest.mark.parametrize(
    ("mode", "gate", "nth"),
    [
        ("append", "after child write", 1),
        ("merge", "after child write", 1),
        ("merge", "COMMIT", 1),
        ("overwrite", "after child write", 1),
        ("overwrite", "ALTER TABLE", 2),  # the main table swapped in, its children not yet
        ("overwrite", "COMMIT", 1),
    ],
)
def test_a_process_killed_before_or_during_the_commit_leaves_the_last_commit(
    destination: Open, database: Path, sql: Sql, mode: str, gate: str, nth: int
) -> None:
    load(destination, FIRST)
    committed = snapshot(database)

    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLED,
            str(Path(__file__).parent),
            str(database),
            mode,
            gate,
            str(nth),
        ],
        check=False,
        capture_output=True,
        text=True,
    )

    assert killed.returncode == 7, killed.stderr
    assert snapshot(database) == committed
    assert sql.committed_state(database, "r") == State(cursor_values={"id": 2})


def test_the_same_run_not_killed_commits_every_table(destination: Open, database: Path) -> None:
    load(destination, FIRST)

    done = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLED,
            str(Path(__file__).parent),
            str(database),
            "merge",
            "-",
            "1",
        ],
        check=False,
        capture_output=True,
        text=True,
    )

    assert done.returncode == 0, done.stderr
    assert stored(database, MAIN, ORDERS, ITEMS) == in_key_order(
        nested({1: [("kiwi", [7])], 2: FIRST[2], 3: [("plum", [9])]})
    )


ODD = {MAIN: MAIN, ORDERS: 't__"Bestellungen" ü', ITEMS: 't__"Bestellungen" ü__pos ten'}


@pytest.mark.parametrize("mode", ["append", "merge", "overwrite"])
def test_child_table_and_column_names_are_quoted(
    destination: Open, database: Path, mode: str
) -> None:
    schemas = {
        MAIN: SCHEMAS[MAIN],
        ODD[ORDERS]: SCHEMAS[ORDERS].set(0, field('s"k u', pa.string())),
        ODD[ITEMS]: SCHEMAS[ITEMS],
    }

    def rows(customers: dict) -> dict[str, list[dict]]:
        tables = nested(customers, ODD)
        tables[ODD[ORDERS]] = [
            {'s"k u' if name == "sku" else name: value for name, value in row.items()}
            for row in tables[ODD[ORDERS]]
        ]
        return tables

    second = {3: [("plum", [9])]} if mode == "append" else {1: [("kiwi", [7])]}
    for run, customers in enumerate([FIRST, second]):
        merge = {"merge_keys": ("id",)} if mode == "merge" else {}
        connector = destination(mode, run_id=f"run-{run}", **merge)
        known = (ODD[ORDERS], ODD[ITEMS]) if mode == "merge" else ()
        Driver(connector, schemas).batch(rows(customers), known)
        connector.commit(State())

    expected = {
        "append": {**FIRST, **second},
        "merge": {**FIRST, **second},
        "overwrite": second,
    }[mode]
    assert stored(database, *ODD.values()) == in_key_order(rows(expected))


Run = Callable[..., RunResult]


def test_a_recipe_with_normalization_loads_nested_rows_into_child_tables_and_merges_them(
    run: Run, rows_source: str, database: Path
) -> None:
    def recipe(rows: list[dict[str, Any]], **destination: Any) -> dict[str, Any]:
        return {
            "name": "customers",
            "source": {"type": rows_source, "batches": [rows]},
            "normalization": {"enabled": True},
            "destination": {
                "type": "sqlite",
                "database": str(database),
                "table": "customers",
                "write_mode": "merge",
                "merge_keys": ["id"],
                **destination,
            },
        }

    first = [
        {"id": 1, "orders": [{"sku": "apple", "items": [{"qty": 1}, {"qty": 2}]}, {"sku": "pear"}]},
        {"id": 2, "orders": [{"sku": "fig", "items": [{"qty": 4}]}]},
    ]
    run(recipe(first))
    run(recipe([{"id": 1, "orders": [{"sku": "kiwi", "items": [{"qty": 7}]}]}]))

    tables = stored(database, "customers", "customers__orders", "customers__orders__items")
    roots = {row["_dl_id"]: row["id"] for row in tables["customers"]}
    assert sorted(roots.values()) == [1, 2]
    orders = tables["customers__orders"]
    assert sorted((roots[o["_dl_root_id"]], o["_dl_list_idx"], o["sku"]) for o in orders) == [
        (1, 0, "kiwi"),
        (2, 0, "fig"),
    ]
    assert all(o["_dl_parent_id"] == o["_dl_root_id"] for o in orders)
    skus = {o["_dl_id"]: o["sku"] for o in orders}
    items = tables["customers__orders__items"]
    assert sorted((skus[i["_dl_parent_id"]], i["qty"]) for i in items) == [("fig", 4), ("kiwi", 7)]
