"""Incremental reads from the `sql` source: a cursor with ties across batch boundaries loads
each row once, rows added at the committed cursor value are found, and text, timestamp and
query cursors read in the engine's order."""

from __future__ import annotations

from typing import Any

import pytest
from sql_support import Sqlite


@pytest.fixture
def target(tmp_path: Any) -> Sqlite:
    """The destination: another file (a SQLite file read by one connection cannot commit
    another's writes until the read ends, unless it is in WAL mode)."""
    return Sqlite(tmp_path / "target.sqlite")


def incremental(db: Sqlite, column: str, **source: Any) -> dict[str, Any]:
    return {
        "name": f"inc_{column}",
        "source": db.source(
            **({"table": "src"} | source),
            incremental={"strategy": "cursor", "cursor_column": column},
        ),
        "destination": Sqlite(db.path.with_name("target.sqlite")).destination("dst"),
        "runtime": {"batch_size": 2},
    }


def loaded(db: Sqlite) -> list[tuple[Any, ...]]:
    return db.query("SELECT id FROM dst ORDER BY id")


@pytest.mark.parametrize("query", [False, True])
def test_ties_across_batches_load_each_row_once(
    run: Any, sqlite_db: Sqlite, target: Sqlite, query: bool
) -> None:
    sqlite_db.execute("CREATE TABLE src (id INTEGER, seq INTEGER, note TEXT)")
    values = ", ".join(f"({i}, {seq}, 'n{i}')" for i, seq in enumerate([1, 1, 2, 2, 2, 3, 3], 1))
    sqlite_db.execute(f"INSERT INTO src VALUES {values}")
    source = {"table": None, "query": "SELECT * FROM src"} if query else {}
    recipe = incremental(sqlite_db, "seq", **source)
    assert run(recipe).rows_written == 7
    assert run(recipe).rows_written == 0
    # New rows at the committed cursor value (a tie) and after it; one before it is too late.
    sqlite_db.execute("INSERT INTO src VALUES (8, 3, 'tie'), (9, 4, 'after'), (10, 2, 'late')")
    assert run(recipe).rows_written == 2
    assert loaded(target) == [(i,) for i in range(1, 10)]


def test_a_text_cursor_reads_in_code_point_order(
    run: Any, sqlite_db: Sqlite, target: Sqlite
) -> None:
    sqlite_db.execute("CREATE TABLE src (id INTEGER, code TEXT)")
    sqlite_db.execute("INSERT INTO src VALUES (1, 'B'), (2, 'a'), (3, 'Z'), (4, 'a')")
    recipe = incremental(sqlite_db, "code")
    assert run(recipe).rows_written == 4  # the cursor is now 'a': 'B' < 'Z' < 'a'
    sqlite_db.execute("INSERT INTO src VALUES (5, 'é'), (6, 'A'), (7, 'a')")
    assert run(recipe).rows_written == 2  # 'é' and the tie at 'a'; 'A' sorts before the cursor
    assert loaded(target) == [(i,) for i in (1, 2, 3, 4, 5, 7)]


def test_a_timestamp_cursor_with_zone(
    run: Any, rows_source: str, sqlite_db: Sqlite, target: Sqlite
) -> None:
    first = [
        {"id": 1, "at": "2024-01-01T00:00:00+00:00"},
        {"id": 2, "at": "2024-01-01T01:00:00+01:00"},  # the same instant
        {"id": 3, "at": "2024-01-02T00:00:00.000001+00:00"},
    ]
    seed = {
        "name": "seed",
        "source": {"type": rows_source, "batches": [first]},
        "transform": {
            "steps": [{"type": "cast", "columns": {"at": {"type": "datetime", "timezone": "UTC"}}}]
        },
        "destination": sqlite_db.destination("src"),
    }
    run(seed)
    recipe = incremental(sqlite_db, "at")
    assert run(recipe).rows_written == 3
    seed["source"]["batches"] = [
        [
            {"id": 4, "at": "2024-01-02T00:00:00.000001+00:00"},
            {"id": 5, "at": "2024-01-01T12:00:00+00:00"},
        ]
    ]
    run(seed)
    assert run(recipe).rows_written == 1
    assert loaded(target) == [(1,), (2,), (3,), (4,)]


def test_a_decimal_cursor_compares_as_numbers(
    run: Any, rows_source: str, sqlite_db: Sqlite, target: Sqlite
) -> None:
    seed = {
        "name": "seed",
        "source": {
            "type": rows_source,
            "batches": [[{"id": i, "v": v} for i, v in enumerate(["9.50", "10.25", "100.00"], 1)]],
        },
        "transform": {"steps": [{"type": "cast", "columns": {"v": "decimal(10,2)"}}]},
        "destination": sqlite_db.destination("src"),
    }
    run(seed)
    recipe = incremental(sqlite_db, "v")
    assert run(recipe).rows_written == 3
    seed["source"]["batches"] = [[{"id": 4, "v": "99.99"}, {"id": 5, "v": "100.01"}]]
    run(seed)
    assert run(recipe).rows_written == 1
    assert loaded(target) == [(1,), (2,), (3,), (5,)]


def test_an_unknown_cursor_column_names_the_key(
    run: Any, sqlite_db: Sqlite, target: Sqlite
) -> None:
    sqlite_db.execute("CREATE TABLE src (id INTEGER)")
    with pytest.raises(
        Exception, match=r"source.incremental.cursor_column: .*'missing'.*one of \['id'\]"
    ):
        run(incremental(sqlite_db, "missing"))
