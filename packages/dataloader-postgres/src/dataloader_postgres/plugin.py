"""Entry-point module: registers the Postgres connector and state backend.

Their modules are imported when the registry asks for them, not when plugins load.
"""

from __future__ import annotations

from typing import Any

from dataloader import hookimpl


@hookimpl
def register_connectors() -> list[Any]:
    from dataloader_postgres.connector import PostgresConnector

    return [PostgresConnector]


@hookimpl
def register_state_backends() -> list[Any]:
    from dataloader_postgres.state import PostgresStateBackend

    return [PostgresStateBackend]
