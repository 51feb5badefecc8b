"""DuckDB connector for dataloader."""

from dataloader_duckdb.connector import DuckDBConfig, DuckDBConnector

__all__ = ["DuckDBConfig", "DuckDBConnector"]
