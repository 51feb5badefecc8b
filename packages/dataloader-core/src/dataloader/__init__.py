"""dataloader: declarative, plugin-based data loading.

The public API: load recipes, run them, and write plugins.

Names are imported on first use (PEP 562): `from dataloader import hookimpl` in a plugin's
entry-point module, or `dataloader --help`, imports neither pyarrow nor the engine nor any
driver; `from dataloader import run_recipe` imports what running needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dataloader.hookspecs import hookimpl

if TYPE_CHECKING:
    from dataloader.batch import ArrowBatch, Batch, DictBatch
    from dataloader.connectors import BaseConnector, Capabilities, Connector, ConnectorConfig
    from dataloader.context import RunContext
    from dataloader.engine import RunResult, run_recipe, run_recipe_from_yaml
    from dataloader.errors import (
        ConnectorError,
        DataLoaderError,
        EngineError,
        PluginError,
        RecipeError,
        StateError,
        TransformError,
    )
    from dataloader.formats import Format, FormatOptions, FormatWriter
    from dataloader.partitions import Partition
    from dataloader.plugins import PluginRef
    from dataloader.recipe import Recipe, RecipeLoader, from_yaml
    from dataloader.registry import (
        ConnectorSpec,
        get_connector,
        get_registry,
        get_transform,
        register_connector,
        register_format,
        register_state_backend,
        register_transform,
    )
    from dataloader.state import LocalStateBackend, State, StateBackend, StateBackendConfig
    from dataloader.transforms import Transform, TransformStepConfig

# Each public name and the module it comes from.
_EXPORTS: dict[str, str] = {
    "ArrowBatch": "dataloader.batch",
    "Batch": "dataloader.batch",
    "DictBatch": "dataloader.batch",
    "BaseConnector": "dataloader.connectors",
    "Capabilities": "dataloader.connectors",
    "Connector": "dataloader.connectors",
    "ConnectorConfig": "dataloader.connectors",
    "RunContext": "dataloader.context",
    "RunResult": "dataloader.engine",
    "run_recipe": "dataloader.engine",
    "run_recipe_from_yaml": "dataloader.engine",
    "ConnectorError": "dataloader.errors",
    "DataLoaderError": "dataloader.errors",
    "EngineError": "dataloader.errors",
    "PluginError": "dataloader.errors",
    "RecipeError": "dataloader.errors",
    "StateError": "dataloader.errors",
    "TransformError": "dataloader.errors",
    "Format": "dataloader.formats",
    "FormatOptions": "dataloader.formats",
    "FormatWriter": "dataloader.formats",
    "Partition": "dataloader.partitions",
    "Recipe": "dataloader.recipe",
    "RecipeLoader": "dataloader.recipe",
    "from_yaml": "dataloader.recipe",
    "ConnectorSpec": "dataloader.registry",
    "PluginRef": "dataloader.plugins",
    "get_connector": "dataloader.registry",
    "get_registry": "dataloader.registry",
    "get_transform": "dataloader.registry",
    "register_connector": "dataloader.registry",
    "register_format": "dataloader.registry",
    "register_state_backend": "dataloader.registry",
    "register_transform": "dataloader.registry",
    "LocalStateBackend": "dataloader.state",
    "State": "dataloader.state",
    "StateBackend": "dataloader.state",
    "StateBackendConfig": "dataloader.state",
    "Transform": "dataloader.transforms",
    "TransformStepConfig": "dataloader.transforms",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from dataloader.plugins import core_version

        value = core_version()
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'dataloader' has no attribute {name!r}")
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "ArrowBatch",
    "BaseConnector",
    "Batch",
    "Capabilities",
    "Connector",
    "ConnectorConfig",
    "ConnectorError",
    "ConnectorSpec",
    "DataLoaderError",
    "DictBatch",
    "EngineError",
    "Format",
    "FormatOptions",
    "FormatWriter",
    "LocalStateBackend",
    "Partition",
    "PluginError",
    "PluginRef",
    "Recipe",
    "RecipeError",
    "RecipeLoader",
    "RunContext",
    "RunResult",
    "State",
    "StateBackend",
    "StateBackendConfig",
    "StateError",
    "Transform",
    "TransformError",
    "TransformStepConfig",
    "__version__",
    "from_yaml",
    "get_connector",
    "get_registry",
    "get_transform",
    "hookimpl",
    "register_connector",
    "register_format",
    "register_state_backend",
    "register_transform",
    "run_recipe",
    "run_recipe_from_yaml",
]
