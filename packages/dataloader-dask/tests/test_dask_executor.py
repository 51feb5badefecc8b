"""`DaskExecutor.map` on an in-process cluster of 4 threads: at most `runtime.parallelism`
tasks are on the cluster at once (the cap on the connections tasks open), and every item
still runs once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from dataloader_dask.executor import DaskExecutor
from distributed import Client, LocalCluster

from dataloader.engine.distributed import WorkerPreparation
from dataloader.recipe.models import RuntimeConfig

RELEASE = threading.Event()
STARTED = threading.Semaphore(0)


def blocked(item: int) -> int:
    """Runs in a thread of this process: says it started, waits to be released."""
    STARTED.release()
    RELEASE.wait()
    return item * 10


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=4,
            processes=False,
            protocol="tcp://",
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster),
    ):
        yield cluster.scheduler_address


@pytest.mark.parametrize("parallelism", [2, 3])
def test_at_most_parallelism_tasks_are_on_the_cluster(address: str, parallelism: int) -> None:
    global STARTED
    RELEASE.clear()
    STARTED = threading.Semaphore(0)
    executor = DaskExecutor()
    executor.open(RuntimeConfig.model_validate({"address": address, "parallelism": parallelism}))
    try:
        results = executor.map(blocked, range(7))
        collected: list[int] = []
        reader = threading.Thread(target=lambda: collected.extend(results))
        reader.start()
        for _ in range(parallelism):
            STARTED.acquire()  # the first tasks have started: all those submitted so far
        held = executor._client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
        RELEASE.set()
        reader.join()
    finally:
        RELEASE.set()
        executor.close()
    assert held == parallelism  # 4 threads could have run more
    assert sorted(collected) == [item * 10 for item in range(7)]


def _prepared() -> bool:
    import sys

    from dataloader import registry

    loaded = {"dataloader_filestore.connector", "dataloader_duckdb.connector"}
    return loaded <= sys.modules.keys() and registry._default is not None


def test_the_workers_of_a_local_cluster_are_prepared_before_the_first_task(
    tmp_path: Path,
) -> None:
    recipe = {
        "name": "prepared",
        "source": {"type": "filestore", "path": str(tmp_path / "*.csv")},
        "destination": {"type": "duckdb", "database": str(tmp_path / "o.duckdb"), "table": "t"},
        "runtime": {"executor": "dask", "parallelism": 2},
    }
    preparation = WorkerPreparation(recipe)
    assert "filestore" not in repr(preparation)  # the recipe (and its secrets) left out
    executor = DaskExecutor()
    executor.open(RuntimeConfig.model_validate({"parallelism": 2}), preparation)
    try:
        prepared = executor._client.run(_prepared)
    finally:
        executor.close()
    assert len(prepared) == 2 and all(prepared.values())
