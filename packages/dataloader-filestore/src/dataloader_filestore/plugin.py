"""Entry-point module: registers the filestore connector and the built-in file formats."""

from __future__ import annotations

from typing import Any

from dataloader import hookimpl
from dataloader_filestore.connector import FileStoreConnector
from dataloader_filestore.formats import BUILTIN_FORMATS


@hookimpl
def register_connectors() -> list[Any]:
    return [FileStoreConnector]


@hookimpl
def register_formats() -> list[Any]:
    return list(BUILTIN_FORMATS)
