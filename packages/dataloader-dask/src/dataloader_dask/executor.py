"""`DaskExecutor`: runs a distributed run's tasks on a Dask distributed cluster.

With `runtime.address` it connects to that cluster's scheduler; without, it starts a local
cluster of worker processes that the run owns and stops. It only runs tasks: the core plans,
locks and commits (`dataloader.engine.distributed`). A task whose worker process dies is
rescheduled by Dask's scheduler (up to `distributed.scheduler.allowed-failures` times); a task
that raises an error the core judges transient is resubmitted, up to `runtime.retries.attempts`
times; any other error fails the run at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from dataloader import ConnectorError

if TYPE_CHECKING:
    from dataloader.recipe.models import RuntimeConfig

Item = TypeVar("Item")
Result = TypeVar("Result")


class DaskExecutor:
    """The `dask` executor (`runtime: {executor: dask, address: tcp://…}`)."""

    name: ClassVar[str] = "dask"

    def __init__(self) -> None:
        self._client: Any = None
        self._cluster: Any = None
        self._retries = 0
        self._limit = 2

    def open(self, runtime: RuntimeConfig, prepare: Callable[[], None] | None = None) -> None:
        """Connect to `runtime.address`, or start a local cluster of `runtime.parallelism`
        worker processes (2 when it is 1), one thread each, on 127.0.0.1, no dashboard; then
        have every worker, and any that joins later, run `prepare` (a worker plugin)."""
        from distributed import Client, LocalCluster

        self._retries = runtime.retries.attempts
        self._limit = max(2, runtime.parallelism)
        if runtime.address is not None:
            try:
                self._client = Client(runtime.address, timeout="10s", set_as_default=False)
            except (OSError, ValueError, TypeError) as exc:
                # OSError: nothing answers; ValueError: an unknown scheme or no port;
                # TypeError: `tls://` without the TLS settings Dask's config must hold.
                raise ConnectorError(
                    f"cannot use the Dask scheduler address: {exc}",
                    key="runtime.address",
                    value=runtime.address,
                    expected="the address of a running Dask scheduler (tcp://host:8786; "
                    "tls:// with Dask's TLS configuration)",
                ) from exc
            self._prepare_workers(prepare)
            return
        self._cluster = LocalCluster(
            n_workers=max(2, runtime.parallelism),
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
        self._client = Client(self._cluster, set_as_default=False)
        self._prepare_workers(prepare)

    def _prepare_workers(self, prepare: Callable[[], None] | None) -> None:
        if prepare is None:
            return
        from dataloader_dask.worker import PrepareWorker

        self._client.register_plugin(PrepareWorker(prepare), name="dataloader-prepare")

    def map(
        self,
        function: Callable[[Item], Result],
        items: Iterable[Item],
        retry: Callable[[BaseException], bool] | None = None,
    ) -> Iterator[Result]:
        """Submit the items (impure: each submission runs), at most `runtime.parallelism`
        (2 or more) at a time — on a shared cluster, the cap on the connections the tasks
        open to the source and the destination — and yield results as they finish. A task
        that raises is submitted again, up to `runtime.retries.attempts` times, when `retry`
        says its exception is worth it; otherwise the exception is raised here and the other
        tasks are cancelled. (A worker that dies is Dask's to handle: the scheduler
        reschedules its task.)"""
        from distributed import as_completed

        assert self._client is not None, "open the executor first"
        client = self._client
        waiting = iter(items)
        tries: dict[Any, tuple[Item, int]] = {}

        def submit(item: Item, tried: int) -> Any:
            future = client.submit(function, item, pure=False)
            tries[future] = (item, tried)
            return future

        # This client's loop: by default `as_completed` takes the process's default client,
        # another run's when two runs share a process, whose close would stall this one.
        finished = as_completed(
            [submit(item, 0) for item in islice(waiting, self._limit)], loop=client.loop
        )
        try:
            for future in finished:
                item, tried = tries.pop(future)
                try:
                    result = future.result()
                except Exception as exc:
                    if retry is None or tried >= self._retries or not retry(exc):
                        raise
                    finished.add(submit(item, tried + 1))
                    continue
                for following in islice(waiting, 1):
                    finished.add(submit(following, 0))
                yield result
        finally:
            client.cancel([future for future in tries if not future.done()])

    def close(self) -> None:
        """Close the client, and the local cluster this executor started."""
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        try:
            if client is not None:
                client.close()
        finally:
            if cluster is not None:
                cluster.close()
