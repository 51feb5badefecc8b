"""The plugin module named by the `dataloader` entry point.

It imports only `hookimpl` and `PluginRef`, and its hooks return references, not classes: the
registry lists `sequence`, `sqlite`, `upper_case` and the `rest` source's paginator
`header_cursor` (and knows the connectors' capabilities) without importing them, imports a config model (`dataloader_example.config`, a light module)
when a recipe binds `type: sequence` or `type: sqlite`, and a class's module (and pyarrow)
only when a run creates it. A hook may return the classes
themselves instead (`from dataloader_example.sequence import SequenceSource; return
[SequenceSource]`): simpler, but then every `validate` and `run` imports them.
"""

from __future__ import annotations

from typing import Any

from dataloader import PluginRef, hookimpl


@hookimpl
def register_connectors() -> list[Any]:
    return [
        PluginRef(
            "sequence",
            "dataloader_example.sequence:SequenceSource",
            config_model="dataloader_example.config:SequenceConfig",
            capabilities={"read": True, "incremental": True},
        ),
        PluginRef(
            "sqlite",
            "dataloader_example.sqlite.connector:SQLiteDestination",
            config_model="dataloader_example.config:SQLiteConfig",
            capabilities={
                "write": True,
                "write_modes": ("append", "overwrite", "merge"),
                "transactional_state": True,
                "quarantine": True,
                "child_tables": True,
            },
        ),
    ]


@hookimpl
def register_transforms() -> list[Any]:
    # No config model named: it is read from the class, imported when a recipe uses the step.
    return [PluginRef("upper_case", "dataloader_example.upper_case:UpperCase")]


@hookimpl
def register_paginators() -> list[Any]:
    # A paginator for the `rest` source of dataloader-rest (docs/rest.md, "A paginator of
    # your own"); its module imports dataloader_rest only when a recipe uses it.
    return [
        PluginRef(
            "header_cursor",
            "dataloader_example.header_cursor:HeaderCursorPaginator",
            config_model="dataloader_example.header_cursor:HeaderCursorOptions",
        )
    ]
