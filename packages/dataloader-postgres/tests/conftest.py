"""Fixtures of the Postgres connector tests: a database per test, recipes written as YAML and
run in-process with a local state backend in tmp_path, and SQL helpers.

The server itself (`postgres_server`, `postgres_database`) comes from `dataloader_postgres.testing`,
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
from dataloader_postgres.testing import PostgresServer


class Pg:
    """One test database: recipe keys for it, and SQL run on its own autocommit connection."""

    def __init__(self, server: PostgresServer, database: str) -> None:
        self.server = server
        self.database = database
        self._connection: Any = None

    @property
    def connection(self) -> Any:
        if self._connection is None or self._connection.closed:
            self._connection = self.server.connect(self.database)
            self._connection.autocommit = True
            self._connection.cursor().execute("SET TimeZone = 'UTC'")
        return self._connection

    def close(self) -> None:
        if self._connection is not None and not self._connection.closed:
            self._connection.close()

    def settings(self) -> dict[str, Any]:
        """host, port, database, user, password: the connection keys of a recipe section."""
        return self.server.connection_settings(self.database)

    def source(self, **keys: Any) -> dict[str, Any]:
        return {"type": "postgres", **self.settings(), **keys}

    def destination(self, table: str, write_mode: str = "append", **keys: Any) -> dict[str, Any]:
        return {
            "type": "postgres",
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
        return cursor.fetchall()

    def scalar(self, sql: str, params: Any = None) -> Any:
        return self.query(sql, params)[0][0]

    def exists(self, table_sql: str) -> bool:
        return self.scalar("SELECT to_regclass(%s) IS NOT NULL", (table_sql,))

    def tables(self, schema: str = "public") -> list[str]:
        rows = self.query("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))
        return sorted(name for (name,) in rows)

    def column_types(self, table_sql: str) -> dict[str, str]:
        rows = self.query(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (table_sql,),
        )
        return dict(rows)


@pytest.fixture
def pg(postgres_server: PostgresServer, postgres_database: str) -> Iterator[Pg]:
    helper = Pg(postgres_server, postgres_database)
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
    name = "dl_pg_test_rows"
    register_connector(name)(type("PgTestRows", (RowsSource,), {}))
    try:
        yield name
    finally:
        unregister("connector", name)
