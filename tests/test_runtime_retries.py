"""Engine retries against real failures: connections reset by a TCP proxy in the middle of a
load, a PostgreSQL server restarted under a running load, permanent errors (never retried) and
`attempts: 0` (a transient failure fails the run).

The loads run in-process through the Python API, so the `RunResult` (retries per stage) can be
inspected. A retry resumes from the last commit, so the destination must end up with exactly
the reference rows: none lost, none duplicated.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from e2e_support import write_recipe

from dataloader import (
    DataLoaderError,
    LocalStateBackend,
    RunResult,
    State,
    from_yaml,
    run_recipe,
)
from dataloader_postgres.testing import PostgresServer

FILES, ROWS_PER_FILE, BATCH = 6, 400, 100  # 2,400 rows in 24 batches
EVENTS = 3000


# -- a TCP proxy that can reset every connection --------------------------------------------
class FaultProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`upstream_port` (asyncio, in a thread).

    `reset_after_bytes(n, ...)` resets (TCP RST) every open connection once when the traffic
    (both directions) since the call reaches `n` bytes — the chunk that reaches it is dropped —
    and again at each later cumulative count; `reset_after(seconds)` does it once after a delay.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.bytes = 0
        self.resets = 0
        self.connections = 0
        self._thresholds: list[int] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port: int = self._server.sockets[0].getsockname()[1]

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    def reset_after_bytes(self, *counts: int) -> None:
        with self._lock:
            self._thresholds = sorted(self.bytes + count for count in counts)

    def reset_after(self, seconds: float) -> None:
        self._loop.call_soon_threadsafe(self._loop.call_later, seconds, self._reset_all)

    def close(self) -> None:
        async def shut() -> None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()

        self._call(shut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _reset_all(self) -> None:
        self.resets += 1
        for writer in list(self._writers):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                # Linger 0: closing sends RST, as a crashed peer or a middlebox would.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self._writers.clear()

    def _passes(self, size: int) -> bool:
        """Count `size` bytes; False (after resetting everything) if they reach a threshold."""
        with self._lock:
            self.bytes += size
            due = bool(self._thresholds) and self.bytes >= self._thresholds[0]
            if due:
                self._thresholds.pop(0)
        if due:
            self._reset_all()
        return not due

    async def _handle(self, client_reader: Any, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(
                "127.0.0.1", self.upstream_port
            )
        except OSError:
            client_writer.transport.abort()
            return
        self.connections += 1
        pair = {client_writer, server_writer}
        self._writers |= pair

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    if writer not in self._writers or not self._passes(len(data)):
                        return
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                for other in pair:
                    other.transport.abort()
                self._writers -= pair

        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))


@pytest.fixture
def proxy(postgres_server: PostgresServer) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(postgres_server.port)
    try:
        yield fault_proxy
    finally:
        fault_proxy.close()


# -- data and recipes ------------------------------------------------------------------------
def write_csv_files(directory: Path) -> list[tuple]:
    """CSV files in `directory`; the rows they hold, as (id, file, line, name, amount) tuples."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    for f in range(FILES):
        lines = ["id,file,line,name,amount"]
        for line in range(ROWS_PER_FILE):
            row_id = f * ROWS_PER_FILE + line
            name = f"row {row_id}, file {f}"
            lines.append(f'{row_id},{f},{line},"{name}",{row_id * 3 % 1000}')
            rows.append((row_id, f, line, name, row_id * 3 % 1000))
        path = directory / f"part-{f:02d}.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.utime(path, (1_700_000_000 + f, 1_700_000_000 + f))
    return rows


def pg_keys(server: PostgresServer, database: str, port: int | None = None) -> dict[str, Any]:
    return {**server.connection_settings(database), "port": port or server.port}


def files_to_postgres(
    tmp_path: Path, keys: dict[str, Any], retries: dict[str, Any], name: str = "retry_dest"
) -> Path:
    return write_recipe(
        tmp_path / f"{name}.yaml",
        {
            "name": name,
            "source": {"type": "filestore", "path": str(tmp_path / "in" / "*.csv")},
            "destination": {"type": "postgres", **keys, "table": "loaded"},
            "runtime": {"batch_size": BATCH, "retries": retries},
        },
    )


def run(recipe: Path, tmp_path: Path, **kwargs: Any) -> RunResult:
    return run_recipe(from_yaml(recipe), LocalStateBackend(tmp_path / ".state"), **kwargs)


def retries(result: RunResult) -> int:
    return sum(stage.retries for stage in result.stages.values())


def last_run(tmp_path: Path, name: str) -> dict[str, Any]:
    """The newest run summary in the recipe's state (kept for failed runs too)."""
    history = LocalStateBackend(tmp_path / ".state").load(name)["checkpoints"]
    return history[-1]


def pg_rows(server: PostgresServer, database: str, sql: str) -> list[tuple]:
    connection = server.connect(database)
    try:
        cursor = connection.cursor()
        cursor.execute(sql)
        return cursor.fetchall()
    finally:
        connection.close()


def pg_execute(server: PostgresServer, database: str, *statements: str) -> None:
    connection = server.connect(database)
    connection.autocommit = True
    try:
        for statement in statements:
            connection.cursor().execute(statement)
    finally:
        connection.close()


LOADED = "SELECT id, file, line, name, amount FROM loaded ORDER BY id"


def assert_exact(rows: list[tuple], expected: list[tuple]) -> None:
    ids = [row[0] for row in rows]
    assert len(ids) == len(set(ids)), "duplicated rows"
    assert len(rows) == len(expected), f"{len(rows)} rows loaded, {len(expected)} expected"
    assert rows == expected


# -- (a) connections reset in the middle of a load ------------------------------------------
def test_destination_connections_reset_mid_load_are_retried_from_the_last_commit(
    tmp_path: Path, postgres_server: PostgresServer, postgres_database: str, proxy: FaultProxy
) -> None:
    expected = write_csv_files(tmp_path / "in")
    keys = pg_keys(postgres_server, postgres_database, port=proxy.port)
    recipe = files_to_postgres(tmp_path, keys, {"attempts": 5, "initial_backoff": 0.05})
    # The load moves ~150 kB through the proxy: reset everything at ~30 kB and ~75 kB.
    proxy.reset_after_bytes(30_000, 75_000)

    result = run(recipe, tmp_path)

    assert proxy.resets == 2, f"the proxy fired {proxy.resets} resets; the load was too short"
    assert retries(result) == 2, result.stages
    assert proxy.connections >= 3  # a fresh connection after each reset
    assert result.status == "success"
    assert result.rows_written == len(expected)  # only the last attempts' committed work counts
    assert_exact(pg_rows(postgres_server, postgres_database, LOADED), expected)
    summary = last_run(tmp_path, "retry_dest")
    assert summary["status"] == "success"
    assert sum(stage["retries"] for stage in summary["stages"].values()) == 2


def test_source_connections_reset_mid_read_are_retried_from_the_committed_cursor(
    tmp_path: Path, postgres_server: PostgresServer, postgres_database: str, proxy: FaultProxy
) -> None:
    # Cursor values in runs of three equal values: retries resume inside runs of ties.
    pg_execute(
        postgres_server,
        postgres_database,
        "CREATE TABLE events (id int PRIMARY KEY, payload text, updated_at timestamptz)",
        "INSERT INTO events SELECT i, repeat(md5(i::text), 2), "
        "timestamptz '2024-01-01 00:00:00+00' + (i / 3) * interval '1 second' "
        f"FROM generate_series(1, {EVENTS}) i",
    )
    recipe = write_recipe(
        tmp_path / "retry_source.yaml",
        {
            "name": "retry_source",
            "source": {
                "type": "postgres",
                **pg_keys(postgres_server, postgres_database, port=proxy.port),
                "table": "events",
                "incremental": {"cursor_column": "updated_at"},
            },
            "destination": {
                "type": "duckdb",
                "database": str(tmp_path / "out.duckdb"),
                "table": "events",
            },
            "runtime": {"batch_size": 200, "retries": {"attempts": 5, "initial_backoff": 0.05}},
        },
    )
    # The COPY of ~280 kB streams through the proxy: reset at ~60 kB and ~150 kB.
    proxy.reset_after_bytes(60_000, 150_000)

    result = run(recipe, tmp_path)

    assert proxy.resets == 2
    assert retries(result) == 2, result.stages
    con = duckdb.connect(str(tmp_path / "out.duckdb"), read_only=True)
    try:
        loaded = con.execute("SELECT id, payload FROM events ORDER BY id").fetchall()
    finally:
        con.close()
    expected = pg_rows(
        postgres_server, postgres_database, "SELECT id, payload FROM events ORDER BY id"
    )
    assert len(loaded) == len({row[0] for row in loaded}) == EVENTS
    assert loaded == expected
    state = State.from_dict(LocalStateBackend(tmp_path / ".state").load("retry_source"))
    newest = pg_rows(postgres_server, postgres_database, "SELECT max(updated_at) FROM events")
    assert state.cursor_values["updated_at"] == newest[0][0]


def test_a_retried_cli_run_logs_json_warnings_and_counts_retries_in_its_summary(
    tmp_path: Path,
    postgres_server: PostgresServer,
    postgres_database: str,
    proxy: FaultProxy,
    cli: Any,
) -> None:
    expected = write_csv_files(tmp_path / "in")
    keys = pg_keys(postgres_server, postgres_database, port=proxy.port)
    files_to_postgres(tmp_path, keys, {"attempts": 5, "initial_backoff": 0.05})
    proxy.reset_after_bytes(40_000)

    code, out, err = cli(
        "--log-format",
        "json",
        "--log-level",
        "info",
        "run",
        "retry_dest.yaml",
        "--state-dir",
        ".state",
    )

    assert code == 0, f"exit {code}\n{out}\n{err}"
    assert proxy.resets == 1
    records = [json.loads(line) for line in err.splitlines()]  # nothing but JSON records
    warnings = [r for r in records if r["level"] == "warning"]
    assert len(warnings) == 1, records
    assert "transient failure" in warnings[0]["message"]
    assert "retry 1 of 5" in warnings[0]["message"]
    assert warnings[0]["recipe"] == "retry_dest" and warnings[0]["stage"]
    # The connection loss itself is named, not a follow-up error of the cleanup.
    assert "server closed the connection" in warnings[0]["message"], warnings[0]
    header = next(line for line in out.splitlines() if line.startswith("┃"))
    names = [cell.strip() for cell in header.split("┃")[1:-1]]
    row = next(line for line in out.splitlines() if line.startswith("│ retry_dest"))
    cells = dict(zip(names, [cell.strip() for cell in row.split("│")[1:-1]], strict=True))
    assert cells["status"] == "ok" and cells["retries"] == "1"
    assert_exact(pg_rows(postgres_server, postgres_database, LOADED), expected)


# -- (b) the server restarts under a running load -------------------------------------------
@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
    except Exception as exc:
        server.stop()
        pytest.fail(f"could not start a dedicated PostgreSQL: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


def postmaster_pid(server: PostgresServer) -> str | None:
    assert server.base is not None
    try:
        return (server.base / "data" / "postmaster.pid").read_text().splitlines()[0]
    except (FileNotFoundError, IndexError):
        return None


def test_load_survives_a_server_restart(tmp_path: Path, own_server: PostgresServer) -> None:
    expected = write_csv_files(tmp_path / "in")
    database = own_server.create_database()
    recipe = files_to_postgres(
        tmp_path,
        pg_keys(own_server, database),
        # Enough retries to outlast a slow restart on a busy machine (~1 s apart).
        {"attempts": 40, "initial_backoff": 0.1, "max_backoff": 1.0},
    )
    assert own_server.base is not None
    data = own_server.base / "data"
    old_pid = postmaster_pid(own_server)
    restart: dict[str, Any] = {}

    def restart_server() -> None:
        restart["result"] = own_server._run(
            # `-l`: the new postmaster must not inherit the captured stdout (run() would wait).
            "pg_ctl",
            "-D",
            str(data),
            "-l",
            str(own_server.base / "server.log"),
            "-w",
            "-t",
            "60",
            "-m",
            "fast",
            "restart",
        )

    thread = threading.Thread(target=restart_server, daemon=True)

    def progress(result: RunResult) -> None:
        # After the 4th of 24 batches: restart the server from a thread, and let the load go
        # on once the old server is gone (its connection is dead; the new one may still be
        # starting, so the next attempts may be refused).
        if result.batches == 4 and not thread.is_alive() and "result" not in restart:
            thread.start()
            deadline = time.monotonic() + 30
            while postmaster_pid(own_server) == old_pid:
                assert time.monotonic() < deadline, "the server did not stop"
                time.sleep(0.01)

    result = run(recipe, tmp_path, progress=progress)
    thread.join(timeout=60)

    outcome = restart["result"]
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr
    assert postmaster_pid(own_server) not in (None, old_pid)  # it really restarted
    assert retries(result) >= 1, result.stages
    assert result.status == "success"
    assert_exact(pg_rows(own_server, database, LOADED), expected)


# -- (c) permanent errors fail at once -------------------------------------------------------
SLOW_RETRIES = {"attempts": 5, "initial_backoff": 2.0}  # a retry would cost seconds


def test_a_sql_error_in_where_fails_at_once_without_retries(
    tmp_path: Path,
    postgres_server: PostgresServer,
    postgres_database: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pg_execute(
        postgres_server,
        postgres_database,
        "CREATE TABLE events AS SELECT i AS id FROM generate_series(1, 10) i",
    )
    recipe = write_recipe(
        tmp_path / "bad_where.yaml",
        {
            "name": "bad_where",
            "source": {
                "type": "postgres",
                **pg_keys(postgres_server, postgres_database),
                "table": "events",
                "where": "no_such_column > 0",
            },
            "destination": {
                "type": "duckdb",
                "database": str(tmp_path / "out.duckdb"),
                "table": "events",
            },
            "runtime": {"retries": SLOW_RETRIES},
        },
    )
    with pytest.raises(DataLoaderError) as caught:
        run(recipe, tmp_path)

    message = str(caught.value)
    assert 'column "no_such_column" does not exist' in message
    assert "events" in message and f"/{postgres_database}" in message
    assert not [r for r in caplog.records if "transient failure" in r.getMessage()]
    summary = last_run(tmp_path, "bad_where")
    assert summary["status"] == "failed"
    assert sum(stage["retries"] for stage in summary["stages"].values()) == 0


def test_a_constraint_the_destination_enforces_fails_at_once_without_retries(
    tmp_path: Path,
    postgres_server: PostgresServer,
    postgres_database: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_csv_files(tmp_path / "in")
    # The rows fit the columns' types (the engine checks those before a write); the table's
    # CHECK, which only Postgres knows, refuses them.
    pg_execute(
        postgres_server,
        postgres_database,
        "CREATE TABLE loaded (id bigint, file bigint, line bigint, "
        "name text CHECK (name LIKE 'nope%'), amount bigint)",
    )
    recipe = files_to_postgres(
        tmp_path, pg_keys(postgres_server, postgres_database), SLOW_RETRIES, name="bad_type"
    )
    with pytest.raises(DataLoaderError) as caught:
        run(recipe, tmp_path)

    message = str(caught.value)
    assert "violates check constraint" in message, message
    assert "append write failed on loaded" in message
    assert not [r for r in caplog.records if "transient failure" in r.getMessage()]
    assert sum(s["retries"] for s in last_run(tmp_path, "bad_type")["stages"].values()) == 0
    assert pg_rows(postgres_server, postgres_database, "SELECT count(*) FROM loaded") == [(0,)]


# -- (d) attempts: 0 ------------------------------------------------------------------------
def test_with_zero_attempts_a_transient_failure_fails_the_run(
    tmp_path: Path, postgres_server: PostgresServer, postgres_database: str, proxy: FaultProxy
) -> None:
    expected = write_csv_files(tmp_path / "in")
    keys = pg_keys(postgres_server, postgres_database, port=proxy.port)
    recipe = files_to_postgres(tmp_path, keys, {"attempts": 0, "initial_backoff": 0.05})
    proxy.reset_after_bytes(30_000)

    with pytest.raises(DataLoaderError) as caught:
        run(recipe, tmp_path)

    assert proxy.resets == 1
    message = str(caught.value)
    # The message tells what happened to the connection (not a follow-up error of the cleanup).
    assert "server closed the connection" in message or "connection reset" in message.lower(), (
        message
    )
    summary = last_run(tmp_path, "retry_dest")
    assert summary["status"] == "failed"
    assert sum(stage["retries"] for stage in summary["stages"].values()) == 0
    committed = pg_rows(postgres_server, postgres_database, LOADED)
    assert 0 < len(committed) < len(expected)  # it stopped mid-load, after some commits
    assert committed == expected[: len(committed)]

    # A re-run (no more faults) resumes from the last commit: exactly the reference rows.
    result = run(recipe, tmp_path)
    assert retries(result) == 0
    assert_exact(pg_rows(postgres_server, postgres_database, LOADED), expected)
