"""Files as dataloader sources and destinations.

Names are imported on first use, so loading the plugin (its `plugin` module, inside this
package) does not import the connector's modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dataloader.lazy import lazy_attributes

if TYPE_CHECKING:
    from dataloader_filestore.config import FileStoreConfig
    from dataloader_filestore.connector import FileStoreConnector

_EXPORTS = {
    "FileStoreConfig": "dataloader_filestore.config",
    "FileStoreConnector": "dataloader_filestore.connector",
}


__getattr__ = lazy_attributes(__name__, _EXPORTS)

__all__ = [
    "FileStoreConfig",
    "FileStoreConnector",
]
