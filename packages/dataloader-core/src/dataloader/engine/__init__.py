"""The execution engine: plan a recipe's run and drive it, exactly once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dataloader.engine.result import RunResult, StageMetrics
from dataloader.engine.runner import Runner, RunOptions
from dataloader.recipe.binding import bind_recipe
from dataloader.recipe.loader import RecipeLoader
from dataloader.recipe.models import Recipe
from dataloader.registry import Registry, get_registry
from dataloader.state.backend import StateBackend
from dataloader.state.local import LocalStateBackend

DEFAULT_STATE_DIR = ".state"


def state_backend_for(
    recipe: Recipe,
    state_dir: str | os.PathLike[str] | None = None,
    registry: Registry | None = None,
) -> StateBackend:
    """The state backend a run uses: `--state-dir` if given, else the recipe's `state:`, else
    `.state`. A local one also locks the recipe's runs on this host whatever their directory."""
    if state_dir is not None:
        return LocalStateBackend(state_dir).for_recipe(recipe)
    bound = bind_recipe(recipe, registry or get_registry())
    backend = bound.state.create() if bound.state is not None else None
    if backend is None:
        return LocalStateBackend(DEFAULT_STATE_DIR).for_recipe(recipe)
    return backend.for_recipe(recipe) if isinstance(backend, LocalStateBackend) else backend


def run_recipe(
    recipe: Recipe,
    state_backend: StateBackend | None = None,
    *,
    full_refresh: bool = False,
    registry: Registry | None = None,
    progress: Any = None,
) -> RunResult:
    """Run a recipe once, single-process or on the executor `runtime.executor` names, and
    return what it did. Raises a `DataLoaderError` on failure."""
    from dataloader.engine.distributed import create_run

    registry = registry or get_registry()
    bound = bind_recipe(recipe, registry)
    backend = (
        state_backend if state_backend is not None else state_backend_for(recipe, registry=registry)
    )
    options = RunOptions(full_refresh=full_refresh, progress=progress)
    return create_run(bound, backend, options, registry=registry).run()


def run_recipe_from_yaml(
    path: str | os.PathLike[str],
    state_dir: str | os.PathLike[str] | None = None,
    *,
    vars: dict[str, Any] | None = None,
    full_refresh: bool = False,
) -> RunResult:
    """Load a recipe file and run it; state in `state_dir` (default: the recipe's `state:` or `.state`)."""
    recipe = RecipeLoader(vars).load(Path(path))
    return run_recipe(recipe, state_backend_for(recipe, state_dir), full_refresh=full_refresh)


__all__ = [
    "RunOptions",
    "RunResult",
    "Runner",
    "StageMetrics",
    "run_recipe",
    "run_recipe_from_yaml",
    "state_backend_for",
]
