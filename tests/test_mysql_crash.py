"""MariaDB through the CLI: SIGKILL at points spread over append, overwrite and merge loads into
MariaDB, each followed by a re-run that must leave the table identical to a clean run's: no row
lost, none duplicated, no staging table left.

The points: a batch read, a batch written (loaded into the run's stage), inside a LOAD DATA
(the server runs it and waits for the file), inside the commit's transaction (rows moved, state
row written, not committed), after the destination's commit but before the state mirror is
saved, after a whole commit; under overwrite also each step of the swap (pending state
committed, the RENAME done, the pending state settled). Besides these fixed points each mode
draws a few more from a seeded random generator, so the kills land at the same places every run.
Append and overwrite read CSV files; merge reads a Postgres table whose keys repeat across
batches and whose cursor values tie in threes.

Every run is `python -m dataloader run RECIPE --state-dir DIR` in a subprocess; the recipes take
the passwords from `{{ env_var(…) }}`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    Gate,
    after_commit,
    destination_committed_gate,
    kill_at_gate,
    mid_load_gate,
    mysql_gate,
    read_gate,
    run_cli,
    run_counting_cli,
    write_recipe,
    written_gate,
)

MYSQL_PASSWORD_ENV = "MYSQL_PASSWORD_TEST"
PG_PASSWORD_ENV = "PGPASSWORD_TEST"
WORKERS = 3  # trials in flight at once (each is a killed run, then a re-run)
BATCH_SIZE = 40
CSV_FILES, CSV_ROWS = 4, 300  # 1,200 rows: 30 batches
EVENTS, MERGE_KEYS = 1200, 350  # the Postgres source: 30 batches, cursor ties in threes
RANDOM_GATES = 2  # per mode, on top of the fixed ones
SEED = 15


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture
def env(cli_env: dict, mariadb_server: Any, postgres_server: Any) -> dict:
    return {
        **cli_env,
        MYSQL_PASSWORD_ENV: mariadb_server.password,
        PG_PASSWORD_ENV: postgres_server.password,
    }


def query(db: Any, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    cursor = db.cursor()
    cursor.execute(sql, params)
    return list(cursor.fetchall()) if cursor.description else []


@pytest.fixture
def db(mariadb_server: Any, mariadb_database: str) -> Any:
    connection = mariadb_server.connect(mariadb_database, autocommit=True)
    query(connection, "SET SESSION time_zone = '+00:00'")
    try:
        yield connection
    finally:
        connection.close()


def mysql_keys(server: Any, database: str) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "database": database,
        "user": server.connection_settings()["user"],
        "password": "{{ env_var('" + MYSQL_PASSWORD_ENV + "') }}",
    }


def pg_keys(server: Any, database: str) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "database": database,
        "user": "postgres",
        "password": "{{ env_var('" + PG_PASSWORD_ENV + "') }}",
    }


# -- source data ---------------------------------------------------------------------------
def write_csv_files(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for f in range(CSV_FILES):
        lines = ["id,name,amount,updated_at"]
        for r in range(CSV_ROWS):
            i = f * CSV_ROWS + r + 1
            name = f'"name {i}, with ""quotes"" and \\ tab\t"' if i % 17 == 0 else f"name {i}"
            lines.append(f"{i},{name},{i * 1.25:.2f},2024-01-01 00:{i // 60 % 60:02d}:{i % 60:02d}")
        (directory / f"part{f:02d}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def create_events(pg: Any) -> None:
    cursor = pg.cursor()
    cursor.execute("DROP TABLE IF EXISTS events")
    cursor.execute(
        "CREATE TABLE events (id int PRIMARY KEY, key int, name text, amount numeric(12,2), "
        "updated_at timestamptz)"
    )
    # Three rows per updated_at value (ties), never two of one key among them, so the latest
    # row of a key is well defined; keys repeat across the table (updates for merge).
    cursor.execute(
        "INSERT INTO events SELECT i, (i * 7919) %% %s, "
        "'event ' || i || CASE WHEN i %% 13 = 0 THEN E', \"q\"\\n2nd line\\t\\\\' ELSE '' END, "
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
    source: Callable[[dict[str, Any]], dict[str, Any]]
    destination: dict[str, Any] = field(default_factory=dict)
    transform: list[dict[str, Any]] = field(default_factory=list)
    seed_old_rows: bool = False
    # Where to kill: a call between 0 and 1 is a fraction of a clean run's calls, 0 the last.
    gates: list[Gate] = field(default_factory=list)


def csv_source(keys: dict[str, Any]) -> dict[str, Any]:
    return {"type": "filestore", "path": "in/*.csv"}  # relative: the CLI runs in tmp_path


def incremental_csv_source(keys: dict[str, Any]) -> dict[str, Any]:
    # Incremental, so that a run killed after its last commit leaves nothing to re-run; a
    # non-incremental append loads every file again on each run, by definition.
    return {**csv_source(keys), "incremental": {"strategy": "modified_time"}}


def events_source(keys: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "postgres",
        **keys,
        "table": "events",
        "incremental": {"cursor_column": "updated_at"},
    }


def in_transaction_gate(call: float) -> Gate:
    """Inside a commit's transaction: rows moved into the table, state row written, no COMMIT."""
    return mysql_gate("in-transaction", "_save_state", call, "after")


def random_gates(mode: str, count: int) -> list[Gate]:
    """`count` gates of the append/merge protocol at seeded random fractions of their calls."""
    draw = random.Random(f"{SEED}:{mode}")
    kinds: list[Callable[[float], Gate]] = [
        read_gate,
        mid_load_gate,
        lambda call: written_gate("mysql", call),
        in_transaction_gate,
        lambda call: destination_committed_gate("mysql", call),
        after_commit,
    ]
    return [draw.choice(kinds)(round(draw.uniform(0.02, 0.98), 2)) for _ in range(count)]


# Overwrite's swap, counted from the end of a clean run (its one commit is the run's last).
# `_publish_overwrite` commits the pending state, RENAMEs, then `_settle_pending` runs five
# statements (`_execute`): the state table's existence, its row, the table's comment, the UPDATE,
# the DROP of the replaced table. `inspect_after_kill` checks each kill landed where named.
OVERWRITE_SWAP = [
    mysql_gate("pending-in-transaction", "_save_state", 0, "after"),
    mysql_gate("pending-committed", "_execute", -5, "before"),  # the RENAME not sent
    mysql_gate("renamed", "_settle_pending", 0, "before"),
]
SWAPPED_STEPS = ("renamed", "commit", "committed")  # overwrite: the new table is in place

MODES = {
    "append": Mode(
        "append",
        "id",
        incremental_csv_source,
        transform=[CAST],
        gates=[
            read_gate(0.05),
            mid_load_gate(0.15),
            written_gate("mysql", 0.33),
            in_transaction_gate(0.4),
            destination_committed_gate("mysql", 0.5),
            after_commit(0.75),
            after_commit(0),
            *random_gates("append", RANDOM_GATES),
        ],
    ),
    "overwrite": Mode(
        "overwrite",
        "id",
        csv_source,
        transform=[CAST],
        seed_old_rows=True,
        gates=[
            written_gate("mysql", 1),
            mid_load_gate(0.25),
            read_gate(0.5),
            mid_load_gate(0),
            written_gate("mysql", 0.85),
            *OVERWRITE_SWAP,
            destination_committed_gate("mysql", 0),
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
            mid_load_gate(0.2),
            written_gate("mysql", 0.43),
            in_transaction_gate(0.5),
            destination_committed_gate("mysql", 0.6),
            after_commit(0.8),
            after_commit(0),
            *random_gates("merge", RANDOM_GATES),
        ],
    ),
}


# -- destination helpers --------------------------------------------------------------------
def target_rows(db: Any, schema: str, key: str) -> list[tuple[Any, ...]]:
    return query(
        db, f"SELECT id, name, amount, updated_at FROM `{schema}`.target ORDER BY `{key}`, id"
    )


def prepare_schema(db: Any, schema: str, mode: Mode) -> None:
    query(db, f"DROP DATABASE IF EXISTS `{schema}`")
    query(db, f"CREATE DATABASE `{schema}` CHARACTER SET utf8mb4")
    if mode.seed_old_rows:
        query(
            db,
            f"CREATE TABLE `{schema}`.target (id BIGINT, name TEXT, amount DECIMAL(12,2), "
            "updated_at DATETIME(6))",
        )
        db.cursor().executemany(f"INSERT INTO `{schema}`.target VALUES (%s, %s, %s, %s)", OLD_ROWS)


def pending_run(db: Any, schema: str) -> str | None:
    exists = query(
        db,
        "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (schema, "_dataloader_state"),
    )
    rows = query(db, f"SELECT pending_run FROM `{schema}`._dataloader_state") if exists else []
    return rows[0][0] if rows else None


def leftovers(db: Any, schema: str) -> list[tuple[Any, ...]]:
    return query(
        db,
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
        "AND TABLE_NAME LIKE '\\_dl\\_%%'",
        (schema,),
    )


@dataclass
class Trial:
    gate: Gate
    schema: str
    rows_at_kill: int = 0
    old_table_at_kill: bool = False
    complete_at_kill: bool = False
    pending_at_kill: bool = False


@pytest.mark.parametrize("mode_name", list(MODES))
def test_kill_at_gates_then_rerun_matches_a_clean_run(
    tmp_path: Path,
    env: dict,
    db: Any,
    mariadb_server: Any,
    mariadb_database: str,
    postgres_server: Any,
    postgres_database: str,
    mode_name: str,
) -> None:
    mode = MODES[mode_name]
    source_keys = pg_keys(postgres_server, postgres_database)
    write_csv_files(tmp_path / "in")
    pg = postgres_server.connect(postgres_database)
    pg.autocommit = True
    try:
        create_events(pg)
    finally:
        pg.close()

    def args(schema: str) -> list[str]:
        recipe = {
            "name": f"crash_{mode.name}",
            "source": mode.source(source_keys),
            "transform": {"steps": mode.transform},
            "destination": {
                "type": "mysql",
                **mysql_keys(mariadb_server, mariadb_database),
                "table": f"{schema}.target",
                "write_mode": mode.name,
                **mode.destination,
            },
            # A commit at every `batch_size` rows, never early after a slow batch: every run
            # makes the same calls, so the gates stop at the same places.
            "runtime": {"batch_size": BATCH_SIZE, "commit_interval_seconds": 3600},
        }
        path = write_recipe(tmp_path / f"{schema}.yaml", recipe)
        return ["run", path.name, "--state-dir", f"state_{schema}"]

    reference_schema = f"{mariadb_database}_ref"
    prepare_schema(db, reference_schema, mode)
    targets = list(dict.fromkeys(gate.target for gate in mode.gates))
    (code, out, err), counts = run_counting_cli(args(reference_schema), tmp_path, env, targets)
    assert code == 0, f"{out}\n{err}"
    reference = target_rows(db, reference_schema, mode.key)
    assert len(reference) == (MERGE_KEYS if mode.name == "merge" else CSV_FILES * CSV_ROWS)

    trials = [
        Trial(gate.at_counts(counts), f"{mariadb_database}_t{index}")
        for index, gate in enumerate(mode.gates)
    ]

    def connected(action: Callable[[Any], Any]) -> Any:
        """Run `action(connection)` on a connection of its own (one per worker thread)."""
        conn = mariadb_server.connect(mariadb_database, autocommit=True)
        try:
            query(conn, "SET SESSION time_zone = '+00:00'")
            return action(conn)
        finally:
            conn.close()

    def inspect_after_kill(conn: Any, trial: Trial) -> None:
        exists = query(
            conn,
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'target'",
            (trial.schema,),
        )
        rows = target_rows(conn, trial.schema, mode.key) if exists else []
        trial.rows_at_kill = len(rows)
        trial.complete_at_kill = rows == reference
        trial.pending_at_kill = pending_run(conn, trial.schema) is not None
        if mode.seed_old_rows:
            # Overwrite is atomic: the old table or the new one, never a half-loaded one.
            trial.old_table_at_kill = [r[0] for r in rows] == [r[0] for r in OLD_ROWS]
            assert trial.old_table_at_kill or trial.complete_at_kill, (
                f"overwrite killed at {trial.gate} left {len(rows)} rows visible"
            )
        if trial.gate.step in ("pending-committed", "renamed"):
            # The kill fell between the swap's steps: a pending state awaits settling.
            assert trial.pending_at_kill, f"no pending state after a kill at {trial.gate}"

    def run_trial(trial: Trial) -> None:
        connected(lambda conn: prepare_schema(conn, trial.schema, mode))
        kill_at_gate(args(trial.schema), tmp_path, env, trial.gate)
        connected(lambda conn: inspect_after_kill(conn, trial))
        code, out, err = run_cli(args(trial.schema), tmp_path, env)
        assert code == 0, f"re-run after a kill at {trial.gate} failed:\n{out}\n{err}"

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(run_trial, trials))

    report = "kills (gate, rows left, complete): " + str(
        [(t.gate.name, t.rows_at_kill, t.complete_at_kill) for t in trials]
    )
    for trial in trials:
        assert target_rows(db, trial.schema, mode.key) == reference, (
            f"{mode.name}: killed at {trial.gate}, the re-run differs from the clean run; "
            f"trials: {report}"
        )
        assert leftovers(db, trial.schema) == [], trial.gate
        assert pending_run(db, trial.schema) is None, trial.gate
    print(f"{mode.name}: {report}")
    if mode.seed_old_rows:
        # Before the RENAME readers see the old table; from the RENAME on, the new one.
        for trial in trials:
            swapped = trial.gate.step in SWAPPED_STEPS
            assert trial.complete_at_kill if swapped else trial.old_table_at_kill, report
    else:
        partial = [t for t in trials if t.rows_at_kill and not t.complete_at_kill]
        assert partial, f"no kill landed in the middle of the load: {report}"


# -- append: rows wait in the table's transaction ------------------------------------------
def small_files(directory: Path) -> None:
    """Twelve files of ten rows; from the sixth on they carry one more column, `extra`."""
    directory.mkdir(parents=True, exist_ok=True)
    for f in range(12):
        wide = f >= 5
        lines = ["id,name" + (",extra" if wide else "")]
        for r in range(10):
            i = f * 10 + r + 1
            lines.append(f"{i},name {i}" + (f",x{i}" if wide else ""))
        (directory / f"part{f:02d}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_append_column_added_while_rows_wait_then_killed_and_rerun(
    tmp_path: Path, env: dict, db: Any, mariadb_server: Any, mariadb_database: str
) -> None:
    """A column appearing in a batch while earlier batches wait uncommitted in the table (the
    ALTER would commit them without their state): the run rolls them back, alters, loads them
    again. Killed just after, the re-run still matches a clean run."""
    small_files(tmp_path / "in")

    def args(schema: str) -> list[str]:
        recipe = {
            "name": "widening",
            "source": {**incremental_csv_source({}), "path": "in/*.csv"},
            "destination": {
                "type": "mysql",
                **mysql_keys(mariadb_server, mariadb_database),
                "table": f"{schema}.target",
            },
            # Ten-row files grouped into commits of 40 rows: the sixth file's new column comes
            # while the fifth file's rows wait in the transaction.
            "runtime": {"batch_size": 40, "commit_interval_seconds": 3600},
        }
        return [
            "run",
            write_recipe(tmp_path / f"{schema}.yaml", recipe).name,
            "--state-dir",
            schema,
        ]

    clean, killed = f"{mariadb_database}_clean", f"{mariadb_database}_killed"
    for schema in (clean, killed):
        query(db, f"CREATE DATABASE `{schema}`")
    gate = written_gate("mysql", 0.5)
    loads = f"{gate.target.rpartition('.')[0]}._load_file"
    (code, out, err), counts = run_counting_cli(args(clean), tmp_path, env, [gate.target, loads])
    assert code == 0, f"{out}\n{err}"
    assert counts[loads] == 13, counts  # twelve files, and the fifth once more after the ALTER
    expected = query(db, f"SELECT id, name, extra FROM `{clean}`.target ORDER BY id")
    assert len(expected) == 120
    assert expected[0] == (1, "name 1", None) and expected[-1] == (120, "name 120", "x120")

    kill_at_gate(args(killed), tmp_path, env, gate.at_counts(counts))  # the sixth file loaded
    assert query(db, f"SELECT COUNT(*) FROM `{killed}`.target") == [(40,)]
    code, out, err = run_cli(args(killed), tmp_path, env)
    assert code == 0, f"{out}\n{err}"
    assert query(db, f"SELECT id, name, extra FROM `{killed}`.target ORDER BY id") == expected


def test_append_of_a_duplicate_key_fails_and_keeps_the_table(
    tmp_path: Path, env: dict, db: Any, mariadb_server: Any, mariadb_database: str
) -> None:
    """LOAD DATA LOCAL only warns on a duplicate key (and skips the row): the append fails on
    the warning, naming it, and nothing of the batch is kept."""
    query(db, "CREATE TABLE target (id BIGINT PRIMARY KEY, name TEXT)")
    query(db, "INSERT INTO target VALUES (2, 'kept')")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.csv").write_text("id,name\n1,one\n2,two\n3,three\n")
    recipe = {
        "name": "duplicate",
        "source": csv_source({}),
        "destination": {
            "type": "mysql",
            **mysql_keys(mariadb_server, mariadb_database),
            "table": "target",
        },
    }
    path = write_recipe(tmp_path / "duplicate.yaml", recipe)
    code, out, err = run_cli(["run", path.name, "--state-dir", "state"], tmp_path, env)
    assert code == 1, f"{out}\n{err}"
    assert "Duplicate entry '2'" in " ".join((out + err).split())
    assert mariadb_server.password not in out + err
    assert query(db, "SELECT id, name FROM target ORDER BY id") == [(2, "kept")]
