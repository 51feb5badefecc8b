"""The plugin module named by the `dataloader` entry point.

It imports only `hookimpl`: each hook imports what it registers when the registry asks, so
loading plugins (`dataloader --help`, any run) does not import pyarrow or a driver for them.
"""

from __future__ import annotations

from typing import Any

from dataloader import hookimpl


@hookimpl
def register_connectors() -> list[Any]:
    from dataloader_example.sequence import SequenceSource

    return [SequenceSource]


@hookimpl
def register_transforms() -> list[Any]:
    from dataloader_example.upper_case import UpperCase

    return [UpperCase]
