"""Entry-point module: registers the DuckDB connector."""

from __future__ import annotations

from typing import Any

from dataloader import hookimpl
from dataloader_duckdb.connector import DuckDBConnector


@hookimpl
def register_connectors() -> list[Any]:
    return [DuckDBConnector]
