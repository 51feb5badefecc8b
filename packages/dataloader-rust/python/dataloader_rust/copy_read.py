"""Reading a query over `COPY … TO STDOUT (FORMAT binary)` into Arrow record batches.

psycopg2's `copy_expert` runs in a pump thread and writes the stream into a pipe; the native
`CopyDecoder` reads the pipe's other end in large chunks and decodes it with the GIL released,
so several partitions of one read decode in parallel. The batches have the types and field
metadata of the CSV codec (`ColumnPlan.field`), and values Arrow cannot hold fail with the CSV
codec's message.
"""

from __future__ import annotations

import contextlib
import os
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
from dataloader_rust._native import CopyDecodeError, CopyDecoder, UnreadableValueError

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


def read(
    connection: Any, query: str, plans: Sequence[ColumnPlan], batch_size: int
) -> Iterator[pa.RecordBatch]:
    """Yield the rows of `query` as record batches of at most `batch_size` rows.

    :raises ConnectorError: for a value its Arrow type cannot hold (as the CSV codec words it)
        or for binary data that cannot be decoded, naming the column and the row.
    """
    copy_sql, types = copy_query(query, plans)
    schema = pa.schema([plan.field for plan in plans])
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
            except UnreadableValueError as bad:
                raise _unreadable(bad, plans) from None
            except CopyDecodeError as bad:
                if bad.truncated:  # the pump closed the pipe: its error is the cause
                    thread.join()
                    if failure:
                        raise failure[0] from None
                raise _undecodable(bad) from None
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
