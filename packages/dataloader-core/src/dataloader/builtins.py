"""The core's built-in plugin: its transforms and the local state backend.

Like every plugin's entry-point module, it registers `PluginRef`s, so that loading plugins and
listing them stays cheap: a transform's module (and pyarrow) is imported when a recipe uses
the step.
"""

from __future__ import annotations

from typing import Any

from dataloader.hookspecs import hookimpl
from dataloader.plugins import PluginRef

_TRANSFORMS = {
    "rename_columns": "dataloader.transforms.columns:RenameColumns",
    "cast": "dataloader.transforms.cast:Cast",
    "add_column": "dataloader.transforms.add_column:AddColumn",
    "select_columns": "dataloader.transforms.columns:SelectColumns",
    "drop_columns": "dataloader.transforms.columns:DropColumns",
    "filter": "dataloader.transforms.filter:Filter",
    "fill_null": "dataloader.transforms.fill_null:FillNull",
}


@hookimpl
def register_transforms() -> list[Any]:
    return [PluginRef(name, target) for name, target in _TRANSFORMS.items()]


@hookimpl
def register_state_backends() -> list[Any]:
    return [PluginRef("local", "dataloader.state.local:LocalStateBackend")]
