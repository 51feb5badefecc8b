"""What the example plugin's tests share besides fixtures: reading a SQLite file back."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from dataloader import State
from dataloader_example.sqlite.connector import SQLiteDestination
from dataloader_example.sqlite.schema import describe_table
from dataloader_example.sqlite.types import arrow_values

Open = Callable[..., SQLiteDestination]
"""`destination(write_mode=…, run_id=…)`, the fixture: an opened and begun destination."""


class Sql:
    """SQL against a database file; each call opens and closes its own connection."""

    @staticmethod
    def query(database: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        con = sqlite3.connect(database)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()

    @staticmethod
    def execute(database: Path, *statements: str) -> None:
        con = sqlite3.connect(database, isolation_level=None)
        try:
            for statement in statements:
                con.execute(statement)
        finally:
            con.close()

    def table(self, database: Path, table: str) -> pa.Table:
        """`table` read back as Arrow, each column as `describe` types it, in rowid order."""
        con = sqlite3.connect(database)
        try:
            schema = describe_table(con, table)
            assert schema is not None, f"no table {table!r}"
            rows = con.execute(f'SELECT * FROM "{table}" ORDER BY rowid').fetchall()
        finally:
            con.close()
        columns = [
            arrow_values([row[i] for row in rows], field.type) for i, field in enumerate(schema)
        ]
        return pa.Table.from_arrays(columns, schema=schema)

    def declared(self, database: Path, table: str) -> dict[str, str]:
        """Each column's declared type."""
        return {row[1]: row[2] for row in self.query(database, f'PRAGMA table_info("{table}")')}

    def ddl(self, database: Path) -> list[tuple[str, str]]:
        """Every table's and index's name and SQL, in name order."""
        return self.query(database, "SELECT name, sql FROM sqlite_master ORDER BY name")

    def committed_state(self, database: Path, recipe: str) -> State | None:
        """The state committed in `_dataloader_state` for `recipe`."""
        rows = self.query(
            database, "SELECT state FROM _dataloader_state WHERE recipe = ?", [recipe]
        )
        return State.from_dict(json.loads(rows[0][0])) if rows else None
