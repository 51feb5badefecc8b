"""Rows that arrive after a run with a cursor value equal to the committed one: a DuckDB source
reads `cursor >= last` and drops the rows already loaded at `last` (their fingerprints are
committed with the data), so they are loaded once, in append and in merge."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dataloader import RunResult

Run = Callable[..., RunResult]
T = "TIMESTAMP '2024-01-01 00:00:00'"


def recipe(source_db: Path, dest_db: Path, mode: str, batch_size: int) -> dict[str, Any]:
    destination: dict[str, Any] = {
        "type": "duckdb",
        "database": str(dest_db),
        "table": "events",
        "write_mode": mode,
    }
    if mode == "merge":
        destination["merge_keys"] = ["id"]
    return {
        "name": "events",
        "source": {
            "type": "duckdb",
            "database": str(source_db),
            "table": "events",
            "incremental": {"cursor_column": "updated_at"},
        },
        "destination": destination,
        "runtime": {"batch_size": batch_size, "commit_interval_seconds": 1e-9},
    }


def rows(sql: Any, database: Path) -> list[tuple[Any, ...]]:
    return sql.query(database, "SELECT id, name, updated_at FROM events ORDER BY id, name")


@pytest.mark.parametrize("batch_size", [2, 1_000])
@pytest.mark.parametrize("mode", ["append", "merge"])
def test_rows_arriving_later_at_the_committed_cursor_value_are_loaded_once(
    run: Run, source_db: Path, dest_db: Path, sql: Any, mode: str, batch_size: int
) -> None:
    # ids 1..10 at minutes 0..4 (two per minute); the last minute holds ids 9 and 10.
    sql.execute(
        source_db,
        "CREATE TABLE events (id INTEGER, name VARCHAR, updated_at TIMESTAMP)",
        f"INSERT INTO events SELECT i, 'v1', {T} + to_minutes((i - 1) // 2) FROM range(1, 11) t(i)",
    )
    events = recipe(source_db, dest_db, mode, batch_size)
    assert run(events).rows_written == 10

    # A late transaction commits two rows stamped with the committed maximum (minute 4), and
    # one row at minute 5.
    sql.execute(
        source_db,
        f"INSERT INTO events VALUES (11, 'v1', {T} + INTERVAL 4 MINUTE), "
        f"(12, 'v1', {T} + INTERVAL 4 MINUTE), (13, 'v1', {T} + INTERVAL 5 MINUTE)",
    )
    second = run(events)

    assert second.rows_written == 3, "only the three new rows"
    assert rows(sql, dest_db) == rows(sql, source_db)
    third = run(events)
    assert third.rows_written == 0 and third.rows_read == 0
    assert rows(sql, dest_db) == rows(sql, source_db)


def test_an_update_that_keeps_the_cursor_value_is_merged(
    run: Run, source_db: Path, dest_db: Path, sql: Any
) -> None:
    sql.execute(
        source_db,
        "CREATE TABLE events (id INTEGER, name VARCHAR, updated_at TIMESTAMP)",
        f"INSERT INTO events VALUES (1, 'v1', {T}), (2, 'v1', {T})",
    )
    events = recipe(source_db, dest_db, "merge", 1_000)
    run(events)
    # A fingerprint of the whole row, not of the key: a changed row at the same value is new.
    sql.execute(source_db, "UPDATE events SET name = 'v2' WHERE id = 2")

    assert run(events).rows_written == 1
    assert rows(sql, dest_db) == rows(sql, source_db)


def test_identical_rows_at_the_boundary_are_counted_not_collapsed(
    run: Run, source_db: Path, dest_db: Path, sql: Any
) -> None:
    # Append keeps duplicates: two identical rows loaded, then a third identical one arrives.
    sql.execute(
        source_db,
        "CREATE TABLE events (id INTEGER, name VARCHAR, updated_at TIMESTAMP)",
        f"INSERT INTO events VALUES (1, 'same', {T}), (1, 'same', {T})",
    )
    events = recipe(source_db, dest_db, "append", 1_000)
    assert run(events).rows_written == 2
    sql.execute(source_db, f"INSERT INTO events VALUES (1, 'same', {T})")

    assert run(events).rows_written == 1
    assert rows(sql, dest_db) == rows(sql, source_db)
    assert run(events).rows_written == 0
