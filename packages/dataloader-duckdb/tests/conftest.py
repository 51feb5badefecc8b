"""Fixtures for the DuckDB connector tests: databases in tmp_path, recipes, an in-process source."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dataloader import (
    LocalStateBackend,
    RunResult,
    State,
    register_connector,
)
from dataloader.registry import reset_registry, unregister
from dataloader.testing import RowsSource, local_runner

ROWS_SOURCE = "dl_test_rows"


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    reset_registry()
    yield
    reset_registry()


@pytest.fixture
def rows_source() -> Iterator[str]:
    """Register the in-process `dl_test_rows` source; its name is the fixture's value."""
    register_connector(ROWS_SOURCE)(RowsSource)
    try:
        yield ROWS_SOURCE
    finally:
        unregister("connector", ROWS_SOURCE)


@pytest.fixture
def source_db(tmp_path: Path) -> Path:
    return tmp_path / "source.duckdb"


@pytest.fixture
def dest_db(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


class Sql:
    """SQL against database files; each call opens and closes its own connection."""

    @staticmethod
    def execute(database: Path, *statements: str) -> None:
        con = duckdb.connect(str(database))
        try:
            for statement in statements:
                con.execute(statement)
        finally:
            con.close()

    @staticmethod
    def query(database: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        con = duckdb.connect(str(database))
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def tables(self, database: Path) -> list[str]:
        """`schema.table` of every table in the database."""
        rows = self.query(database, "SELECT schema_name, table_name FROM duckdb_tables()")
        return sorted(f"{schema}.{name}" for schema, name in rows)

    def committed_state(self, database: Path, recipe_name: str) -> State | None:
        """The state row committed in the destination's `_dataloader_state` table."""
        if "main._dataloader_state" not in self.tables(database):
            return None
        rows = self.query(
            database, "SELECT state FROM _dataloader_state WHERE recipe = ?", [recipe_name]
        )
        assert len(rows) <= 1, "one state row per recipe"
        return State.from_dict(json.loads(rows[0][0])) if rows else None


@pytest.fixture
def sql() -> Sql:
    return Sql()


@pytest.fixture
def run(state_dir: Path) -> Callable[..., RunResult]:
    """`run(recipe_dict_or_Recipe, **kwargs)`: run it with a local state backend in tmp_path."""
    return local_runner(state_dir)


@pytest.fixture
def backend_state(state_dir: Path) -> Callable[[str], State]:
    """`backend_state(name)`: the state the local backend holds for recipe `name`."""

    def _load(name: str) -> State:
        return State.from_dict(LocalStateBackend(state_dir).load(name))

    return _load
