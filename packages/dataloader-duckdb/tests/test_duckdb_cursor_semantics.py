"""What a DuckDB cursor means, whatever the column: text compared in code-point order under any
collation, nanosecond timestamps stored exactly, window bounds read independently of the host's
time zone, NaN and NULL cursor values never dropped, and `lag` as an ISO-8601 duration."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataloader import DataLoaderError, EngineError, RecipeError, RunResult
from dataloader.recipe import RecipeLoader
from dataloader.testing import host_time_zone

Run = Callable[..., RunResult]


def recipe(
    source_db: Path,
    dest_db: Path,
    table: str,
    incremental: dict[str, Any],
    *,
    batch_size: int = 50_000,
    query: str | None = None,
    **destination: Any,
) -> dict[str, Any]:
    source: dict[str, Any] = {"type": "duckdb", "database": str(source_db)}
    source.update({"query": query} if query else {"table": table})
    return {
        "name": table,
        "source": {**source, "incremental": incremental},
        "destination": {"type": "duckdb", "database": str(dest_db), "table": table, **destination},
        "runtime": {"batch_size": batch_size},
    }


def ids(sql: Any, database: Path, table: str) -> list[int]:
    return [row[0] for row in sql.query(database, f"SELECT id FROM {table} ORDER BY id")]


# -- text cursors: one order everywhere ------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 2, 50])
def test_text_cursor_under_nocase_collation_follows_code_point_order(
    run: Run, source_db: Path, dest_db: Path, sql: Any, batch_size: int
) -> None:
    # NOCASE orders a < B < c, code points order B < a < c: the database's filter, its ORDER BY,
    # the engine's check and the stored maximum must all use the same one.
    sql.execute(
        source_db,
        "CREATE TABLE names (id INTEGER, name VARCHAR COLLATE NOCASE)",
        "INSERT INTO names VALUES (1, 'a'), (2, 'B'), (3, 'c')",
    )
    names = recipe(source_db, dest_db, "names", {"cursor_column": "name"}, batch_size=batch_size)

    assert run(names).rows_written == 3
    # After 'c' in code-point order: 'd' and 'ä'; 'C' (0x43) is before 'c' (0x63), so it is
    # behind the cursor like any value below it, however NOCASE compares it.
    sql.execute(source_db, "INSERT INTO names VALUES (4, 'C'), (5, 'd'), (6, 'ä')")
    second = run(names)

    assert second.rows_written == 2
    assert ids(sql, dest_db, "names") == [1, 2, 3, 5, 6]
    assert sql.committed_state(dest_db, "names").cursor_values["name"] == "ä"
    assert run(names).rows_read == 0


# -- nanosecond timestamps ------------------------------------------------------------------

NS_BASE = "2024-01-01 00:00:00.000000"


def test_nanosecond_cursor_is_stored_exactly_and_never_rereads(
    run: Run, source_db: Path, dest_db: Path, sql: Any
) -> None:
    sql.execute(
        source_db,
        "CREATE TABLE ticks (id INTEGER, ts TIMESTAMP_NS)",
        f"INSERT INTO ticks VALUES (1, '{NS_BASE}001'), (2, '{NS_BASE}002')",
    )
    ticks = recipe(source_db, dest_db, "ticks", {"cursor_column": "ts"}, batch_size=1)

    assert run(ticks).rows_written == 2
    assert run(ticks).rows_read == 0
    sql.execute(source_db, f"INSERT INTO ticks VALUES (3, '{NS_BASE}003')")
    assert run(ticks).rows_written == 1

    assert ids(sql, dest_db, "ticks") == [1, 2, 3]
    stored = sql.committed_state(dest_db, "ticks").cursor_values["ts"]
    from dataloader.state.nanotimestamp import NanoTimestamp

    assert stored == NanoTimestamp(1_704_067_200_000_000_003)


def test_nanosecond_cursor_from_a_parquet_file_never_rereads(
    run: Run, tmp_path: Path, dest_db: Path, sql: Any
) -> None:
    base = 1_704_067_200_000_000_000
    path = tmp_path / "ticks.parquet"

    def write(count: int) -> None:
        at = pa.array([base + i for i in range(1, count + 1)], pa.timestamp("ns"))
        pq.write_table(pa.table({"id": list(range(1, count + 1)), "ts": at}), path)

    write(2)
    ticks = recipe(
        tmp_path / "unused.duckdb",
        dest_db,
        "ticks",
        {"cursor_column": "ts"},
        query=f"SELECT * FROM read_parquet('{path.as_posix()}')",
    )
    assert run(ticks).rows_written == 2
    assert run(ticks).rows_read == 0
    write(3)
    assert run(ticks).rows_written == 1
    assert ids(sql, dest_db, "ticks") == [1, 2, 3]


# -- window bounds do not depend on the host's time zone -----------------------------------


@pytest.fixture
def new_york() -> Iterator[None]:
    """The process (and so each new DuckDB connection) in America/New_York, restored after."""
    with host_time_zone("America/New_York"):
        yield


@pytest.mark.parametrize("column_type", ["TIMESTAMP", "TIMESTAMPTZ"])
def test_initial_and_end_value_strings_are_not_read_in_the_host_time_zone(
    run: Run, source_db: Path, dest_db: Path, sql: Any, new_york: None, column_type: str
) -> None:
    sql.execute(
        source_db,
        f"CREATE TABLE hours (id INTEGER, ts {column_type})",
        # 01:00, 02:00 and 03:00 UTC (a naive TIMESTAMP holds them as written).
        "INSERT INTO hours VALUES (1, '2024-01-01 01:00:00+00'), (2, '2024-01-01 02:00:00+00'), "
        "(3, '2024-01-01 03:00:00+00')"
        if column_type == "TIMESTAMPTZ"
        else "INSERT INTO hours VALUES (1, '2024-01-01 01:00:00'), (2, '2024-01-01 02:00:00'), "
        "(3, '2024-01-01 03:00:00')",
    )
    window = {
        "cursor_column": "ts",
        "initial_value": "2024-01-01T00:00:00",  # no offset: UTC for a TIMESTAMPTZ column
        "end_value": "2024-01-01T03:00:00",
    }

    result = run(recipe(source_db, dest_db, "hours", window))

    assert result.rows_written == 3
    assert ids(sql, dest_db, "hours") == [1, 2, 3]


# -- NaN and NULL cursor values ---------------------------------------------------------------


@pytest.fixture
def scores(source_db: Path, sql: Any) -> Path:
    sql.execute(
        source_db,
        "CREATE TABLE scores (id INTEGER, score DOUBLE)",
        "INSERT INTO scores VALUES (1, 1.0), (2, 2.0)",
    )
    return source_db


@pytest.mark.parametrize("missing", ["'NaN'", "NULL"])
def test_nan_or_null_cursor_arriving_later_fails_the_run_by_default(
    run: Run, scores: Path, dest_db: Path, sql: Any, missing: str
) -> None:
    plan = recipe(scores, dest_db, "scores", {"cursor_column": "score"})
    assert run(plan).rows_written == 2
    sql.execute(scores, f"INSERT INTO scores VALUES (3, {missing}), (4, 4.0)")

    with pytest.raises(EngineError) as raised:
        run(plan)

    message = str(raised.value)
    assert "'score'" in message and "1 row" in message and "on_missing_cursor" in message
    assert ids(sql, dest_db, "scores") == [1, 2]  # nothing of that batch was written


def test_on_missing_cursor_load_loads_nan_and_null_rows_without_moving_the_cursor(
    run: Run, scores: Path, dest_db: Path, sql: Any
) -> None:
    sql.execute(scores, "INSERT INTO scores VALUES (3, 'NaN'), (4, NULL)")
    plan = recipe(
        scores,
        dest_db,
        "scores",
        {"cursor_column": "score", "on_missing_cursor": "load"},
        batch_size=1,
        write_mode="merge",
        merge_keys=["id"],
    )

    assert run(plan).rows_written == 4
    assert sql.committed_state(dest_db, "scores").cursor_values["score"] == 2.0
    sql.execute(
        scores, "INSERT INTO scores VALUES (5, 5.0)", "UPDATE scores SET score = 3 WHERE id = 4"
    )
    second = run(plan)

    assert second.rows_read == 3  # the NaN row again, row 4 (now 3.0) and row 5
    assert sql.query(dest_db, "SELECT count(*), count(DISTINCT id) FROM scores") == [(5, 5)]
    assert sql.query(dest_db, "SELECT score FROM scores WHERE id = 4") == [(3.0,)]
    assert sql.committed_state(dest_db, "scores").cursor_values["score"] == 5.0


def test_on_missing_cursor_load_without_merge_is_a_recipe_error(
    tmp_path: Path, scores: Path, dest_db: Path
) -> None:
    import yaml

    path = tmp_path / "scores.yaml"
    plan = recipe(
        scores, dest_db, "scores", {"cursor_column": "score", "on_missing_cursor": "load"}
    )
    path.write_text(yaml.safe_dump(plan), "utf-8")

    with pytest.raises(RecipeError) as raised:
        RecipeLoader().load(path)

    message = str(raised.value)
    assert str(path) in message and "source.incremental.on_missing_cursor" in message
    assert "merge" in message


# -- lag ------------------------------------------------------------------------------------


def test_iso_duration_lag_rereads_recent_rows_from_the_second_run(
    run: Run, source_db: Path, dest_db: Path, sql: Any
) -> None:
    sql.execute(
        source_db,
        "CREATE TABLE events (id INTEGER, ts TIMESTAMP)",
        "INSERT INTO events VALUES (1, '2024-01-01 00:00'), (2, '2024-01-01 02:00')",
    )
    plan = recipe(
        source_db,
        dest_db,
        "events",
        {"cursor_column": "ts", "lag": "PT1H30M"},
        write_mode="merge",
        merge_keys=["id"],
    )
    run(plan)
    sql.execute(source_db, "INSERT INTO events VALUES (3, '2024-01-01 01:00')")

    second = run(plan)

    assert second.rows_read == 2  # (00:30, ∞): rows 2 and the late row 3
    assert ids(sql, dest_db, "events") == [1, 2, 3]


def test_lag_on_a_text_cursor_fails_naming_the_key_and_the_type(
    run: Run, source_db: Path, dest_db: Path, sql: Any
) -> None:
    sql.execute(
        source_db,
        "CREATE TABLE names (id INTEGER, name VARCHAR)",
        "INSERT INTO names VALUES (1, 'a')",
    )
    plan = recipe(source_db, dest_db, "names", {"cursor_column": "name", "lag": 10})

    with pytest.raises(DataLoaderError) as raised:
        run(plan)  # from the first run on: not only once a cursor is stored

    message = str(raised.value)
    assert "source.incremental.lag" in message and "type string" in message
    assert "main.names" not in sql.tables(dest_db)
