"""The binary COPY read straight from libpq (`CopyDecoder.from_libpq`) against the pipe path
(psycopg2's `copy_expert` writing into a pipe): the same batches for every type, the same
server errors, a connection left usable after a read cut short, a lost connection reported as
the transient error it is, snapshots kept, and the pipe taken when libpq cannot be found."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from test_rust_decode import (
    ARRAY_ROWS,
    ARRAYS,
    SCALAR_ROWS,
    SCALARS,
    assert_same,
    execute,
    plans_for,
)
from test_rust_parity import EDGES, storage

from dataloader_postgres import PostgresConfig
from dataloader_postgres.connection import connect, is_transient
from dataloader_postgres.testing import PostgresServer
from dataloader_rust import copy_read
from dataloader_rust._native import CopyDecoder, CopyServerError, LibpqUnavailableError
from dataloader_rust.codec import BinaryCopyCodec

BINARY = BinaryCopyCodec()
PATHS = ["libpq", "pipe"]


@pytest.fixture
def config(postgres_server: PostgresServer, postgres_database: str) -> PostgresConfig:
    return PostgresConfig(**postgres_server.connection_settings(postgres_database), table="t")


@pytest.fixture
def conn(config: PostgresConfig) -> Iterator[Any]:
    """A connection with the connector's session settings (UTC, ISO dates…)."""
    connection = connect(config, role="source")
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
def holder(postgres_server: PostgresServer, postgres_database: str) -> Iterator[Any]:
    """A second session (autocommit): it holds the gates' advisory locks and kills backends."""
    connection = postgres_server.connect(postgres_database)
    connection.autocommit = True
    try:
        yield connection
    finally:
        connection.close()


class Paths:
    """Switches `copy_read` between the libpq path and the pipe path, and counts pipe reads."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.found = copy_read.find_libpq
        self.pipe_reads = 0
        pipe = copy_read._read_pipe

        def counted(*args: Any) -> Iterator[pa.RecordBatch]:
            self.pipe_reads += 1
            return pipe(*args)

        monkeypatch.setattr(copy_read, "_read_pipe", counted)

    def use(self, path: str) -> None:
        finder = self.found if path == "libpq" else lambda: None
        self.monkeypatch.setattr(copy_read, "find_libpq", finder)


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> Paths:
    return Paths(monkeypatch)


def read_through(
    paths: Paths, path: str, connection: Any, query: str, batch_size: int = 3
) -> list[pa.RecordBatch]:
    plans = plans_for(connection, query)
    paths.use(path)
    before = paths.pipe_reads
    try:
        return list(BINARY.read(connection, query, plans, batch_size))
    finally:
        assert paths.pipe_reads - before == (path == "pipe")
        connection.rollback()


def failure_through(paths: Paths, path: str, connection: Any, query: str) -> Exception:
    plans = plans_for(connection, query.replace("/ (g - 500)", ""))
    paths.use(path)
    rows = 0
    with pytest.raises(Exception) as caught:
        for batch in BINARY.read(connection, query, plans, 100):
            rows += batch.num_rows
    connection.rollback()
    assert rows == (400 if "g - 500" in query else 0)  # mid-stream: the full batches came first
    return caught.value


# -- the same batches ------------------------------------------------------------------------
@pytest.mark.parametrize("table", ["scalars", "arrays"])
def test_every_type_reads_the_same_through_libpq_and_the_pipe(
    conn: Any, paths: Paths, table: str
) -> None:
    if table == "scalars":
        execute(conn, "CREATE TYPE mood AS ENUM ('happy', 'sad')")
        execute(conn, SCALARS)
        execute(conn, "INSERT INTO t VALUES " + ", ".join(SCALAR_ROWS))
    else:
        execute(conn, ARRAYS)
        execute(conn, "INSERT INTO t VALUES " + ", ".join(ARRAY_ROWS))
    query = "SELECT * FROM t ORDER BY id"
    libpq = read_through(paths, "libpq", conn, query)
    assert libpq
    assert_same(libpq, read_through(paths, "pipe", conn, query))


def test_the_edges_of_dates_times_and_intervals_read_the_same(conn: Any, paths: Paths) -> None:
    libpq = read_through(paths, "libpq", conn, EDGES, batch_size=2)
    pipe = read_through(paths, "pipe", conn, EDGES, batch_size=2)
    assert [batch.num_rows for batch in libpq] == [batch.num_rows for batch in pipe] == [2, 2, 2]
    ours, theirs = pa.Table.from_batches(libpq), pa.Table.from_batches(pipe)
    assert ours.schema.equals(theirs.schema, check_metadata=True)
    for name in ours.column_names:  # as integers: Python's dates end at years 1 and 9999
        assert storage(ours.column(name)) == storage(theirs.column(name)), name


def test_a_large_read_crosses_many_messages_and_batches(conn: Any, paths: Paths) -> None:
    query = (
        "SELECT g AS id, repeat(md5(g::text), g % 7) AS pad, g * 1.5 AS half"
        " FROM generate_series(1, 50000) g"
    )
    libpq = read_through(paths, "libpq", conn, query, batch_size=7000)
    assert [batch.num_rows for batch in libpq] == [7000] * 7 + [1000]
    assert_same(libpq, read_through(paths, "pipe", conn, query, batch_size=7000))
    assert read_through(paths, "libpq", conn, query + " WHERE false") == []


# -- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1 / (g - 500) AS x FROM generate_series(1, 1000) AS g",  # mid-stream
        "SELECT no_such_column AS x FROM generate_series(1, 3) AS g",  # refused at once
    ],
)
def test_a_server_error_is_psycopg2s_as_the_pipe_raises_it(
    conn: Any, paths: Paths, query: str
) -> None:
    if "no_such_column" in query:
        plans = plans_for(conn, "SELECT 1 AS x")
        errors = []
        for path in PATHS:
            paths.use(path)
            with pytest.raises(Exception) as caught:
                list(BINARY.read(conn, query, plans, 100))
            conn.rollback()
            errors.append(caught.value)
        libpq, pipe = errors
    else:
        libpq, pipe = (failure_through(paths, path, conn, query) for path in PATHS)
    assert type(libpq) is type(pipe)
    assert str(libpq) == str(pipe)
    assert (libpq.pgcode, libpq.pgerror) == (pipe.pgcode, pipe.pgerror)  # type: ignore[attr-defined]
    assert not is_transient(libpq)
    cursor = conn.cursor()
    cursor.execute("SELECT 2")
    assert cursor.fetchone() == (2,)


def test_a_statement_timeout_mid_stream_is_query_canceled(conn: Any, holder: Any) -> None:
    import psycopg2.errors

    # Row 500 waits for an advisory lock the holder keeps: the timeout fires mid-stream.
    query = (
        "SELECT g FROM generate_series(1, 1000) AS g"
        " WHERE g < 500 OR length(pg_advisory_lock(43)::text) = 0"
    )
    plans = plans_for(conn, "SELECT 1 AS g")
    holder.cursor().execute("SELECT pg_advisory_lock(43)")
    conn.cursor().execute("SET LOCAL statement_timeout = '200ms'")
    rows = 0
    with pytest.raises(psycopg2.errors.QueryCanceled, match="statement timeout"):
        for batch in BINARY.read(conn, query, plans, 100):
            rows += batch.num_rows
    assert rows <= 400  # the rows before the lock, if the timeout did not come first
    conn.rollback()
    assert not conn.closed


# -- the connection afterwards ---------------------------------------------------------------
@pytest.mark.parametrize("autocommit", [False, True])
def test_a_consumer_closing_early_leaves_the_connection_usable(
    conn: Any, paths: Paths, autocommit: bool
) -> None:
    execute(conn, "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 200000) g")
    plans = plans_for(conn, "SELECT * FROM t")
    conn.autocommit = autocommit
    paths.use("libpq")
    batches = BINARY.read(conn, "SELECT * FROM t", plans, 1000)
    assert next(iter(batches)).num_rows == 1000
    batches.close()  # type: ignore[attr-defined]
    assert paths.pipe_reads == 0
    conn.rollback()
    cursor = conn.cursor()
    cursor.execute("SELECT count(*) FROM t")
    assert cursor.fetchone() == (200000,)


@pytest.mark.parametrize("how", ["returned to the pool", "closed"])
def test_a_reader_finalized_after_its_connection_went_leaves_it_alone(
    config: PostgresConfig, paths: Paths, how: str
) -> None:
    conn = connect(config, role="source")
    plans = plans_for(conn, "SELECT 1 AS g")
    paths.use("libpq")
    query = "SELECT g FROM generate_series(1, 200000) AS g"
    batches = BINARY.read(conn, query, plans, 1000)
    assert next(iter(batches)).num_rows == 1000
    if how == "closed":
        conn.dbapi_connection.close()
    conn.close()  # the COPY still runs: the pool's rollback (psycopg2's PQexec) reads past it
    batches.close()  # type: ignore[attr-defined]
    again = connect(config, role="source")
    try:
        cursor = again.cursor()
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    finally:
        again.close()


@pytest.mark.parametrize("second", PATHS)
def test_a_read_left_open_and_finalized_later_leaves_the_next_read_alone(
    conn: Any, paths: Paths, second: str
) -> None:
    """A first read abandoned after one batch, the connection rolled back (psycopg2 reads past
    its COPY), a second read started: the first, finalized now, must not cancel the second."""
    query = "SELECT g FROM generate_series(1, 200000) AS g"
    plans = plans_for(conn, query)
    paths.use("libpq")
    first = BINARY.read(conn, query, plans, 1000)
    assert next(iter(first)).num_rows == 1000
    conn.rollback()
    paths.use(second)
    later = iter(BINARY.read(conn, query, plans, 1000))
    rows = next(later).num_rows
    first.close()  # type: ignore[attr-defined]
    rows += sum(batch.num_rows for batch in later)
    assert rows == 200000
    conn.rollback()


@pytest.mark.parametrize("how", ["psycopg2 connection closed", "proxy closed", "returned"])
def test_a_connection_gone_between_batches_ends_the_read_without_touching_it(
    config: PostgresConfig,
    postgres_server: PostgresServer,
    postgres_database: str,
    paths: Paths,
    how: str,
) -> None:
    import psycopg2

    if how == "psycopg2 connection closed":
        conn = postgres_server.connect(postgres_database)
    else:
        conn = connect(config, role="source")
    plans = plans_for(conn, "SELECT 1 AS g")
    paths.use("libpq")
    batches = iter(BINARY.read(conn, "SELECT g FROM generate_series(1, 200000) AS g", plans, 1000))
    assert next(batches).num_rows == 1000
    if how == "proxy closed":
        conn.dbapi_connection.close()
    conn.close()  # its PGconn freed (or handed back to the pool, whose rollback reads past it)
    with pytest.raises(psycopg2.InterfaceError, match="connection already closed"):
        next(batches)
    with pytest.raises(StopIteration):
        next(batches)


def test_a_reader_finalized_on_another_thread_leaves_the_copy_for_psycopg2(
    conn: Any, paths: Paths
) -> None:
    import psycopg2.extensions

    plans = plans_for(conn, "SELECT 1 AS g")
    paths.use("libpq")
    query = "SELECT g FROM generate_series(1, 200000) AS g"
    batches = BINARY.read(conn, query, plans, 1000)
    assert next(iter(batches)).num_rows == 1000
    # Closed where the connection may be another's: neither cancelled nor drained.
    closer = threading.Thread(target=batches.close)  # type: ignore[attr-defined]
    closer.start()
    closer.join()
    active = psycopg2.extensions.TRANSACTION_STATUS_ACTIVE
    assert conn.dbapi_connection.info.transaction_status == active  # still mid-COPY
    # The next read cannot send on it through libpq: it takes the pipe, whose `PQexec` reads
    # past the rest of the COPY first.
    again = list(BINARY.read(conn, "SELECT g FROM generate_series(1, 10) AS g", plans, 4))
    assert [batch.num_rows for batch in again] == [4, 4, 2]
    assert paths.pipe_reads == 1
    conn.rollback()
    cursor = conn.cursor()
    cursor.execute("SELECT 2")
    assert cursor.fetchone() == (2,)


def test_a_complete_read_leaves_its_transaction_usable(conn: Any, paths: Paths) -> None:
    execute(conn, "CREATE TABLE t (id int)")
    cursor = conn.cursor()
    cursor.execute("INSERT INTO t SELECT generate_series(1, 10)")  # not committed yet
    plans = plans_for_in_transaction(conn, "SELECT * FROM t")
    paths.use("libpq")
    batches = list(BINARY.read(conn, "SELECT * FROM t ORDER BY id", plans, 4))
    assert pa.Table.from_batches(batches).column("id").to_pylist() == list(range(1, 11))
    cursor.execute("INSERT INTO t VALUES (11)")
    conn.commit()
    cursor.execute("SELECT count(*) FROM t")
    assert cursor.fetchone() == (11,)


def plans_for_in_transaction(connection: Any, query: str) -> list[Any]:
    """`plans_for` without its rollback (the transaction's uncommitted rows stay)."""
    from dataloader_postgres.types import plan_column

    cursor = connection.cursor()
    cursor.execute(f"SELECT * FROM ({query}) AS q LIMIT 0")
    return [
        plan_column(c.name, c.type_code, "integer", None, None, "decimal", c.internal_size)
        for c in cursor.description
    ]


def test_a_read_outside_a_transaction_opens_one_as_copy_expert_does(
    conn: Any, paths: Paths
) -> None:
    import psycopg2.extensions

    plans = plans_for(conn, "SELECT 1 AS x")
    assert conn.status == psycopg2.extensions.STATUS_READY
    paths.use("libpq")
    list(BINARY.read(conn, "SELECT 1 AS x", plans, 4))
    assert conn.status == psycopg2.extensions.STATUS_BEGIN
    cursor = conn.cursor()
    cursor.execute("SELECT txid_current_if_assigned() IS NULL, now() = statement_timestamp()")
    assert cursor.fetchone() == (True, False)  # the same transaction, begun before this one
    conn.rollback()


def test_a_backend_killed_mid_read_is_a_transient_connection_loss(
    config: PostgresConfig, holder: Any, paths: Paths
) -> None:
    import psycopg2

    # Row 200000 waits for an advisory lock the holder keeps: the COPY is mid-stream (the
    # first rows delivered) when its backend is terminated.
    query = (
        "SELECT g FROM generate_series(1, 300000) AS g"
        " WHERE g < 200000 OR length(pg_advisory_lock(42)::text) = 0"
    )
    holder.cursor().execute("SELECT pg_advisory_lock(42)")
    errors = []
    for path in PATHS:
        conn = connect(config, role="source")
        try:
            plans = plans_for(conn, "SELECT 1 AS g")
            paths.use(path)
            batches = iter(BINARY.read(conn, query, plans, 1000))
            assert next(batches).num_rows == 1000
            holder.cursor().execute("SELECT pg_terminate_backend(%s)", (conn.get_backend_pid(),))
            with pytest.raises(psycopg2.OperationalError) as caught:
                for _ in batches:
                    pass
            assert is_transient(caught.value), caught.value
            assert conn.closed  # psycopg2 knows: the connector discards it rather than reuse it
            errors.append(caught.value)
        finally:
            conn.invalidate()
    libpq, pipe = errors
    assert (type(libpq), str(libpq)) == (type(pipe), str(pipe))


def test_an_exported_snapshot_is_still_what_a_range_reads(
    config: PostgresConfig, conn: Any, paths: Paths
) -> None:
    execute(conn, "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g")
    exporter = connect(config, role="source")
    reader = connect(config, role="source")
    try:
        cursor = exporter.cursor()
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor.execute("SELECT pg_export_snapshot()")
        (snapshot,) = cursor.fetchone()
        execute(conn, "INSERT INTO t SELECT generate_series(101, 150)")  # after the snapshot
        plans = plans_for(conn, "SELECT * FROM t")
        for path in PATHS:
            setup = reader.cursor()
            setup.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            setup.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
            paths.use(path)
            batches = list(BINARY.read(reader, "SELECT * FROM t", plans, 1000))
            assert sum(batch.num_rows for batch in batches) == 100, path
            setup.execute("SELECT count(*) FROM t")  # the same transaction, still usable
            assert setup.fetchone() == (100,)
            reader.rollback()
    finally:
        exporter.close()
        reader.close()


# -- the fallback ----------------------------------------------------------------------------
def test_no_libpq_found_reads_through_the_pipe(
    conn: Any, paths: Paths, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(copy_read, "_fallback_logged", False)
    plans = plans_for(conn, "SELECT g FROM generate_series(1, 10) g")
    for finder in (lambda: None, lambda: "/nonexistent/libpq.so.5", lambda: _native_module()):
        monkeypatch.setattr(copy_read, "find_libpq", finder)
        with caplog.at_level(logging.DEBUG, logger=copy_read.__name__):
            batches = list(BINARY.read(conn, "SELECT g FROM generate_series(1, 10) g", plans, 4))
        conn.rollback()
        assert [batch.num_rows for batch in batches] == [4, 4, 2]
    assert paths.pipe_reads == 3
    logged = [r for r in caplog.records if r.name == copy_read.__name__]
    assert len(logged) == 1 and "pipe" in logged[0].getMessage()  # once per process


def test_a_green_or_asynchronous_connection_reads_through_the_pipe(
    conn: Any, paths: Paths, postgres_server: PostgresServer, postgres_database: str
) -> None:
    import psycopg2
    import psycopg2.extensions
    import psycopg2.extras

    plans = plans_for(conn, "SELECT 1 AS g")
    conn.rollback()
    paths.use("libpq")
    query = "SELECT g FROM generate_series(1, 10) AS g"
    # Green: psycopg2 waits through the callback; `copy_expert` refuses to run under it.
    psycopg2.extensions.set_wait_callback(psycopg2.extras.wait_select)
    try:
        with pytest.raises(psycopg2.ProgrammingError, match="copy_expert"):
            list(BINARY.read(conn, query, plans, 4))
    finally:
        psycopg2.extensions.set_wait_callback(None)
    assert paths.pipe_reads == 1
    conn.rollback()
    # Asynchronous: the same.
    settings = postgres_server.connection_settings(postgres_database)
    settings["dbname"] = settings.pop("database")
    asynchronous = psycopg2.connect(**settings, async_=True)
    try:
        psycopg2.extras.wait_select(asynchronous)
        with pytest.raises(psycopg2.ProgrammingError, match="copy_expert"):
            list(BINARY.read(asynchronous, query, plans, 4))
        assert paths.pipe_reads == 2
    finally:
        asynchronous.close()
    assert [batch.num_rows for batch in BINARY.read(conn, query, plans, 4)] == [4, 4, 2]
    assert paths.pipe_reads == 2  # a blocking connection reads through libpq again
    conn.rollback()


def _native_module() -> str:
    """A loaded library without libpq's functions (the accelerator's own module)."""
    from dataloader_rust import _native

    return str(_native.__file__)


def test_a_library_without_libpq_is_refused_before_anything_is_sent(conn: Any) -> None:
    schema = pa.schema([pa.field("x", pa.int32())])
    for library, words in [
        ("/nonexistent/libpq.so.5", "is not loaded"),
        (_native_module(), "libpq function PQsendQuery not found"),
    ]:
        with pytest.raises(LibpqUnavailableError, match=words):
            CopyDecoder.from_libpq(library, conn.pgconn_ptr, "SELECT 1", schema, [(23, 0)])
    cursor = conn.cursor()
    cursor.execute("SELECT 1")
    assert cursor.fetchone() == (1,)


def test_the_server_refusing_the_copy_is_a_copy_server_error(conn: Any) -> None:
    library = copy_read.find_libpq()
    assert library is not None
    schema = pa.schema([pa.field("x", pa.int32())])
    with pytest.raises(CopyServerError) as caught:
        CopyDecoder.from_libpq(
            library, conn.pgconn_ptr, "COPY (SELECT nope) TO STDOUT", schema, [(23, 0)]
        )
    error = caught.value
    assert error.sqlstate == "42703"  # type: ignore[attr-defined]
    assert error.message.startswith('ERROR:  column "nope" does not exist')  # type: ignore[attr-defined]
    assert error.connection_bad is False  # type: ignore[attr-defined]
    conn.rollback()


def test_a_copy_that_cannot_be_sent_leaves_the_connection_as_it_was(conn: Any) -> None:
    import psycopg2.extensions

    library = copy_read.find_libpq()
    assert library is not None
    schema = pa.schema([pa.field("g", pa.int32())])
    sql = "COPY (SELECT g FROM generate_series(1, 3000000) AS g) TO STDOUT (FORMAT binary)"
    first = CopyDecoder.from_libpq(library, conn.pgconn_ptr, sql, schema, [(23, 0)])
    assert first.read_batch(1000).num_rows == 1000
    first.close(drain=False)  # left mid-COPY
    with pytest.raises(CopyServerError, match="another command is already in progress") as caught:
        CopyDecoder.from_libpq(library, conn.pgconn_ptr, sql, schema, [(23, 0)])
    assert caught.value.connection_bad is False  # type: ignore[attr-defined]
    # Nothing was sent, so nothing was read: the first COPY is still where it was left.
    active = psycopg2.extensions.TRANSACTION_STATUS_ACTIVE
    assert conn.dbapi_connection.info.transaction_status == active
    cursor = conn.cursor()
    cursor.execute("SELECT 2")  # psycopg2's PQexec reads past it
    assert cursor.fetchone() == (2,)
    conn.rollback()


def test_libpq_failing_to_read_on_a_good_connection_carries_its_message(conn: Any) -> None:
    library = copy_read.find_libpq()
    assert library is not None
    schema = pa.schema([pa.field("g", pa.int32())])
    # 30 MB: far more than the decoder (4 MiB reads) and the sockets hold when the COPY is cut.
    sql = "COPY (SELECT g FROM generate_series(1, 3000000) AS g) TO STDOUT (FORMAT binary)"
    decoder = CopyDecoder.from_libpq(library, conn.pgconn_ptr, sql, schema, [(23, 0)])
    assert decoder.read_batch(1000).num_rows == 1000
    # psycopg2's next command (PQexec) reads past the rest: libpq has no COPY left to read.
    conn.cursor().execute("SELECT 1")
    with pytest.raises(CopyServerError) as caught:
        while decoder.read_batch(1000) is not None:
            pass
    error = caught.value
    assert error.connection_bad is False  # type: ignore[attr-defined]
    assert "no COPY in progress" in error.message  # type: ignore[attr-defined]
    assert "no COPY in progress" in str(error)
    decoder.close()
    cursor = conn.cursor()
    cursor.execute("SELECT 2")
    assert cursor.fetchone() == (2,)
    conn.rollback()


# -- the GIL ---------------------------------------------------------------------------------
def test_a_read_waiting_on_the_server_does_not_hold_the_gil(conn: Any, holder: Any) -> None:
    query = (
        "SELECT g FROM generate_series(1, 10) AS g WHERE length(pg_advisory_lock(44)::text) >= 0"
    )
    plans = plans_for(conn, "SELECT 1 AS g")
    holder.cursor().execute("SELECT pg_advisory_lock(44)")
    pid = conn.get_backend_pid()
    rows: list[int] = []

    def consume() -> None:
        for batch in BINARY.read(conn, query, plans, 100):
            rows.append(batch.num_rows)

    reader = threading.Thread(target=consume)
    reader.start()
    # This thread runs Python while the reader waits inside `read_batch` for the server: it
    # sees the reader's backend blocked on the lock, then releases it.
    waiting = holder.cursor()
    while True:
        waiting.execute(
            "SELECT count(*) FROM pg_locks WHERE pid = %s AND locktype = 'advisory'"
            " AND NOT granted",
            (pid,),
        )
        if waiting.fetchone() == (1,):
            break
    holder.cursor().execute("SELECT pg_advisory_unlock(44)")
    reader.join(timeout=60)
    assert not reader.is_alive()
    assert rows == [10]
    conn.rollback()
