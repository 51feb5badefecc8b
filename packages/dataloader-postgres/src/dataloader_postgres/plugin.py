"""Entry-point module: registers the Postgres connector and state backend."""

from __future__ import annotations

from typing import Any

from dataloader import hookimpl
from dataloader_postgres.connector import PostgresConnector
from dataloader_postgres.state import PostgresStateBackend


@hookimpl
def register_connectors() -> list[Any]:
    return [PostgresConnector]


@hookimpl
def register_state_backends() -> list[Any]:
    return [PostgresStateBackend]
