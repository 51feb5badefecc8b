"""Incremental reads from MariaDB on a cursor column: ties at batch boundaries are neither lost
nor loaded twice, new rows at the last cursor value are picked up, NULL cursors are left to the
engine, text cursors compare by code point, and split (parallel) reads keep cursor order."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest

from dataloader_mysql import MySQLConnector

T0 = datetime(2024, 1, 1)
TIE_SIZES = [1, 3, 2, 5, 1, 4, 2, 1, 6, 3]  # rows per updated_at value, cycled


def tied_rows(first_id: int, first_minute: int, count: int) -> list[tuple[int, str, datetime]]:
    """`count` rows whose updated_at values repeat in groups of TIE_SIZES."""
    rows: list[tuple[int, str, datetime]] = []
    minute = first_minute
    for size in itertools.cycle(TIE_SIZES):
        for _ in range(size):
            if len(rows) == count:
                return rows
            rows.append(
                (
                    first_id + len(rows),
                    f"row {first_id + len(rows)}",
                    T0 + timedelta(minutes=minute),
                )
            )
        minute += 1
    raise AssertionError("unreachable")


def make_events(my: Any, rows: list[tuple[Any, ...]]) -> None:
    my.execute("CREATE TABLE events (id INT PRIMARY KEY, name TEXT, updated_at DATETIME(6))")
    my.executemany("INSERT INTO events VALUES (%s, %s, %s)", rows)


def recipe(
    my: Any, name: str, batch_size: int = 3, mode: str = "append", **source: Any
) -> dict[str, Any]:
    source.setdefault("table", "events")
    runtime = source.pop("runtime", {})
    keys = {"merge_keys": ["id"]} if mode == "merge" else {}
    incremental = {"cursor_column": "updated_at", **source.pop("incremental", {})}
    return {
        "name": name,
        "source": my.source(incremental=incremental, **source),
        "destination": my.destination("dst", mode, **keys),
        # A commit after every batch: every batch boundary becomes a commit boundary to check.
        "runtime": {
            "batch_size": batch_size,
            "commit_interval_seconds": 1e-9,
            **runtime,
        },
    }


def loaded_ids(my: Any) -> list[int]:
    return [row[0] for row in my.query("SELECT id FROM dst ORDER BY id")]


def test_ties_across_batch_boundaries_are_neither_lost_nor_duplicated(my: Any, run: Any) -> None:
    first = tied_rows(1, 0, 40)
    make_events(my, first)
    result = run(recipe(my, "ties"))
    assert result.commits > 5
    assert loaded_ids(my) == list(range(1, 41))
    last = first[-1][2]
    # New rows at the last committed cursor value, and after it.
    my.executemany(
        "INSERT INTO events VALUES (%s, %s, %s)",
        [(41, "tie", last), (42, "tie", last), (43, "later", last + timedelta(minutes=1))],
    )
    run(recipe(my, "ties"))
    assert loaded_ids(my) == list(range(1, 44))
    run(recipe(my, "ties"))  # nothing new: nothing loaded twice
    assert loaded_ids(my) == list(range(1, 44))
    state = my.state("ties")
    assert state is not None and "updated_at" in state["cursor_values"]


def test_rows_without_a_cursor_reach_the_engine(my: Any, run: Any) -> None:
    make_events(my, [(1, "a", T0), (2, "null cursor", None)])
    recipe_ = recipe(my, "nulls", mode="merge", incremental={"on_missing_cursor": "load"})
    run(recipe_)
    assert loaded_ids(my) == [1, 2]


def test_text_cursor_orders_by_code_point(my: Any, run: Any) -> None:
    my.execute("CREATE TABLE words (id INT PRIMARY KEY, w VARCHAR(10) COLLATE utf8mb4_general_ci)")
    my.executemany("INSERT INTO words VALUES (%s, %s)", [(1, "b"), (2, "B"), (3, "a")])
    recipe_ = recipe(my, "words", table="words", incremental={"cursor_column": "w"})
    run(recipe_)
    assert [r[0] for r in my.query("SELECT w FROM dst")] == ["B", "a", "b"]
    my.executemany("INSERT INTO words VALUES (%s, %s)", [(4, "c"), (5, "A")])
    run(recipe_)  # 'A' sorts before the stored cursor 'b': not new
    assert sorted(r[0] for r in my.query("SELECT w FROM dst")) == ["B", "a", "b", "c"]


def test_a_split_read_yields_the_rows_in_cursor_order(
    my: Any, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = tied_rows(1, 0, 60)
    make_events(my, rows)
    parts: list[str] = []
    original = MySQLConnector._read_part

    def recording(self: MySQLConnector, sql: str, plans: Any) -> Any:
        parts.append(sql)
        return original(self, sql, plans)

    monkeypatch.setattr(MySQLConnector, "_read_part", recording)
    recipe_ = recipe(my, "split", batch_size=7, partitions=4, runtime={"parallelism": 3})
    run(recipe_)
    assert len(parts) == 4
    assert my.query("SELECT id FROM dst") == [(i,) for i in range(1, 61)]  # loaded in order
    assert loaded_ids(my) == list(range(1, 61))


def test_a_query_source_with_where(my: Any, run: Any) -> None:
    make_events(my, tied_rows(1, 0, 10))
    recipe_ = recipe(
        my, "query", table=None, query="SELECT id, name, updated_at FROM events", where="id % 2 = 0"
    )
    del recipe_["source"]["table"]
    run(recipe_)
    assert loaded_ids(my) == [2, 4, 6, 8, 10]
