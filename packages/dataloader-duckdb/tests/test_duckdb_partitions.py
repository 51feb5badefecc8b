"""A DuckDB source's plan: ranges of `rowid` for a table, of the cursor for an incremental
read (the window in every range). The partitions read apart hold exactly the read's rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dataloader import Partition, RunContext, State
from dataloader.recipe.models import IncrementalConfig
from dataloader_duckdb.config import DuckDBConfig
from dataloader_duckdb.connector import DuckDBConnector

Open = Callable[..., DuckDBConnector]


@pytest.fixture
def source(source_db: Path) -> Iterator[Open]:
    opened: list[DuckDBConnector] = []

    def _open(incremental: IncrementalConfig | None = None, **keys: Any) -> DuckDBConnector:
        connector = DuckDBConnector(DuckDBConfig(database=str(source_db), **keys))
        connector.open(
            RunContext(
                recipe_name="plan",
                run_id="r",
                started_at=datetime.now(UTC),
                batch_size=300,
                incremental=incremental,
            )
        )
        opened.append(connector)
        return connector

    yield _open
    for connector in opened:
        connector.close()


def execute(database: Path, *statements: str) -> None:
    with duckdb.connect(str(database)) as con:
        for statement in statements:
            con.execute(statement)


def rows(batches: Any) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    for batch in batches:
        found += [tuple(row.values()) for row in batch.to_arrow().to_pylist()]
    return found


def read_all(connector: DuckDBConnector, plan: list[Partition], state: State) -> list[Any]:
    found = [row for part in plan for row in rows(connector.read_partition(part, state))]
    assert len(found) == len(set(found)), "a row was read twice"
    return found


def test_rowid_ranges_hold_each_row_of_a_table_once(source_db: Path, source: Open) -> None:
    execute(
        source_db,
        "CREATE TABLE items AS SELECT i AS id, 'n' || i AS note FROM range(10000) t(i)",
        "DELETE FROM items WHERE id % 10 = 3",
    )
    planner = source(table="items")
    plan = planner.plan_partitions(State(), 4)
    assert plan is not None
    assert [p.label for p in plan] == [
        "rowid in [0, 2500)",
        "rowid in [2500, 5000)",
        "rowid in [5000, 7500)",
        "rowid >= 7500",
    ]
    assert sum(p.estimated_rows or 0 for p in plan) == 9000
    expected = rows(source(table="items").read_batches(State()))
    reader = source(table="items")
    assert sorted(read_all(reader, plan, State())) == sorted(expected)

    # Rows appended after the plan fall into its last, open, range.
    execute(source_db, "INSERT INTO items SELECT i, 'late' FROM range(20000, 20100) t(i)")
    later = read_all(reader, plan, State())
    assert sorted(later) == sorted(rows(source(table="items").read_batches(State())))
    assert len(later) == 9100

    whole = source(table="items").plan_partitions(State(), 1)
    assert whole is not None and [(p.label, p.spec["where"]) for p in whole] == [("all rows", "")]


def test_the_incremental_window_applies_in_every_cursor_range(
    source_db: Path, source: Open
) -> None:
    execute(
        source_db,
        "CREATE TABLE changes AS SELECT i AS id, "
        "TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_minutes(i % 500) AS updated "
        "FROM range(3000) t(i)",
    )
    incremental = IncrementalConfig(cursor_column="updated")
    state = State(cursor_values={"updated": datetime(2024, 1, 1, 3, 0, tzinfo=UTC)})
    expected = rows(source(table="changes", incremental=incremental).read_batches(state))
    assert 0 < len(expected) < 3000

    plan = source(table="changes", incremental=incremental).plan_partitions(state, 3)
    assert plan is not None and len(plan) == 3
    assert plan[0].label.startswith("updated < 2024-01-01 ")
    reader = source(table="changes", incremental=incremental)
    parts = [rows(reader.read_partition(part, state)) for part in plan]
    assert sorted(row for part in parts for row in part) == sorted(expected)
    cursor = [updated for part in parts for _, updated in part]
    assert cursor == sorted(cursor)  # ranges in cursor order, each ordered by it


def test_what_cannot_split(source_db: Path, source: Open) -> None:
    execute(source_db, "CREATE TABLE base AS SELECT i AS id, 'k' || i AS k FROM range(50) t(i)")
    assert source(query="SELECT * FROM base").plan_partitions(State(), 4) is None
    text_cursor = IncrementalConfig(cursor_column="k")
    assert source(table="base", incremental=text_cursor).plan_partitions(State(), 4) is None
    by_id = IncrementalConfig(cursor_column="id")
    query = source(query="SELECT * FROM base WHERE id < 40", incremental=by_id)
    plan = query.plan_partitions(State(), 4)  # an incremental query splits on its cursor
    assert plan is not None and len(plan) == 4
    assert sorted(read_all(query, plan, State())) == [(i, f"k{i}") for i in range(40)]
