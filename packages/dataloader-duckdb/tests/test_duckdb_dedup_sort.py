"""DuckDB merge with `destination.dedup_sort`: among the rows of one key, the one with the
highest (`desc`) or lowest (`asc`) value of the column wins — within a batch, across the
batches of a run and against the row already in the table. A NULL never wins over a value;
between equal values the row read later wins. Both merge paths: delete + insert (the rows
carry every column of the table) and update + insert (the table has columns they lack)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dataloader import ConnectorError, RunResult

Run = Callable[..., RunResult]
PATHS = pytest.mark.parametrize("extra_column", [False, True], ids=["delete_insert", "update"])


def recipe(
    source: str,
    dest_db: Path,
    batches: list[list[dict[str, Any]]],
    *,
    order: str = "desc",
    name: str = "latest",
) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"type": source, "batches": batches},
        "destination": {
            "type": "duckdb",
            "database": str(dest_db),
            "table": "target",
            "write_mode": "merge",
            "merge_keys": ["id"],
            "dedup_sort": {"column": "ts", "order": order},
        },
    }


def prepare(sql: Any, dest_db: Path, extra_column: bool) -> None:
    """The table, with a column the source does not carry when `extra_column`."""
    note = ", note VARCHAR DEFAULT 'kept'" if extra_column else ""
    sql.execute(dest_db, f"CREATE TABLE target (id INTEGER, ts INTEGER, v VARCHAR{note})")


def rows(sql: Any, dest_db: Path) -> list[tuple[Any, ...]]:
    return sql.query(dest_db, "SELECT id, ts, v FROM target ORDER BY id")


@PATHS
def test_the_latest_row_of_a_batch_wins_not_the_last_one(
    run: Run, rows_source: str, dest_db: Path, sql: Any, extra_column: bool
) -> None:
    prepare(sql, dest_db, extra_column)
    batch = [
        {"id": 1, "ts": 2, "v": "new"},
        {"id": 1, "ts": 1, "v": "old"},
        {"id": 2, "ts": 1, "v": "first"},
        {"id": 2, "ts": 1, "v": "tie: read later"},
    ]
    run(recipe(rows_source, dest_db, [batch]))
    assert rows(sql, dest_db) == [(1, 2, "new"), (2, 1, "tie: read later")]


@PATHS
def test_the_latest_row_across_batches_of_a_run_wins(
    run: Run, rows_source: str, dest_db: Path, sql: Any, extra_column: bool
) -> None:
    prepare(sql, dest_db, extra_column)
    batches = [
        [{"id": 1, "ts": 3, "v": "newest"}, {"id": 2, "ts": 1, "v": "older"}],
        [{"id": 1, "ts": 2, "v": "older"}, {"id": 2, "ts": 2, "v": "newest"}],
        [{"id": 1, "ts": 1, "v": "oldest"}],
    ]
    run(recipe(rows_source, dest_db, batches))
    assert rows(sql, dest_db) == [(1, 3, "newest"), (2, 2, "newest")]


@PATHS
def test_a_stored_row_newer_than_the_incoming_one_stays(
    run: Run, rows_source: str, dest_db: Path, sql: Any, extra_column: bool
) -> None:
    prepare(sql, dest_db, extra_column)
    stored = [{"id": 1, "ts": 5, "v": "a5"}, {"id": 2, "ts": 5, "v": "b5"}]
    run(recipe(rows_source, dest_db, [stored]))

    incoming = [
        {"id": 1, "ts": 4, "v": "a4"},  # older: ignored
        {"id": 2, "ts": 6, "v": "b6"},  # newer: replaces
        {"id": 3, "ts": 1, "v": "c1"},  # new key: inserted
    ]
    run(recipe(rows_source, dest_db, [incoming]))
    assert rows(sql, dest_db) == [(1, 5, "a5"), (2, 6, "b6"), (3, 1, "c1")]
    if extra_column:  # the table's own column is kept in the rows that were updated
        notes = sql.query(dest_db, "SELECT note FROM target ORDER BY id")
        assert notes == [("kept",), ("kept",), ("kept",)]

    run(recipe(rows_source, dest_db, [[{"id": 1, "ts": 5, "v": "a5 again"}]]))
    assert rows(sql, dest_db)[0] == (1, 5, "a5 again")  # an equal value: read later, wins


@PATHS
def test_a_null_never_wins_over_a_value(
    run: Run, rows_source: str, dest_db: Path, sql: Any, extra_column: bool
) -> None:
    prepare(sql, dest_db, extra_column)
    first = [
        {"id": 1, "ts": 1, "v": "a1"},
        {"id": 1, "ts": None, "v": "a-null"},  # later, but NULL: loses to 1
        {"id": 2, "ts": None, "v": "b-null"},
        {"id": 3, "ts": None, "v": "c-null"},
    ]
    run(recipe(rows_source, dest_db, [first]))
    assert rows(sql, dest_db) == [(1, 1, "a1"), (2, None, "b-null"), (3, None, "c-null")]

    second = [
        {"id": 1, "ts": None, "v": "a-null again"},  # NULL against a stored value: stays
        {"id": 2, "ts": 0, "v": "b0"},  # a value against a stored NULL: wins
        {"id": 3, "ts": None, "v": "c-null again"},  # NULL against NULL: read later, wins
    ]
    run(recipe(rows_source, dest_db, [second]))
    assert rows(sql, dest_db) == [(1, 1, "a1"), (2, 0, "b0"), (3, None, "c-null again")]


def test_order_asc_keeps_the_lowest_value(
    run: Run, rows_source: str, dest_db: Path, sql: Any
) -> None:
    batches = [[{"id": 1, "ts": 5, "v": "a5"}, {"id": 1, "ts": 3, "v": "a3"}]]
    run(recipe(rows_source, dest_db, batches, order="asc"))
    assert rows(sql, dest_db) == [(1, 3, "a3")]

    run(recipe(rows_source, dest_db, [[{"id": 1, "ts": 4, "v": "a4"}]], order="asc"))
    assert rows(sql, dest_db) == [(1, 3, "a3")]


def test_a_batch_without_the_sort_column_is_an_error(
    run: Run, rows_source: str, dest_db: Path, sql: Any
) -> None:
    with pytest.raises(ConnectorError) as raised:
        run(recipe(rows_source, dest_db, [[{"id": 1, "v": "no ts"}]]))
    assert raised.value.problem.key == "destination.dedup_sort.column"
    assert raised.value.problem.value == "ts"


@pytest.mark.parametrize("dedup_sort", [True, False], ids=["dedup_sort", "read_order"])
def test_a_full_refresh_of_a_merge_keeps_one_row_per_key(
    run: Run, rows_source: str, dest_db: Path, sql: Any, dedup_sort: bool
) -> None:
    """`--full-refresh` replaces the table, but with the rows a merge would keep."""
    batches = [
        [{"id": 1, "ts": 3, "v": "a3"}, {"id": 1, "ts": 1, "v": "a1"}],
        [{"id": 1, "ts": 2, "v": "a2"}, {"id": 2, "ts": 1, "v": "b1"}],
    ]
    merge = recipe(rows_source, dest_db, batches)
    if not dedup_sort:
        del merge["destination"]["dedup_sort"]
    run(merge)
    expected = [(1, 3, "a3") if dedup_sort else (1, 2, "a2"), (2, 1, "b1")]
    assert rows(sql, dest_db) == expected

    run(merge, full_refresh=True)
    assert rows(sql, dest_db) == expected
