"""Several recipes loading into one DuckDB file at once (`dataloader run a.yaml b.yaml -j 2`):
one run's cleanup never drops another run's live staging table, and the DDL they share (the
state table, a schema) is safe when two runs create it at the same moment.

The interleavings are made by hand: connectors driven step by step, and raw connections that
hold a transaction open, so each conflict is certain rather than likely."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dataloader import ArrowBatch, ConnectorError, RunContext, RunResult, State
from dataloader_duckdb import DuckDBConfig, DuckDBConnector

Run = Callable[..., RunResult]
STATE_DDL = "CREATE TABLE _dataloader_state (recipe VARCHAR, state VARCHAR, updated_at TIMESTAMPTZ)"


@pytest.fixture
def destinations(dest_db: Path) -> Iterator[Callable[..., DuckDBConnector]]:
    """`destination(recipe, table, write_mode=…)`: an opened DuckDB destination connector, as
    one run of recipe `recipe` would drive it; closed at the end of the test."""
    opened: list[DuckDBConnector] = []

    def destination(
        recipe: str, table: str, *, write_mode: str = "overwrite", run_id: str | None = None
    ) -> DuckDBConnector:
        connector = DuckDBConnector(DuckDBConfig(database=str(dest_db), table=table))
        connector.open(
            RunContext(
                recipe_name=recipe,
                run_id=run_id or f"20240101T000000-{len(opened):08x}",
                started_at=datetime.now(UTC),
                role="destination",
                write_mode=write_mode,
            )
        )
        opened.append(connector)
        return connector

    yield destination
    for connector in opened:
        connector.close()


def overwrite_recipe(rows_source: str, dest_db: Path, name: str, table: str) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"type": rows_source, "batches": [[{"id": 10}, {"id": 11}]]},
        "destination": {
            "type": "duckdb",
            "database": str(dest_db),
            "table": table,
            "write_mode": "overwrite",
        },
    }


def staging_tables(sql: Any, database: Path) -> list[str]:
    return [name for name in sql.tables(database) if "_dl_stage_" in name]


@pytest.mark.parametrize(
    ("live_recipe", "live_table"),
    [
        pytest.param("orders_eu", "orders_eu", id="another-table-whose-name-extends-this-one"),
        pytest.param("orders_backfill", "orders", id="another-recipe-into-the-same-table"),
    ],
)
def test_cleanup_leaves_the_live_staging_table_of_another_recipe_alone(
    run: Run,
    rows_source: str,
    dest_db: Path,
    sql: Any,
    destinations: Callable[..., DuckDBConnector],
    live_recipe: str,
    live_table: str,
) -> None:
    live = destinations(live_recipe, live_table)
    live.begin(State())
    live.write_batch(ArrowBatch.from_pylist([{"id": 1}, {"id": 2}]), State())
    assert staging_tables(sql, dest_db), "the live run's staging table exists"

    # Another recipe's whole run, cleanup included, happens while that stage is live.
    run(overwrite_recipe(rows_source, dest_db, "orders", "orders"))

    live.commit(State())
    assert sql.query(dest_db, f"SELECT id FROM {live_table} ORDER BY id") == [(1,), (2,)]
    assert staging_tables(sql, dest_db) == []


def test_the_staging_table_of_a_crashed_run_of_this_recipe_is_dropped(
    run: Run,
    rows_source: str,
    dest_db: Path,
    sql: Any,
    destinations: Callable[..., DuckDBConnector],
) -> None:
    crashed = destinations("orders", "orders")
    crashed.begin(State())
    crashed.write_batch(ArrowBatch.from_pylist([{"id": 1}]), State())
    crashed.close()  # the process died before commit: its staging table stays behind
    [orphan] = staging_tables(sql, dest_db)
    other = destinations("orders_eu", "orders_eu")
    other.begin(State())
    other.write_batch(ArrowBatch.from_pylist([{"id": 2}]), State())
    other.close()  # another recipe's crashed stage: that recipe's next run cleans it up

    run(overwrite_recipe(rows_source, dest_db, "orders", "orders"))

    assert orphan not in sql.tables(dest_db)
    assert [name for name in staging_tables(sql, dest_db) if "orders_eu" in name]
    assert sql.query(dest_db, "SELECT id FROM orders ORDER BY id") == [(10,), (11,)]


def test_two_first_runs_into_a_fresh_file_commit_side_by_side(
    dest_db: Path, sql: Any, destinations: Callable[..., DuckDBConnector]
) -> None:
    """Both runs' transactions are open when the first commits: before the fix, the second's
    commit created `_dataloader_state` too and failed with a write-write conflict."""
    first = destinations("a", "t_a", write_mode="append")
    second = destinations("b", "t_b", write_mode="append")
    first.begin(State())
    second.begin(State())
    first.write_batch(ArrowBatch.from_pylist([{"id": 1}]), State())
    second.write_batch(ArrowBatch.from_pylist([{"id": 2}]), State())

    first.commit(State())
    second.commit(State())

    assert sql.query(dest_db, "SELECT id FROM t_a") == [(1,)]
    assert sql.query(dest_db, "SELECT id FROM t_b") == [(2,)]
    assert sql.committed_state(dest_db, "a") is not None
    assert sql.committed_state(dest_db, "b") is not None


def test_state_table_created_by_another_run_at_the_same_moment_is_a_transient_conflict(
    dest_db: Path, sql: Any, destinations: Callable[..., DuckDBConnector]
) -> None:
    other_run = duckdb.connect(str(dest_db))
    try:
        other_run.execute("BEGIN TRANSACTION")
        other_run.execute(STATE_DDL)
        connector = destinations("a", "t_a", write_mode="append")

        with pytest.raises(ConnectorError) as info:
            connector.begin(State())
        assert connector.is_transient(info.value.__cause__)

        other_run.execute("COMMIT")
        connector.begin(State())  # what the engine's retry does: now the table exists
        connector.write_batch(ArrowBatch.from_pylist([{"id": 1}]), State())
        connector.commit(State())
    finally:
        other_run.close()
    assert sql.committed_state(dest_db, "a") is not None


def test_a_run_meeting_a_concurrent_state_table_create_is_retried(
    run: Run, rows_source: str, dest_db: Path, sql: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_run = duckdb.connect(str(dest_db))
    other_run.execute("BEGIN TRANSACTION")
    other_run.execute(STATE_DDL)
    opened = DuckDBConnector.open
    opens: list[Any] = []

    def open_after_the_other_commits(self: DuckDBConnector, context: Any) -> None:
        if context.role == "destination":
            opens.append(context)
            if len(opens) == 2:
                other_run.execute("COMMIT")  # the gate: the other run commits before the retry
        opened(self, context)

    monkeypatch.setattr(DuckDBConnector, "open", open_after_the_other_commits)
    recipe = overwrite_recipe(rows_source, dest_db, "orders", "orders")
    recipe["runtime"] = {"retries": {"attempts": 1, "initial_backoff": 0, "jitter": 0}}
    try:
        result = run(recipe)
    finally:
        other_run.close()

    assert len(opens) == 2
    assert sum(stage.retries for stage in result.stages.values()) == 1
    assert sql.query(dest_db, "SELECT id FROM orders ORDER BY id") == [(10,), (11,)]


def test_overwrite_drops_the_stage_label_and_keeps_the_tables_own_comment(
    run: Run, rows_source: str, dest_db: Path, sql: Any
) -> None:
    recipe = overwrite_recipe(rows_source, dest_db, "orders", "orders")
    comment = "SELECT comment FROM duckdb_tables() WHERE table_name = 'orders'"
    run(recipe)
    assert sql.query(dest_db, comment) == [(None,)]

    sql.execute(dest_db, "COMMENT ON TABLE orders IS 'one row per order, isn''t it'")
    run(recipe)

    assert sql.query(dest_db, comment) == [("one row per order, isn't it",)]
