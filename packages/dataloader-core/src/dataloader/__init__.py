"""dataloader: declarative, plugin-based data loading.

The public API: load recipes, run them, and write plugins.
"""

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
from dataloader.hookspecs import hookimpl
from dataloader.plugins import core_version
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

__version__ = core_version()

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
    "PluginError",
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
