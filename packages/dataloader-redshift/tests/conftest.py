"""Fixtures of the Redshift connector tests.

Redshift cannot run here. `redshift_connector` cannot connect to PostgreSQL either (it sends
the startup parameter `client_protocol_version`, which PostgreSQL refuses with 42704), so the
Postgres stand-in is `PostgresStandIn`: the real `RedshiftConnector` whose only difference is
`connect()`, which opens a psycopg2 connection to the test server. Every statement it runs is
the connector's own, as it would send it to Redshift; one Postgres cannot run (COPY, UNLOAD)
fails there. The server (`postgres_server`, `postgres_database`) and moto (`moto_server`,
`s3_bucket`) come from the root conftest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dataloader import LocalStateBackend, RecipeLoader, RunResult, register_connector
from dataloader import run_recipe as run_loaded
from dataloader.registry import unregister
from dataloader.testing import RowsSource
from dataloader_postgres.testing import PostgresServer
from dataloader_redshift.connector import RedshiftConnector


class PostgresStandIn(RedshiftConnector):
    """`RedshiftConnector` on a psycopg2 connection to the test PostgreSQL server."""

    def connect(self) -> tuple[Any, tuple[type[BaseException], ...]]:
        import psycopg2

        assert self.config.password is not None
        connection = psycopg2.connect(
            host=self.config.host,
            port=self.config.port,
            dbname=self.config.database,
            user=self.config.user,
            password=self.config.password.get_secret_value(),
        )
        connection.cursor().execute("SET TimeZone = 'UTC'")
        return connection, (psycopg2.Error,)


class Warehouse:
    """One test database standing in for a Redshift database: recipe keys, and SQL."""

    def __init__(self, server: PostgresServer, database: str) -> None:
        self.server = server
        self.database = database
        self.connection = server.connect(database)
        self.connection.autocommit = True

    def settings(self) -> dict[str, Any]:
        return {**self.server.connection_settings(self.database), "ssl": False}

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        cursor = self.connection.cursor()
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def warehouse(postgres_server: PostgresServer, postgres_database: str) -> Iterator[Warehouse]:
    """`type: redshift` runs `PostgresStandIn` on a fresh database of the test server."""
    register_connector("redshift")(PostgresStandIn)
    helper = Warehouse(postgres_server, postgres_database)
    try:
        yield helper
    finally:
        helper.connection.close()
        unregister("connector", "redshift")


@pytest.fixture
def stand_in() -> type[PostgresStandIn]:
    """The stand-in class, for tests that register a subclass of it as `redshift`."""
    return PostgresStandIn


@pytest.fixture
def rows_source() -> Iterator[str]:
    """An in-process source yielding the batches it is configured with."""
    name = "dl_redshift_test_rows"
    register_connector(name)(type("RedshiftTestRows", (RowsSource,), {}))
    try:
        yield name
    finally:
        unregister("connector", name)


@pytest.fixture
def run(tmp_path: Path) -> Callable[..., RunResult]:
    """`run(recipe_dict)`: write it as YAML, load it and run it with a local state backend."""

    def _run(recipe: dict[str, Any], **kwargs: Any) -> RunResult:
        path = tmp_path / f"{recipe['name']}.yaml"
        path.write_text(yaml.safe_dump(recipe, sort_keys=False), "utf-8")
        return run_loaded(
            RecipeLoader().load(path), LocalStateBackend(tmp_path / "state"), **kwargs
        )

    return _run
