"""Fixtures of the Dask executor's tests: one local cluster per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dask_gates import GatesPlugin, dask_registry, register_gates
from distributed import Client, LocalCluster

from dataloader.registry import Registry, unregister


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    """The scheduler address of a local cluster of 2 worker processes (one thread each) for
    the module, its workers holding the test gates' plugin."""
    register_gates()
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    client = Client(cluster)
    client.register_plugin(GatesPlugin(), name="dataloader-test-gates")
    try:
        yield cluster.scheduler_address
    finally:
        client.close()
        cluster.close()
        unregister("transform", "dask_kill_once")
        unregister("transform", "dask_fail")


@pytest.fixture
def registry(address: str) -> Registry:
    """The plugin registry with the test gates, once the cluster is up."""
    return dask_registry()
