"""What the executor installs in every Dask worker of a run."""

from __future__ import annotations

from typing import Any

from distributed import WorkerPlugin


class PrepareWorker(WorkerPlugin):
    """Runs `dataloader.engine.distributed.prepare_worker` in each worker as it starts, and
    in each that joins the cluster later."""

    def setup(self, worker: Any) -> None:
        from dataloader.engine.distributed import prepare_worker

        prepare_worker()
