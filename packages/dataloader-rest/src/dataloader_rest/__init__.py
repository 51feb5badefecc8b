"""A REST API source for dataloader: `type: rest` in a recipe (see docs/rest.md).

The paginator API for plugins (`register_paginators`) is `Paginator`, `PaginatorOptions`,
`PageRequest` and `PageResponse`, imported on first use so that the entry point stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "PageRequest": "dataloader_rest.pages",
    "PageResponse": "dataloader_rest.pages",
    "Paginator": "dataloader_rest.pages",
    "PaginatorOptions": "dataloader_rest.pages",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dataloader_rest' has no attribute {name!r}")
