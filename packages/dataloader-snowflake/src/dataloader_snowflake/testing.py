"""fakesnow, the Snowflake emulator, as a server for tests, and pytest fixtures around it.

`fakesnow.server()` serves Snowflake's HTTP API on 127.0.0.1 from a thread of the test
process; the real `snowflake-connector-python` talks to it (login, queries, PUT uploads). The
emulator accepts any account, user, password or key: authentication is not exercised.
Use the fixtures with `from dataloader_snowflake.testing import fakesnow_server, snowflake_db`
in a conftest. A server that cannot start fails the test; it never skips.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

_databases = itertools.count(1)


class FakeSnowflake:
    """One database of the emulator: recipe keys for it, and SQL on its own connection."""

    def __init__(self, server: dict[str, Any], database: str) -> None:
        self.server = server
        self.database = database
        self._connection: Any = None

    @property
    def connection(self) -> Any:
        import snowflake.connector

        if self._connection is None:
            self._connection = snowflake.connector.connect(
                **self.server, database=self.database, schema="PUBLIC"
            )
        return self._connection

    def settings(self) -> dict[str, Any]:
        """The connection keys of a recipe section (password authentication)."""
        return {
            "account": self.server["account"],
            "user": self.server["user"],
            "password": "fakesnow-accepts-any-password",
            "database": self.database,
            "schema": "PUBLIC",
            "host": self.server["host"],
            "port": self.server["port"],
            "protocol": self.server["protocol"],
        }

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        cursor = self.connection.cursor()
        cursor.execute(sql)
        return cursor.fetchall()

    def execute(self, sql: str) -> None:
        self.connection.cursor().execute(sql)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


@pytest.fixture(scope="session")
def fakesnow_server() -> Iterator[dict[str, Any]]:
    """The emulator's connection arguments (host, port, protocol, any credentials)."""
    import fakesnow

    with fakesnow.server(host="127.0.0.1") as arguments:
        yield arguments


@pytest.fixture
def snowflake_db(fakesnow_server: dict[str, Any]) -> Iterator[FakeSnowflake]:
    """A fresh database (with schema PUBLIC) of the emulator for one test."""
    import snowflake.connector

    name = f"DL_TEST_{next(_databases)}"
    with snowflake.connector.connect(**fakesnow_server) as connection:
        cursor = connection.cursor()
        cursor.execute(f"CREATE DATABASE {name}")
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {name}.PUBLIC")
    helper = FakeSnowflake(fakesnow_server, name)
    try:
        yield helper
    finally:
        helper.close()
