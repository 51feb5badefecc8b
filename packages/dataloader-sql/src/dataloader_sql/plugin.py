"""Entry-point module: registers the generic `sql` connector (SQLAlchemy, any dialect).

Only a `PluginRef`: SQLAlchemy and pyarrow are imported when a connector is created.
"""

from __future__ import annotations

from typing import Any

from dataloader import PluginRef, hookimpl


@hookimpl
def register_connectors() -> list[Any]:
    return [
        PluginRef(
            "sql",
            "dataloader_sql.connector:SqlConnector",
            config_model="dataloader_sql.config:SqlConfig",
            capabilities={
                "read": True,
                "write": True,
                "write_modes": ("append", "overwrite", "merge"),
                "incremental": True,
                "transactional_state": True,
            },
        )
    ]
