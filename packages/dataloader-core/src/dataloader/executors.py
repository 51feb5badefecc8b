"""The executor API: what runs the tasks of a distributed run, and nothing else.

The core owns the run (`dataloader.engine.distributed`): it takes the recipe's lock, plans
the source's partitions, hands one task per partition to the executor, and commits what the
tasks staged, with the state, once. An executor plugin (`register_executors`) only runs
tasks: on the workers of a cluster it connects to or starts, retrying a task whose worker
died. Tasks and their results are picklable plain data and module-level functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar, runtime_checkable

from dataloader.errors import PluginError

if TYPE_CHECKING:
    from dataloader.recipe.models import Recipe, RuntimeConfig
    from dataloader.registry import Registry

LOCAL = "local"
# A distributed run asks its source for this many partitions per worker: enough that a slow
# partition or a retried one does not leave the other workers idle at the end.
PARTITIONS_PER_WORKER = 4
Item = TypeVar("Item")
Result = TypeVar("Result")


@runtime_checkable
class Executor(Protocol):
    """Runs tasks on workers. Created without arguments; used as `open` → `map`… → `close`."""

    name: ClassVar[str]

    def open(self, runtime: RuntimeConfig, prepare: Callable[[], None] | None = None) -> None:
        """Connect to `runtime.address`, or, when it is None, start a cluster this run owns
        (of `runtime.parallelism` workers, at least 2). `prepare` (picklable, without
        arguments) is run once in each worker process before its first task of this run,
        also in one that joins later: the engine's warm-up (imports), so the first
        partitions do not pay for it."""
        ...

    def map(
        self,
        function: Callable[[Item], Result],
        items: Iterable[Item],
        retry: Callable[[BaseException], bool] | None = None,
    ) -> Iterator[Result]:
        """Run `function(item)` for every item on the workers, at most `runtime.parallelism`
        (2 or more) at once — the cap on the connections the tasks open on a shared
        cluster —; yield the results as they finish, in any order. A task whose worker died is run again (the engine's own
        mechanism, e.g. Dask's `allowed-failures`). A task that raises is run again, up to
        `runtime.retries.attempts` times, only when `retry(exception)` says so; otherwise,
        or once its tries are spent, the exception fails the map. Closing the iterator early
        cancels what has not finished."""
        ...

    def close(self) -> None:
        """Release the connection, and stop the cluster `open` started. Called once, also
        after failures."""
        ...


def executor_name(recipe: Recipe, override: str | None = None) -> str:
    """The executor a run uses: the CLI's `--executor`, else `runtime.executor`."""
    return override or recipe.runtime.executor


def partition_count(runtime: RuntimeConfig) -> int:
    """How many partitions a distributed run asks its source for: `PARTITIONS_PER_WORKER` per
    worker, `runtime.parallelism` workers (at least 2)."""
    return max(2, runtime.parallelism) * PARTITIONS_PER_WORKER


def create_executor(name: str, registry: Registry, recipe: Recipe) -> Executor:
    """An instance of the executor plugin `name`, or a `PluginError` that names the key
    (`runtime.executor`) and the installed executors."""
    try:
        registration = registry.executor(name)
    except PluginError as exc:
        installed = ", ".join([LOCAL, *registry.names("executor")])
        raise PluginError(
            f"{exc.problem.message}",
            file=recipe.origin_of("runtime.executor"),
            key="runtime.executor",
            value=name,
            expected=f"one of: {installed}",
        ) from None
    return registration.implementation()
