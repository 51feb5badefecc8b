"""MySQL and MariaDB source and destination for dataloader.

Names are imported on first use, so loading the plugin (its `plugin` module, inside this
package) does not import the connector's modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dataloader.lazy import lazy_attributes

if TYPE_CHECKING:
    from dataloader_mysql.config import MySQLConfig
    from dataloader_mysql.connector import MySQLConnector

_EXPORTS = {
    "MySQLConfig": "dataloader_mysql.config",
    "MySQLConnector": "dataloader_mysql.connector",
}

__getattr__ = lazy_attributes(__name__, _EXPORTS)

__all__ = ["MySQLConfig", "MySQLConnector"]
