"""Child tables of normalized nested data in the Postgres destination: siblings of the main
table written in its transaction, so every table moves from one commit to the next together.

Append adds child rows; merge deletes the children of the merged roots (`_dl_root_id`) before
adding the new ones; overwrite stages each child table and swaps it in with the main table, and
empties a known child table the run did not write. An abort, or a process killed before or
inside the commit, leaves every table at the last commit. Names longer than Postgres's 63 bytes
are refused rather than silently cut.

The connector is driven step by step as the engine drives it; a killed process is a
subprocess that calls `os._exit` from a patched method, at a chosen point.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dataloader import ArrowBatch, ConnectorError, RunContext, State
from dataloader.testing import begun_destination, create_plan
from dataloader_postgres import PostgresConnector
from dataloader_postgres.config import PostgresConfig

KEYS = [
    pa.field("_dl_id", pa.string(), nullable=False),
    pa.field("_dl_parent_id", pa.string(), nullable=False),
    pa.field("_dl_root_id", pa.string(), nullable=False),
    pa.field("_dl_list_idx", pa.int64(), nullable=False),
]
ROOT = pa.schema(
    [pa.field("id", pa.int64()), pa.field("name", pa.string()), KEYS[0]],
)
ORDERS = pa.schema([pa.field("sku", pa.string()), *KEYS])
ITEMS = pa.schema([pa.field("value", pa.string()), *KEYS])

Destination = Callable[..., PostgresConnector]


def customers(*spec: tuple[int, str, list[list[str]]]) -> tuple[list[dict[str, Any]], ...]:
    """Root, `__orders` and `__orders__items` rows of customers given as (id, name, orders),
    each order a list of item values; its sku is `<id>-<position>`."""
    roots, orders, items = [], [], []
    for key, name, customer_orders in spec:
        root = f"r{key}"
        roots.append({"id": key, "name": name, "_dl_id": root})
        for position, order_items in enumerate(customer_orders):
            order = f"{root}.{position}"
            orders.append(
                {"sku": f"{key}-{position}", "_dl_id": order, "_dl_parent_id": root}
                | {"_dl_root_id": root, "_dl_list_idx": position}
            )
            for index, value in enumerate(order_items):
                items.append(
                    {"value": value, "_dl_id": f"{order}.{index}", "_dl_parent_id": order}
                    | {"_dl_root_id": root, "_dl_list_idx": index}
                )
    return roots, orders, items


def batch(schema: pa.Schema, rows: list[dict[str, Any]]) -> ArrowBatch:
    return ArrowBatch(pa.RecordBatch.from_pylist(rows, schema=schema))


class Load:
    """One attempt of a run into `dst` and its child tables `<dst>__orders`,
    `<dst>__orders__items`, driven as the engine drives a destination."""

    def __init__(self, connector: PostgresConnector, known: tuple[str, ...] = ()) -> None:
        self.connector = connector
        main = connector.table_name()
        assert main is not None
        self.orders, self.items = f"{main}__orders", f"{main}__orders__items"
        self.known = set(known)  # the child tables the recipe's state knows
        self.planned: set[str] = set()

    def write(self, *spec: tuple[int, str, list[list[str]]]) -> None:
        connector = self.connector
        mode = connector.context.write_mode if connector.context else "append"
        roots, orders, items = customers(*spec)
        if "root" not in self.planned:
            if connector.describe() is None:
                connector.apply_schema(create_plan(ROOT))
            self.planned.add("root")
        connector.write_batch(batch(ROOT, roots), State())
        if mode == "merge":
            ids = pa.array([row["_dl_id"] for row in roots])
            for table in sorted(self.known):
                connector.delete_children(table, ids)
        for table, schema, rows in ((self.orders, ORDERS, orders), (self.items, ITEMS, items)):
            if not rows:
                continue
            if table not in self.planned:
                if connector.describe_child(table) is None:
                    connector.apply_child_schema(table, create_plan(schema))
                self.planned.add(table)
            connector.write_child_batch(table, batch(schema, rows), State())
            self.known.add(table)

    def commit(self, written: tuple[str, ...] | None = None) -> None:
        """Commit; under overwrite, first empty the known child tables not in `written`."""
        connector = self.connector
        if connector.context is not None and connector.context.write_mode == "overwrite":
            for table in sorted(self.known - set(written or self.planned)):
                connector.delete_children(table, None)
        connector.commit(State())


@pytest.fixture
def dest(pg: Any) -> Iterator[Destination]:
    """`dest(write_mode="append", table="dst", **context)`: a destination opened and begun
    as one run of recipe `r` (a run id of its own each); closed at the end."""
    opened: list[PostgresConnector] = []

    def open_destination(
        write_mode: str = "append", table: str = "dst", **context: Any
    ) -> PostgresConnector:
        for earlier in opened:  # one attempt at a time holds the recipe's lock
            earlier.close()
        connector = PostgresConnector(PostgresConfig(**pg.settings(), table=table))
        opened.append(connector)
        return begun_destination(connector, write_mode, f"run-{len(opened)}", **context)

    yield open_destination
    for connector in opened:
        connector.close()


def contents(pg: Any, table: str = "dst") -> dict[str, list[tuple[Any, ...]]]:
    """Every table of the load as another session sees it (a missing one: None)."""
    found: dict[str, Any] = {}
    for name, columns in (
        (table, '"id", "name"'),
        (f"{table}__orders", '"_dl_root_id", "sku"'),
        (f"{table}__orders__items", '"_dl_root_id", "value"'),
    ):
        quoted = '"' + name.replace('"', '""') + '"'
        found[name] = (
            pg.query(f"SELECT {columns} FROM {quoted} ORDER BY 1, 2") if pg.exists(quoted) else None
        )
    return found


def test_capabilities_and_table_name(pg: Any, dest: Destination) -> None:
    capabilities = PostgresConnector.capabilities
    assert capabilities.child_tables and capabilities.max_identifier_length == 63
    assert dest(table="public.dst").table_name() == "dst"
    assert dest(table='"My Schema"."Odd Table"').table_name() == "Odd Table"


def test_append_adds_rows_to_the_main_table_and_both_child_tables(
    pg: Any, dest: Destination
) -> None:
    first = Load(dest())
    first.write((1, "ann", [["a", "b"], []]))
    first.commit()
    second = Load(dest(), known=(first.orders, first.items))
    second.write((2, "bob", [["c"]]))
    assert contents(pg)["dst__orders"] == [("r1", "1-0"), ("r1", "1-1")]  # not yet committed
    second.commit()
    assert contents(pg) == {
        "dst": [(1, "ann"), (2, "bob")],
        "dst__orders": [("r1", "1-0"), ("r1", "1-1"), ("r2", "2-0")],
        "dst__orders__items": [("r1", "a"), ("r1", "b"), ("r2", "c")],
    }
    # a child table gets the index merges delete by, and no primary key from the merge keys
    indexes = pg.query("SELECT indexdef FROM pg_indexes WHERE tablename = 'dst__orders'")
    assert [row[0] for row in indexes] == [
        "CREATE INDEX dst__orders__dl_root_id_idx ON public.dst__orders USING btree (_dl_root_id)"
    ]


def test_merge_replaces_the_children_of_merged_roots_in_the_same_commit(
    pg: Any, dest: Destination
) -> None:
    first = Load(dest("merge", merge_keys=("id",)))
    first.write((1, "ann", [["a", "b"], ["c"]]), (2, "bob", [["d"]]))
    first.commit()
    second = Load(dest("merge", merge_keys=("id",)), known=(first.orders, first.items))
    second.write((1, "ann2", [["x"]]))
    # another session still sees the last commit, every table of it
    assert contents(pg)["dst__orders__items"] == [
        ("r1", "a"),
        ("r1", "b"),
        ("r1", "c"),
        ("r2", "d"),
    ]
    second.commit()
    assert contents(pg) == {
        "dst": [(1, "ann2"), (2, "bob")],
        "dst__orders": [("r1", "1-0"), ("r2", "2-0")],
        "dst__orders__items": [("r1", "x"), ("r2", "d")],
    }


def test_merge_of_a_root_that_lost_all_its_list_items_removes_every_child(
    pg: Any, dest: Destination
) -> None:
    first = Load(dest("merge", merge_keys=("id",)))
    first.write((1, "ann", [["a"]]), (2, "bob", [["d"]]))
    first.commit()
    second = Load(dest("merge", merge_keys=("id",)), known=(first.orders, first.items))
    second.write((1, "ann", []))
    second.write((2, "bob", [[]]))  # a second batch: its own roots' children go
    second.commit()
    assert contents(pg)["dst__orders"] == [("r2", "2-0")]
    assert contents(pg)["dst__orders__items"] == []


def test_delete_children_of_a_missing_table_does_nothing(pg: Any, dest: Destination) -> None:
    connector = dest("merge", merge_keys=("id",))
    connector.delete_children("dst__nothing", pa.array(["r1"]))
    connector.commit(State())
    assert not pg.exists("dst__nothing")


def test_overwrite_replaces_child_tables_and_empties_a_known_one_not_written(
    pg: Any, dest: Destination
) -> None:
    first = Load(dest())
    first.write((1, "ann", [["a", "b"]]), (2, "bob", [["c"]]))
    first.commit()
    second = Load(dest("overwrite"), known=(first.orders, first.items))
    second.write((3, "cat", [[], []]))  # orders without items: nothing for `__orders__items`
    second.commit()
    assert contents(pg) == {
        "dst": [(3, "cat")],
        "dst__orders": [("r3", "3-0"), ("r3", "3-1")],
        "dst__orders__items": [],
    }
    assert [name for name in pg.tables() if name.startswith("_dl_stage_")] == []


def test_overwrite_is_invisible_until_its_commit(pg: Any, dest: Destination) -> None:
    first = Load(dest())
    first.write((1, "ann", [["a"]]))
    first.commit()
    before = contents(pg)
    second = Load(dest("overwrite"), known=(first.orders, first.items))
    second.write((2, "bob", [["b"]]))
    assert second.connector.describe_child(second.orders) is not None  # its stage
    assert contents(pg) == before
    second.commit()
    assert contents(pg)["dst__orders__items"] == [("r2", "b")]


@pytest.mark.parametrize("mode", ["append", "merge", "overwrite"])
def test_abort_after_child_rows_leaves_every_table_at_the_last_commit(
    pg: Any, dest: Destination, mode: str
) -> None:
    first = Load(dest())
    first.write((1, "ann", [["a"]]))
    first.commit()
    before = contents(pg)
    second = Load(dest(mode, merge_keys=("id",)), known=(first.orders, first.items))
    second.write((1, "ann2", [["x", "y"], ["z"]]), (2, "bob", [["b"]]))
    second.connector.abort()
    assert contents(pg) == before
    # the connector goes on from the last commit
    second.planned.clear()
    second.write((5, "eve", [["e"]]))
    second.commit()
    assert ("r5", "e") in contents(pg)["dst__orders__items"]


def test_names_that_need_quoting(pg: Any, dest: Destination) -> None:
    table = '"We""ird dst"'
    schema = pa.schema([pa.field('sku "x" ü', pa.string()), *KEYS])
    connector = dest("overwrite", table=table)
    connector.apply_schema(create_plan(ROOT))
    connector.write_batch(batch(ROOT, [{"id": 1, "name": "a", "_dl_id": "r1"}]), State())
    child = 'We"ird dst__ördérs; drop'

    connector.apply_child_schema(child, create_plan(schema))
    row = {'sku "x" ü': "s", "_dl_id": "c", "_dl_parent_id": "r1", "_dl_root_id": "r1"}
    connector.write_child_batch(child, batch(schema, [row | {"_dl_list_idx": 0}]), State())
    connector.commit(State())
    assert pg.query('SELECT "sku ""x"" ü" FROM "We""ird dst__ördérs; drop"') == [("s",)]

    merge = dest("merge", table=table, merge_keys=("id",))
    merge.write_batch(batch(ROOT, [{"id": 1, "name": "b", "_dl_id": "r1"}]), State())
    merge.delete_children(child, pa.array(["r1"]))
    merge.commit(State())
    assert pg.query('SELECT count(*) FROM "We""ird dst__ördérs; drop"') == [(0,)]


FITS = "é" * 31 + "x"  # 63 bytes: Postgres keeps it whole
TOO_LONG = "é" * 32  # 64 bytes in 32 characters: Postgres would cut it


def test_main_table_and_column_names_longer_than_63_bytes_are_refused(
    pg: Any, dest: Destination
) -> None:
    with pytest.raises(ConnectorError, match=r"^destination\.table: .* 64 bytes"):
        dest(table=TOO_LONG)
    connector = dest(table=FITS)
    with pytest.raises(ConnectorError, match="64 bytes") as refused:
        connector.apply_schema(create_plan(pa.schema([pa.field(TOO_LONG, pa.int64())])))
    assert TOO_LONG in str(refused.value)
    rows = pa.RecordBatch.from_pylist([{TOO_LONG: 1}])
    with pytest.raises(ConnectorError, match="64 bytes"):
        connector.write_batch(ArrowBatch(rows), State())
    connector.apply_schema(create_plan(pa.schema([pa.field(FITS, pa.int64())])))
    connector.commit(State())
    assert pg.column_types(f'"{FITS}"') == {FITS: "bigint"}


def test_child_table_and_column_names_longer_than_63_bytes_are_refused(
    pg: Any, dest: Destination
) -> None:
    connector = dest()
    schema = pa.schema([pa.field(FITS, pa.string()), *KEYS])
    with pytest.raises(ConnectorError, match="64 bytes") as refused:
        connector.apply_child_schema(TOO_LONG, create_plan(schema))
    assert TOO_LONG in str(refused.value)
    wide = pa.schema([pa.field(TOO_LONG, pa.string()), *KEYS])
    with pytest.raises(ConnectorError, match="64 bytes"):
        connector.apply_child_schema("dst__x", create_plan(wide))
    row = {TOO_LONG: "v", "_dl_id": "i", "_dl_parent_id": "p", "_dl_root_id": "r"}
    with pytest.raises(ConnectorError, match="64 bytes"):
        connector.write_child_batch("dst__x", batch(wide, [row | {"_dl_list_idx": 0}]), State())
    connector.apply_child_schema(FITS, create_plan(schema))
    connector.commit(State())
    assert FITS in pg.column_types(f'"{FITS}"')


def test_child_tables_read_back_with_the_postgres_source(pg: Any, dest: Destination) -> None:
    load = Load(dest())
    load.write((1, "ann", [["a", "b"]]))
    load.commit()
    source = PostgresConnector(PostgresConfig(**pg.settings(), table=load.items))
    source.open(
        RunContext(recipe_name="read", run_id="read-1", started_at=datetime.now(UTC), role="source")
    )
    try:
        table = pa.Table.from_batches([b.to_arrow() for b in source.read_batches(State())])
    finally:
        source.close()
    assert table.schema.names == ITEMS.names
    assert table.sort_by("_dl_list_idx").to_pylist() == [
        {
            "value": "a",
            "_dl_id": "r1.0.0",
            "_dl_parent_id": "r1.0",
            "_dl_root_id": "r1",
            "_dl_list_idx": 0,
        },
        {
            "value": "b",
            "_dl_id": "r1.0.1",
            "_dl_parent_id": "r1.0",
            "_dl_root_id": "r1",
            "_dl_list_idx": 1,
        },
    ]


def test_begin_drops_this_recipes_dead_child_stages_only(pg: Any, dest: Destination) -> None:
    connector = dest("overwrite")
    load = Load(connector)
    load.write((1, "ann", [["a"]]))
    stage = connector._child_stages[load.items].sql()
    connector.conn.commit()  # stages committed by accident: dead once this run is gone
    connector.close()
    assert pg.exists(stage)
    other = {"recipe": "other", "table": load.items, "run_id": "x", "parent": "dst"}
    pg.execute("CREATE TABLE _dl_stage_other (x int)")
    pg.execute("COMMENT ON TABLE _dl_stage_other IS %s", (json.dumps({"dataloader_stage": other}),))
    dest("overwrite")
    stages = sorted(name for name in pg.tables() if name.startswith("_dl_stage_"))
    assert stages == ["_dl_stage_other"]


# -- a process killed between a child write and the commit, or inside the commit -------------
KILLED = """
import sys
sys.path.insert(0, {tests!r})
from test_postgres_child_tables import killed_run
killed_run({settings!r}, {mode!r}, {point!r})
"""


def killed_run(settings: dict[str, Any], mode: str, point: str) -> None:
    """Run a second load into `dst` in this process, and end it with `os._exit` at `point`:
    `after_child_write` (child rows written, no commit yet) or `in_commit` (the commit's
    statements run, its state saved, not yet committed)."""
    import os

    connector = PostgresConnector(PostgresConfig(**settings, table="dst"))
    begun_destination(connector, mode, "run-killed", merge_keys=("id",))
    load = Load(connector, known=("dst__orders", "dst__orders__items"))
    if point == "in_commit":
        save = connector._save_state

        def save_then_die(state: State) -> None:
            save(state)
            os._exit(3)

        connector._save_state = save_then_die  # type: ignore[method-assign]
    load.write((1, "ann2", [["x"]]), (3, "cat", [["y", "z"]]))
    if point == "after_child_write":
        os._exit(3)
    load.commit()


@pytest.mark.parametrize("point", ["after_child_write", "in_commit"])
@pytest.mark.parametrize("mode", ["merge", "overwrite"])
def test_a_killed_run_leaves_every_table_at_the_last_commit(
    pg: Any, dest: Destination, tmp_path: Path, mode: str, point: str
) -> None:
    first = Load(dest("merge", merge_keys=("id",)))
    first.write((1, "ann", [["a", "b"]]), (2, "bob", [["c"]]))
    first.commit()
    first.connector.close()
    before = contents(pg)
    script = tmp_path / "killed.py"
    script.write_text(
        KILLED.format(
            tests=str(Path(__file__).parent), settings=pg.settings(), mode=mode, point=point
        )
    )
    killed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert killed.returncode == 3, killed.stderr
    assert contents(pg) == before
    # The server ends the killed session (and its lock on the recipe) on its own time.
    pg.query(
        "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    # and the next run finishes what the killed one started
    again = Load(dest(mode, merge_keys=("id",)), known=(first.orders, first.items))
    again.write((1, "ann2", [["x"]]), (3, "cat", [["y", "z"]]))
    again.commit()
    expected_orders = [("r1", "1-0"), ("r3", "3-0")]
    if mode == "merge":
        expected_orders.insert(1, ("r2", "2-0"))
    assert contents(pg)["dst__orders"] == expected_orders
    assert [name for name in pg.tables() if name.startswith("_dl_stage_")] == []
