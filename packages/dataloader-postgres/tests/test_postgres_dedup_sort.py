"""Postgres merge with `destination.dedup_sort`: among the rows of one key, the one with the
highest (`desc`) or lowest (`asc`) value of the column wins — within a batch, across the
batches of a run and against the row already in the table. A NULL never wins over a value;
between equal values the row read later wins. Both statement paths: `INSERT … ON CONFLICT`
(a unique index on the keys) and `UPDATE … FROM` + `INSERT` (none)."""

from __future__ import annotations

from typing import Any

import pytest

from dataloader import ConnectorError

PATHS = pytest.mark.parametrize("keyed", [True, False], ids=["on_conflict", "update_from"])


def prepare(pg: Any, keyed: bool) -> None:
    key = "PRIMARY KEY" if keyed else ""
    pg.execute(f"CREATE TABLE dst (id int {key}, ts int, v text, note text DEFAULT 'kept')")


def recipe(
    pg: Any, source: str, batches: list[list[dict[str, Any]]], *, order: str = "desc"
) -> dict[str, Any]:
    return {
        "name": "latest",
        "source": {"type": source, "batches": batches},
        "destination": pg.destination(
            "dst", "merge", merge_keys=["id"], dedup_sort={"column": "ts", "order": order}
        ),
    }


def rows(pg: Any) -> list[tuple[Any, ...]]:
    return pg.query("SELECT id, ts, v FROM dst ORDER BY id")


@PATHS
def test_the_latest_row_of_a_batch_wins_not_the_last_one(
    pg: Any, run: Any, rows_source: str, keyed: bool
) -> None:
    prepare(pg, keyed)
    batch = [
        {"id": 1, "ts": 2, "v": "new"},
        {"id": 1, "ts": 1, "v": "old"},
        {"id": 2, "ts": 1, "v": "first"},
        {"id": 2, "ts": 1, "v": "tie: read later"},
    ]
    run(recipe(pg, rows_source, [batch]))
    assert rows(pg) == [(1, 2, "new"), (2, 1, "tie: read later")]


@PATHS
def test_the_latest_row_across_batches_of_a_run_wins(
    pg: Any, run: Any, rows_source: str, keyed: bool
) -> None:
    prepare(pg, keyed)
    batches = [
        [{"id": 1, "ts": 3, "v": "newest"}, {"id": 2, "ts": 1, "v": "older"}],
        [{"id": 1, "ts": 2, "v": "older"}, {"id": 2, "ts": 2, "v": "newest"}],
        [{"id": 1, "ts": 1, "v": "oldest"}],
    ]
    run(recipe(pg, rows_source, batches))
    assert rows(pg) == [(1, 3, "newest"), (2, 2, "newest")]


@PATHS
def test_a_stored_row_newer_than_the_incoming_one_stays(
    pg: Any, run: Any, rows_source: str, keyed: bool
) -> None:
    prepare(pg, keyed)
    pg.execute("INSERT INTO dst (id, ts, v) VALUES (1, 5, 'a5'), (2, 5, 'b5')")

    incoming = [
        {"id": 1, "ts": 4, "v": "a4"},  # older: ignored
        {"id": 2, "ts": 6, "v": "b6"},  # newer: replaces
        {"id": 3, "ts": 1, "v": "c1"},  # new key: inserted
    ]
    run(recipe(pg, rows_source, [incoming]))
    assert rows(pg) == [(1, 5, "a5"), (2, 6, "b6"), (3, 1, "c1")]
    assert pg.query("SELECT note FROM dst ORDER BY id") == [("kept",), ("kept",), ("kept",)]

    run(recipe(pg, rows_source, [[{"id": 1, "ts": 5, "v": "a5 again"}]]))
    assert rows(pg)[0] == (1, 5, "a5 again")  # an equal value: read later, wins


@PATHS
def test_a_null_never_wins_over_a_value(pg: Any, run: Any, rows_source: str, keyed: bool) -> None:
    prepare(pg, keyed)
    first = [
        {"id": 1, "ts": 1, "v": "a1"},
        {"id": 1, "ts": None, "v": "a-null"},  # later, but NULL: loses to 1
        {"id": 2, "ts": None, "v": "b-null"},
        {"id": 3, "ts": None, "v": "c-null"},
    ]
    run(recipe(pg, rows_source, [first]))
    assert rows(pg) == [(1, 1, "a1"), (2, None, "b-null"), (3, None, "c-null")]

    second = [
        {"id": 1, "ts": None, "v": "a-null again"},  # NULL against a stored value: stays
        {"id": 2, "ts": 0, "v": "b0"},  # a value against a stored NULL: wins
        {"id": 3, "ts": None, "v": "c-null again"},  # NULL against NULL: read later, wins
    ]
    run(recipe(pg, rows_source, [second]))
    assert rows(pg) == [(1, 1, "a1"), (2, 0, "b0"), (3, None, "c-null again")]


@PATHS
def test_order_asc_keeps_the_lowest_value(pg: Any, run: Any, rows_source: str, keyed: bool) -> None:
    prepare(pg, keyed)
    batches = [[{"id": 1, "ts": 5, "v": "a5"}, {"id": 1, "ts": 3, "v": "a3"}]]
    run(recipe(pg, rows_source, batches, order="asc"))
    assert rows(pg) == [(1, 3, "a3")]

    run(recipe(pg, rows_source, [[{"id": 1, "ts": 4, "v": "a4"}]], order="asc"))
    assert rows(pg) == [(1, 3, "a3")]


def test_a_batch_without_the_sort_column_is_an_error(pg: Any, run: Any, rows_source: str) -> None:
    with pytest.raises(ConnectorError) as raised:
        run(recipe(pg, rows_source, [[{"id": 1, "v": "no ts"}]]))
    assert raised.value.problem.key == "destination.dedup_sort.column"
    assert raised.value.problem.value == "ts"


@pytest.mark.parametrize("dedup_sort", [True, False], ids=["dedup_sort", "read_order"])
@PATHS
def test_a_full_refresh_of_a_merge_keeps_one_row_per_key(
    pg: Any, run: Any, rows_source: str, keyed: bool, dedup_sort: bool
) -> None:
    """`--full-refresh` replaces the table, but with the rows a merge would keep."""
    prepare(pg, keyed)
    batches = [
        [{"id": 1, "ts": 3, "v": "a3"}, {"id": 1, "ts": 1, "v": "a1"}],
        [{"id": 1, "ts": 2, "v": "a2"}, {"id": 2, "ts": 1, "v": "b1"}],
    ]
    merge = recipe(pg, rows_source, batches)
    if not dedup_sort:
        del merge["destination"]["dedup_sort"]
    run(merge)
    expected = [(1, 3, "a3") if dedup_sort else (1, 2, "a2"), (2, 1, "b1")]
    assert rows(pg) == expected

    run(merge, full_refresh=True)
    assert rows(pg) == expected
