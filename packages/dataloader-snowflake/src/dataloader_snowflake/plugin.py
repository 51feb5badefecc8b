"""Entry-point module: registers the Snowflake connector.

It gives a `PluginRef`: the registry imports the config model when a recipe binds `snowflake`,
and the connector's module (the Snowflake connector, pyarrow) only when one is created.
"""

from __future__ import annotations

from typing import Any

from dataloader import PluginRef, hookimpl


@hookimpl
def register_connectors() -> list[Any]:
    return [
        PluginRef(
            "snowflake",
            "dataloader_snowflake.connector:SnowflakeConnector",
            config_model="dataloader_snowflake.config:SnowflakeConfig",
            capabilities={
                "read": True,
                "write": True,
                "write_modes": ("append", "overwrite", "merge"),
                "incremental": True,
                "transactional_state": True,
                "max_identifier_length": 255,
                "experimental": True,  # never run against a real account (docs/snowflake.md)
            },
        )
    ]
