"""The Snowflake source: a table or a query read with `fetch_arrow_batches`, incremental by a
cursor column, rows tied at the stored cursor neither lost nor loaded twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dataloader_snowflake.testing import FakeSnowflake


def recipe(db: FakeSnowflake, **source: Any) -> dict[str, Any]:
    return {
        "name": "sf_incremental",
        "source": {"type": "snowflake", **db.settings(), **source},
        "destination": {"type": "snowflake", **db.settings(), "table": "copy"},
        "runtime": {"batch_size": 2},
    }


def copied(db: FakeSnowflake) -> list[tuple[Any, ...]]:
    return db.query('SELECT "id", "updated" FROM "copy" ORDER BY "id"')


def test_incremental_reads_only_new_rows_and_keeps_ties(
    snowflake_db: FakeSnowflake, run: Callable[..., Any]
) -> None:
    db = snowflake_db
    db.execute('CREATE TABLE "events" ("id" NUMBER(38,0), "updated" NUMBER(38,0), "note" VARCHAR)')
    db.execute("INSERT INTO \"events\" VALUES (1, 10, 'a'), (2, 20, 'b'), (3, 20, 'c')")
    incremental = {"incremental": {"cursor_column": "updated"}}
    first = run(recipe(db, table="events", **incremental))
    assert first.rows_written == 3
    # A row tied with the stored cursor (20) and a newer one arrive after the run.
    db.execute("INSERT INTO \"events\" VALUES (4, 20, 'tie'), (5, 30, 'new')")
    second = run(recipe(db, table="events", **incremental))
    assert second.rows_written == 2
    assert run(recipe(db, table="events", **incremental)).rows_written == 0
    assert copied(db) == [(1, 10), (2, 20), (3, 20), (4, 20), (5, 30)]


def test_a_query_source_with_where_and_a_timestamp_cursor(
    snowflake_db: FakeSnowflake, run: Callable[..., Any]
) -> None:
    db = snowflake_db
    db.execute('CREATE TABLE "src" ("id" NUMBER(38,0), "updated" TIMESTAMP_NTZ(6))')
    db.execute(
        "INSERT INTO \"src\" VALUES (1, '2024-01-01 00:00:00'), (2, '2024-01-02 00:00:00'), "
        "(3, '2024-01-03 12:30:00.123456')"
    )
    keys = {
        "query": 'SELECT "id", "updated" FROM "src"',
        "where": '"id" <> 2',
        "incremental": {"cursor_column": "updated", "initial_value": "2023-12-31T00:00:00"},
    }
    assert run(recipe(db, **keys)).rows_written == 2
    db.execute("INSERT INTO \"src\" VALUES (4, '2024-01-04 00:00:00')")
    assert run(recipe(db, **keys)).rows_written == 1
    assert [row[0] for row in copied(db)] == [1, 3, 4]
