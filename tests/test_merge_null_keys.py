"""Merge and NULL keys: a row without a key can be neither matched nor de-duplicated, so a
merge that meets one fails with an error naming the key — in every destination — and keeps
what earlier runs loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from e2e_support import write_recipe

from dataloader import EngineError, LocalStateBackend, from_yaml, run_recipe
from dataloader_postgres.testing import PostgresServer


def source_database(path: Path, rows: list[tuple[Any, str]]) -> dict[str, Any]:
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE OR REPLACE TABLE src (id INTEGER, name VARCHAR)")
        connection.executemany("INSERT INTO src VALUES (?, ?)", rows)
    return {"type": "duckdb", "database": str(path), "table": "src"}


@pytest.fixture(params=["duckdb", "postgres"])
def destination(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "duckdb":
        return {"type": "duckdb", "database": str(tmp_path / "out.duckdb"), "table": "dest"}
    server: PostgresServer = request.getfixturevalue("postgres_server")
    database = request.getfixturevalue("postgres_database")
    return {"type": "postgres", **server.connection_settings(database), "table": "dest"}


def loaded(destination: dict[str, Any], request: pytest.FixtureRequest) -> list[tuple]:
    sql = "SELECT id, name FROM dest ORDER BY id, name"
    if destination["type"] == "duckdb":
        with duckdb.connect(destination["database"]) as connection:
            return connection.execute(sql).fetchall()
    server: PostgresServer = request.getfixturevalue("postgres_server")
    connection = server.connect(destination["database"])
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
    connection.close()
    return rows


def test_a_null_merge_key_fails_the_run_and_keeps_what_was_loaded(
    tmp_path: Path, destination: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    source = tmp_path / "src.duckdb"
    recipe = write_recipe(
        tmp_path / "merge.yaml",
        {
            "name": "merge_nulls",
            "source": source_database(source, [(1, "a"), (2, "b")]),
            "destination": {**destination, "write_mode": "merge", "merge_keys": ["id"]},
        },
    )
    backend = LocalStateBackend(tmp_path / ".state")
    run_recipe(from_yaml(recipe), backend)
    source_database(source, [(1, "a2"), (None, "x"), (None, "y"), (3, "c")])

    with pytest.raises(EngineError) as info:
        run_recipe(from_yaml(recipe), backend)

    error = info.value
    assert error.problem.key == "destination.merge_keys"
    assert error.problem.value == "id"
    assert "2 NULL value(s)" in str(error)
    assert "fill_null" in (error.problem.expected or "")
    assert loaded(destination, request) == [(1, "a"), (2, "b")]
