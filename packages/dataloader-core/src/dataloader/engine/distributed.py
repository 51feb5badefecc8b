"""A distributed run: the source's partitions read, transformed and staged by an executor's
workers; the driver commits them all with the state, once.

Exactly-once rests on the single-process engine's rule, kept by the driver alone: the rows
staged by the partitions' tasks become visible *together with* the state that describes them,
in one destination transaction (`commit_staged`). A worker only stages, apart from every
other attempt; what a dead or retried attempt staged is never reported, so never committed,
and is removed with the rest of the run's staging. A driver killed before the commit leaves
the old table and state (its staging is removed by the recipe's next run); after it, the new.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from threading import Thread
from typing import Any

import pyarrow as pa

from dataloader.batch import ArrowBatch, as_arrow_batch
from dataloader.context import RunContext
from dataloader.engine.result import RunInterrupted, RunResult, StageMetrics
from dataloader.engine.runner import Runner, RunOptions, deep_merge, new_run_id
from dataloader.errors import DataLoaderError, EngineError
from dataloader.executors import Executor, partition_count
from dataloader.incremental import CursorTracker, window_for
from dataloader.logs import run_context
from dataloader.partitions import Partition
from dataloader.recipe.binding import BoundRecipe, bind_recipe
from dataloader.recipe.models import Recipe
from dataloader.registry import Registry, get_registry
from dataloader.schema.config import SchemaConfig
from dataloader.schema.history import record
from dataloader.schema.lattice import Rules, supertype
from dataloader.schema.types import TYPE_TAG
from dataloader.state.backend import StateBackend
from dataloader.state.model import State
from dataloader.transforms.pipeline import TransformPipeline

log = logging.getLogger("dataloader.engine")

StageHook = Callable[[str], None]


@dataclass(frozen=True)
class PartitionTask:
    """What one worker needs to load one partition: plain, picklable data.

    :param recipe: the validated recipe as data (its keys as given, secrets included: it
        travels to the workers, never into logs; the task's `repr`, which a worker logs
        when the task fails, leaves it and the state out).
    :param partition: `Partition.to_dict()`.
    :param state: the state the plan was made from (`State.to_dict()`).
    """

    recipe: dict[str, Any] = field(repr=False)
    partition: dict[str, Any]
    state: dict[str, Any] = field(repr=False)
    run_id: str
    started_at: str
    full_refresh: bool


@dataclass
class PartitionReport:
    """What one finished task staged, as the driver commits it.

    :param attempt: unique to the try that staged it (a retried partition's report names
        the try that finished).
    :param cursor: the partition's cursor boundary (`Boundary.to_state()`), None without
        cursor values or without a cursor.
    :param checkpoint: the partition's batch checkpoints, merged.
    :param staged: what the destination's `stage_partition` returned.
    """

    index: int
    attempt: str
    rows_read: int
    rows_written: int
    bytes_written: int
    batches: int
    seconds: float
    cursor: dict[str, Any] | None
    checkpoint: dict[str, Any]
    staged: dict[str, Any]
    stages: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerPreparation:
    """What a worker process does before its first task, as an executor runs it in each
    worker when it starts or joins the run: import the engine, load the plugin registry and
    the modules of the recipe's connectors and steps (nothing is opened). A failure is left
    for the task to meet and report.

    :param recipe: the validated recipe as data (secrets included; not in the `repr`).
    """

    recipe: dict[str, Any] = field(repr=False)

    def __call__(self) -> None:
        try:
            bound = bind_recipe(Recipe.model_validate(self.recipe), get_registry())
            bound.source.create()
            bound.destination.create()
            for step in bound.steps:
                step.create()
        except Exception as exc:
            log.debug(f"worker preparation left to the first task: {_cause(exc)}")


def run_partition(task: PartitionTask) -> PartitionReport:
    """In a worker: read one partition, transform it as the engine does, and stage it through
    the destination (which is not opened here: the driver holds its connection)."""
    clock = time.perf_counter()
    recipe = Recipe.model_validate(task.recipe)
    bound = bind_recipe(recipe, get_registry())
    started_at = datetime.fromisoformat(task.started_at)
    source_context, destination_context = Runner(
        bound, _NO_BACKEND, RunOptions(full_refresh=task.full_refresh)
    )._contexts(task.run_id, started_at)
    partition = Partition.from_dict(task.partition)
    state = State.from_dict(task.state)
    attempt = f"{partition.index:05d}-{uuid.uuid4().hex[:12]}"
    stages = {name: StageMetrics() for name in ("read", "transform", "write")}
    counts = {"rows_read": 0, "rows_written": 0, "bytes_written": 0, "batches": 0}
    checkpoint: dict[str, Any] = {}
    last: list[Any] = [None]
    with ExitStack() as stack:
        source = bound.source.create()
        source.open(source_context)
        stack.callback(source.close)
        destination = bound.destination.create()
        pipeline = TransformPipeline([step.create() for step in bound.steps])

        def batches() -> Iterator[ArrowBatch]:
            positions = _positions(recipe, source, partition, state)
            while True:
                tick = time.perf_counter()
                try:
                    batch, cursor_max = next(positions)
                except StopIteration:
                    return
                stages["read"].seconds += time.perf_counter() - tick
                tick = time.perf_counter()
                transformed = pipeline.apply(batch, source_context) if batch.row_count else batch
                stages["transform"].seconds += time.perf_counter() - tick
                counts["rows_read"] += batch.row_count
                counts["batches"] += 1
                if batch.metadata.get("checkpoint"):
                    deep_merge(checkpoint, batch.metadata["checkpoint"])
                if cursor_max is not None:
                    last[0] = cursor_max
                if transformed.row_count:
                    transformed = _without_null_columns(transformed)
                    counts["rows_written"] += transformed.row_count
                    counts["bytes_written"] += transformed.nbytes
                    tick = time.perf_counter()
                    yield transformed  # the destination stages it meanwhile
                    stages["write"].seconds += time.perf_counter() - tick

        try:
            staged = destination.stage_partition(destination_context, partition, attempt, batches())
        except Exception as exc:
            # An exception's causes do not cross to the driver: judge here, by the
            # connectors of this task, whether another try is worth it.
            if _transient(exc, (source, destination)):
                raise TransientPartitionError(
                    f"partition {partition.index}: {_cause(exc)}"
                ) from exc
            raise
    cursor = last[0].to_state() if last[0] is not None else None
    return PartitionReport(
        index=partition.index,
        attempt=attempt,
        cursor=cursor,
        checkpoint=checkpoint,
        staged=staged,
        seconds=time.perf_counter() - clock,
        stages={name: {"seconds": m.seconds} for name, m in stages.items()},
        **counts,
    )


def _without_null_columns(batch: ArrowBatch) -> ArrowBatch:
    """`batch` without its columns of type null (NULLs only, no type): the engine leaves such
    a column out of the table until a value comes, and so does a distributed run — of its
    staged files too. A destination that has the column fills it with NULLs."""
    data = batch.to_arrow()
    if not any(pa.types.is_null(kind) for kind in data.schema.types):
        return batch
    kept = [i for i, kind in enumerate(data.schema.types) if not pa.types.is_null(kind)]
    return batch.with_data(data.select(kept))


def _positions(
    recipe: Recipe, source: Any, partition: Partition, state: State
) -> Iterator[tuple[ArrowBatch, Any]]:
    """The partition's batches, each with the cursor boundary it reaches (None without a
    cursor), filtered to the window as the engine filters a whole read."""
    raw = (as_arrow_batch(b) for b in source.read_partition(partition, state.copy_deep()))
    incremental = recipe.source.incremental
    if incremental is None or incremental.strategy != "cursor":
        for batch in raw:
            yield batch, None
        return
    tracker = CursorTracker(
        window_for(incremental, state.cursor_values, state.cursor_boundaries),
        source_name=recipe.source.type,
        merge=recipe.destination.write_mode == "merge",
        max_boundary_rows=incremental.max_boundary_rows,
        ordered=True,
    )
    yield from tracker.positions(raw)


class TransientPartitionError(Exception):
    """A task's failure its source or destination says is worth another try (a connection
    reset, a timeout, a conflict): the executor runs the task again."""


def _transient(exc: BaseException, connectors: tuple[Any, ...]) -> bool:
    """Whether a connector says `exc`, or an error it wraps, is worth a retry."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or current.__context__
    judges = [getattr(connector, "is_transient", None) for connector in connectors]
    return any(judge(error) for judge in judges if judge is not None for error in chain)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientPartitionError)


def _as_raised(reports: Iterator[PartitionReport]) -> Iterator[PartitionReport]:
    """The reports; a task's error as the worker raised it. A `Problem` without a value
    holds a sentinel that does not survive the trip between processes (it comes back as
    another object, which would be shown as the value): it is made the sentinel again."""
    try:
        yield from reports
    except DataLoaderError as exc:
        from dataloader import errors

        if type(exc.problem.value) is object and exc.problem.value is not errors._UNSET:
            exc.problem = replace(exc.problem, value=errors._UNSET)
        if hasattr(exc, "problems"):
            exc.problems = [
                replace(p, value=errors._UNSET) if type(p.value) is object else p
                for p in exc.problems
            ]
        raise


def _cause(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, DataLoaderError) else f"{type(exc).__name__}: {exc}"


class _NoBackend:
    """A worker builds contexts only; it never touches the state backend."""

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"a worker has no state backend ({name})")


_NO_BACKEND: Any = _NoBackend()


class DistributedRun:
    """Runs one bound recipe's partitions on an executor and commits them once.

    :param on_stage: called with `"staged"` once every partition is staged (before the
        commit) and `"committed"` after it (before the staging is removed): where a test
        places a kill.
    """

    def __init__(
        self,
        bound: BoundRecipe,
        backend: StateBackend,
        executor: Executor,
        options: RunOptions | None = None,
        on_stage: StageHook | None = None,
    ) -> None:
        self.bound = bound
        self.recipe = bound.recipe
        self.backend = backend
        self.executor = executor
        self.options = options or RunOptions()
        self.on_stage = on_stage
        self.result: RunResult | None = None
        self._engine = Runner(bound, backend, self.options)  # contexts and the initial state
        self._committing = False
        self._opening: Thread | None = None
        self._open_error: BaseException | None = None

    def run(self) -> RunResult:
        """Take the recipe's lock, open the executor, stage every partition, commit once."""
        started_at = datetime.now(UTC)
        run_id = new_run_id(started_at)
        result = self.result = self._engine.result = RunResult(self.recipe.name, run_id, started_at)
        self._check()
        clock = time.perf_counter()
        with ExitStack() as stack:
            stack.enter_context(run_context(self.recipe.name, run_id))
            stack.enter_context(self.backend.lock(self.recipe.name))
            try:
                # The executor starts (its imports, the connection to the scheduler or a local
                # cluster) while the driver opens the destination and plans: `_stage_all`
                # waits for it.
                self._opening = Thread(target=self._open_executor, name="executor-open")
                self._opening.start()
                stack.callback(self._close_executor)
                log.info(
                    "distributed run started",
                    extra={"stage": "plan", "counts": {"executor": self.executor.name}},
                )
                self._run(result)
            except BaseException as exc:
                interrupted = isinstance(exc, KeyboardInterrupt)
                result.status = "interrupted" if interrupted else "failed"
                result.error = "interrupted" if interrupted else _cause(exc)
                try:
                    self._finish(result, clock)
                except Exception as history_error:  # the run's own error matters more
                    log.warning(f"could not record the {result.status} run: {history_error}")
                if interrupted:
                    raise RunInterrupted(result) from exc
                if not isinstance(exc, Exception):
                    raise
                error = exc if isinstance(exc, DataLoaderError) else None
                log.error(  # the one report of the failure: the CLI does not repeat it
                    f"run failed: {result.error}",
                    extra={"stage": "commit" if self._committing else "write"},
                )
                if error is not None:
                    raise
                raise EngineError(
                    f"distributed run of recipe {self.recipe.name!r} failed: {result.error}",
                    file=str(self.recipe.file) if self.recipe.file else None,
                ) from exc
            self._finish(result, clock)
        log.info("run finished", extra={"stage": "done", "counts": {"rows": result.rows_written}})
        return result

    def _open_executor(self) -> None:
        try:
            self.executor.open(self.recipe.runtime, WorkerPreparation(self._recipe_data()))
        except BaseException as exc:  # raised in the driver's thread by `_opened`
            self._open_error = exc

    def _recipe_data(self) -> dict[str, Any]:
        """The recipe as the workers validate it again."""
        return self.recipe.model_dump(by_alias=True, exclude_unset=True)

    def _opened(self) -> None:
        """Wait for the executor to be open; raise what opening it raised."""
        assert self._opening is not None
        self._opening.join()
        if self._open_error is not None:
            raise self._open_error

    def _close_executor(self) -> None:
        if self._opening is not None:
            self._opening.join()
        self.executor.close()

    def _check(self) -> None:
        """What this slice cannot run distributed: a clear error naming the key, up front."""
        recipe = self.recipe
        source = self.bound.source.registration
        destination = self.bound.destination.registration
        if not (source.capabilities and source.capabilities.can_split):
            raise EngineError(
                f"source {recipe.source.type!r} cannot split its read into partitions, "
                f"which executor {self.executor.name!r} runs on its workers",
                file=recipe.origin_of("source.type"),
                key="source.type",
                value=recipe.source.type,
                expected="a source that can split (can-split in `dataloader list-connectors`), "
                "or `runtime.executor: local`",
            )
        if not (destination.capabilities and destination.capabilities.can_stage):
            raise EngineError(
                f"destination {recipe.destination.type!r} cannot stage partitions for its "
                "driver to commit",
                file=recipe.origin_of("destination.type"),
                key="destination.type",
                value=recipe.destination.type,
                expected="a destination that can stage (can-stage in "
                "`dataloader list-connectors`), or `runtime.executor: local`",
            )
        unsupported = [
            ("destination.write_mode", recipe.destination.write_mode == "merge", "merge"),
            ("normalization", bool(recipe.normalization and recipe.normalization.enabled), "on"),
            ("schema", recipe.table_schema != SchemaConfig(), "a contract"),
        ]
        for key, refused, value in unsupported:
            if refused:
                raise EngineError(
                    f"a distributed run does not support {key} {value!r} yet",
                    file=recipe.origin_of(key),
                    key=key,
                    value=value,
                    expected="append or overwrite, without normalization or a schema "
                    "contract; or `runtime.executor: local`",
                )

    def _run(self, result: RunResult) -> None:
        engine = self._engine
        source_context, destination_context = engine._contexts(result.run_id, result.started_at)
        with ExitStack() as stack:
            destination = self.bound.destination.create()
            destination.open(destination_context)
            stack.callback(destination.close)
            state = engine._initial_state(destination)
            destination.begin(state)
            destination.discard_staged()  # a dead run's
            stack.callback(destination.discard_staged)
            # The source stays open until every task has read: a snapshot the plan exported
            # (Postgres) lives as long as the driver's connection.
            source = self.bound.source.create()
            source.open(source_context)
            stack.callback(source.close)
            count = partition_count(self.recipe.runtime)
            tick = time.perf_counter()
            partitions = source.plan_partitions(state.copy_deep(), count)
            if partitions is None:
                raise EngineError(
                    f"source {self.recipe.source.type!r} cannot split this read "
                    "(e.g. a query, or a cursor without arithmetic)",
                    file=self.recipe.origin_of("source"),
                    key="source",
                    expected="a table or an incremental read the source can cut into ranges; "
                    "or `runtime.executor: local`",
                )
            result.stages["plan"] = StageMetrics(seconds=time.perf_counter() - tick)
            log.info(
                f"planned {len(partitions)} partition(s)",
                extra={"stage": "plan", "counts": {"partitions": len(partitions)}},
            )
            reports = self._stage_all(partitions, state, result)
            # Every partition is read: the source (its snapshot's transaction, and the locks
            # the plan's queries took) must not outlive the reads into the commit, which may
            # replace the very table it read.
            source.close()
            if self.on_stage is not None:
                self.on_stage("staged")
            self._commit(destination, destination_context, state, reports, result)
            if self.on_stage is not None:
                self.on_stage("committed")

    def _stage_all(
        self, partitions: list[Partition], state: State, result: RunResult
    ) -> list[PartitionReport]:
        recipe_data = self._recipe_data()
        tasks = [
            PartitionTask(
                recipe=recipe_data,
                partition=partition.to_dict(),
                state=state.to_dict(),
                run_id=result.run_id,
                started_at=result.started_at.isoformat(),
                full_refresh=self.options.full_refresh,
            )
            for partition in partitions
        ]
        self._opened()
        reports: dict[int, PartitionReport] = {}
        clock = time.perf_counter()
        attempts = self.recipe.runtime.retries.attempts
        tried: dict[str, int] = {}

        def retry(exc: BaseException) -> bool:
            """Whether the executor should run a failed task again; logged and counted."""
            if not _retryable(exc):
                return False
            where = str(exc).partition(":")[0]
            tried[where] = tried.get(where, 0) + 1
            result.stages.setdefault("write", StageMetrics()).retries += 1
            log.warning(
                f"{where}: transient failure, try {tried[where] + 1} of {attempts + 1}: "
                f"{str(exc).partition(': ')[2]}",
                extra={"stage": "write", "details": {"retries": sum(tried.values())}},
            )
            return True

        for report in _as_raised(self.executor.map(run_partition, tasks, retry)):
            if report.index in reports:
                raise EngineError(f"partition {report.index} was reported twice")
            reports[report.index] = report
            result.rows_read += report.rows_read
            result.rows_written += report.rows_written
            result.bytes_written += report.bytes_written
            result.batches += report.batches
            for name, metrics in report.stages.items():
                result.stages.setdefault(name, StageMetrics()).seconds += metrics["seconds"]
            rate = report.rows_written / max(report.seconds, 1e-9)
            log.info(
                f"partition {report.index}: {report.rows_written:,} rows staged in "
                f"{report.seconds:.2f}s, {rate:,.0f} rows/s",
                extra={
                    "stage": "write",
                    "details": {
                        "partition": report.index,
                        "rows": report.rows_written,
                        "seconds": round(report.seconds, 3),
                        "rows_per_second": round(rate),
                        "staged": len(reports),
                        "partitions": len(tasks),
                    },
                },
            )
            if self.options.progress is not None:  # rows staged so far, not yet committed
                result.duration_seconds = time.perf_counter() - clock
                self.options.progress(result)
        missing = sorted({p.index for p in partitions} - reports.keys())
        if missing:
            raise EngineError(f"partitions {missing} were never reported")
        return [reports[index] for index in sorted(reports)]

    def _commit(
        self,
        destination: Any,
        context: RunContext,
        state: State,
        reports: list[PartitionReport],
        result: RunResult,
    ) -> None:
        self._committing = True
        tick = time.perf_counter()
        for report in reports:
            deep_merge(state.watermarks, report.checkpoint)
        for name, attribute in (("read", "rows_read"), ("write", "rows_written")):
            result.stages.setdefault(name, StageMetrics()).rows = getattr(result, attribute)
        incremental = self.recipe.source.incremental
        if incremental is None:
            state.watermarks = {}
        elif incremental.strategy == "cursor" and incremental.cursor_column is not None:
            reached = [r.cursor for r in reports if r.cursor is not None]
            if reached:
                newest = max(reached, key=lambda boundary: boundary["value"])
                state.cursor_values[incremental.cursor_column] = newest["value"]
                state.cursor_boundaries[incremental.cursor_column] = newest
        staged = [report.staged for report in reports]
        schema = self._plan_table(destination, context, state, staged, result)
        result.commits += 1
        state.last_commit = {
            "run_id": result.run_id,
            "sequence": 1,
            "final": True,
            "counts": {"rows_written": result.rows_written, "partitions": len(reports)},
        }
        destination.commit_staged(staged, state, schema)
        self.backend.save(self.recipe.name, state.to_dict())
        result.stages.setdefault("commit", StageMetrics()).seconds += time.perf_counter() - tick
        result.stages["commit"].batches += 1

    def _plan_table(
        self,
        destination: Any,
        context: RunContext,
        state: State,
        staged: list[dict[str, Any]],
        result: RunResult,
    ) -> pa.Schema | None:
        """The staged parts' schemas united by the engine's widening rules, and the table
        created or evolved for them as the engine plans it for a batch: against the table
        the destination describes, else the state's schema. None without staged rows.

        The driver sees the parts' types, not their values, so it takes only what holds every
        value exactly: parts whose types have no common type by those rules, or a table
        column that cannot hold a part's type, fail the run before anything is committed
        (where a single-process run would check each value, or keep the table's type)."""
        parts = destination.staged_schemas(staged)
        if not parts:
            return None
        engine = self._engine
        engine._normalizer = None
        manager = engine._schema_manager(destination, state, context)
        schema = unite_parts(parts, manager.rules)
        prepared = manager.prepare(pa.RecordBatch.from_pylist([], schema=schema))
        if prepared.plan is not None:
            destination.apply_schema(prepared.plan)
            declared = {column.name for column in self.recipe.table_schema.columns}
            at = datetime.now(UTC).isoformat(timespec="seconds")
            version = record(state.schema_history, prepared.plan, result.run_id, at, declared)
            result.schema_changes += len(version["changes"]) if version is not None else 0
        # The table as the plan left it: as the destination describes it, else (files) as
        # the state records it.
        table = destination.describe()
        if table is None:
            table = manager.current
        # NULLs only and no column yet: left out, as the engine leaves such a column out.
        schema = pa.schema(
            [
                part_field
                for part_field in schema
                if not pa.types.is_null(part_field.type)
                or (table is not None and table.get_field_index(part_field.name) >= 0)
            ]
        )
        for part_field in schema if table is not None else ():
            index = table.get_field_index(part_field.name)
            if index < 0:
                continue
            held = table.field(index).type
            if not _holds(table.field(index), part_field.type, manager.rules):
                raise EngineError(
                    f"column {part_field.name!r}: the partitions staged {part_field.type}, "
                    f"which the table's {held} cannot hold without loss; a distributed run "
                    "sees the staged types, not each value, so it refuses what a "
                    "single-process run would check value by value",
                    key="runtime.executor",
                    value=self.executor.name,
                    expected=f"rows whose {part_field.name!r} is {held} (cast it in a "
                    "transform step), or a single-process run (`executor: local`)",
                )
        return schema

    def _finish(self, result: RunResult, clock: float) -> None:
        result.duration_seconds = time.perf_counter() - clock
        stored = State.from_dict(self.backend.load(self.recipe.name))
        stored.record_run(result.summary())
        self.backend.save(self.recipe.name, stored.to_dict())
        result.state = stored.to_dict()


def _holds(column: pa.Field, staged: pa.DataType, rules: Rules) -> bool:
    """Whether the table's `column` holds every value of type `staged` exactly: by the
    widening rules, a dictionary as its values, a duration in an interval, fixed-size
    binary in binary, and nested values in a JSON column (as the destinations load them
    single-process)."""
    held = column.type
    if pa.types.is_nested(staged) and (column.metadata or {}).get(TYPE_TAG) in _JSON_TYPES:
        return True
    if pa.types.is_dictionary(staged):
        staged = staged.value_type
    if pa.types.is_duration(staged) and pa.types.is_interval(held):
        return True
    if pa.types.is_fixed_size_binary(staged) and (
        pa.types.is_binary(held) or pa.types.is_large_binary(held)
    ):
        return True
    return supertype(held, staged, rules) == held


_UNITS = {"s": 0, "ms": 1, "us": 2, "ns": 3}
_JSON_TYPES = (b"json", b"jsonb")


def _finer_unit(held: pa.DataType, staged: pa.DataType) -> bool:
    """Whether `staged` is a timestamp of `held`'s kind (with or without a zone) in a finer
    unit."""
    return (
        pa.types.is_timestamp(held)
        and pa.types.is_timestamp(staged)
        and (held.tz is None) == (staged.tz is None)
        and _UNITS[staged.unit] > _UNITS[held.unit]
    )


def unite_parts(parts: list[tuple[str, pa.Schema]], rules: Rules) -> pa.Schema:
    """The staged parts' schemas united by name (columns in the order they first appear),
    each column of the narrowest type holding every part's type exactly (`supertype`), its
    first part's field metadata kept.

    :raises EngineError: two parts' types for a column have no such type, naming both parts.
    """
    fields: dict[str, tuple[pa.Field, str]] = {}
    for part, schema in parts:
        for part_field in schema:
            seen = fields.get(part_field.name)
            if seen is None:
                fields[part_field.name] = (part_field, part)
                continue
            held, first = seen
            tags = [(f.metadata or {}).get(TYPE_TAG) for f in (held, part_field)]
            if tags[0] != tags[1]:
                # Which file a single-process run reads first decides the column's type (and
                # how its values are stored); the driver cannot tell which part that is.
                named = [tag.decode() if tag else "no type tag" for tag in tags]
                raise EngineError(
                    f"column {part_field.name!r} is tagged {named[0]} in staged part {first} "
                    f"and {named[1]} in {part}: the partitions disagree on its database type",
                    key="runtime.executor",
                    expected="partitions whose column has one type tag (cast it in a "
                    "transform step), or a single-process run (`executor: local`)",
                )
            united = supertype(held.type, part_field.type, rules)
            if pa.types.is_duration(held.type) and held.type != part_field.type:
                raise EngineError(
                    f"column {part_field.name!r} is {held.type} in staged part {first} and "
                    f"{part_field.type} in {part}: a duration keeps one unit",
                    key="schema",
                    expected="partitions of one duration unit (cast the column in a "
                    "transform step)",
                )
            if _finer_unit(held.type, part_field.type):
                # The engine keeps a timestamp column's first unit and checks each finer
                # value against it; the driver cannot check values.
                raise EngineError(
                    f"column {part_field.name!r} is {held.type} in staged part {first} and "
                    f"{part_field.type} in {part}: a single-process run keeps the first unit "
                    "and checks each value of a finer one, which the driver cannot",
                    key="runtime.executor",
                    expected="partitions of one timestamp unit (cast the column in a "
                    "transform step), or a single-process run (`executor: local`)",
                )
            if united is None:
                raise EngineError(
                    f"column {part_field.name!r} is {held.type} in staged part {first} and "
                    f"{part_field.type} in {part}: no type holds both exactly under the "
                    "recipe's schema.evolution rules",
                    key="schema.evolution",
                    expected="partitions whose values share a type (cast the column in a "
                    "transform step, or allow_float/allow_text if that is what you want)",
                )
            fields[part_field.name] = (held.with_type(united), first)
    return pa.schema([held for held, _ in fields.values()])


def create_run(
    bound: BoundRecipe,
    backend: StateBackend,
    options: RunOptions | None = None,
    executor: str | None = None,
    registry: Registry | None = None,
) -> Runner | DistributedRun:
    """The run of a bound recipe: the single-process `Runner` under `local` (the default),
    else a `DistributedRun` on the executor plugin named by `executor` (the CLI's
    `--executor`) or `runtime.executor`. Both have `run()` and `result`."""
    from dataloader.executors import LOCAL, create_executor, executor_name

    name = executor_name(bound.recipe, executor)
    if name == LOCAL:
        return Runner(bound, backend, options)
    registry = registry or get_registry()
    return DistributedRun(bound, backend, create_executor(name, registry, bound.recipe), options)
