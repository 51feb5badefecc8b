"""A failure after a commit has happened must not make the retry load the same rows again.

Two ways the engine can miss a commit that did happen: the state backend's save fails after
the destination committed (a dropped connection to a `postgres` state backend), or the
destination's COMMIT went through but its acknowledgement was lost. Either way the retry must
learn from the destination's own state record what was committed, and the run's counts must
be what was committed — not what was read or written by attempts that were thrown away.

The faults are placed by wrapping the real methods (the first call fails after — or instead
of returning from — the real work), so they land at the same instant on every run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import psycopg2
import pytest
from e2e_support import write_recipe

from dataloader import LocalStateBackend, RunResult, from_yaml, run_recipe
from dataloader_duckdb.connector import DuckDBConnector
from dataloader_postgres.connector import PostgresConnector
from dataloader_postgres.testing import PostgresServer

ROWS = 1000


def dropped_connection() -> psycopg2.OperationalError:
    return psycopg2.OperationalError("server closed the connection unexpectedly")


class FlakyStateBackend(LocalStateBackend):
    """A state backend whose connection drops once, on the `fail_on`-th save."""

    def __init__(self, directory: Path, fail_on: int = 1) -> None:
        super().__init__(directory)
        self.saves = 0
        self.fail_on = fail_on

    def save(self, recipe_name: str, state: dict[str, Any]) -> None:
        self.saves += 1
        if self.saves == self.fail_on:
            raise dropped_connection()
        super().save(recipe_name, state)


def lose_commit_acknowledgement(
    monkeypatch: pytest.MonkeyPatch, connector: type, fail_on: int = 1
) -> list[int]:
    """The `fail_on`-th COMMIT of `connector` happens, then its caller sees a dropped link."""
    real = connector.commit
    calls: list[int] = []

    def commit(self: Any, state: Any) -> None:
        real(self, state)
        calls.append(1)
        if len(calls) == fail_on:
            raise dropped_connection()

    monkeypatch.setattr(connector, "commit", commit)
    return calls


@pytest.fixture
def source_table(postgres_server: PostgresServer, postgres_database: str) -> dict[str, Any]:
    connection = postgres_server.connect(postgres_database)
    with connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE items (id int PRIMARY KEY, seq int, name text)")
        cursor.execute(
            f"INSERT INTO items SELECT i, i / 100, 'item ' || i FROM generate_series(1, {ROWS}) i"
        )
    connection.close()
    return {**postgres_server.connection_settings(postgres_database), "table": "items"}


def recipe_file(
    tmp_path: Path, source: dict[str, Any], destination: dict[str, Any], **source_extra: Any
) -> Path:
    return write_recipe(
        tmp_path / "acks.yaml",
        {
            "name": "acks",
            "source": {"type": "postgres", **source, **source_extra},
            "destination": destination,
            "runtime": {"batch_size": 250, "retries": {"attempts": 3, "initial_backoff": 0}},
        },
    )


def duckdb_ids(database: Path) -> list[int]:
    with duckdb.connect(str(database)) as connection:
        return [row[0] for row in connection.execute("SELECT id FROM items ORDER BY id").fetchall()]


def retries(result: RunResult) -> int:
    return sum(stage.retries for stage in result.stages.values())


def assert_counts_are_committed(result: RunResult) -> None:
    assert result.status == "success"
    assert retries(result) == 1
    assert result.rows_read == ROWS
    assert result.rows_written == ROWS
    assert result.stages["read"].rows == ROWS
    assert result.stages["write"].rows == ROWS
    assert result.stages["transform"].rows == ROWS


def test_state_save_failing_after_the_commit_does_not_load_a_full_read_twice(
    tmp_path: Path, source_table: dict[str, Any]
) -> None:
    database = tmp_path / "out.duckdb"
    recipe = recipe_file(
        tmp_path, source_table, {"type": "duckdb", "database": str(database), "table": "items"}
    )
    backend = FlakyStateBackend(tmp_path / ".state")

    result = run_recipe(from_yaml(recipe), backend)

    assert duckdb_ids(database) == list(range(1, ROWS + 1))
    assert_counts_are_committed(result)
    assert result.commits == 1
    # the backend mirrors what the destination committed, and the run is in its history
    stored = backend.load("acks")
    assert stored["last_commit"]["final"] is True
    assert stored["checkpoints"][-1]["rows_written"] == ROWS


@pytest.mark.parametrize("cursor", [False, True], ids=["full_read", "cursor"])
def test_a_lost_duckdb_commit_acknowledgement_is_not_loaded_again(
    tmp_path: Path,
    source_table: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    cursor: bool,
) -> None:
    database = tmp_path / "out.duckdb"
    extra = {"incremental": {"cursor_column": "seq"}} if cursor else {}
    recipe = recipe_file(
        tmp_path,
        source_table,
        {"type": "duckdb", "database": str(database), "table": "items"},
        **extra,
    )
    # with a cursor the run commits every 250 rows: lose the second commit's acknowledgement
    calls = lose_commit_acknowledgement(monkeypatch, DuckDBConnector, fail_on=2 if cursor else 1)

    result = run_recipe(from_yaml(recipe), LocalStateBackend(tmp_path / ".state"))

    assert duckdb_ids(database) == list(range(1, ROWS + 1))
    assert_counts_are_committed(result)
    assert len(calls) == result.commits


def test_a_lost_postgres_commit_acknowledgement_is_not_loaded_again(
    tmp_path: Path,
    postgres_server: PostgresServer,
    postgres_database: str,
    source_table: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    destination = {
        "type": "postgres",
        **postgres_server.connection_settings(postgres_database),
        "table": "copied",
    }
    recipe = recipe_file(tmp_path, source_table, destination)
    lose_commit_acknowledgement(monkeypatch, PostgresConnector)

    result = run_recipe(from_yaml(recipe), LocalStateBackend(tmp_path / ".state"))

    connection = postgres_server.connect(postgres_database)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM copied ORDER BY id")
        ids = [row[0] for row in cursor.fetchall()]
    connection.close()
    assert ids == list(range(1, ROWS + 1))
    assert_counts_are_committed(result)


def test_a_retry_of_uncommitted_work_counts_each_row_once(
    tmp_path: Path, source_table: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure before any commit: the retry reads everything again, counted once."""
    database = tmp_path / "out.duckdb"
    recipe = recipe_file(
        tmp_path, source_table, {"type": "duckdb", "database": str(database), "table": "items"}
    )
    real: Callable[..., None] = DuckDBConnector.write_batch
    writes: list[int] = []

    def write_batch(self: Any, batch: Any, state: Any) -> None:
        writes.append(1)
        if len(writes) == 3:
            raise dropped_connection()
        real(self, batch, state)

    monkeypatch.setattr(DuckDBConnector, "write_batch", write_batch)

    result = run_recipe(from_yaml(recipe), LocalStateBackend(tmp_path / ".state"))

    assert duckdb_ids(database) == list(range(1, ROWS + 1))
    assert_counts_are_committed(result)
