"""A generic SQLAlchemy connector for dataloader: any database a SQLAlchemy dialect reaches.

Names are imported on first use, so loading the plugin does not import SQLAlchemy or pyarrow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dataloader.lazy import lazy_attributes

if TYPE_CHECKING:
    from dataloader_sql.config import SqlConfig
    from dataloader_sql.connector import SqlConnector

_EXPORTS = {
    "SqlConfig": "dataloader_sql.config",
    "SqlConnector": "dataloader_sql.connector",
}

__getattr__ = lazy_attributes(__name__, _EXPORTS)

__all__ = ["SqlConfig", "SqlConnector"]
