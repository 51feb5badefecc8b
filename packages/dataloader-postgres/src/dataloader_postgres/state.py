"""`PostgresStateBackend`: recipe state in a table, with an advisory lock per recipe."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from dataloader import StateError
from dataloader.sql import TableName
from dataloader.state.backend import StateBackendConfig, StateBackendPlugin
from dataloader_postgres.config import PostgresConnection
from dataloader_postgres.connection import connect

log = logging.getLogger("dataloader.state.postgres")
_NO_ROW = "none"  # the row version of a recipe that has no state row


@dataclass
class _HeldLock:
    """A recipe's advisory lock: the session that holds it, and the version (`xmin`) of the
    state row as this process last read or wrote it."""

    connection: Any
    version: str = _NO_ROW


class PostgresStateConfig(PostgresConnection, StateBackendConfig):
    """`state: {backend: postgres, host: …, table: public._dataloader_recipe_state}`."""

    table: str = "_dataloader_recipe_state"


class PostgresStateBackend(StateBackendPlugin):
    """One row per recipe; `pg_try_advisory_lock` keeps two runs of a recipe apart.

    The lock lives as long as its session. Before each save or delete the holder checks that
    the session is still there; when it was lost (a dropped connection, a restart), the lock is
    taken again, provided it is free and the state row is as this process left it. Otherwise
    another run got in between, and the save fails.
    """

    name = "postgres"
    config_model = PostgresStateConfig

    def __init__(self, config: PostgresStateConfig) -> None:
        super().__init__(config)
        self.table = TableName.parse(config.table)
        self._held: dict[str, _HeldLock] = {}

    def location(self, recipe_name: str) -> str:
        where = f" in database {self.config.database!r}" if self.config.database else ""
        where += f" on {self.config.host}" if self.config.host else ""
        return f"Postgres table {self.table.sql()}{where}, row recipe = {recipe_name!r}"

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
                f"SELECT state::text, xmin::text FROM {self.table.sql()} WHERE recipe = %s",
                (recipe_name,),
            )
            rows = cursor.fetchall()
            connection.commit()
        finally:
            connection.close()
        self._seen(recipe_name, rows[0][1] if rows else _NO_ROW)
        return json.loads(rows[0][0]) if rows else {}

    def save(self, recipe_name: str, state: dict[str, Any]) -> None:
        self._check_lock(recipe_name)
        connection = self._connect()
        try:
            cursor = self._with_table(connection)
            cursor.execute(
                f"INSERT INTO {self.table.sql()} (recipe, state, updated_at) VALUES (%s, %s, now()) ON CONFLICT (recipe) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at RETURNING xmin::text",
                (recipe_name, json.dumps(state)),
            )
            version = cursor.fetchall()[0][0]
            connection.commit()
        finally:
            connection.close()
        self._seen(recipe_name, version)

    def delete(self, recipe_name: str) -> None:
        self._check_lock(recipe_name)
        connection = self._connect()
        try:
            cursor = self._with_table(connection)
            cursor.execute(f"DELETE FROM {self.table.sql()} WHERE recipe = %s", (recipe_name,))
            connection.commit()
        finally:
            connection.close()
        self._seen(recipe_name, _NO_ROW)

    def _seen(self, recipe_name: str, version: str) -> None:
        held = self._held.get(recipe_name)
        if held is not None:
            held.version = version

    def _try_lock(self, connection: Any, recipe_name: str) -> bool:
        cursor = connection.cursor()
        cursor.execute(
            "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (f"dataloader:{recipe_name}",)
        )
        taken = bool(cursor.fetchall()[0][0])
        connection.commit()
        return taken

    def _version(self, connection: Any, recipe_name: str) -> str:
        cursor = self._with_table(connection)
        cursor.execute(
            f"SELECT xmin::text FROM {self.table.sql()} WHERE recipe = %s", (recipe_name,)
        )
        rows = cursor.fetchall()
        connection.commit()
        return rows[0][0] if rows else _NO_ROW

    def _lost(self, recipe_name: str, why: str) -> StateError:
        return StateError(
            f"lost the lock of recipe {recipe_name!r} on {self.config.describe()}: its session ended and {why}; not saving, so the other run's state stands",
            key="state",
        )

    def _check_lock(self, recipe_name: str) -> None:
        """Make sure this process still holds the recipe's lock (when it took one): take it
        again if its session was lost, unless another run got the lock or the state since."""
        held = self._held.get(recipe_name)
        if held is None:
            return
        try:
            cursor = held.connection.cursor()
            cursor.execute("SELECT 1")
            held.connection.commit()
            return  # the session, and with it the lock, is alive
        except Exception as exc:
            log.warning(
                f"the session holding the lock of recipe {recipe_name!r} was lost ({type(exc).__name__}); taking the lock again"
            )
            with suppress(Exception):
                held.connection.close()
        connection = self._connect()
        try:
            if not self._try_lock(connection, recipe_name):
                raise self._lost(recipe_name, "another run holds the lock now")
            if self._version(connection, recipe_name) != held.version:
                raise self._lost(recipe_name, "another run changed the state meanwhile")
        except BaseException:
            connection.close()  # ends the session: a lock taken again is released with it
            raise
        held.connection = connection

    @contextmanager
    def lock(self, recipe_name: str) -> Iterator[None]:
        held = _HeldLock(self._connect())
        try:
            if not self._try_lock(held.connection, recipe_name):
                raise StateError(
                    f"recipe {recipe_name!r} is already running (advisory lock held on {self.config.describe()}); two runs of one recipe never interleave",
                    key="state",
                )
            held.version = self._version(held.connection, recipe_name)
            self._held[recipe_name] = held
            try:
                yield
            finally:
                self._held.pop(recipe_name, None)
        finally:
            with suppress(Exception):  # a lost session has released the lock already
                held.connection.close()
