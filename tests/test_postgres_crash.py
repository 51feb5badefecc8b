"""Postgres through the CLI: SIGKILL at random points of append, overwrite and merge loads into
Postgres, each followed by a re-run that must leave the table identical to a clean run; Postgres
sources into Postgres, DuckDB and Parquet; and a failing run that must not print the password.

Every run is `python -m dataloader run RECIPE --state-dir DIR` in a subprocess; the recipes take
the password from `{{ env_var('PGPASSWORD_TEST') }}`.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from e2e_support import CLI, run_cli, write_recipe

PASSWORD_ENV = "PGPASSWORD_TEST"
KILLS = 6
SEED = 20241125
WORKERS = 2  # trials in flight at once (each is a killed run, then a re-run)
BATCH_SIZE = 40
CSV_FILES, CSV_ROWS = 6, 400  # 2,400 rows: 60 batches
EVENTS, MERGE_KEYS = 2400, 700  # the Postgres source: 60 batches, cursor ties in threes


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture
def env(cli_env: dict, postgres_server: Any) -> dict:
    return {**cli_env, PASSWORD_ENV: postgres_server.password}


@pytest.fixture
def db(postgres_server: Any, postgres_database: str) -> Any:
    connection = postgres_server.connect(postgres_database)
    connection.autocommit = True
    connection.cursor().execute("SET TimeZone = 'UTC'")
    try:
        yield connection
    finally:
        connection.close()


def query(db: Any, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    cursor = db.cursor()
    cursor.execute(sql, params)
    return cursor.fetchall() if cursor.description else []


def connection_keys(server: Any, database: str) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "database": database,
        "user": "postgres",
        "password": "{{ env_var('" + PASSWORD_ENV + "') }}",
    }


# -- source data ---------------------------------------------------------------------------
def write_csv_files(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for f in range(CSV_FILES):
        lines = ["id,name,amount,updated_at"]
        for r in range(CSV_ROWS):
            i = f * CSV_ROWS + r + 1
            name = f'"name {i}, with ""quotes"""' if i % 17 == 0 else f"name {i}"
            lines.append(f"{i},{name},{i * 1.25:.2f},2024-01-01 00:{i // 60 % 60:02d}:{i % 60:02d}")
        (directory / f"part{f:02d}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def create_events(db: Any) -> None:
    query(
        db,
        "CREATE TABLE events (id int PRIMARY KEY, key int, name text, amount numeric(12,2), "
        "updated_at timestamptz)",
    )
    # Three rows per updated_at value (ties), never two of one key among them, so the latest
    # row of a key is well defined; keys repeat across the table (updates for merge).
    query(
        db,
        "INSERT INTO events SELECT i, (i * 7919) %% %s, "
        "'event ' || i || CASE WHEN i %% 13 = 0 THEN E', \"q\"\\n2nd line' ELSE '' END, "
        "(i * 1.37)::numeric(12,2), timestamptz '2024-01-01' + (i / 3) * interval '1 second' "
        "FROM generate_series(1, %s) i",
        (MERGE_KEYS, EVENTS),
    )


CAST = {
    "type": "cast",
    "columns": {"amount": "decimal(12,2)", "updated_at": {"type": "datetime", "timezone": "UTC"}},
}
OLD_ROWS = [(900_000 + i, f"old {i}", Decimal(i), None) for i in range(5)]


@dataclass
class Mode:
    """One write mode under test: its source, destination options and key to compare rows by."""

    name: str
    key: str
    source: Callable[[Path, dict[str, Any]], dict[str, Any]]
    destination: dict[str, Any] = field(default_factory=dict)
    transform: list[dict[str, Any]] = field(default_factory=list)
    seed_old_rows: bool = False


def csv_source(tmp: Path, keys: dict[str, Any]) -> dict[str, Any]:
    return {"type": "filestore", "path": "in/*.csv"}  # relative: the CLI runs in tmp_path


def incremental_csv_source(tmp: Path, keys: dict[str, Any]) -> dict[str, Any]:
    # Incremental, so that a run killed after its last commit leaves nothing to re-run; a
    # non-incremental append loads every file again on each run, by definition.
    return {**csv_source(tmp, keys), "incremental": {"strategy": "modified_time"}}


def events_source(tmp: Path, keys: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "postgres",
        **keys,
        "table": "events",
        "incremental": {"cursor_column": "updated_at"},
    }


MODES = {
    "append": Mode("append", "id", incremental_csv_source, transform=[CAST]),
    "overwrite": Mode("overwrite", "id", csv_source, transform=[CAST], seed_old_rows=True),
    "merge": Mode("merge", "key", events_source, destination={"merge_keys": ["key"]}),
}


# -- running and killing the CLI ------------------------------------------------------------
@dataclass
class Timeline:
    """When the progress lines of a run appeared (seconds after start) and when it ended."""

    lines: list[float]
    end: float


def is_progress(line: str, recipe_name: str) -> bool:
    return line.startswith(f"{recipe_name}: ") and " batches, " in line


def clean_run(args: list[str], cwd: Path, env: dict, recipe_name: str) -> Timeline:
    start = time.monotonic()
    proc = subprocess.Popen(
        [*CLI, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
    )
    lines, output = [], []
    assert proc.stdout is not None
    for line in proc.stdout:
        output.append(line)
        if is_progress(line, recipe_name):
            lines.append(time.monotonic() - start)
    code = proc.wait(timeout=120)
    assert code == 0, "".join(output)
    return Timeline(lines, time.monotonic() - start)


@dataclass(frozen=True)
class KillPoint:
    """Kill `delay` seconds after the `after_lines`-th progress line (or after start when 0)."""

    at: float  # where this point lies on the clean run's timeline
    after_lines: int
    delay: float


def kill_points(timeline: Timeline, rng: random.Random) -> list[KillPoint]:
    """KILLS points stratified over the clean run, from one batch before the first progress
    line to its end, each tied to the progress line before it so that a slower or faster start
    of the process does not move it out of the load."""
    lines = timeline.lines
    assert len(lines) >= 10, f"too few batches to kill between: {len(lines)}"
    batch = (lines[-1] - lines[0]) / (len(lines) - 1)
    start, end = max(0.0, lines[0] - batch), timeline.end
    points = []
    for k in range(KILLS):
        at = start + (end - start) * (k + rng.random()) / KILLS
        before = [t for t in lines if t <= at]
        if before:
            points.append(KillPoint(at, len(before), at - before[-1]))
        else:
            points.append(KillPoint(at, 0, at))
    return points


def killed_run(args: list[str], cwd: Path, env: dict, recipe_name: str, point: KillPoint) -> bool:
    """Start the run, SIGKILL it at `point`; True if it was still running when killed."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [*CLI, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
    )
    assert proc.stdout is not None
    try:
        if point.after_lines == 0:
            time.sleep(max(0.0, start + point.delay - time.monotonic()))
        else:
            seen = 0
            for line in proc.stdout:
                seen += is_progress(line, recipe_name)
                if seen == point.after_lines:
                    break
            time.sleep(point.delay)
        running = proc.poll() is None
        proc.kill()
    finally:
        proc.wait(timeout=60)
        proc.stdout.close()
    return running


# -- destination helpers --------------------------------------------------------------------
def target_rows(db: Any, schema: str, key: str) -> list[tuple[Any, ...]]:
    return query(db, f'SELECT * FROM "{schema}".target ORDER BY {key}, id')


def prepare_schema(db: Any, schema: str, mode: Mode) -> None:
    query(db, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    query(db, f'CREATE SCHEMA "{schema}"')
    if mode.seed_old_rows:
        query(
            db,
            f'CREATE TABLE "{schema}".target (id bigint, name text, amount numeric(12,2), '
            "updated_at timestamptz)",
        )
        cursor = db.cursor()
        cursor.executemany(f'INSERT INTO "{schema}".target VALUES (%s, %s, %s, %s)', OLD_ROWS)


def make_recipe(tmp: Path, mode: Mode, schema: str, keys: dict[str, Any]) -> Path:
    recipe = {
        "name": f"crash_{mode.name}",
        "source": mode.source(tmp, keys),
        "transform": {"steps": mode.transform},
        "destination": {
            "type": "postgres",
            **keys,
            "table": f"{schema}.target",
            "write_mode": mode.name,
            **mode.destination,
        },
        "runtime": {"batch_size": BATCH_SIZE},
    }
    return write_recipe(tmp / f"{schema}.yaml", recipe)


@dataclass
class Trial:
    point: KillPoint
    running_at_kill: bool = False
    rows_at_kill: int = 0
    old_table_at_kill: bool = False
    complete_at_kill: bool = False


@pytest.mark.parametrize("mode_name", list(MODES))
def test_kill_at_random_points_then_rerun_matches_a_clean_run(
    tmp_path: Path,
    env: dict,
    db: Any,
    postgres_server: Any,
    postgres_database: str,
    mode_name: str,
) -> None:
    mode = MODES[mode_name]
    keys = connection_keys(postgres_server, postgres_database)
    write_csv_files(tmp_path / "in")
    create_events(db)
    recipe_name = f"crash_{mode.name}"

    def args(schema: str) -> list[str]:
        recipe = make_recipe(tmp_path, mode, schema, keys)
        return ["run", recipe.name, "--state-dir", f"state_{schema}"]

    prepare_schema(db, "reference", mode)
    timeline = clean_run(args("reference"), tmp_path, env, recipe_name)
    reference = target_rows(db, "reference", mode.key)
    assert len(reference) == (MERGE_KEYS if mode.name == "merge" else CSV_FILES * CSV_ROWS)

    rng = random.Random(f"{SEED}-{mode.name}")
    trials = [Trial(point) for point in kill_points(timeline, rng)]

    def connected(action: Callable[[Any], Any]) -> Any:
        """Run `action(connection)` on a connection of its own (one per worker thread)."""
        conn = postgres_server.connect(postgres_database)
        conn.autocommit = True
        try:
            query(conn, "SET TimeZone = 'UTC'")
            return action(conn)
        finally:
            conn.close()

    def inspect_after_kill(conn: Any, trial: Trial, schema: str) -> None:
        exists = query(conn, "SELECT to_regclass(%s)", (f"{schema}.target",))[0][0]
        rows = target_rows(conn, schema, mode.key) if exists else []
        trial.rows_at_kill = len(rows)
        trial.complete_at_kill = rows == reference
        if mode.seed_old_rows:
            # Overwrite is atomic: the old table or the new one, never a half-loaded one.
            trial.old_table_at_kill = [r[0] for r in rows] == [r[0] for r in OLD_ROWS]
            assert trial.old_table_at_kill or trial.complete_at_kill, (
                f"overwrite killed at {trial.point} left {len(rows)} rows visible"
            )

    def run_trial(index: int) -> None:
        trial, schema = trials[index], f"trial_{index}"
        connected(lambda conn: prepare_schema(conn, schema, mode))
        trial.running_at_kill = killed_run(args(schema), tmp_path, env, recipe_name, trial.point)
        connected(lambda conn: inspect_after_kill(conn, trial, schema))
        code, out, err = run_cli(args(schema), tmp_path, env)
        assert code == 0, f"re-run after {trial.point} failed:\n{out}\n{err}"

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(run_trial, range(len(trials))))

    report = (
        f"clean run: {len(timeline.lines)} batches from {timeline.lines[0]:.2f}s to "
        f"{timeline.lines[-1]:.2f}s, exit at {timeline.end:.2f}s; kills (at, after line, "
        f"running, rows): "
        + str(
            [
                (round(t.point.at, 2), t.point.after_lines, t.running_at_kill, t.rows_at_kill)
                for t in trials
            ]
        )
    )
    for index in range(len(trials)):
        schema = f"trial_{index}"
        assert target_rows(db, schema, mode.key) == reference, (
            f"{mode.name}: trial {index} (kill point {trials[index].point}) differs from the "
            f"clean run; trials: {report}"
        )
        leftovers = query(
            db,
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE '\\_dl\\_%%'",
            (schema,),
        )
        assert leftovers == [], leftovers
    assert sum(t.running_at_kill for t in trials) >= KILLS // 2, report
    if mode.seed_old_rows:
        assert any(t.running_at_kill and t.old_table_at_kill for t in trials), report
    else:
        partial = [t for t in trials if t.rows_at_kill and not t.complete_at_kill]
        assert partial, f"no kill landed in the middle of the load: {report}"


# -- Postgres sources through the CLI --------------------------------------------------------
def checksum(rows: list[tuple[Any, ...]]) -> str:
    """md5 over (id, name, amount, updated_at in UTC), ordered by id, NULL kept apart from ''."""
    digest = hashlib.md5()
    for id_, name, amount, updated_at in sorted(rows, key=lambda r: r[0]):
        amount = None if amount is None else Decimal(amount).quantize(Decimal("0.01"))
        at = None if updated_at is None else updated_at.astimezone(UTC).isoformat()
        digest.update(repr((int(id_), name, str(amount), at)).encode())
    return digest.hexdigest()


def test_postgres_to_postgres_duckdb_and_parquet(
    tmp_path: Path, env: dict, db: Any, postgres_server: Any, postgres_database: str
) -> None:
    keys = connection_keys(postgres_server, postgres_database)
    create_events(db)
    query(db, "UPDATE events SET name = NULL WHERE id % 11 = 0")
    query(db, "UPDATE events SET name = '' WHERE id % 11 = 1")
    columns = "id, name, amount, updated_at"
    source = {"type": "postgres", **keys, "query": f"SELECT {columns} FROM events"}
    recipes = {
        "to_pg": {"type": "postgres", **keys, "table": "copy.events"},
        "to_duckdb": {"type": "duckdb", "database": "warehouse.duckdb", "table": "events"},
        "to_parquet": {"type": "filestore", "path": "parquet", "format": "parquet"},
    }
    paths = [
        write_recipe(
            tmp_path / f"{name}.yaml",
            {
                "name": name,
                "source": source,
                "destination": destination,
                "runtime": {"batch_size": 500},
            },
        ).name
        for name, destination in recipes.items()
    ]
    code, out, err = run_cli(["run", *paths, "--state-dir", ".state"], tmp_path, env)
    assert code == 0, f"{out}\n{err}"

    source_rows = query(db, f"SELECT {columns} FROM events")
    expected = checksum(source_rows)
    assert len(source_rows) == EVENTS

    sql_checksum = (
        "SELECT count(*), md5(string_agg(format('%%L|%%L|%%L|%%L', id, name, amount, "
        "updated_at), E'\\n' ORDER BY id)) FROM {}"
    )
    assert query(db, sql_checksum.format("copy.events")) == query(db, sql_checksum.format("events"))
    assert checksum(query(db, f"SELECT {columns} FROM copy.events")) == expected

    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        duck_rows = con.execute(f"SELECT {columns} FROM events").fetchall()
    finally:
        con.close()
    assert len(duck_rows) == EVENTS
    assert checksum(duck_rows) == expected

    files = [p for p in (tmp_path / "parquet").glob("*.parquet") if not p.name.startswith("_")]
    table = pa.concat_tables([pq.read_table(p) for p in files])
    assert table.num_rows == EVENTS
    assert table.schema.field("amount").type == pa.decimal128(12, 2)
    parquet_rows = [tuple(row.values()) for row in table.select(columns.split(", ")).to_pylist()]
    assert checksum(parquet_rows) == expected


def test_failing_run_does_not_print_the_password(
    tmp_path: Path, env: dict, postgres_server: Any, postgres_database: str
) -> None:
    wrong = "Wr0ng-Cli-Pa55-7d1e"
    keys = connection_keys(postgres_server, postgres_database)
    recipe = write_recipe(
        tmp_path / "bad.yaml",
        {
            "name": "bad_password",
            "source": {"type": "postgres", **keys, "table": "events"},
            "destination": {"type": "postgres", **keys, "table": "copy"},
        },
    )
    code, out, err = run_cli(
        ["run", recipe.name, "--state-dir", ".state"], tmp_path, {**env, PASSWORD_ENV: wrong}
    )
    assert code == 1, f"{out}\n{err}"
    assert wrong not in out + err
    assert postgres_server.password not in out + err
    text = " ".join((out + err).split())
    assert "ConnectorError" in text
    assert f"127.0.0.1:{postgres_server.port}/{postgres_database}" in text
    assert "Traceback" not in text
