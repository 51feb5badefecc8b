"""The connectors' keys, in a module of their own: pydantic, no pyarrow, no sqlite3. The
plugin's `PluginRef`s name these models, so `dataloader validate` checks a recipe's keys
without importing the connectors."""

from __future__ import annotations

from pydantic import Field

from dataloader import ConnectorConfig


class SequenceConfig(ConnectorConfig):
    start: int = 1
    stop: int = Field(ge=0)
    label: str = "row"


class SQLiteConfig(ConnectorConfig):
    """`database`: the SQLite file (created when missing); `table`: the table rows go into."""

    database: str = Field(min_length=1)
    table: str = Field(min_length=1)
