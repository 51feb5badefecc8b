"""Helpers of the `sql` connector tests, imported by the test modules (`conftest.py` holds
only fixtures: a module named `conftest` cannot be imported by name in a run over many
packages)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from dataloader.context import RunContext
from dataloader.state.model import State
from dataloader_sql import SqlConfig, SqlConnector


class Sqlite:
    """One SQLite database file: its URL, recipe sections for it, and plain SQL on it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"

    def source(self, **keys: Any) -> dict[str, Any]:
        return {"type": "sql", "url": self.url, **keys}

    def destination(self, table: str, write_mode: str = "append", **keys: Any) -> dict[str, Any]:
        return {"type": "sql", "url": self.url, "table": table, "write_mode": write_mode, **keys}

    def query(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path) as connection:
            return connection.execute(sql, params).fetchall()

    def execute(self, sql: str, params: Any = ()) -> None:
        connection = sqlite3.connect(self.path)
        try:
            connection.execute(sql, params)
            connection.commit()
        finally:
            connection.close()

    def tables(self) -> list[str]:
        rows = self.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        return [name for (name,) in rows]


def read_table(url: str, table: str | None = None, query: str | None = None) -> pa.Table:
    """Every row of `table` (or `query`) as the `sql` source reads it."""
    connector = SqlConnector(SqlConfig(url=url, table=table, query=query))
    connector.open(RunContext(recipe_name="read", run_id="read", started_at=datetime.now(UTC)))
    try:
        batches = [batch.to_arrow() for batch in connector.read_batches(State())]
    finally:
        connector.close()
    return pa.Table.from_batches(batches)
