"""The DuckDB connector's keys: a light module (pydantic, no duckdb, no pyarrow), so that a
recipe is validated without importing the connector."""

from __future__ import annotations

from dataloader.connectors import TableOrQueryConfig


class DuckDBConfig(TableOrQueryConfig):
    """`database`: a file path or `:memory:`; `table` (`schema.table`) or, for sources, `query`."""

    database: str = ":memory:"
    read_only: bool = False
