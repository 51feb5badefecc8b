"""Exactly-once on DuckDB: state commits with the data, overwrite swaps atomically, an aborted
transaction leaves nothing the next batch relies on, and stored cursor values keep their type
and precision."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dataloader import DataLoaderError, EngineError, RunResult, State
from dataloader_duckdb import DuckDBConnector

Run = Callable[..., RunResult]


class CommitFailed(Exception):
    pass


def recipe_for(
    source_db: Path,
    dest_db: Path,
    *,
    write_mode: str = "append",
    cursor: str | None = "id",
    batch_size: int = 2,
) -> dict[str, Any]:
    source: dict[str, Any] = {"type": "duckdb", "database": str(source_db), "table": "events"}
    if cursor is not None:
        source["incremental"] = {"cursor_column": cursor}
    destination: dict[str, Any] = {
        "type": "duckdb",
        "database": str(dest_db),
        "table": "events",
        "write_mode": write_mode,
    }
    if write_mode == "merge":
        destination["merge_keys"] = ["id"]
    return {
        "name": "events",
        "source": source,
        "destination": destination,
        "runtime": {"batch_size": batch_size},
    }


@pytest.fixture
def events(source_db: Path, sql: Any) -> Path:
    sql.execute(
        source_db,
        "CREATE TABLE events AS SELECT range::INTEGER AS id, 'old' AS v FROM range(1, 4)",
    )
    return source_db


def fail_on_save_state(monkeypatch: pytest.MonkeyPatch, error: Exception) -> list[State]:
    """Make `DuckDBConnector._save_state` raise after the data of a commit is written."""
    attempts: list[State] = []

    def failing(self: DuckDBConnector, state: State) -> None:
        attempts.append(state.copy_deep())
        raise error

    monkeypatch.setattr(DuckDBConnector, "_save_state", failing)
    return attempts


@pytest.mark.parametrize("write_mode", ["append", "merge"])
@pytest.mark.parametrize(
    "error", [CommitFailed("disk on fire"), duckdb.IOException("disk on fire")]
)
def test_failed_state_write_rolls_back_the_batch_data(
    run: Run,
    events: Path,
    dest_db: Path,
    sql: Any,
    backend_state: Callable[[str], State],
    monkeypatch: pytest.MonkeyPatch,
    write_mode: str,
    error: Exception,
) -> None:
    recipe = recipe_for(events, dest_db, write_mode=write_mode)
    run(recipe)
    before_rows = sql.query(dest_db, "SELECT * FROM events ORDER BY id")
    sql.execute(events, "INSERT INTO events VALUES (4, 'new'), (5, 'new'), (6, 'new')")
    sql.execute(events, "UPDATE events SET v = 'changed' WHERE id = 1")  # below the cursor
    attempts = fail_on_save_state(monkeypatch, error)

    with pytest.raises(DataLoaderError, match="disk on fire"):
        run(recipe)

    assert attempts, "the failing commit was reached"
    assert sql.query(dest_db, "SELECT * FROM events ORDER BY id") == before_rows
    assert sql.committed_state(dest_db, "events").cursor_values == {"id": 3}
    assert backend_state("events").cursor_values == {"id": 3}

    monkeypatch.undo()
    resumed = run(recipe)

    assert resumed.rows_written == 3
    assert sql.query(dest_db, "SELECT id, count(*) FROM events GROUP BY id ORDER BY id") == [
        (i, 1) for i in range(1, 7)
    ]
    assert sql.committed_state(dest_db, "events").cursor_values == {"id": 6}


def test_failure_after_some_committed_batches_resumes_without_duplicates(
    run: Run,
    source_db: Path,
    dest_db: Path,
    sql: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sql.execute(source_db, "CREATE TABLE events AS SELECT range AS id FROM range(1, 11)")
    recipe = recipe_for(source_db, dest_db, batch_size=3)
    original = DuckDBConnector._save_state
    calls = {"n": 0}

    def fail_third(self: DuckDBConnector, state: State) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise CommitFailed("killed")
        original(self, state)

    monkeypatch.setattr(DuckDBConnector, "_save_state", fail_third)
    with pytest.raises(EngineError, match="killed"):
        run(recipe)
    committed = sql.query(dest_db, "SELECT count(*) FROM events")[0][0]
    assert 0 < committed < 10
    assert sql.committed_state(dest_db, "events").cursor_values == {"id": committed}

    monkeypatch.undo()
    run(recipe)

    assert sql.query(dest_db, "SELECT id FROM events ORDER BY id") == [(i,) for i in range(1, 11)]


def test_destination_state_wins_over_a_stale_backend_state(
    run: Run, events: Path, dest_db: Path, sql: Any, state_dir: Path
) -> None:
    """The state committed with the data is authoritative (the backend copy may lag behind)."""
    from dataloader import LocalStateBackend

    recipe = recipe_for(events, dest_db)
    run(recipe)
    backend = LocalStateBackend(state_dir)
    stale = State.from_dict(backend.load("events"))
    stale.cursor_values = {"id": 1}
    backend.save("events", stale.to_dict())

    assert run(recipe).rows_written == 0
    assert sql.query(dest_db, "SELECT count(*) FROM events") == [(3,)]


def test_state_table_holds_one_row_per_recipe(
    run: Run, events: Path, dest_db: Path, sql: Any
) -> None:
    recipe = recipe_for(events, dest_db)
    run(recipe)
    other = recipe_for(events, dest_db) | {"name": "other"}
    other["destination"] = other["destination"] | {"table": "events_copy"}
    run(other)
    run(recipe)

    assert sql.query(
        dest_db, "SELECT recipe, count(*) FROM _dataloader_state GROUP BY recipe ORDER BY recipe"
    ) == [("events", 1), ("other", 1)]


def test_overwrite_failing_in_commit_leaves_the_old_table_visible(
    run: Run,
    events: Path,
    dest_db: Path,
    sql: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recipe = recipe_for(events, dest_db, write_mode="overwrite", cursor=None)
    run(recipe)
    old_rows = sql.query(dest_db, "SELECT * FROM events ORDER BY id")
    sql.execute(events, "DELETE FROM events", "INSERT INTO events VALUES (10, 'x'), (11, 'y')")
    seen_by_reader: list[Any] = []

    def read_then_fail(self: DuckDBConnector, state: State) -> None:
        # The swap happened in this transaction; another connection must not see it yet.
        reader = self.con.cursor()
        try:
            seen_by_reader.append(reader.execute("SELECT * FROM events ORDER BY id").fetchall())
        finally:
            reader.close()
        raise CommitFailed("crash before commit")

    monkeypatch.setattr(DuckDBConnector, "_save_state", read_then_fail)
    with pytest.raises(EngineError, match="crash before commit"):
        run(recipe)

    assert seen_by_reader == [old_rows]
    assert sql.query(dest_db, "SELECT * FROM events ORDER BY id") == old_rows

    monkeypatch.undo()
    run(recipe)

    assert sql.query(dest_db, "SELECT * FROM events ORDER BY id") == [(10, "x"), (11, "y")]
    assert not [name for name in sql.tables(dest_db) if "_dl_stage_" in name]


def test_staging_table_of_a_crashed_overwrite_is_dropped_by_the_next_run(
    run: Run, events: Path, dest_db: Path, sql: Any
) -> None:
    recipe = recipe_for(events, dest_db, write_mode="overwrite", cursor=None)
    run(recipe)
    label = '{"dataloader_stage": {"recipe": "events", "table": "events", "run_id": "x"}}'
    sql.execute(
        dest_db,
        "CREATE TABLE _dl_stage_events_20240101T000000_deadbeef AS SELECT 1 AS id",
        f"COMMENT ON TABLE _dl_stage_events_20240101T000000_deadbeef IS '{label}'",
    )
    sql.execute(dest_db, "CREATE TABLE _dl_stage_unrelated_1 AS SELECT 1 AS id")

    run(recipe)

    tables = sql.tables(dest_db)
    assert "main._dl_stage_events_20240101T000000_deadbeef" not in tables
    assert "main._dl_stage_unrelated_1" in tables  # another table's staging is left alone


CURSOR_CASES = [
    pytest.param(
        "TIMESTAMPTZ",
        "TIMESTAMPTZ '2024-03-10 01:59:59.999999+00' + INTERVAL (i) MICROSECOND",
        datetime(2024, 3, 10, 1, 59, 59, 999999, tzinfo=UTC) + timedelta(microseconds=3),
        id="timestamptz-microseconds",
    ),
    pytest.param(
        "TIMESTAMP",
        "TIMESTAMP '2024-03-10 01:59:59.999999' + INTERVAL (i) MICROSECOND",
        datetime(2024, 3, 10, 1, 59, 59, 999999) + timedelta(microseconds=3),
        id="naive-timestamp",
    ),
    pytest.param(
        "DECIMAL(38, 18)",
        "12345678901234567890.000000000000000000 + i * 0.000000000000000001",
        Decimal("12345678901234567890.000000000000000003"),
        id="decimal-many-digits",
    ),
    pytest.param(
        "DECIMAL(38, 0)",
        "18446744073709551616::DECIMAL(38, 0) + i",  # 2**64 + i: beyond int64 and float
        Decimal(2**64 + 3),
        id="bigint-beyond-int64",
    ),
    pytest.param(
        "UBIGINT",
        "9223372036854775808::UBIGINT + i",  # 2**63 + i
        2**63 + 3,
        id="ubigint-beyond-int63",
    ),
    pytest.param(
        "DATE",
        "DATE '2024-02-27' + i::INTEGER",
        date(2024, 3, 1),
        id="date",
    ),
]


@pytest.mark.parametrize(("column_type", "expression", "expected"), CURSOR_CASES)
def test_stored_cursor_keeps_type_and_precision(
    run: Run,
    source_db: Path,
    dest_db: Path,
    sql: Any,
    backend_state: Callable[[str], State],
    column_type: str,
    expression: str,
    expected: Any,
) -> None:
    sql.execute(
        source_db,
        f"CREATE TABLE events (id INTEGER, c {column_type})",
        f"INSERT INTO events SELECT i, {expression} FROM range(1, 4) t(i)",
    )
    recipe = recipe_for(source_db, dest_db, cursor="c", batch_size=2)

    run(recipe)

    for state in (backend_state("events"), sql.committed_state(dest_db, "events")):
        stored = state.cursor_values["c"]
        assert type(stored) is type(expected)
        assert stored == expected
        if isinstance(expected, datetime):
            assert stored.microsecond == expected.microsecond
            assert (stored.tzinfo is None) == (expected.tzinfo is None)
    # The next run starts exactly after the stored value: nothing is re-read …
    assert run(recipe).rows_written == 0
    # … and a row one step (µs, last decimal digit, 1, a day) later is read.
    sql.execute(source_db, f"INSERT INTO events SELECT i, {expression} FROM range(4, 5) t(i)")
    assert run(recipe).rows_written == 1
    assert sql.query(dest_db, "SELECT count(*), count(DISTINCT id) FROM events") == [(4, 4)]


@pytest.mark.parametrize("write_mode", ["append", "merge"])
def test_a_table_created_in_an_aborted_transaction_is_created_again(
    dest_db: Path, sql: Any, write_mode: str
) -> None:
    from dataloader import ArrowBatch, RunContext
    from dataloader_duckdb import DuckDBConfig

    connector = DuckDBConnector(DuckDBConfig(database=str(dest_db), table="fresh"))
    connector.open(
        RunContext(
            recipe_name="fresh",
            run_id="r",
            started_at=datetime.now(UTC),
            role="destination",
            write_mode=write_mode,
            merge_keys=("id",),
        )
    )
    try:
        connector.begin(State())
        connector.write_batch(ArrowBatch.from_pylist([{"id": 1, "v": "a"}]), State())
        connector.abort()  # rolls back the CREATE TABLE too
        connector.write_batch(ArrowBatch.from_pylist([{"id": 2, "v": "b"}]), State())
        connector.commit(State())
    finally:
        connector.close()

    assert sql.query(dest_db, "SELECT id, v FROM fresh") == [(2, "b")]
