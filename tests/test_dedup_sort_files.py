"""Files → DuckDB and Postgres with `merge` and `dedup_sort`: the row with the latest `ts`
of each key wins, wherever it sits — earlier in one file, in an earlier file (and batch), or
already in the table from an earlier run — not the row read last."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from dataloader.testing import local_runner
from dataloader_postgres.testing import PostgresServer

FIRST_FILES = {
    # key 1: the newer row comes first within the file, an older one in the next file
    "a.csv": [(1, 3, "a3"), (1, 2, "a2"), (2, 1, "b1")],
    # key 2: the newer row comes in the later file
    "b.csv": [(1, 1, "a1"), (2, 4, "b4")],
}
LATER_FILE = {"c.csv": [(1, 2, "a2 late"), (2, 5, "b5"), (3, 1, "c1")]}


def write_files(directory: Path, files: dict[str, list[tuple[int, int, str]]]) -> None:
    directory.mkdir(exist_ok=True)
    for name, rows in files.items():
        lines = ["id,ts,v"] + [f"{i},{ts},{v}" for i, ts, v in rows]
        (directory / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(params=["duckdb", "postgres_on_conflict", "postgres_update_from"])
def destination(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "duckdb":
        return {"type": "duckdb", "database": str(tmp_path / "out.duckdb"), "table": "dest"}
    server: PostgresServer = request.getfixturevalue("postgres_server")
    database = request.getfixturevalue("postgres_database")
    if request.param == "postgres_update_from":  # no unique index on the key
        connection = server.connect(database)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE dest (id bigint, ts bigint, v text)")
        connection.close()
    return {"type": "postgres", **server.connection_settings(database), "table": "dest"}


def loaded(destination: dict[str, Any], request: pytest.FixtureRequest) -> list[tuple]:
    sql = "SELECT id, ts, v FROM dest ORDER BY id"
    if destination["type"] == "duckdb":
        with duckdb.connect(destination["database"]) as connection:
            return connection.execute(sql).fetchall()
    server: PostgresServer = request.getfixturevalue("postgres_server")
    connection = server.connect(destination["database"])
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
    connection.close()
    return rows


def test_the_latest_row_wins_within_and_across_files_and_against_stored_rows(
    tmp_path: Path, destination: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    files = tmp_path / "in"
    write_files(files, FIRST_FILES)
    recipe = {
        "name": "latest_from_files",
        "source": {
            "type": "filestore",
            "path": str(files / "*.csv"),
            "format": "csv",
            "incremental": {"strategy": "modified_time"},
        },
        "destination": {
            **destination,
            "write_mode": "merge",
            "merge_keys": ["id"],
            "dedup_sort": {"column": "ts"},
        },
        "runtime": {"batch_size": 2},  # a.csv is cut in two batches
    }
    run = local_runner(tmp_path / "state")

    run(recipe)
    assert loaded(destination, request) == [(1, 3, "a3"), (2, 4, "b4")]

    write_files(files, LATER_FILE)  # the next run reads only c.csv
    result = run(recipe)
    assert result.rows_read == 3
    assert loaded(destination, request) == [(1, 3, "a3"), (2, 5, "b5"), (3, 1, "c1")]
