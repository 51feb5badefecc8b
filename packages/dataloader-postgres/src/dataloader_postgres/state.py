"""`PostgresStateBackend`: recipe state in a table, with an advisory lock per recipe."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dataloader import StateError
from dataloader.sql import TableName
from dataloader.state.backend import StateBackendConfig, StateBackendPlugin
from dataloader_postgres.config import PostgresConnection
from dataloader_postgres.connection import connect


class PostgresStateConfig(PostgresConnection, StateBackendConfig):
    """`state: {backend: postgres, host: …, table: public._dataloader_recipe_state}`."""

    table: str = "_dataloader_recipe_state"


class PostgresStateBackend(StateBackendPlugin):
    """One row per recipe; `pg_try_advisory_lock` keeps two runs of a recipe apart."""

    name = "postgres"
    config_model = PostgresStateConfig

    def __init__(self, config: PostgresStateConfig) -> None:
        super().__init__(config)
        self.table = TableName.parse(config.table)

    def _connect(self) -> Any:
        try:
            return connect(self.config, role="state")
        except Exception as exc:
            raise StateError(str(exc), key="state.host") from None

    def _with_table(self, connection: Any) -> Any:
        cursor = connection.cursor()
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table.sql()} (recipe text PRIMARY KEY, state jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"
        )
        return cursor

    def load(self, recipe_name: str) -> dict[str, Any]:
        connection = self._connect()
        try:
            cursor = self._with_table(connection)
            cursor.execute(
                f"SELECT state::text FROM {self.table.sql()} WHERE recipe = %s", (recipe_name,)
            )
            rows = cursor.fetchall()
            connection.commit()
        finally:
            connection.close()
        return json.loads(rows[0][0]) if rows else {}

    def save(self, recipe_name: str, state: dict[str, Any]) -> None:
        connection = self._connect()
        try:
            cursor = self._with_table(connection)
            cursor.execute(
                f"INSERT INTO {self.table.sql()} (recipe, state, updated_at) VALUES (%s, %s, now()) ON CONFLICT (recipe) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at",
                (recipe_name, json.dumps(state)),
            )
            connection.commit()
        finally:
            connection.close()

    def delete(self, recipe_name: str) -> None:
        connection = self._connect()
        try:
            cursor = self._with_table(connection)
            cursor.execute(f"DELETE FROM {self.table.sql()} WHERE recipe = %s", (recipe_name,))
            connection.commit()
        finally:
            connection.close()

    @contextmanager
    def lock(self, recipe_name: str) -> Iterator[None]:
        connection = self._connect()
        try:
            cursor = connection.cursor()
            key = f"dataloader:{recipe_name}"
            cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,))
            if not cursor.fetchall()[0][0]:
                raise StateError(
                    f"recipe {recipe_name!r} is already running (advisory lock held on {self.config.describe()}); two runs of one recipe never interleave",
                    key="state",
                )
            connection.commit()
            yield
        finally:
            connection.close()
