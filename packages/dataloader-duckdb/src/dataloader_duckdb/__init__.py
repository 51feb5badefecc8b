"""DuckDB connector for dataloader.

Names are imported on first use, so loading the plugin (its `plugin` module, inside this
package) does not import the connector's modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dataloader.lazy import lazy_attributes

if TYPE_CHECKING:
    from dataloader_duckdb.config import DuckDBConfig
    from dataloader_duckdb.connector import DuckDBConnector

_EXPORTS = {
    "DuckDBConfig": "dataloader_duckdb.config",
    "DuckDBConnector": "dataloader_duckdb.connector",
}


__getattr__ = lazy_attributes(__name__, _EXPORTS)

__all__ = [
    "DuckDBConfig",
    "DuckDBConnector",
]
