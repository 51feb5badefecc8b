"""A Postgres source's plan: ranges of a key (the cursor when incremental) or of a table's
pages (`ctid`). The partitions read apart hold exactly the rows of the read, each once, in the
plan's snapshot while the planning source is open, and the incremental window in each."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from dataloader import ConnectorError, Partition, RunContext, State
from dataloader.recipe.models import IncrementalConfig
from dataloader_postgres.config import PostgresConfig
from dataloader_postgres.connector import PostgresConnector

Open = Callable[..., PostgresConnector]


@pytest.fixture
def source(pg: Any) -> Iterator[Open]:
    opened: list[PostgresConnector] = []

    def _open(incremental: IncrementalConfig | None = None, **keys: Any) -> PostgresConnector:
        config = PostgresConfig.model_validate({**pg.settings(), "codec": "csv", **keys})
        connector = PostgresConnector(config)
        connector.open(
            RunContext(
                recipe_name="plan",
                run_id="r",
                started_at=datetime.now(UTC),
                batch_size=500,
                incremental=incremental,
            )
        )
        opened.append(connector)
        return connector

    yield _open
    for connector in opened:
        connector.close()


def rows(batches: Any) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    for batch in batches:
        found += [tuple(row.values()) for row in batch.to_arrow().to_pylist()]
    return found


def read_all(connector: PostgresConnector, plan: list[Partition], state: State) -> list[Any]:
    found = [row for part in plan for row in rows(connector.read_partition(part, state))]
    assert len(found) == len(set(found)), "a row was read twice"
    return found


def table_rows(pg: Any, table: str) -> list[tuple[Any, ...]]:
    return sorted(pg.query(f"SELECT * FROM {table}"), key=repr)


def test_key_ranges_hold_each_row_once_in_the_plans_snapshot(pg: Any, source: Open) -> None:
    pg.execute("CREATE TABLE items (id bigint, note text)")
    pg.execute("INSERT INTO items SELECT i, 'n' || i FROM generate_series(1, 1000) AS i")
    pg.execute("INSERT INTO items VALUES (NULL, 'no id')")
    pg.execute("ANALYZE items")
    planner = source(table="items", partition_column="id")
    plan = planner.plan_partitions(State(), 4)
    assert plan is not None
    assert [p.label for p in plan] == [
        "id < 250 or null",
        "id in [250, 500)",
        "id in [500, 750)",
        "id >= 750",
    ]
    assert [p.index for p in plan] == [0, 1, 2, 3]
    estimated = [p.estimated_rows for p in plan]
    assert all(e is not None and 150 <= e <= 350 for e in estimated), estimated
    assert all(p.estimated_bytes for p in plan)
    before = table_rows(pg, "items")

    # Written after the plan, while its source is open: new rows at both open ends, a row
    # moved across a range edge, a row removed. The plan's partitions do not see them.
    pg.execute("INSERT INTO items VALUES (-5, 'low'), (5000, 'high'), (NULL, 'null again')")
    pg.execute("UPDATE items SET id = 900 WHERE id = 10")
    pg.execute("DELETE FROM items WHERE id = 600")
    reader = source(table="items", partition_column="id")  # a worker: another connector
    assert sorted(read_all(reader, plan, State()), key=repr) == before

    # A new plan sees them, each once: the first and last ranges are open.
    again = source(table="items", partition_column="id").plan_partitions(State(), 3)
    assert again is not None
    assert sorted(read_all(reader, again, State()), key=repr) == table_rows(pg, "items")


def test_page_ranges_split_a_table_without_a_key(pg: Any, source: Open) -> None:
    pg.execute("CREATE TABLE events (kind text, payload text)")
    pg.execute(
        "INSERT INTO events SELECT 'k' || (i % 7), repeat('x', 40) || i "
        "FROM generate_series(1, 20000) AS i"
    )
    pg.execute("ANALYZE events")
    pages = pg.scalar("SELECT pg_relation_size('events') / current_setting('block_size')::int")
    planner = source(table="events")
    plan = planner.plan_partitions(State(), 4)
    assert plan is not None and len(plan) == 4
    edges = [pages * i // 4 for i in range(5)]
    assert [p.label for p in plan] == [
        f"pages [{edges[0]}, {edges[1]})",
        f"pages [{edges[1]}, {edges[2]})",
        f"pages [{edges[2]}, {edges[3]})",
        f"pages [{edges[3]}, …)",
    ]
    assert sum(p.estimated_rows or 0 for p in plan) == pytest.approx(20000, rel=0.02)
    assert sum(p.estimated_bytes or 0 for p in plan) == pages * 8192
    assert "ctid" in plan[1].spec["where"]
    before = table_rows(pg, "events")

    pg.execute("DELETE FROM events WHERE payload LIKE '%5'")  # free space in early pages
    pg.execute("VACUUM events")
    pg.execute("INSERT INTO events SELECT 'late', 'y' || i FROM generate_series(1, 3000) AS i")
    reader = source(table="events")
    assert sorted(read_all(reader, plan, State()), key=repr) == before

    planner.close()  # the snapshot is gone with the planning connection
    with pytest.raises(ConnectorError, match="snapshot"):
        read_all(reader, plan, State())
    again = source(table="events").plan_partitions(State(), 3)
    assert again is not None
    assert sorted(read_all(reader, again, State()), key=repr) == table_rows(pg, "events")


def test_an_unanalyzed_table_still_splits_by_its_size(pg: Any, source: Open) -> None:
    pg.execute("CREATE TABLE fresh (id int, note text)")
    pg.execute("INSERT INTO fresh SELECT i, repeat('z', 60) FROM generate_series(1, 5000) AS i")
    plan = source(table="fresh").plan_partitions(State(), 2)
    assert plan is not None and len(plan) == 2
    read = read_all(source(table="fresh"), plan, State())
    assert sorted(read, key=repr) == table_rows(pg, "fresh")


def test_the_incremental_window_applies_in_every_range(pg: Any, source: Open) -> None:
    pg.execute("CREATE TABLE changes (id int, updated int)")
    pg.execute("INSERT INTO changes SELECT i, i % 400 FROM generate_series(1, 2000) AS i")
    incremental = IncrementalConfig(cursor_column="updated")
    state = State(cursor_values={"updated": 150})
    expected = rows(source(table="changes", incremental=incremental).read_batches(state))
    assert expected and all(updated >= 150 for _, updated in expected)
    assert len(expected) < 2000

    planner = source(table="changes", incremental=incremental)
    plan = planner.plan_partitions(state, 4)
    assert plan is not None and len(plan) == 4
    assert plan[0].label.startswith("updated < ")  # split on the cursor: ranges in its order
    reader = source(table="changes", incremental=incremental)
    read = [rows(reader.read_partition(part, state)) for part in plan]
    assert sorted(row for part in read for row in part) == sorted(expected)
    in_order = [updated for part in read for _, updated in part]
    assert in_order == sorted(in_order)  # each range ordered by the cursor, ranges in order


def test_what_cannot_split(pg: Any, source: Open) -> None:
    pg.execute("CREATE TABLE base (id int, name text)")
    pg.execute("INSERT INTO base SELECT i, 'n' || i FROM generate_series(1, 100) AS i")
    pg.execute("CREATE VIEW base_view AS SELECT * FROM base")
    query = "SELECT * FROM base WHERE id > 10"
    assert source(query=query).plan_partitions(State(), 4) is None
    assert source(table="base_view").plan_partitions(State(), 4) is None
    assert source(table="base", partition_column="name").plan_partitions(State(), 4) is None

    planner = source(query=query, partition_column="id")  # a query splits on a column
    plan = planner.plan_partitions(State(), 3)
    assert plan is not None and len(plan) == 3
    assert sorted(read_all(planner, plan, State())) == sorted(pg.query(query))

    nothing = source(table="base", where="id < 0", partition_column="id")
    empty = nothing.plan_partitions(State(), 4)  # no key values to cut: one range
    assert empty is not None and [(p.label, p.spec["where"]) for p in empty] == [("all rows", "")]
    assert rows(nothing.read_partition(empty[0], State())) == []
