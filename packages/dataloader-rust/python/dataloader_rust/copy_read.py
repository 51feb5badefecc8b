"""Reading a query over `COPY … TO STDOUT (FORMAT binary)` into Arrow record batches.

The native `CopyDecoder` runs the COPY itself through the libpq psycopg2 already loaded, on
psycopg2's own connection (`connection.pgconn_ptr`), and reads and decodes the stream with the
GIL released, so several partitions of one read decode in parallel and no Python runs per row.
Where libpq's functions cannot be resolved, psycopg2's `copy_expert` runs in a pump thread and
writes the stream into a pipe whose other end the decoder reads. Either way the batches have
the types and field metadata of the CSV codec (`ColumnPlan.field`), values Arrow cannot hold
fail with the CSV codec's message, and the server's errors are psycopg2's exceptions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from dataloader import ConnectorError
from dataloader.sql import quote_identifier
from dataloader_postgres.codec import (
    PIPE_CHUNK,
    UnreadableValue,
    _connection_loss,
    _unreadable_message,
)
from dataloader_postgres.types import ColumnPlan
from dataloader_rust import _native
from dataloader_rust._native import CopyDecodeError, CopyDecoder, UnreadableValueError

_log = logging.getLogger(__name__)


class _Absent(Exception):
    """Stands for an exception a native module built before libpq reads does not define."""


# A native module built before libpq reads has neither: reads then go through the pipe.
CopyServerError: type[Exception] = getattr(_native, "CopyServerError", _Absent)
LibpqUnavailableError: type[Exception] = getattr(_native, "LibpqUnavailableError", _Absent)

TEXT_OID = 25
TEXT_ARRAY_OID = 1009
# Types the decoder reads in their binary form (anything else is selected as text).
NATIVE_OIDS = frozenset(
    {16, 17, 18, 19, 20, 21, 23, 25, 26, 114, 700, 701, 1042, 1043}
    | {1082, 1083, 1114, 1184, 1186, 1700, 2950, 3802}
)
# Tagged strings decoded from their binary form rather than printed by the server.
_NATIVE_TEXT = frozenset({114, 2950, 3802})


def _native(plan: ColumnPlan) -> bool:
    if plan.oid not in NATIVE_OIDS:
        return False
    return plan.kind != "text" or plan.oid in _NATIVE_TEXT


def column_select(plan: ColumnPlan) -> tuple[str, tuple[int, int]]:
    """The select expression of `plan` and the `(oid, element_oid)` its values arrive as."""
    quoted = quote_identifier(plan.name)
    if plan.kind == "array":
        assert plan.element is not None
        if _native(plan.element):
            return quoted, (plan.oid, plan.element.oid)
        return f"{quoted}::text[]", (TEXT_ARRAY_OID, TEXT_OID)
    if _native(plan):
        return quoted, (plan.oid, 0)
    return f"{quoted}::text", (TEXT_OID, 0)


def copy_query(query: str, plans: Sequence[ColumnPlan]) -> tuple[str, list[tuple[int, int]]]:
    """The binary `COPY … TO STDOUT` of `query` and the wire types of its columns."""
    selected = [column_select(plan) for plan in plans]
    select = ", ".join(expression for expression, _ in selected)
    sql = f"COPY (SELECT {select} FROM ({query}) AS q) TO STDOUT WITH (FORMAT binary)"
    return sql, [types for _, types in selected]


def _widen_pipe(fd: int) -> None:
    """Ask Linux for a 1 MiB pipe (fewer, larger reads); the default works too."""
    import fcntl

    setter = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setter is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, setter, PIPE_CHUNK)


def _unreadable(bad: UnreadableValueError, plans: Sequence[ColumnPlan]) -> ConnectorError:
    plan = next(plan for plan in plans if plan.name == bad.column)
    target = plan.element if bad.element and plan.element is not None else plan
    return ConnectorError(_unreadable_message(UnreadableValue(bad.value, target, plan.name)))


def _undecodable(bad: CopyDecodeError) -> ConnectorError:
    if bad.column is not None and not bad.truncated:  # a value, worded as the CSV codec does
        what = str(bad).removeprefix("binary COPY data, ")
        return ConnectorError(
            f"Postgres read: {what}: cast the column in `query` (e.g. `col::text`)"
        )
    return ConnectorError(f"Postgres read: {bad}: the stream from the server is damaged")


def find_libpq() -> str | None:
    """The loaded shared object through which psycopg2 reaches its libpq: psycopg2's extension
    module (libpq's functions resolve among its dependencies, so they are the ones that made
    its connections). None when psycopg2 is not loaded."""
    module = sys.modules.get("psycopg2._psycopg")
    path = getattr(module, "__file__", None)
    return path if isinstance(path, str) and path else None


_fallback_logged = False


def _fall_back(reason: str) -> None:
    global _fallback_logged
    if not _fallback_logged:
        _fallback_logged = True
        _log.debug("binary COPY reads go through psycopg2's copy_expert and a pipe: %s", reason)


def _strip_severity(message: str) -> str:
    for severity in ("ERROR:  ", "FATAL:  ", "PANIC:  "):
        if len(message) > len(severity) and message.startswith(severity):
            return message[len(severity) :]
    return message


def _server_error(connection: Any, failure: Any) -> BaseException:
    """The psycopg2 exception `copy_expert` raises for the same failure (class from the
    SQLSTATE, message without its severity, `pgerror`/`pgcode` set), a lost connection worded
    by `_connection_loss`; psycopg2 is made to see a lost connection (`closed`)."""
    import psycopg2
    import psycopg2.errors

    if failure.connection_bad:
        # psycopg2 marks the connection closed when one of its commands finds it broken (none
        # can succeed on it): the caller then discards it, as after `copy_expert`.
        with contextlib.suppress(psycopg2.Error):
            connection.reset()
    message: str = failure.message
    if not message:  # libpq failed to read the stream: psycopg2 has no result to word it
        exc: BaseException = psycopg2.DatabaseError(
            "error with status PGRES_COPY_OUT and no message from the libpq"
        )
        return _connection_loss(connection, exc)
    kind: type[psycopg2.Error] = (
        psycopg2.OperationalError if failure.connection_bad else psycopg2.DatabaseError
    )
    if failure.sqlstate:
        with contextlib.suppress(KeyError):
            kind = psycopg2.errors.lookup(failure.sqlstate)
    error = kind(_strip_severity(message))
    error.__setstate__({"pgerror": message, "pgcode": failure.sqlstate})
    return _connection_loss(connection, error)


# The latest read of each psycopg2 connection (by `id`; the connections take no weak
# references): only that read may cancel or drain the connection's COPY.
_readers: dict[int, object] = {}


def _start_libpq(
    connection: Any, copy_sql: str, schema: pa.Schema, types: list[tuple[int, int]], size: int
) -> CopyDecoder | None:
    """A decoder running `copy_sql` on `connection` through libpq, or None (the pipe then)."""
    if not hasattr(CopyDecoder, "from_libpq"):
        _fall_back("the native module predates libpq reads")
        return None
    library = find_libpq()
    if library is None:
        _fall_back("psycopg2's libpq is not found")
        return None
    cursor = connection.cursor()  # a closed connection raises here, as `copy_expert` would
    pgconn = getattr(connection, "pgconn_ptr", None)
    if not isinstance(pgconn, int) or pgconn == 0:
        _fall_back("the connection has no PGconn pointer")
        return None
    import psycopg2.extensions

    raw = getattr(connection, "dbapi_connection", None) or connection  # not a pool's proxy
    if raw.async_ or psycopg2.extensions.get_wait_callback() is not None:
        # psycopg2 drives these connections without blocking: a blocking libpq call would
        # stall an event loop (green) or race psycopg2's own polling (async).
        _log.debug("binary COPY read through the pipe: the connection is asynchronous or green")
        return None
    if raw.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_ACTIVE:
        # A command is still in progress (a read left mid-COPY): `PQsendQuery` would refuse
        # to run, `copy_expert`'s `PQexec` reads past the rest of it first.
        _log.debug("binary COPY read through the pipe: a command is still in progress")
        return None
    if not connection.autocommit and connection.status == psycopg2.extensions.STATUS_READY:
        cursor.execute("SELECT 1")  # psycopg2 opens its transaction, as before `copy_expert`
    try:
        return CopyDecoder.from_libpq(library, pgconn, copy_sql, schema, types, size)
    except LibpqUnavailableError as exc:
        _fall_back(str(exc))
        return None
    except CopyServerError as failure:
        raise _server_error(connection, failure) from None


def read(
    connection: Any, query: str, plans: Sequence[ColumnPlan], batch_size: int
) -> Iterator[pa.RecordBatch]:
    """Yield the rows of `query` as record batches of at most `batch_size` rows.

    The connection is this read's alone until the generator ends or is closed: nothing else
    may use it meanwhile, from any thread (as with psycopg2's `copy_expert`). Closed early on
    the thread that started it, the read cancels the COPY and reads what is left, so the
    connection runs its next statement; a connection closed or handed on between batches
    ends the read with `psycopg2.InterfaceError`.

    :raises ConnectorError: for a value its Arrow type cannot hold (as the CSV codec words it)
        or for binary data that cannot be decoded, naming the column and the row.
    :raises psycopg2.Error: for the server's errors, as `copy_expert` raises them.
    """
    copy_sql, types = copy_query(query, plans)
    schema = pa.schema([plan.field for plan in plans])
    # The psycopg2 connection itself (a pool's proxy lets go of it when returned).
    raw = getattr(connection, "dbapi_connection", None) or connection
    token = object()
    _readers[id(raw)] = token  # an older read of this connection, finalized late, leaves it
    decoder = _start_libpq(connection, copy_sql, schema, types, batch_size)
    if decoder is None:
        yield from _read_pipe(connection, copy_sql, schema, types, plans, batch_size)
        return
    pgconn = raw.pgconn_ptr
    started_on = threading.get_ident()

    def owned() -> bool:
        """The connection is still open, still the one the decoder reads from, and no later
        read has started on it."""
        return (
            not raw.closed
            and raw.pgconn_ptr == pgconn
            and (getattr(connection, "dbapi_connection", None) or connection) is raw
            and _readers.get(id(raw)) is token
        )

    copying = True
    try:
        while True:
            if not owned():  # closed or handed on between batches: its PGconn may be freed
                copying = False
                decoder.close(drain=False)
                import psycopg2

                raise psycopg2.InterfaceError("connection already closed")
            try:
                batch = decoder.read_batch(batch_size)
            except (UnreadableValueError, CopyDecodeError) as bad:
                raise _decode_failure(bad, plans) from None
            except CopyServerError as failure:
                copying = False
                raise _server_error(connection, failure) from None
            if batch is None:
                copying = False
                break
            yield batch
    finally:
        # A generator finalized late may find its connection closed or handed on, or run on
        # another thread (the garbage collector's), where the connection may be in use: then
        # the decoder must not touch it again. One still open is left mid-COPY, which
        # psycopg2's next command (`PQexec`) reads past.
        mine = threading.get_ident() == started_on and owned()
        try:
            if copying and mine:
                raw.cancel()
        finally:
            decoder.close(drain=mine)
            if _readers.get(id(raw)) is token:
                del _readers[id(raw)]


def _decode_failure(
    bad: UnreadableValueError | CopyDecodeError, plans: Sequence[ColumnPlan]
) -> ConnectorError:
    """The `ConnectorError` for data the decoder could not turn into Arrow values."""
    if isinstance(bad, UnreadableValueError):
        return _unreadable(bad, plans)
    return _undecodable(bad)


def _read_pipe(
    connection: Any,
    copy_sql: str,
    schema: pa.Schema,
    types: list[tuple[int, int]],
    plans: Sequence[ColumnPlan],
    batch_size: int,
) -> Iterator[pa.RecordBatch]:
    """`read` through `copy_expert` in a pump thread writing into a pipe the decoder reads."""
    read_fd, write_fd = os.pipe()
    try:
        _widen_pipe(write_fd)
        decoder = CopyDecoder(read_fd, schema, types, batch_size)
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        raise
    failure: list[BaseException] = []

    def pump() -> None:
        try:
            with os.fdopen(write_fd, "wb", buffering=PIPE_CHUNK) as sink:
                connection.cursor().copy_expert(copy_sql, sink, size=PIPE_CHUNK)
        except BaseException as exc:  # reported by the reading side
            failure.append(_connection_loss(connection, exc))

    thread = threading.Thread(target=pump, name="pg-copy-out-binary", daemon=True)
    try:
        thread.start()
    except BaseException:
        decoder.close()
        os.close(write_fd)
        raise
    finished = False
    try:
        while True:
            try:
                batch = decoder.read_batch(batch_size)
            except CopyDecodeError as bad:
                if bad.truncated:  # the pump closed the pipe: its error is the cause
                    thread.join()
                    if failure:
                        raise failure[0] from None
                raise _decode_failure(bad, plans) from None
            except OSError as exc:
                # The pipe could not be read. A pump that failed first closed it (a truncated
                # stream, above), so its error is the cause only if it has already ended;
                # otherwise the `finally` cancels the COPY and joins it.
                if failure and not thread.is_alive():
                    raise failure[0] from None
                raise ConnectorError(
                    f"Postgres read: the stream from the server could not be read: {exc}"
                ) from exc
            if batch is None:
                break
            yield batch
        finished = True
    finally:
        if not finished and thread.is_alive():
            connection.cancel()
        decoder.close()
        thread.join()
        if failure and finished:
            raise failure[0]
