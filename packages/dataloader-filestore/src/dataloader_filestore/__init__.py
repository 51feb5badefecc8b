"""Files as dataloader sources and destinations.

Names are imported on first use, so loading the plugin (its `plugin` module, inside this
package) does not import the connector's modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataloader_filestore.config import FileStoreConfig
    from dataloader_filestore.connector import FileStoreConnector

_EXPORTS = {
    "FileStoreConfig": "dataloader_filestore.config",
    "FileStoreConnector": "dataloader_filestore.connector",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "FileStoreConfig",
    "FileStoreConnector",
]
