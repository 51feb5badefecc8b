"""Entry-point module: registers the filestore connector and the built-in file formats.

Their modules are imported when the registry asks for them, not when plugins load.
"""

from __future__ import annotations

from typing import Any

from dataloader import hookimpl


@hookimpl
def register_connectors() -> list[Any]:
    from dataloader_filestore.connector import FileStoreConnector

    return [FileStoreConnector]


@hookimpl
def register_formats() -> list[Any]:
    from dataloader_filestore.formats import BUILTIN_FORMATS

    return list(BUILTIN_FORMATS)
