"""Nested data as the normalizer hands it to a destination (a root table and two levels of
child tables, with their key columns), and a driver that calls a destination's table-aware
methods in the engine's order. Shared by the child-table tests and the processes they kill."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pyarrow as pa

from dataloader import ArrowBatch, State
from dataloader.testing import create_plan as create
from dataloader.testing import schema_field as field

MAIN = "t"  # the `destination` fixture's table
ORDERS = "t__orders"
ITEMS = "t__orders__items"

KEYS = [
    field("_dl_id", pa.string(), nullable=False),
    field("_dl_parent_id", pa.string(), nullable=False),
    field("_dl_root_id", pa.string(), nullable=False),
    field("_dl_list_idx", pa.int64(), nullable=False),
]
SCHEMAS = {
    MAIN: pa.schema(
        [
            field("id", pa.int64(), nullable=False),
            field("name", pa.string()),
            field("_dl_id", pa.string(), nullable=False),
        ]
    ),
    ORDERS: pa.schema([field("sku", pa.string()), *KEYS]),
    ITEMS: pa.schema([field("qty", pa.int64()), *KEYS]),
}

Customers = dict[int, list[tuple[str, list[int]]]]
"""Customer id -> its orders, each a sku and the quantities of its items."""


def nested(customers: Customers, names: dict[str, str] | None = None) -> dict[str, list[dict]]:
    """Per table, the rows the normalizer makes of `customers` (ids readable, not hashes);
    `names` renames tables."""
    names = names or {}
    tables: dict[str, list[dict[str, Any]]] = {MAIN: [], ORDERS: [], ITEMS: []}
    for key, orders in customers.items():
        root = f"c{key}"
        tables[MAIN].append({"id": key, "name": f"customer {key}", "_dl_id": root})
        for i, (sku, quantities) in enumerate(orders):
            order = f"{root}.{i}"
            tables[ORDERS].append(_child(order, root, root, i, sku=sku))
            for j, qty in enumerate(quantities):
                tables[ITEMS].append(_child(f"{order}.{j}", order, root, j, qty=qty))
    return {names.get(table, table): rows for table, rows in tables.items()}


def _child(key: str, parent: str, root: str, index: int, **data: Any) -> dict[str, Any]:
    return {
        **data,
        "_dl_id": key,
        "_dl_parent_id": parent,
        "_dl_root_id": root,
        "_dl_list_idx": index,
    }


class Driver:
    """Calls a destination as the engine does for one attempt: `describe`/`describe_child`
    once per table before its first plan, a create plan when there is no table, the main
    table's rows, under merge `delete_children` for every known child table, then each child
    table's rows."""

    def __init__(self, connector: Any, schemas: dict[str, pa.Schema] | None = None) -> None:
        self.connector = connector
        self.schemas = schemas or SCHEMAS
        self.planned: set[str] = set()

    def _plan(self, table: str) -> None:
        if table in self.planned:
            return
        self.planned.add(table)
        if table == self.connector.table_name():
            if self.connector.describe() is None:
                self.connector.apply_schema(create(self.schemas[table]))
        elif self.connector.describe_child(table) is None:
            self.connector.apply_child_schema(table, create(self.schemas[table]))

    def batch(self, tables: dict[str, list[dict]], known: tuple[str, ...] = ()) -> None:
        """Write one batch: `tables` maps each table to its rows (the main table first);
        `known` are the child tables whose children a merge deletes."""
        main = self.connector.table_name()
        self._plan(main)
        roots = tables.get(main, [])
        self.connector.write_batch(_batch(self.schemas[main], roots), State())
        root_ids = pa.array([row["_dl_id"] for row in roots], pa.string())
        for table in known:
            self.connector.delete_children(table, root_ids)
        for table, rows in tables.items():
            if table != main and rows:
                self._plan(table)
                self.connector.write_child_batch(table, _batch(self.schemas[table], rows), State())


def _batch(schema: pa.Schema, rows: list[dict[str, Any]]) -> ArrowBatch:
    return ArrowBatch(pa.RecordBatch.from_pylist(rows, schema=schema))


def snapshot(database: Path) -> dict[str, Any]:
    """Every table's DDL and rows (sorted), and every index: what one commit left."""
    con = sqlite3.connect(database)
    try:
        ddl = con.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        rows = {
            name: sorted(con.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr)
            for kind, name, _ in ddl
            if kind == "table"
        }
    finally:
        con.close()
    return {"ddl": ddl, "rows": rows}


def stored(database: Path, *tables: str) -> dict[str, list[dict[str, Any]]]:
    """The rows of `tables` as dicts, in `_dl_id` order, as `nested` makes them."""
    con = sqlite3.connect(database)
    con.row_factory = sqlite3.Row
    try:
        return {
            table: [
                dict(row)
                for row in con.execute(
                    f"SELECT * FROM {_quoted(table)} ORDER BY {_quoted('_dl_id')}"
                )
            ]
            for table in tables
        }
    finally:
        con.close()


def in_key_order(tables: dict[str, list[dict]]) -> dict[str, list[dict]]:
    return {table: sorted(rows, key=lambda row: row["_dl_id"]) for table, rows in tables.items()}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
