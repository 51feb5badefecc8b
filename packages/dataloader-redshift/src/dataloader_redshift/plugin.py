"""Entry-point module: registers the experimental Redshift connector.

The `PluginRef` names the connector and its config model without importing them (no
redshift_connector, boto3, SQLAlchemy or pyarrow until a recipe uses `type: redshift`).
"""

from __future__ import annotations

from typing import Any

from dataloader import PluginRef, hookimpl

CAPABILITIES: dict[str, Any] = {
    "read": True,
    "write": True,
    "write_modes": ("append", "overwrite", "merge"),
    "incremental": True,
    "transactional_state": True,
    "max_identifier_length": 127,
    "experimental": True,  # never run against a cluster: list-connectors says so
}


@hookimpl
def register_connectors() -> list[Any]:
    return [
        PluginRef(
            "redshift",
            "dataloader_redshift.connector:RedshiftConnector",
            config_model="dataloader_redshift.config:RedshiftConfig",
            capabilities=CAPABILITIES,
        )
    ]
