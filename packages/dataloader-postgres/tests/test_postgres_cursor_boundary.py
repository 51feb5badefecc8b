"""Rows committed after a run with a cursor value equal to the committed one (a late transaction,
a batch job stamping many rows with one timestamp) are loaded by the next run, once: a Postgres
source reads `cursor >= last` and the engine drops the rows it already loaded at `last`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dataloader import State

T0 = datetime(2024, 1, 1, tzinfo=UTC)
FIRST = 1_000  # rows of the first run, 100 per minute: the last minute holds ids 901..1000


def recipe(pg: Any, mode: str, parallelism: int) -> dict[str, Any]:
    destination = pg.destination("dst", mode)
    if mode == "merge":
        destination["merge_keys"] = ["id"]
    return {
        "name": "boundary",
        "source": pg.source(table="events", incremental={"cursor_column": "updated_at"}),
        "destination": destination,
        "runtime": {"batch_size": 250, "parallelism": parallelism},
    }


def table_rows(pg: Any, table: str) -> list[tuple[Any, ...]]:
    return pg.query(f"SELECT id, name, updated_at FROM {table} ORDER BY id")


@pytest.mark.parametrize("parallelism", [1, 2])
def test_inserts_and_updates_stamped_at_the_previous_maximum_are_merged_once(
    pg: Any, run: Any, parallelism: int
) -> None:
    pg.execute("CREATE TABLE events (id int PRIMARY KEY, name text, updated_at timestamptz)")
    pg.executemany(
        "INSERT INTO events VALUES (%s, %s, %s)",
        [(i, "v1", T0 + timedelta(minutes=(i - 1) // 100)) for i in range(1, FIRST + 1)],
    )
    spec = recipe(pg, "merge", parallelism)
    assert run(spec).rows_written == FIRST
    last = pg.scalar("SELECT max(updated_at) FROM events")

    # 300 inserts and 300 updates stamped exactly at the previous maximum; 100 of the updated
    # rows were already at that maximum (ids 901..1000), 200 were older (ids 501..700).
    pg.executemany(
        "INSERT INTO events VALUES (%s, %s, %s)",
        [(i, "new", last) for i in range(FIRST + 1, FIRST + 301)],
    )
    pg.execute(
        "UPDATE events SET name = 'v2', updated_at = %s "
        "WHERE id BETWEEN 501 AND 700 OR id BETWEEN 901 AND 1000",
        (last,),
    )
    assert pg.scalar("SELECT count(*) FROM events WHERE name = 'v2'") == 300

    second = run(spec)

    assert second.rows_written == 600, "all 600 rows, none of the unchanged ones again"
    assert table_rows(pg, "dst") == table_rows(pg, "events")
    third = run(spec)
    assert third.rows_written == 0
    assert table_rows(pg, "dst") == table_rows(pg, "events")


def test_append_loads_late_rows_at_the_boundary_once(pg: Any, run: Any) -> None:
    pg.execute("CREATE TABLE events (id int, name text, updated_at timestamptz)")
    pg.executemany("INSERT INTO events VALUES (%s, %s, %s)", [(i, "v1", T0) for i in range(1, 101)])
    spec = recipe(pg, "append", 1)
    assert run(spec).rows_written == 100
    pg.executemany(
        "INSERT INTO events VALUES (%s, %s, %s)", [(i, "v1", T0) for i in range(101, 131)]
    )

    assert run(spec).rows_written == 30
    assert table_rows(pg, "dst") == table_rows(pg, "events")
    committed = State.from_dict(
        pg.scalar("SELECT state FROM _dataloader_state WHERE recipe = 'boundary'")
    )
    boundary = committed.cursor_boundaries["updated_at"]
    assert boundary["rows"] == 130 and len(boundary["fingerprints"]) == 130 * 8
