"""What a Postgres cursor means, whatever the column: text compared in code-point order under a
linguistic (ICU) collation, window bounds independent of the server's and the host's time zone,
and NaN or NULL cursor values never dropped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dataloader import EngineError, State
from dataloader.testing import host_time_zone
from dataloader_postgres.testing import PostgresServer


def committed(pg: Any, name: str, column: str) -> Any:
    rows = pg.query("SELECT state FROM _dataloader_state WHERE recipe = %s", (name,))
    return State.from_dict(rows[0][0]).cursor_values.get(column) if rows else None


def ids(pg: Any, table: str) -> list[int]:
    return [row[0] for row in pg.query(f"SELECT id FROM {table} ORDER BY id")]


def cursor_recipe(
    pg: Any,
    name: str,
    incremental: dict[str, Any],
    *,
    batch_size: int = 50_000,
    parallelism: int = 1,
    write_mode: str = "append",
    **destination: Any,
) -> dict[str, Any]:
    return {
        "name": name,
        "source": pg.source(table="src", incremental=incremental),
        "destination": pg.destination("dst", write_mode, **destination),
        "runtime": {
            "batch_size": batch_size,
            "parallelism": parallelism,
            "commit_interval_seconds": 1e-9,
        },
    }


# -- text cursors under a linguistic collation --------------------------------------------


@pytest.fixture
def icu_pg(postgres_server: PostgresServer, pg: Any) -> Iterator[Any]:
    """A database whose default collation is ICU `en-US` (a < ä < B < c < C < d)."""
    name = f"{pg.database}_icu"
    admin = postgres_server.connect()
    admin.autocommit = True
    try:
        admin.cursor().execute(
            f"CREATE DATABASE \"{name}\" LOCALE_PROVIDER icu ICU_LOCALE 'en-US' TEMPLATE template0"
        )
    finally:
        admin.close()
    helper = type(pg)(postgres_server, name)  # the conftest's helper, on the ICU database
    try:
        yield helper
    finally:
        helper.close()


COLLATIONS = [
    pytest.param("database default", id="icu-database-default"),
    pytest.param('"und-x-icu"', id="und-x-icu"),
    pytest.param("created en-US", id="created-icu-collation"),
]


@pytest.mark.parametrize("collation", COLLATIONS)
@pytest.mark.parametrize("batch_size", [1, 2, 50])
def test_text_cursor_under_an_icu_collation_follows_code_point_order(
    icu_pg: Any, run: Any, collation: str, batch_size: int
) -> None:
    pg = icu_pg
    if collation == "created en-US":
        pg.execute("CREATE COLLATION english (provider = icu, locale = 'en-US')")
        collation = "english"
    clause = "" if collation == "database default" else f" COLLATE {collation}"
    pg.execute(f"CREATE TABLE src (id int PRIMARY KEY, name text{clause})")
    pg.execute("INSERT INTO src VALUES (1, 'a'), (2, 'B'), (3, 'c')")
    names = cursor_recipe(pg, "names", {"cursor_column": "name"}, batch_size=batch_size)

    assert run(names).rows_written == 3
    # After 'c' in code-point order: 'd' and 'ä' (ICU puts ä next to a, before c); 'C' is
    # before 'c' (ICU puts it after), so it is behind the cursor like any smaller value.
    pg.execute("INSERT INTO src VALUES (4, 'C'), (5, 'd'), (6, 'ä')")
    second = run(names)

    assert second.rows_written == 2
    assert ids(pg, "dst") == [1, 2, 3, 5, 6]
    assert committed(pg, "names", "name") == "ä"
    assert run(names).rows_read == 0


def test_text_cursor_read_in_parallel_is_not_split_and_loads_every_row(pg: Any, run: Any) -> None:
    pg.execute('CREATE TABLE src (id int PRIMARY KEY, name text COLLATE "und-x-icu")')
    pg.executemany("INSERT INTO src VALUES (%s, %s)", [(i, f"n{i:03d}") for i in range(1, 41)])
    names = cursor_recipe(pg, "names", {"cursor_column": "name"}, batch_size=7, parallelism=4)

    assert run(names).rows_written == 40
    assert ids(pg, "dst") == list(range(1, 41))


# -- window bounds and time zones ---------------------------------------------------------


@pytest.fixture
def new_york(pg: Any) -> Iterator[None]:
    """The host (TZ, PGTZ) and the database's default TimeZone in America/New_York."""
    pg.execute(f"ALTER DATABASE \"{pg.database}\" SET TimeZone = 'America/New_York'")
    with host_time_zone("America/New_York"):
        yield


@pytest.mark.parametrize("column_type", ["timestamp", "timestamptz"])
def test_initial_and_end_value_strings_do_not_depend_on_any_time_zone(
    pg: Any, run: Any, new_york: None, column_type: str
) -> None:
    pg.execute(f"CREATE TABLE src (id int PRIMARY KEY, at {column_type})")
    pg.execute(  # 01:00, 02:00 and 03:00 UTC (a naive timestamp holds them as written)
        "INSERT INTO src VALUES (1, '2024-01-01 01:00+00'), (2, '2024-01-01 02:00+00'), "
        "(3, '2024-01-01 03:00+00')"
    )
    window = {
        "cursor_column": "at",
        "initial_value": "2024-01-01T00:00:00",  # no offset: UTC for a timestamptz column
        "end_value": "2024-01-01T03:00:00",
    }

    assert run(cursor_recipe(pg, "hours", window)).rows_written == 3
    assert ids(pg, "dst") == [1, 2, 3]


# -- NaN and NULL cursor values -----------------------------------------------------------


@pytest.fixture
def scores(pg: Any) -> Any:
    pg.execute("CREATE TABLE src (id int PRIMARY KEY, score float8)")
    pg.execute("INSERT INTO src VALUES (1, 1.0), (2, 2.0)")
    return pg


@pytest.mark.parametrize("missing", ["'NaN'", "NULL"])
def test_nan_or_null_cursor_arriving_later_fails_the_run_by_default(
    scores: Any, run: Any, missing: str
) -> None:
    plan = cursor_recipe(scores, "scores", {"cursor_column": "score"})
    assert run(plan).rows_written == 2
    scores.execute(f"INSERT INTO src VALUES (3, {missing}), (4, 4.0)")

    with pytest.raises(EngineError) as raised:
        run(plan)

    message = str(raised.value)
    assert "'score'" in message and "1 row" in message and "on_missing_cursor" in message
    assert ids(scores, "dst") == [1, 2]


@pytest.mark.parametrize("parallelism", [1, 3])
def test_on_missing_cursor_load_loads_nan_and_null_rows_without_moving_the_cursor(
    scores: Any, run: Any, parallelism: int
) -> None:
    scores.execute("INSERT INTO src VALUES (3, 'NaN'), (4, NULL), (5, 0.5)")
    plan = cursor_recipe(
        scores,
        "scores",
        {"cursor_column": "score", "on_missing_cursor": "load"},
        batch_size=1,
        parallelism=parallelism,
        write_mode="merge",
        merge_keys=["id"],
    )

    assert run(plan).rows_written == 5
    assert committed(scores, "scores", "score") == 2.0
    scores.execute("INSERT INTO src VALUES (6, 6.0)")
    scores.execute("UPDATE src SET score = 3 WHERE id = 4")
    second = run(plan)

    assert second.rows_read == 3  # the NaN row again, row 4 (now 3.0) and row 6
    assert scores.query("SELECT count(*), count(DISTINCT id) FROM dst") == [(6, 6)]
    assert scores.query("SELECT score FROM dst WHERE id = 4") == [(3.0,)]
    assert committed(scores, "scores", "score") == 6.0
