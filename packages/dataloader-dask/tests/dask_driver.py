"""Runs a recipe on the `dask` executor in this process and kills the process (SIGKILL) at
the driver's gate named on the command line: `python dask_driver.py RECIPE_JSON STATE_DIR
GATE`."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from dask_gates import dask_registry

from dataloader.engine.distributed import DistributedRun
from dataloader.executors import create_executor
from dataloader.recipe.binding import bind_recipe
from dataloader.recipe.models import Recipe
from dataloader.state.local import LocalStateBackend


def main() -> None:
    recipe = Recipe.model_validate(json.loads(Path(sys.argv[1]).read_text()))
    gate = sys.argv[3]
    registry = dask_registry()

    def on_stage(stage: str) -> None:
        if stage == gate:
            os.kill(os.getpid(), signal.SIGKILL)

    run = DistributedRun(
        bind_recipe(recipe, registry),
        LocalStateBackend(sys.argv[2]),
        create_executor("dask", registry, recipe),
        on_stage=on_stage,
    )
    run.run()


if __name__ == "__main__":
    main()
