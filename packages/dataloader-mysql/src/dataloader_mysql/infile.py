"""A PyMySQL connection whose `LOAD DATA LOCAL` sends only the files the caller allowed.

With `local_infile` on, the server names the file the client sends, and PyMySQL sends
whatever it names: a rogue server, or a man in the middle of a connection without TLS, could
read any file the process can. Here a request for a file not allowed is answered with no data
and fails with `LocalFileRefused`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pymysql
from pymysql.connections import Connection, MySQLResult
from pymysql.protocol import LoadLocalPacketWrapper

LOAD_LOCAL_REFUSED = 2068  # the MySQL client's code for a LOAD DATA LOCAL file request rejected


class LocalFileRefused(pymysql.err.OperationalError):
    """The server asked for a local file that the current statement did not allow."""


class _GuardedResult(MySQLResult):
    def _read_load_local_packet(self, first_packet: Any) -> None:
        connection = self.connection
        assert isinstance(connection, GuardedConnection)
        requested = bytes(LoadLocalPacketWrapper(first_packet).filename)
        if requested in connection.allowed_local_files:
            super()._read_load_local_packet(first_packet)
            return
        # An empty reply is an empty file: the server finishes the statement and the
        # connection stays in step; its answer (OK or an error) is read and dropped.
        try:
            connection.write_packet(b"")
            connection._read_packet()
        except pymysql.err.MySQLError:
            pass
        name = requested.decode("utf-8", "replace")
        raise LocalFileRefused(
            LOAD_LOCAL_REFUSED,
            f"refused the server's request for the local file {name!r}: only the batch file "
            "of the connector's own LOAD DATA statement is sent",
        )


class GuardedConnection(Connection):
    """A PyMySQL `Connection` (pass `local_infile=True`) that sends only allowed files."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.allowed_local_files: frozenset[bytes] = frozenset()
        super().__init__(*args, **kwargs)

    @contextlib.contextmanager
    def allow_local_file(self, path: str) -> Iterator[None]:
        """Allow the server to ask for the file at `path` until the block ends."""
        name = os.fsencode(path)
        self.allowed_local_files = self.allowed_local_files | {name}
        try:
            yield
        finally:
            self.allowed_local_files = self.allowed_local_files - {name}

    def _read_query_result(self, unbuffered: bool = False) -> int:
        # PyMySQL 1.1-1.2 builds its result reader here (the pin in pyproject.toml); ours answers
        # file requests, the other steps are the same.
        self._result = None
        result = _GuardedResult(self)
        if unbuffered:
            result.init_unbuffered_query()
        else:
            result.read()
        self._result = result
        if result.server_status is not None:
            self.server_status = result.server_status
        return result.affected_rows
