"""Postgres through the CLI: SIGKILL at points spread over append, overwrite and merge loads into
Postgres (gates: a batch read, a batch written, the middle of a COPY, a commit before its state
mirror is saved, a whole commit), each followed by a re-run that must leave the table identical to a clean run; Postgres
sources into Postgres, DuckDB and Parquet; and a failing run that must not print the password.

Every run is `python -m dataloader run RECIPE --state-dir DIR` in a subprocess; the recipes take
the password from `{{ env_var('PGPASSWORD_TEST') }}`.
"""

from __future__ import annotations

import hashlib
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
from e2e_support import (
    Gate,
    after_commit,
    destination_committed_gate,
    kill_at_gate,
    mid_copy_gate,
    read_gate,
    run_cli,
    run_counting_cli,
    write_recipe,
    written_gate,
)

PASSWORD_ENV = "PGPASSWORD_TEST"
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
    # Where to kill: a call between 0 and 1 is a fraction of a clean run's calls, 0 the last.
    gates: list[Gate] = field(default_factory=list)


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
    "append": Mode(
        "append",
        "id",
        incremental_csv_source,
        transform=[CAST],
        gates=[
            read_gate(0.05),
            mid_copy_gate(0.15),
            written_gate("postgres", 0.33),
            destination_committed_gate("postgres", 0.5),
            after_commit(0.75),
            after_commit(0),
        ],
    ),
    "overwrite": Mode(
        "overwrite",
        "id",
        csv_source,
        transform=[CAST],
        seed_old_rows=True,
        gates=[
            written_gate("postgres", 1),
            mid_copy_gate(0.25),
            read_gate(0.5),
            written_gate("postgres", 0.85),
            destination_committed_gate("postgres", 0),
            after_commit(0),
        ],
    ),
    "merge": Mode(
        "merge",
        "key",
        events_source,
        destination={"merge_keys": ["key"]},
        gates=[
            read_gate(0.07),
            mid_copy_gate(0.2),
            written_gate("postgres", 0.43),
            destination_committed_gate("postgres", 0.6),
            after_commit(0.8),
            after_commit(0),
        ],
    ),
}


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
        # A commit at every `batch_size` rows, never early after a slow batch: every run makes
        # the same calls, so the gates stop at the same places.
        "runtime": {"batch_size": BATCH_SIZE, "commit_interval_seconds": 3600},
    }
    return write_recipe(tmp / f"{schema}.yaml", recipe)


@dataclass
class Trial:
    gate: Gate
    rows_at_kill: int = 0
    old_table_at_kill: bool = False
    complete_at_kill: bool = False


@pytest.mark.parametrize("mode_name", list(MODES))
def test_kill_at_gates_then_rerun_matches_a_clean_run(
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

    def args(schema: str) -> list[str]:
        recipe = make_recipe(tmp_path, mode, schema, keys)
        return ["run", recipe.name, "--state-dir", f"state_{schema}"]

    prepare_schema(db, "reference", mode)
    targets = list(dict.fromkeys(gate.target for gate in mode.gates))
    (code, out, err), counts = run_counting_cli(args("reference"), tmp_path, env, targets)
    assert code == 0, f"{out}\n{err}"
    reference = target_rows(db, "reference", mode.key)
    assert len(reference) == (MERGE_KEYS if mode.name == "merge" else CSV_FILES * CSV_ROWS)

    trials = [Trial(gate.at_counts(counts)) for gate in mode.gates]

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
                f"overwrite killed at {trial.gate} left {len(rows)} rows visible"
            )

    def run_trial(index: int) -> None:
        trial, schema = trials[index], f"trial_{index}"
        connected(lambda conn: prepare_schema(conn, schema, mode))
        kill_at_gate(args(schema), tmp_path, env, trial.gate)
        connected(lambda conn: inspect_after_kill(conn, trial, schema))
        code, out, err = run_cli(args(schema), tmp_path, env)
        assert code == 0, f"re-run after a kill at {trial.gate} failed:\n{out}\n{err}"

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(run_trial, range(len(trials))))

    report = "kills (gate, rows left): " + str(
        [(t.gate.name, t.rows_at_kill, t.complete_at_kill) for t in trials]
    )
    for index in range(len(trials)):
        schema = f"trial_{index}"
        assert target_rows(db, schema, mode.key) == reference, (
            f"{mode.name}: trial {index} (killed at {trials[index].gate}) differs from the "
            f"clean run; trials: {report}"
        )
        leftovers = query(
            db,
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE '\\_dl\\_%%'",
            (schema,),
        )
        assert leftovers == [], leftovers
    print(f"{mode.name}: {report}")
    if mode.seed_old_rows:
        # Before Postgres committed, readers saw the old table; from its commit on, the new one.
        for trial in trials:
            swapped = trial.gate.step in ("commit", "committed")
            assert trial.complete_at_kill if swapped else trial.old_table_at_kill, report
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
