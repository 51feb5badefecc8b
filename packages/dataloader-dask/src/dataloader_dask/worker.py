"""What the executor installs in every Dask worker of a run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from distributed import WorkerPlugin


class PrepareWorker(WorkerPlugin):
    """Runs the engine's preparation (`Executor.open`'s `prepare`) in each worker as it
    starts, and in each that joins the cluster later."""

    def __init__(self, prepare: Callable[[], None]) -> None:
        self.prepare = prepare

    def setup(self, worker: Any) -> None:
        self.prepare()
