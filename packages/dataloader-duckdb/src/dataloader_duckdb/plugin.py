"""Entry-point module: registers the DuckDB connector.

The connector's module is imported when the registry asks for it, not when plugins load.
"""

from __future__ import annotations

from typing import Any

from dataloader import hookimpl


@hookimpl
def register_connectors() -> list[Any]:
    from dataloader_duckdb.connector import DuckDBConnector

    return [DuckDBConnector]
