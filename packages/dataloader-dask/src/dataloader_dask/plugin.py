"""Entry-point module: registers the `dask` executor.

It gives a `PluginRef`, so listing plugins and validating a recipe import neither Dask nor
the executor's module; the executor is imported when a run asks for `executor: dask`.
"""

from __future__ import annotations

from typing import Any

from dataloader import PluginRef, hookimpl


@hookimpl
def register_executors() -> list[Any]:
    return [PluginRef("dask", "dataloader_dask.executor:DaskExecutor")]
