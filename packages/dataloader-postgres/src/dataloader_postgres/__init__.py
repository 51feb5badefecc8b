"""PostgreSQL connector and state backend for dataloader.

Names are imported on first use, so loading the plugin (its `plugin` module, inside this
package) does not import the connector's modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dataloader.lazy import lazy_attributes

if TYPE_CHECKING:
    from dataloader_postgres.config import PostgresConfig
    from dataloader_postgres.connector import PostgresConnector
    from dataloader_postgres.state import PostgresStateBackend

_EXPORTS = {
    "PostgresConfig": "dataloader_postgres.config",
    "PostgresConnector": "dataloader_postgres.connector",
    "PostgresStateBackend": "dataloader_postgres.state",
}


__getattr__ = lazy_attributes(__name__, _EXPORTS)

__all__ = [
    "PostgresConfig",
    "PostgresConnector",
    "PostgresStateBackend",
]
