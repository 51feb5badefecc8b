"""Snowflake source and destination for dataloader: Parquet staged and COPY INTO.

Names are imported on first use, so loading the plugin does not import the connector.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dataloader.lazy import lazy_attributes

if TYPE_CHECKING:
    from dataloader_snowflake.config import SnowflakeConfig
    from dataloader_snowflake.connector import SnowflakeConnector

_EXPORTS = {
    "SnowflakeConfig": "dataloader_snowflake.config",
    "SnowflakeConnector": "dataloader_snowflake.connector",
}

__getattr__ = lazy_attributes(__name__, _EXPORTS)

__all__ = ["SnowflakeConfig", "SnowflakeConnector"]
