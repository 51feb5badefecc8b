"""Entry-point module: registers the Postgres connector and state backend.

It gives `PluginRef`s: the registry knows names and capabilities from them, imports the config
models (no psycopg2, no pyarrow, no numpy) when a recipe binds a name, and the connector's or
backend's module only when one is created.
"""

from __future__ import annotations

from typing import Any

from dataloader import PluginRef, hookimpl


@hookimpl
def register_connectors() -> list[Any]:
    return [
        PluginRef(
            "postgres",
            "dataloader_postgres.connector:PostgresConnector",
            config_model="dataloader_postgres.config:PostgresConfig",
            capabilities={
                "read": True,
                "write": True,
                "write_modes": ("append", "overwrite", "merge"),
                "incremental": True,
                "transactional_state": True,
                "quarantine": True,
                "child_tables": True,
                "can_split": True,
                "can_stage": True,
                "max_identifier_length": 63,
            },
        )
    ]


@hookimpl
def register_state_backends() -> list[Any]:
    return [PluginRef("postgres", "dataloader_postgres.state:PostgresStateBackend")]
