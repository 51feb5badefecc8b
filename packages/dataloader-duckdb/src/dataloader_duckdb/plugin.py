"""Entry-point module: registers the DuckDB connector.

It gives a `PluginRef`: the registry knows the connector's name and capabilities from it,
imports its config model (`dataloader_duckdb.config`, no duckdb, no pyarrow) when a recipe
binds `type: duckdb`, and the connector's module only when one is created.
"""

from __future__ import annotations

from typing import Any

from dataloader import PluginRef, hookimpl


@hookimpl
def register_connectors() -> list[Any]:
    return [
        PluginRef(
            "duckdb",
            "dataloader_duckdb.connector:DuckDBConnector",
            config_model="dataloader_duckdb.config:DuckDBConfig",
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
            },
        )
    ]
