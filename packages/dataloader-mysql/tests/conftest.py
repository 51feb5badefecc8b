"""Fixtures of the MySQL connector tests: a database per test, recipes written as YAML and
run in-process with a local state backend in tmp_path, and SQL helpers.

The server itself (`mariadb_server`, `mariadb_database`) comes from `dataloader_mysql.testing`,
loaded by the repository's root conftest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dataloader import LocalStateBackend, RecipeLoader, RunResult, register_connector, run_recipe
from dataloader.registry import unregister
from dataloader.testing import RowsSource
from dataloader_mysql.testing import MariaDBServer


class My:
    """One test database: recipe keys for it, and SQL run on its own autocommit connection."""

    def __init__(self, server: MariaDBServer, database: str) -> None:
        self.server = server
        self.database = database
        self._connection: Any = None

    @property
    def connection(self) -> Any:
        if self._connection is None or not self._connection.open:
            self._connection = self.server.connect(self.database, autocommit=True)
            self._connection.cursor().execute("SET time_zone = '+00:00'")
        return self._connection

    def close(self) -> None:
        if self._connection is not None and self._connection.open:
            self._connection.close()

    def settings(self) -> dict[str, Any]:
        """host, port, database, user, password: the connection keys of a recipe section."""
        return self.server.connection_settings(self.database)

    def source(self, **keys: Any) -> dict[str, Any]:
        return {"type": "mysql", **self.settings(), **keys}

    def destination(self, table: str, write_mode: str = "append", **keys: Any) -> dict[str, Any]:
        return {
            "type": "mysql",
            **self.settings(),
            "table": table,
            "write_mode": write_mode,
            **keys,
        }

    def execute(self, sql: str, params: Any = None) -> None:
        self.connection.cursor().execute(sql, params)

    def executemany(self, sql: str, rows: list[Any]) -> None:
        self.connection.cursor().executemany(sql, rows)

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        cursor = self.connection.cursor()
        cursor.execute(sql, params)
        return list(cursor.fetchall())

    def scalar(self, sql: str, params: Any = None) -> Any:
        return self.query(sql, params)[0][0]

    def tables(self) -> list[str]:
        return sorted(name for (name,) in self.query("SHOW TABLES"))

    def column_types(self, table: str) -> dict[str, str]:
        rows = self.query(
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
            (table,),
        )
        return dict(rows)

    def state(self, recipe: str) -> dict[str, Any] | None:
        import json

        rows = self.query("SELECT state FROM _dataloader_state WHERE recipe = %s", (recipe,))
        return json.loads(rows[0][0]) if rows and rows[0][0] else None


@pytest.fixture
def my(mariadb_server: MariaDBServer, mariadb_database: str) -> Iterator[My]:
    helper = My(mariadb_server, mariadb_database)
    try:
        yield helper
    finally:
        helper.close()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def write_recipe(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """`write_recipe(dict)`: the recipe as `<name>.yaml` in tmp_path; its path."""

    def _write(recipe: dict[str, Any]) -> Path:
        path = tmp_path / f"{recipe['name']}.yaml"
        path.write_text(yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True), "utf-8")
        return path

    return _write


@pytest.fixture
def run(
    write_recipe: Callable[[dict[str, Any]], Path], state_dir: Path
) -> Callable[..., RunResult]:
    """`run(recipe_dict)`: write it as YAML, load it with `RecipeLoader` and run it in-process
    with the local state backend in tmp_path."""

    def _run(recipe: dict[str, Any], **kwargs: Any) -> RunResult:
        loaded = RecipeLoader().load(write_recipe(recipe))
        return run_recipe(loaded, LocalStateBackend(state_dir), **kwargs)

    return _run


@pytest.fixture
def rows_source() -> Iterator[str]:
    """An in-process source that yields batches exactly as configured (no ordering of its own)."""
    name = "dl_my_test_rows"
    register_connector(name)(type("MyTestRows", (RowsSource,), {}))
    try:
        yield name
    finally:
        unregister("connector", name)
