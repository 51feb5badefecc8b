"""`runtime.parallelism`: parallel reads must give exactly what a serial read gives.

- files: 12 CSV files read 4 at a time land in the same order, with the same sequence of
  committed states, as a serial read;
- Postgres: a read split on a partition column or on `ctid` ranges gives the serial read's
  rows; an incremental read split 4 ways still advances its cursor correctly; a split on a
  column other than the cursor is refused;
- a parallel file load killed with SIGKILL through the CLI resumes to the exact rows.
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from e2e_support import after_commit, kill_at_gate, run_cli, write_recipe

import dataloader_filestore.connector as filestore_connector
from dataloader import ConnectorError, LocalStateBackend, RunResult, State, from_yaml, run_recipe
from dataloader.parallel import ordered_merge
from dataloader_postgres.connector import PostgresConnector
from dataloader_postgres.testing import PostgresServer

T0 = 1_700_000_000


class RecordingBackend(LocalStateBackend):
    """A local backend that remembers every state saved (the engine saves once per commit)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.saved: list[dict[str, Any]] = []

    def save(self, recipe_name: str, state: dict[str, Any]) -> None:
        self.saved.append(
            {"cursor_values": state["cursor_values"], "watermarks": state["watermarks"]}
        )
        super().save(recipe_name, state)


def run(recipe: Path, backend: LocalStateBackend) -> RunResult:
    return run_recipe(from_yaml(recipe), backend)


def duck(database: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(database), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# -- files -----------------------------------------------------------------------------------
def write_files(directory: Path, files: int, base_rows: int) -> list[tuple]:
    """`files` CSV files of different lengths; the rows in file order: (seq, file, line, text)."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    seq = 0
    for f in range(files):
        lines = ["seq,file,line,text"]
        for line in range(base_rows + 13 * f):
            lines.append(f'{seq},{f},{line},"f{f} l{line}, {"x" * (seq % 7)}"')
            rows.append((seq, f, line, f"f{f} l{line}, {'x' * (seq % 7)}"))
            seq += 1
        path = directory / f"part-{f:02d}.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.utime(path, (T0 + f, T0 + f))
    return rows


def files_recipe(cwd: Path, data: Path, parallelism: int, batch_size: int) -> Path:
    return write_recipe(
        cwd / "recipe.yaml",
        {
            "name": "parallel_files",
            "source": {
                "type": "filestore",
                "path": str(data / "*.csv"),
                "incremental": {"strategy": "modified_time"},
            },
            "destination": {"type": "duckdb", "database": str(cwd / "out.duckdb"), "table": "t"},
            "runtime": {"batch_size": batch_size, "parallelism": parallelism},
        },
    )


def test_parallel_file_read_equals_the_serial_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = write_files(tmp_path / "data", files=12, base_rows=120)
    merges: list[int] = []

    def spy(producers: Any, *, workers: int, **kwargs: Any) -> Iterator[Any]:
        merges.append(workers)
        return ordered_merge(producers, workers=workers, **kwargs)

    monkeypatch.setattr(filestore_connector, "ordered_merge", spy)
    results = {}
    for parallelism in (1, 4):
        cwd = tmp_path / f"p{parallelism}"
        cwd.mkdir()
        backend = RecordingBackend(cwd / ".state")
        result = run(files_recipe(cwd, tmp_path / "data", parallelism, batch_size=50), backend)
        rows = duck(cwd / "out.duckdb", "SELECT seq, file, line, text FROM t ORDER BY rowid")
        results[parallelism] = (result, rows, backend.saved)
    assert merges == [4]  # the parallel run read its files 4 at a time; the serial one did not

    (serial, serial_rows, serial_saves), (parallel, parallel_rows, parallel_saves) = (
        results[1],
        results[4],
    )
    # Same rows in the same (insertion) order: the files' order, as the seq column says.
    assert serial_rows == expected
    assert parallel_rows == serial_rows
    assert parallel.rows_written == serial.rows_written == len(expected)
    assert parallel.batches == serial.batches
    # The same checkpoints committed in the same order, and the same final state.
    assert len(serial_saves) == serial.commits + 1 > 12  # and the run history at the end
    assert parallel_saves == serial_saves
    files = serial_saves[-1]["watermarks"]["files"]
    assert len(files) == 12 and all(entry["complete"] for entry in files.values())


# -- Postgres --------------------------------------------------------------------------------
ITEMS = 4000


@pytest.fixture
def pg(postgres_server: PostgresServer, postgres_database: str) -> Iterator[Any]:
    connection = postgres_server.connect(postgres_database)
    connection.autocommit = True
    try:
        yield connection
    finally:
        connection.close()


def execute(connection: Any, sql: str, params: Any = None) -> list[tuple]:
    cursor = connection.cursor()
    cursor.execute(sql, params)
    return cursor.fetchall() if cursor.description else []


@pytest.fixture
def items(pg: Any) -> None:
    """`items`: ids inserted in shuffled order (physical order is not id order); `score` is
    NULL on every 10th row."""
    ids = list(range(1, ITEMS + 1))
    random.Random(7).shuffle(ids)
    execute(pg, "CREATE TABLE items (id int PRIMARY KEY, score int, payload text)")
    execute(
        pg,
        "INSERT INTO items SELECT id, CASE WHEN id %% 10 = 0 THEN NULL ELSE id %% 97 END, "
        "md5(id::text) FROM unnest(%s::int[]) WITH ORDINALITY AS u(id, n) ORDER BY n",
        (ids,),
    )
    execute(pg, "ANALYZE items")  # relpages, for the ctid split


def pg_recipe(
    cwd: Path, server: PostgresServer, database: str, name: str, source: dict, runtime: dict
) -> Path:
    return write_recipe(
        cwd / f"{name}.yaml",
        {
            "name": name,
            "source": {"type": "postgres", **server.connection_settings(database), **source},
            "destination": {
                "type": "duckdb",
                "database": str(cwd / f"{name}.duckdb"),
                "table": "t",
            },
            "runtime": runtime,
        },
    )


@pytest.fixture
def parts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The conditions of the ranges a split Postgres read reads (one entry per range)."""
    seen: list[str] = []
    original = PostgresConnector._read_part

    def spy(self: Any, state: Any, condition: str, plans: Any) -> Any:
        seen.append(condition)
        return original(self, state, condition, plans)

    monkeypatch.setattr(PostgresConnector, "_read_part", spy)
    return seen


SPLITS = {
    "partition_column": ({"partition_column": "id", "partitions": 4}, '"id"'),
    "ctid": ({}, "ctid"),
    "nullable_partition_column": ({"partition_column": "score", "partitions": 4}, '"score"'),
}


@pytest.mark.parametrize("split", list(SPLITS))
def test_partitioned_postgres_read_equals_the_serial_one(
    tmp_path: Path,
    postgres_server: PostgresServer,
    postgres_database: str,
    items: None,
    parts: list[str],
    split: str,
) -> None:
    table = {"table": "items"}
    serial = pg_recipe(
        tmp_path, postgres_server, postgres_database, "serial", table, {"batch_size": 300}
    )
    options, column = SPLITS[split]
    split_recipe = pg_recipe(
        tmp_path,
        postgres_server,
        postgres_database,
        "split",
        {**table, **options},
        {"batch_size": 300, "parallelism": 4},
    )
    run(serial, LocalStateBackend(tmp_path / ".state"))
    assert parts == []
    run(split_recipe, LocalStateBackend(tmp_path / ".state"))
    assert len(parts) == 4 and all(column in condition for condition in parts[1:]), parts

    query = "SELECT id, score, payload FROM t"
    serial_rows = duck(tmp_path / "serial.duckdb", query + " ORDER BY rowid")
    split_rows = duck(tmp_path / "split.duckdb", query + " ORDER BY rowid")
    assert len(serial_rows) == ITEMS
    assert len(split_rows) == len({row[0] for row in split_rows}), "duplicated rows"
    assert sorted(split_rows) == sorted(serial_rows)
    if split == "ctid":  # page ranges in order: the physical order, as a serial scan reads it
        assert split_rows == serial_rows


def test_incremental_postgres_read_split_four_ways_advances_the_cursor(
    tmp_path: Path,
    postgres_server: PostgresServer,
    postgres_database: str,
    pg: Any,
    parts: list[str],
) -> None:
    execute(pg, "CREATE TABLE events (id int PRIMARY KEY, updated_at timestamptz, note text)")
    insert = (
        "INSERT INTO events SELECT i, timestamptz '2024-01-01 00:00:00+00' "
        "+ (i / 3) * interval '1 second', 'n' || i FROM generate_series(%s, %s) i"
    )
    execute(pg, insert, (1, 2000))
    recipe = pg_recipe(
        tmp_path,
        postgres_server,
        postgres_database,
        "incremental",
        {"table": "events", "incremental": {"cursor_column": "updated_at"}},
        {"batch_size": 150, "parallelism": 4},
    )
    backend = LocalStateBackend(tmp_path / ".state")

    def check(run_number: int) -> None:
        loaded = duck(tmp_path / "incremental.duckdb", "SELECT id, updated_at, note FROM t")
        source = execute(pg, "SELECT id, updated_at, note FROM events")
        assert len(loaded) == len({row[0] for row in loaded}), f"run {run_number}: duplicates"
        assert sorted(loaded) == sorted(source), f"run {run_number}: rows differ"
        state = State.from_dict(backend.load("incremental"))
        newest = execute(pg, "SELECT max(updated_at) FROM events")[0][0]
        assert state.cursor_values["updated_at"] == newest, f"run {run_number}: cursor"

    first = run(recipe, backend)
    assert first.rows_written == 2000
    assert len(parts) == 4 and all('"updated_at"' in c for c in parts[1:]), parts
    check(1)

    parts.clear()
    execute(pg, insert, (2001, 3100))  # newer rows
    second = run(recipe, backend)
    assert second.rows_written == 1100  # only the window after the cursor
    assert len(parts) == 4, parts  # split 4 ways again
    check(2)

    third = run(recipe, backend)  # nothing new
    assert third.rows_written == 0
    check(3)


def test_incremental_read_split_on_another_column_is_refused(
    tmp_path: Path,
    postgres_server: PostgresServer,
    postgres_database: str,
    items: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recipe = pg_recipe(
        tmp_path,
        postgres_server,
        postgres_database,
        "wrong_split",
        {
            "table": "items",
            "incremental": {"cursor_column": "id"},
            "partition_column": "score",
        },
        {"parallelism": 4, "retries": {"attempts": 3, "initial_backoff": 1.0}},
    )
    backoffs: list[int] = []  # a retry of the run, or of one operation, waits a backoff first

    def no_wait(policy: Any, attempt: int) -> float:
        backoffs.append(attempt)
        return 0.0

    monkeypatch.setattr("dataloader.engine.runner.backoff_delay", no_wait)
    monkeypatch.setattr("dataloader.retry.backoff_delay", no_wait)
    with pytest.raises(ConnectorError) as caught:
        run(recipe, LocalStateBackend(tmp_path / ".state"))
    assert backoffs == []  # not retried
    assert "source.partition_column" in str(caught.value)
    assert caught.value.context["key"] == "source.partition_column"
    assert "cursor column" in str(caught.value)
    assert not (tmp_path / "wrong_split.duckdb").exists() or duck(
        tmp_path / "wrong_split.duckdb",
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 't'",
    ) == [(0,)]


# -- kill and resume a parallel file load through the CLI --------------------------------------
def test_parallel_file_load_killed_and_rerun_gives_exact_rows(
    tmp_path: Path, cli_env: dict
) -> None:
    expected = write_files(tmp_path / "data", files=6, base_rows=300)
    cwd = tmp_path / "work"
    cwd.mkdir()
    files_recipe(cwd, tmp_path / "data", parallelism=2, batch_size=40)
    args = ["run", "recipe.yaml", "--state-dir", ".state"]
    # Killed once eight commits are made (read-ahead threads running), never after its end.
    proc = kill_at_gate(args, cwd, cli_env, after_commit(8))
    assert proc.returncode == -signal.SIGKILL
    committed = duck(cwd / "out.duckdb", "SELECT count(*) FROM t")[0][0]
    assert 0 < committed < len(expected), committed

    code, out, err = run_cli(args, cwd, cli_env)
    assert code == 0, f"re-run failed:\n{out}\n{err}"
    rows = duck(cwd / "out.duckdb", "SELECT seq, file, line, text FROM t ORDER BY rowid")
    assert len(rows) == len({row[0] for row in rows}), "duplicated rows"
    assert rows == expected  # exactly once, and in file order
