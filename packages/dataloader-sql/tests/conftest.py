"""Fixtures of the `sql` connector tests: a SQLite file per test, recipes run in-process with
a local state backend in tmp_path, an in-process rows source, and reads through the connector.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dataloader import LocalStateBackend, RunResult, register_connector, run_recipe
from dataloader.context import RunContext
from dataloader.recipe.models import Recipe
from dataloader.registry import unregister
from dataloader.state.model import State
from dataloader.testing import RowsSource
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


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Sqlite:
    return Sqlite(tmp_path / "data.sqlite")


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def run(state_dir: Path) -> Callable[..., RunResult]:
    """`run(recipe_dict, **options)`: the recipe run in-process with local state in tmp_path."""

    def _run(recipe: dict[str, Any], **kwargs: Any) -> RunResult:
        return run_recipe(Recipe.model_validate(recipe), LocalStateBackend(state_dir), **kwargs)

    return _run


@pytest.fixture
def rows_source() -> Iterator[str]:
    """An in-process source that yields batches exactly as configured."""
    name = "dl_sql_test_rows"
    register_connector(name)(type("SqlTestRows", (RowsSource,), {}))
    try:
        yield name
    finally:
        unregister("connector", name)
