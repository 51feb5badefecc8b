"""Entry-point module: registers the `mysql` connector (MySQL and MariaDB).

It gives a `PluginRef`: the registry knows the name and capabilities from it, imports the
config model (no pymysql, no pyarrow) when a recipe binds the name, and the connector's
module only when one is created.
"""

from __future__ import annotations

from typing import Any

from dataloader import PluginRef, hookimpl


@hookimpl
def register_connectors() -> list[Any]:
    return [
        PluginRef(
            "mysql",
            "dataloader_mysql.connector:MySQLConnector",
            config_model="dataloader_mysql.config:MySQLConfig",
            capabilities={
                "read": True,
                "write": True,
                "write_modes": ("append", "overwrite", "merge"),
                "incremental": True,
                "transactional_state": True,
                "max_identifier_length": 64,
            },
        )
    ]
