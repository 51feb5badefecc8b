"""Incremental reads from Postgres on a cursor column: ties at batch boundaries, resuming after a
failed commit, `initial_value`/`end_value` windows, and `where:`/`query:` combined with the
cursor (including `%` in LIKE patterns and identifiers)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dataloader import State
from dataloader_postgres import PostgresConnector

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TIE_SIZES = [1, 3, 2, 5, 1, 4, 2, 1, 6, 3]  # rows per updated_at value, cycled


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def tied_rows(first_id: int, first_minute: int, count: int) -> list[tuple[int, str, datetime]]:
    """`count` rows whose updated_at values repeat in groups of TIE_SIZES."""
    rows: list[tuple[int, str, datetime]] = []
    minute = first_minute
    for size in itertools.cycle(TIE_SIZES):
        for _ in range(size):
            if len(rows) == count:
                return rows
            rows.append((first_id + len(rows), f"row {first_id + len(rows)}", at(minute)))
        minute += 1
    raise AssertionError("unreachable")


def make_events(pg: Any, rows: list[tuple[Any, ...]], table: str = "events") -> None:
    pg.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text, updated_at timestamptz)")
    insert_rows(pg, rows, table)


def insert_rows(pg: Any, rows: list[tuple[Any, ...]], table: str = "events") -> None:
    escaped = table.replace("%", "%%")  # the statement goes through psycopg2's `%` formatting
    pg.executemany(f"INSERT INTO {escaped} VALUES (%s, %s, %s)", rows)


def recipe(pg: Any, name: str, dst: str, batch_size: int = 3, **source: Any) -> dict[str, Any]:
    source.setdefault("table", "events")
    incremental = {"cursor_column": "updated_at", **source.pop("incremental", {})}
    return {
        "name": name,
        "source": pg.source(incremental=incremental, **source),
        "destination": pg.destination(dst, "append"),
        # A commit after every batch (however few rows it has, as batches end before a tie):
        # every batch boundary becomes a commit boundary to check.
        "runtime": {"batch_size": batch_size, "commit_interval_seconds": 1e-9},
    }


def loaded_ids(pg: Any, table: str) -> list[int]:
    return [row[0] for row in pg.query(f"SELECT id FROM {table} ORDER BY id")]


def committed_cursor(pg: Any, name: str) -> Any:
    rows = pg.query("SELECT state FROM _dataloader_state WHERE recipe = %s", (name,))
    return State.from_dict(rows[0][0]).cursor_values.get("updated_at") if rows else None


def test_ties_across_batch_boundaries_are_neither_lost_nor_duplicated(
    pg: Any, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tied_rows(1, 0, 40)
    make_events(pg, first)
    commits: list[tuple[Any, int]] = []
    original = PostgresConnector._save_state

    def recording(self: PostgresConnector, state: State) -> None:
        # Inside the commit's transaction: the rows written so far, as this commit publishes them.
        count = self._execute("SELECT count(*) FROM dst").fetchall()[0][0]
        commits.append((state.cursor_values["updated_at"], count))
        original(self, state)

    monkeypatch.setattr(PostgresConnector, "_save_state", recording)
    result = run(recipe(pg, "ties", "dst"))
    assert result.rows_written == 40
    assert loaded_ids(pg, "dst") == list(range(1, 41))
    assert len(commits) > 10, "many small batches"
    for cursor, count in commits:
        # A commit at cursor c holds every row with updated_at <= c and nothing newer.
        assert count == sum(1 for row in first if row[2] <= cursor), (cursor, count)

    later = tied_rows(41, 100, 25)
    insert_rows(pg, later)
    assert run(recipe(pg, "ties", "dst")).rows_written == 25
    assert loaded_ids(pg, "dst") == list(range(1, 66))
    assert committed_cursor(pg, "ties") == later[-1][2]


@pytest.mark.parametrize("fail_after", [1, 4, 9])
def test_resume_after_a_failed_commit_with_ties(
    pg: Any, run: Any, monkeypatch: pytest.MonkeyPatch, fail_after: int
) -> None:
    rows = tied_rows(1, 0, 40)
    make_events(pg, rows)
    calls = 0
    original = PostgresConnector._save_state

    def failing(self: PostgresConnector, state: State) -> None:
        nonlocal calls
        calls += 1
        if calls > fail_after:
            raise RuntimeError("connection lost")
        original(self, state)

    monkeypatch.setattr(PostgresConnector, "_save_state", failing)
    with pytest.raises(Exception, match="connection lost"):
        run(recipe(pg, "resume", "dst"))
    partial = loaded_ids(pg, "dst")
    cursor = committed_cursor(pg, "resume")
    assert partial == [row[0] for row in rows if row[2] <= cursor]
    assert 0 < len(partial) < 40

    monkeypatch.undo()
    run(recipe(pg, "resume", "dst"))
    assert loaded_ids(pg, "dst") == list(range(1, 41))


def test_initial_and_end_value_bound_the_window(pg: Any, run: Any) -> None:
    make_events(pg, [(i, f"row {i}", at(i)) for i in range(1, 21)])
    window = {"initial_value": at(5).isoformat(), "end_value": at(12)}
    first = run(recipe(pg, "window", "dst", incremental=window))
    assert loaded_ids(pg, "dst") == list(range(6, 13)), "initial exclusive, end inclusive"
    assert first.rows_written == 7
    assert committed_cursor(pg, "window") == at(12)
    insert_rows(pg, [(21, "late", at(8)), (22, "after end", at(30))])
    assert run(recipe(pg, "window", "dst", incremental=window)).rows_written == 0
    assert loaded_ids(pg, "dst") == list(range(6, 13))


def test_integer_cursor_window(pg: Any, run: Any) -> None:
    make_events(pg, [(i, f"row {i}", at(i)) for i in range(1, 11)])
    run(
        recipe(
            pg,
            "int_window",
            "dst",
            incremental={"cursor_column": "id", "initial_value": 3, "end_value": 7},
        )
    )
    assert loaded_ids(pg, "dst") == [4, 5, 6, 7]


def test_where_filter_with_percent_combines_with_the_cursor(pg: Any, run: Any) -> None:
    names = ["a%1", "b 2", "a_3", "100%", "a%5", "A%6"]
    make_events(pg, [(i, name, at(i)) for i, name in enumerate(names, 1)])
    # `%` in a LIKE pattern and in the literal `'%%'` reach Postgres unchanged.
    spec = recipe(pg, "filtered", "dst", where="name LIKE 'a%' OR name = '100%%'")
    run(spec)
    assert loaded_ids(pg, "dst") == [1, 3, 5]
    insert_rows(pg, [(7, "a%7", at(7)), (8, "zzz", at(8)), (9, "100%%", at(9)), (10, "a", at(4))])
    run(spec)  # now with a stored cursor: the window is a bound parameter next to the filter
    assert loaded_ids(pg, "dst") == [1, 3, 5, 7, 9]


def test_query_and_table_names_with_percent_work_with_a_stored_cursor(pg: Any, run: Any) -> None:
    make_events(pg, [(i, f"n{i}%", at(i)) for i in range(1, 6)], table='"ev%ents"')
    by_query = recipe(
        pg,
        "by_query",
        "dst_query",
        table=None,
        query="SELECT * FROM \"ev%ents\" WHERE name LIKE 'n%\\%%' ESCAPE '\\'",
    )
    by_query["source"].pop("table")
    by_table = recipe(pg, "by_table", "dst_table", table="ev%ents")
    run(by_query)
    run(by_table)
    insert_rows(pg, [(6, "n6%", at(6)), (7, "n7", at(7))], table='"ev%ents"')
    run(by_query)
    run(by_table)
    assert loaded_ids(pg, "dst_query") == [1, 2, 3, 4, 5, 6]
    assert loaded_ids(pg, "dst_table") == [1, 2, 3, 4, 5, 6, 7]
