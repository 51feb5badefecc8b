"""Test helpers of dataloader-dask: gates placed in a worker or the driver, deterministically,
and the registry a test run uses (the installed `dask` executor, or this package's plugin
registered in-process when the distribution is not installed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
from distributed import WorkerPlugin

from dataloader.batch import ArrowBatch
from dataloader.context import RunContext
from dataloader.engine.distributed import DistributedRun
from dataloader.executors import create_executor
from dataloader.plugins import create_plugin_manager
from dataloader.recipe.binding import bind_recipe
from dataloader.recipe.models import Recipe
from dataloader.registry import Registry, get_registry, register_transform
from dataloader.state.local import LocalStateBackend
from dataloader.transforms.base import Transform, TransformStepConfig

HERE = Path(__file__).resolve().parent


class KillOnceConfig(TransformStepConfig):
    """`marker`: a file the first attempt to see `at_id` creates before it dies."""

    marker: str
    at_id: int


class KillOnce(Transform):
    """Kills its worker process (`os._exit`) the first time a batch holds `id == at_id`;
    later attempts, which find the marker, pass the rows on."""

    name = "dask_kill_once"
    config_model = KillOnceConfig

    def apply(self, batch: ArrowBatch, context: RunContext) -> ArrowBatch:
        ids = batch.to_arrow().column("id")
        marker = Path(self.config.marker)
        if pc.any(pc.equal(ids, self.config.at_id)).as_py() and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)
        return batch


class FailConfig(TransformStepConfig):
    """`tries`: a file each try that sees `at_id` adds a line to before it raises; `once`:
    raise a `ConnectionError` (transient) on the first try only, else a `ValueError` always."""

    tries: str
    at_id: int
    once: bool


class Fail(Transform):
    """Raises when a batch holds `id == at_id`: transiently once, or for good."""

    name = "dask_fail"
    config_model = FailConfig

    def apply(self, batch: ArrowBatch, context: RunContext) -> ArrowBatch:
        ids = batch.to_arrow().column("id")
        if not pc.any(pc.equal(ids, self.config.at_id)).as_py():
            return batch
        tries = Path(self.config.tries)
        before = tries.read_text().count("\n") if tries.exists() else 0
        with tries.open("a") as file:
            file.write(f"{os.getpid()}\n")
        if not self.config.once:
            raise ValueError(f"row {self.config.at_id} is refused")
        if before == 0:
            raise ConnectionError("connection reset while reading")
        return batch


def register_gates() -> None:
    """Register the gate transforms in this process."""
    register_transform("dask_kill_once")(KillOnce)
    register_transform("dask_fail")(Fail)


class GatesPlugin(WorkerPlugin):
    """Registers the gates in every worker, also one started after a worker died."""

    def setup(self, worker: Any) -> None:
        register_gates()


def dask_registry() -> Registry:
    """The registry with the `dask` executor: installed, or this package's plugin."""
    registry = get_registry()
    if "dask" in registry.names("executor"):
        return registry
    import dataloader_dask.plugin

    return Registry(*create_plugin_manager({"dask": dataloader_dask.plugin}))


def distributed_run(
    recipe: dict[str, Any], state: Path, registry: Registry, on_stage: Any = None
) -> DistributedRun:
    """The distributed run of `recipe` (validated here) on the `dask` executor, its state in
    the local directory `state`; `on_stage` is where a test places a kill."""
    model = Recipe.model_validate(recipe)
    return DistributedRun(
        bind_recipe(model, registry),
        LocalStateBackend(state),
        create_executor("dask", registry, model),
        on_stage=on_stage,
    )


def kill_driver_at(recipe: dict[str, Any], directory: Path, gate: str) -> Path:
    """Run `recipe` distributed in a driver process (`dask_driver.py`) that kills itself at
    `gate` (`staged` or `committed`); assert it died so. Returns its state directory."""
    recipe_file = directory / "recipe.json"
    recipe_file.write_text(json.dumps(recipe))
    state = directory / "state"
    driver = subprocess.run(
        [sys.executable, str(HERE / "dask_driver.py"), str(recipe_file), str(state), gate],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert driver.returncode == -9, driver.stderr[-2000:]
    return state
