"""The run loop: read → transform → write → commit, with state advanced per committed batch.

Exactly-once rests on one rule: a destination's `commit(state)` makes the data staged since
the last commit visible *together with* the state that describes it. The engine reads the
authoritative state from the destination when it keeps one (`transactional_state`), so a run
killed at any instant resumes exactly after its last commit. Every commit carries a marker (run
id, sequence, whether it was the run's last, the counts so far): a retry reads it back first, so
a commit whose acknowledgement or state save was lost is never redone.
"""

from __future__ import annotations

import copy
import logging
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from dataloader.batch import ArrowBatch, as_arrow_batch
from dataloader.context import RunContext
from dataloader.engine.nested import (
    implied_columns,
    keep_children_of,
    keys_as_stored,
    one_row_per_key,
)
from dataloader.engine.result import RunInterrupted, RunResult, StageMetrics
from dataloader.errors import DataLoaderError, EngineError
from dataloader.incremental import PENDING_CURSOR, CursorTracker, PendingCursor, window_for
from dataloader.logs import run_context
from dataloader.normalize.keys import KEY_COLUMNS, ROW_ID
from dataloader.normalize.normalizer import NormalizedBatch, Normalizer, TableSpec
from dataloader.parallel import read_ahead
from dataloader.recipe.binding import BoundRecipe
from dataloader.retry import backoff_delay
from dataloader.schema.config import SchemaConfig, TableContract
from dataloader.schema.history import current_schema, record
from dataloader.schema.manager import SchemaManager
from dataloader.schema.plan import SchemaPlan
from dataloader.schema.quarantine import quarantine_rows
from dataloader.state.backend import StateBackend
from dataloader.state.model import PROGRESS_KEYS, State
from dataloader.transforms.pipeline import TransformPipeline

ProgressCallback = Callable[[RunResult], None]
log = logging.getLogger("dataloader.engine")


@dataclass(frozen=True)
class RunOptions:
    full_refresh: bool = False
    progress: ProgressCallback | None = None
    estimate_callback: Callable[[int | None], None] | None = None


def deep_merge(target: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def source_reads_in_cursor_order(source: Any) -> bool:
    """`BaseConnector.reads_in_cursor_order`, for sources that do not subclass it too."""
    method = getattr(source, "reads_in_cursor_order", None)
    return True if method is None else bool(method())


def new_run_id(started_at: datetime) -> str:
    return f"{started_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


class Runner:
    """Runs one bound recipe against one state backend."""

    def __init__(
        self, bound: BoundRecipe, backend: StateBackend, options: RunOptions | None = None
    ) -> None:
        self.bound = bound
        self.recipe = bound.recipe
        self.backend = backend
        self.options = options or RunOptions()
        self._stage = "plan"
        self.result: RunResult | None = None
        self._committed: dict[str, Any] = {}
        self._sequence = 0

    def _contexts(self, run_id: str, started_at: datetime) -> tuple[RunContext, RunContext]:
        recipe = self.recipe
        write_mode = "overwrite" if self.options.full_refresh else recipe.destination.write_mode
        common = {
            "recipe_name": recipe.name,
            "run_id": run_id,
            "started_at": started_at,
            "batch_size": recipe.runtime.batch_size,
            "recipe_file": recipe.file,
            "incremental": recipe.source.incremental,
            "full_refresh": self.options.full_refresh,
            "retries": recipe.runtime.retries,
            "parallelism": recipe.runtime.parallelism,
            # The source learns them too: one that reads some rows again (a REST API's
            # refused checkpoint) may, when the destination keeps each key once.
            "write_mode": write_mode,
            # A merge recipe's keys, under `--full-refresh` too: the replacing rows are merged.
            "merge_keys": tuple(recipe.destination.merge_keys or ())
            if recipe.destination.write_mode == "merge"
            else (),
            "dedup_sort": recipe.destination.dedup_sort,
        }
        source = RunContext(role="source", **common)
        destination = RunContext(role="destination", **common)
        return source, destination

    def _initial_state(self, destination: Any) -> State:
        state = State.from_dict(self.backend.load(self.recipe.name))
        capabilities = self.bound.destination.registration.capabilities
        if capabilities is not None and capabilities.transactional_state:
            committed = destination.load_state()
            committed = committed if committed is not None else State()
            for key in PROGRESS_KEYS:
                setattr(state, key, getattr(committed, key))
        if self.options.full_refresh:
            state.cursor_values = {}
            state.cursor_boundaries = {}
            state.watermarks = {}
        return state

    def run(self) -> RunResult:
        started_at = datetime.now(UTC)
        run_id = new_run_id(started_at)
        result = self.result = RunResult(self.recipe.name, run_id, started_at)
        with run_context(self.recipe.name, run_id):
            try:
                return self._run(result)
            except RunInterrupted:
                raise
            except KeyboardInterrupt as exc:  # outside the load: the lock, a retry's pause, …
                result.status = "interrupted"
                raise RunInterrupted(result) from exc

    def _run(self, result: RunResult) -> RunResult:
        clock = time.perf_counter()
        policy = self.recipe.runtime.retries
        log.info(
            "run started",
            extra={
                "stage": "plan",
                "counts": {
                    "source": self.recipe.source.type,
                    "destination": self.recipe.destination.type,
                    "write_mode": self.recipe.destination.write_mode,
                },
            },
        )
        for role, bound in (("source", self.bound.source), ("destination", self.bound.destination)):
            if bound.registration.capabilities and bound.registration.capabilities.experimental:
                log.warning(
                    f"{role} connector {bound.registration.name!r} is experimental "
                    "(see its documentation)"
                )
        with self.backend.lock(self.recipe.name):
            attempt = 0
            while True:
                self._stage = "plan"
                try:
                    self._attempt(result, clock)
                    break
                except BaseException as exc:
                    self._rewind(result)
                    if (
                        isinstance(exc, Exception)
                        and attempt < policy.attempts
                        and self._transient(exc)
                    ):
                        attempt += 1
                        result.stages.setdefault(self._stage, StageMetrics()).retries += 1
                        delay = backoff_delay(policy, attempt)
                        log.warning(
                            f"transient failure in {self._stage}, retry {attempt} of {policy.attempts} in {delay:.2f}s from the last commit: {_cause(exc)}",
                            extra={"stage": self._stage},
                        )
                        time.sleep(delay)
                        continue
                    interrupted = isinstance(exc, KeyboardInterrupt)
                    committed = self._settle_commit(result) if self._stage == "commit" else None
                    result.status = "interrupted" if interrupted else "failed"
                    result.error = "interrupted" if interrupted else _cause(exc)
                    try:
                        self._finish(result, clock, save=True, committed=committed)
                    except Exception as history_error:  # the run's own error matters more
                        log.warning(
                            f"could not record the {result.status} run in the state's history: {_cause(history_error)}"
                        )
                    if interrupted:  # the caller tells the user, once
                        log.info(
                            f"run interrupted in {self._stage}",
                            extra={"stage": self._stage, "counts": _counts(result)},
                        )
                        raise RunInterrupted(result) from exc
                    error = self._run_error(exc)
                    log.error(  # the one report of the failure: the CLI does not repeat it
                        f"run failed in {self._stage}: {result.error}",
                        extra={
                            "stage": self._stage,
                            "counts": _counts(result),
                            "details": _details(error) if error is not None else None,
                        },
                    )
                    if error is None or error is exc:
                        raise
                    raise error from exc
            self._finish(result, clock, save=True)
        log.info("run finished", extra={"stage": "done", "counts": _counts(result)})
        return result

    def _attempt(self, result: RunResult, clock: float) -> None:
        """One try: open both ends, resume from the committed state, load, close."""
        source_context, destination_context = self._contexts(result.run_id, result.started_at)
        with ExitStack() as stack:
            self._source = source = self.bound.source.create()
            self._destination = destination = self.bound.destination.create()
            pipeline = TransformPipeline([step.create() for step in self.bound.steps])
            self._stage = "open"
            destination.open(destination_context)
            stack.callback(destination.close)
            source.open(source_context)
            stack.callback(source.close)
            state = self._initial_state(destination)
            if self._resume_counts(state, result):
                self._stage = "commit"  # all this run loads is committed: only the mirror is left
                self.backend.save(self.recipe.name, state.to_dict())
                return
            destination.begin(state)
            self._destination_context = destination_context
            self._normalizer = self._new_normalizer(destination, destination_context)
            self._root = _Target(
                None,
                self._schema_manager(destination, state, destination_context),
                state.schema_history,
                {column.name for column in self.recipe.table_schema.columns},
            )
            self._children: dict[str, _Target] = {}
            self._written: set[str] = set()  # child tables this attempt wrote rows to
            if self.options.estimate_callback is not None:
                self.options.estimate_callback(source.estimate_rows())
            try:
                self._loop(source, destination, pipeline, state, destination_context, result, clock)
            except BaseException:
                with suppress(Exception):
                    destination.abort()
                raise

    def _schema_manager(self, destination: Any, state: State, context: RunContext) -> SchemaManager:
        """The schema manager of one attempt, planning against the table the rows go into as
        the destination describes it, or, for a destination that describes none, as the state
        recorded it (none under overwrite: a new table)."""
        history = state.schema_history
        capabilities = self.bound.destination.registration.capabilities
        described = destination.describe()
        if described is not None:
            current = described
            if not history.get("versions"):
                declared = {column.name for column in self.recipe.table_schema.columns}
                found = SchemaPlan(create=False, target=described, changes=())
                self._record_schema(history, found, declared)
        elif context.write_mode != "overwrite":
            current = current_schema(history)
        else:
            current = None
        return SchemaManager(
            self._contract(self.recipe.table_schema, (ROW_ID,) if self._normalizer else ()),
            current,
            file=self.recipe.origin_of("schema"),
            merge_keys=context.merge_keys,
            can_quarantine=bool(capabilities and capabilities.quarantine),
        )

    def _contract(self, config: SchemaConfig, keys: tuple[str, ...]) -> SchemaConfig:
        """A table's contract; under `strict`, with the key columns normalization adds."""
        return config.with_implied(implied_columns(keys)) if config.mode == "strict" else config

    def _record_schema(
        self, history: dict[str, Any], plan: SchemaPlan, declared: set[str]
    ) -> dict[str, Any] | None:
        assert self.result is not None
        at = datetime.now(UTC).isoformat(timespec="seconds")
        return record(history, plan, self.result.run_id, at, declared)

    def _new_normalizer(self, destination: Any, context: RunContext) -> Normalizer | None:
        """The attempt's normalizer, when the recipe normalizes nested data."""
        config = self.recipe.normalization
        if config is None or not config.enabled:
            return None
        root = destination.table_name()
        if root is None:
            raise EngineError(
                f"destination {self.recipe.destination.type!r} does not name its table, "
                "which child table names start with",
                file=self.recipe.origin_of("normalization"),
                key="normalization",
                expected="a destination that writes child tables",
            )
        contract = self.recipe.table_schema
        keys = context.merge_keys or tuple(c.name for c in contract.columns if c.primary_key)
        capabilities = self.bound.destination.registration.capabilities
        limit = config.naming.max_identifier_length or (
            capabilities.max_identifier_length if capabilities is not None else None
        )
        return Normalizer(config, root, key_columns=keys, max_identifier_length=limit)

    def _child_target(self, destination: Any, spec: TableSpec, state: State) -> _Target:
        """The child table `spec` as this attempt writes it, planned against the table the
        destination describes, else the schema the state recorded (none under overwrite)."""
        target = self._children.get(spec.name)
        if target is not None:
            return target
        history = state.schema_history.setdefault("tables", {}).setdefault(spec.name, {})
        contract = self.recipe.table_schema
        declared = {column.name for column in contract.tables.get(spec.name, _NO_TABLE).columns}
        overwrite = self._destination_context.write_mode == "overwrite"
        described = destination.describe_child(spec.name)
        if described is not None:
            current = described
            if not history.get("versions"):
                found = SchemaPlan(create=False, target=described, changes=())
                self._record_schema(history, found, declared)
        else:
            current = None if overwrite else current_schema(history)
        capabilities = self.bound.destination.registration.capabilities
        implied = implied_columns(KEY_COLUMNS) if contract.mode == "strict" else []
        manager = SchemaManager(
            contract.for_table(spec.name, implied),
            current,
            file=self.recipe.origin_of("schema"),
            can_quarantine=bool(capabilities and capabilities.quarantine),
        )
        target = self._children[spec.name] = _Target(spec.name, manager, history, declared)
        return target

    def _conform(
        self,
        destination: Any,
        batch: ArrowBatch,
        state: State,
        result: RunResult,
        target: _Target,
    ) -> ArrowBatch:
        """The batch made to fit its table and the contract: the table changed first when
        the plan says so (the change recorded in the state committed with the rows), the rows
        that break the contract quarantined or dropped."""
        prepared = target.manager.prepare(batch.to_arrow(), batch.metadata.get("source_file"))
        if prepared.plan is not None:
            if target.name is None:
                destination.apply_schema(prepared.plan)
            else:
                destination.apply_child_schema(target.name, prepared.plan)
            version = self._record_schema(target.history, prepared.plan, target.declared)
            changes = version["changes"] if version is not None else []
            result.schema_changes += len(changes)
            table = "" if target.name is None else f"{target.name}."
            for change in changes:
                types = " → ".join(t for t in (change["before"], change["after"]) if t)
                log.info(
                    f"schema change: {change['kind']} {table}{change['column']!r} {types} "
                    f"({change['reason']})",
                    extra={"stage": "schema", "counts": {"version": version["version"], **change}},
                )
        if prepared.rejected:
            destination.write_quarantine(quarantine_rows(prepared.rejected, result.run_id))
        quarantined = sum(rows.num_rows for rows, _, _ in prepared.rejected)
        if quarantined or prepared.dropped:
            result.rows_quarantined += quarantined
            result.rows_dropped += prepared.dropped
            log.warning(
                f"{quarantined} row(s) quarantined, {prepared.dropped} dropped: they break "
                "the schema contract",
                extra={
                    "stage": "schema",
                    "counts": {"quarantined": quarantined, "dropped": prepared.dropped},
                },
            )
        return batch.with_data(prepared.batch)

    def _run_error(self, exc: BaseException) -> DataLoaderError | None:
        """The error a failed run raises: `exc` itself when it is one of ours (with the recipe
        file that set its key), an `EngineError` naming it otherwise; None for a `BaseException`
        that is not an error (`SystemExit`, …), which goes on as it is."""
        if isinstance(exc, DataLoaderError):
            self._locate(exc)
            return exc
        if not isinstance(exc, Exception):
            return None
        return EngineError(
            f"run of recipe {self.recipe.name!r} failed in {self._stage}: {type(exc).__name__}: {exc}",
            file=str(self.recipe.file) if self.recipe.file else None,
        )

    def _locate(self, exc: DataLoaderError) -> None:
        """Name the recipe file that set the key an error is about, when the error does not."""
        problem = exc.problem
        if problem.file is None and self.recipe.file is not None:
            file = self.recipe.origin_of(problem.key) if problem.key else str(self.recipe.file)
            exc.problem = replace(problem, file=file)
            exc.context.setdefault("file", file)

    def _transient(self, exc: BaseException) -> bool:
        """Whether a connector says this error (or one it wraps) is worth a retry."""
        chain: list[BaseException] = []
        current: BaseException | None = exc
        while current is not None and len(chain) < 8:
            chain.append(current)
            current = current.__cause__ or current.__context__
        judges = [
            getattr(end, "is_transient", None)
            for end in (getattr(self, "_source", None), getattr(self, "_destination", None))
        ]
        return any(judge(error) for judge in judges if judge is not None for error in chain)

    def _rewind(self, result: RunResult) -> None:
        """Forget the counts of work that was not committed: a retry or re-run redoes it."""
        _restore_counts(result, self._committed)

    def _settle_commit(self, result: RunResult) -> State | None:
        """After a failure inside a commit, learn whether that commit landed (the data was
        committed, its acknowledgement or its mirror in the state backend was lost): the
        marker it wrote says, in the destination when it keeps the state, else in the state
        backend. Counts move to the marker's; returns the destination's committed state when
        the state backend's copy is behind it.
        """
        try:
            committed = self._committed_state(result)
        except Exception as exc:  # the destination may be what failed: keep what is known
            log.warning(f"could not read back the last commit's marker: {_cause(exc)}")
            return None
        marker = committed.last_commit if committed is not None else {}
        if marker.get("run_id") != result.run_id or marker.get("sequence", 0) <= self._sequence:
            return None
        self._sequence = marker["sequence"]
        self._committed = marker["counts"]
        _restore_counts(result, self._committed)
        return committed

    def _committed_state(self, result: RunResult) -> State | None:
        """The state the last commit wrote: the destination's copy, or the state backend's
        when the destination keeps none."""
        capabilities = self.bound.destination.registration.capabilities
        if capabilities is None or not capabilities.transactional_state:
            return State.from_dict(self.backend.load(self.recipe.name))
        _, context = self._contexts(result.run_id, result.started_at)
        destination = self.bound.destination.create()
        destination.open(context)
        try:
            return destination.load_state()
        finally:
            destination.close()

    def _resume_counts(self, state: State, result: RunResult) -> bool:
        """Take over what this run committed before a failure; True if that was all of it.

        The destination's marker is the truth: a commit whose acknowledgement was lost, or
        whose mirror in the state backend failed, is known only there.
        """
        marker = state.last_commit
        if marker.get("run_id") != result.run_id:
            return False
        self._sequence = marker["sequence"]
        self._committed = marker["counts"]
        _restore_counts(result, self._committed)
        return bool(marker.get("final"))

    def _produce(
        self,
        source: Any,
        pipeline: TransformPipeline,
        state: State,
        context: RunContext,
        result: RunResult,
    ) -> Generator[Produced, None, None]:
        """Read and transform, in source order. Only seconds are counted here: rows are
        counted when the writer takes a batch, so counts at a commit are exactly its own
        (a read-ahead thread may be batches ahead)."""
        stages = result.stages
        batches = self._batches(source, state)
        while True:
            tick = time.perf_counter()
            try:
                batch, cursor_max = next(batches)
            except StopIteration:
                return
            stages["read"].seconds += time.perf_counter() - tick
            tick = time.perf_counter()
            # A batch without rows carries a source's progress at most (maybe no columns).
            transformed = pipeline.apply(batch, context) if batch.row_count else batch
            stages["transform"].seconds += time.perf_counter() - tick
            yield Produced(batch, transformed, cursor_max, batch.metadata.get("checkpoint"))

    def _batches(self, source: Any, state: State) -> Iterator[tuple[ArrowBatch, Any]]:
        read_state = state.copy_deep()
        incremental = self.recipe.source.incremental
        raw = (as_arrow_batch(batch) for batch in source.read_batches(read_state))
        if incremental is not None and incremental.strategy == "cursor":
            ordered = source_reads_in_cursor_order(source)
            tracker = CursorTracker(
                window_for(incremental, state.cursor_values, state.cursor_boundaries),
                source_name=self.recipe.source.type,
                merge=self.recipe.destination.write_mode == "merge"
                and not self.options.full_refresh,
                max_boundary_rows=incremental.max_boundary_rows,
                ordered=ordered,
            )
            if ordered:
                yield from tracker.positions(raw)
            else:
                yield from tracker.unordered(raw, state.watermarks.get(PENDING_CURSOR))
        else:
            for batch in raw:
                yield batch, None

    def _loop(
        self,
        source: Any,
        destination: Any,
        pipeline: TransformPipeline,
        state: State,
        context: RunContext,
        result: RunResult,
        clock: float,
    ) -> None:
        incremental = self.recipe.source.incremental
        capabilities = self.bound.source.registration.capabilities
        resumable = bool(capabilities and capabilities.resumable)
        # Committing during the run is only safe when a killed run can resume where it stopped;
        # otherwise the whole run is one commit, so a re-run starts from a clean slate.
        commit_as_we_go = context.write_mode != "overwrite" and (
            (incremental is not None and incremental.strategy == "cursor") or resumable
        )
        runtime = self.recipe.runtime
        items = self._produce(source, pipeline, state, context, result)
        if runtime.read_ahead:
            # Read and transform in a background thread ahead of the writes, so source and
            # destination I/O overlap: one batch ahead, `parallelism` more with parallel readers.
            # Only this thread writes and commits, in source order, from the batches it took.
            parallelism = runtime.parallelism
            items = read_ahead(items, depth=parallelism if parallelism > 1 else 0, name="read")
        # However the load ends, the reader is stopped and the source's read ended (in the
        # reader's thread) here, before the source is closed.
        try:
            self._load(items, destination, state, context, result, clock, commit_as_we_go)
        except BaseException:
            with suppress(Exception):  # the load's own error is the one to report
                items.close()
            raise
        items.close()

    def _load(
        self,
        items: Iterable[Produced],
        destination: Any,
        state: State,
        context: RunContext,
        result: RunResult,
        clock: float,
        commit_as_we_go: bool,
    ) -> None:
        """Write each batch `items` hands on, in order; commit as due, then the final commit."""
        stages = result.stages
        incremental = self.recipe.source.incremental
        cursor_column = (
            incremental.cursor_column
            if incremental is not None and incremental.strategy == "cursor"
            else None
        )
        # Small batches (small files, batches cut at cursor ties) are grouped into a commit of at
        # least `batch_size` rows, or whatever is staged after `commit_interval_seconds`: each
        # commit writes the whole state, so committing every tiny batch costs O(batches²).
        staged_rows, last_commit = 0, time.monotonic()
        self._stage = "read"
        commits_before = result.commits
        merge_keys = context.merge_keys  # a merge recipe's, also when it is fully refreshed
        unsaved = False  # read progress (a cursor, a checkpoint) not committed yet
        for item in items:
            transformed, cursor_max, checkpoint = item.transformed, item.cursor_max, item.checkpoint
            _count_read(result, item)
            self._stage = "write"
            tables = None
            if transformed.row_count:  # an empty batch carries a source's progress at most
                if merge_keys:
                    self._check_merge_keys(transformed, merge_keys)
                tables = self._normalize(transformed, context)
                if tables is not None:
                    transformed = transformed.with_data(tables.root)
                transformed = self._conform(destination, transformed, state, result, self._root)
            if checkpoint:
                deep_merge(state.watermarks, checkpoint)
                unsaved = True
            if isinstance(cursor_max, PendingCursor):
                # An unordered read: the cursor moves at the end; a resumed run goes on from here.
                state.watermarks[PENDING_CURSOR] = cursor_max.boundary.to_state()
            elif cursor_max is not None and cursor_column is not None:
                # The tracker's boundary never moves back, and names the rows loaded at it.
                state.cursor_values[cursor_column] = cursor_max.value
                state.cursor_boundaries[cursor_column] = cursor_max.to_state()
                state.watermarks.pop(PENDING_CURSOR, None)
                unsaved = True
            tick = time.perf_counter()
            if transformed.row_count:
                destination.write_batch(transformed, state)
            if tables is not None:
                self._write_children(destination, tables, transformed, state, result)
            stages["write"].seconds += time.perf_counter() - tick
            stages["write"].rows += transformed.row_count
            stages["write"].batches += 1
            stages["write"].bytes += transformed.nbytes
            result.rows_written += transformed.row_count
            result.bytes_written += transformed.nbytes
            result.batches += 1
            staged_rows += transformed.row_count
            if commit_as_we_go and self._commit_due(destination, staged_rows, last_commit):
                self._commit(destination, state, result)
                staged_rows, last_commit, unsaved = 0, time.monotonic(), False
            if self.options.progress is not None:
                result.duration_seconds = time.perf_counter() - clock
                self.options.progress(result)
            self._stage = "read"
        if context.write_mode == "overwrite":
            for name in self._known_children(state) - self._written:
                destination.delete_children(name, None)  # this run's data has none of its rows
        if incremental is None and state.watermarks:
            # A full read's checkpoints only serve to resume this run; the next run reads all again.
            state.watermarks = {}
        if (
            not commit_as_we_go
            or staged_rows
            or unsaved
            or result.commits == commits_before
            or incremental is None
        ):
            self._commit(destination, state, result, final=True)

    def _normalize(self, batch: ArrowBatch, context: RunContext) -> NormalizedBatch | None:
        """The batch split into its tables, when the recipe normalizes nested data; under
        merge, first reduced to the row per key the merge keeps."""
        if self._normalizer is None:
            return None
        data = keys_as_stored(
            batch.to_arrow(), self._normalizer.key_columns, self._root.manager.current
        )
        if context.merge_keys:
            incremental = self.recipe.source.incremental
            cursor = incremental.cursor_column if incremental is not None else None
            data = one_row_per_key(data, context.merge_keys, cursor)
        return self._normalizer.normalize(data)

    def _known_children(self, state: State) -> set[str]:
        """The child tables the state knows (their schema history) or this attempt wrote."""
        return set(state.schema_history.get("tables", {})) | self._children.keys()

    def _write_children(
        self,
        destination: Any,
        tables: NormalizedBatch,
        root: ArrowBatch,
        state: State,
        result: RunResult,
    ) -> None:
        """Write a batch's child tables after its root rows: under merge, the children the
        merged rows had go first; rows whose parent the contract took out are left out."""
        assert self._normalizer is not None
        kept: dict[str, pa.Array] = {}  # per table whose rows were taken out: the ids left
        root_ids = root.to_arrow().column(ROW_ID)
        if root.row_count < tables.root.num_rows:
            kept[self._normalizer.root_table] = root_ids
        if self._destination_context.merge_keys:  # a merge, or a merge recipe's full refresh
            for child in tables.children:  # a child table the destination has is known too
                self._child_target(destination, child.spec, state)
            for name in sorted(self._known_children(state)):
                destination.delete_children(name, root_ids)
        for child in tables.children:
            data = child.data
            parent = child.spec.parent
            if parent is not None and parent in kept:
                data = keep_children_of(data, kept[parent])
            if data.num_rows == 0:
                if data.num_rows < child.data.num_rows:
                    kept[child.spec.name] = data.column(ROW_ID)
                continue
            target = self._child_target(destination, child.spec, state)
            conformed = self._conform(destination, ArrowBatch(data), state, result, target)
            if conformed.row_count < child.data.num_rows:
                kept[child.spec.name] = conformed.to_arrow().column(ROW_ID)
            if conformed.row_count:
                destination.write_child_batch(child.spec.name, conformed, state)
                self._written.add(child.spec.name)
            result.child_rows += conformed.row_count

    def _check_merge_keys(self, batch: ArrowBatch, keys: tuple[str, ...]) -> None:
        """A NULL key matches no row, so a merge could neither update nor de-duplicate it."""
        data = batch.to_arrow()
        for key in keys:
            if key not in data.schema.names:
                continue  # the destination names the missing key column
            nulls = data.column(key).null_count
            if nulls:
                raise EngineError(
                    f"merge key column {key!r} has {nulls} NULL value(s) in a batch of "
                    f"{data.num_rows} rows; a row without a key cannot be merged "
                    "(a NULL key matches no row: re-runs would add it again)",
                    file=self.recipe.origin_of("destination.merge_keys"),
                    key="destination.merge_keys",
                    value=key,
                    expected="merge keys without NULLs (filter those rows or fill them "
                    "with a `fill_null` step)",
                )

    def _commit_due(self, destination: Any, staged_rows: int, last_commit: float) -> bool:
        """Commit now? When the destination asks for it (a file destination: a part file is
        full), else every `batch_size` rows; and `commit_interval_seconds` after the last."""
        runtime = self.recipe.runtime
        if time.monotonic() - last_commit >= runtime.commit_interval_seconds:
            return True
        asks = getattr(destination, "commit_due", None)
        due = asks(staged_rows) if asks is not None else None
        return staged_rows >= runtime.batch_size if due is None else due

    def _commit(
        self, destination: Any, state: State, result: RunResult, *, final: bool = False
    ) -> None:
        self._stage = "commit"
        tick = time.perf_counter()
        result.stages["commit"].batches += 1
        result.commits += 1
        counts = _snapshot_counts(result)
        state.last_commit = {
            "run_id": result.run_id,
            "sequence": self._sequence + 1,
            "final": final,
            "counts": counts,
        }
        destination.commit(state)
        self.backend.save(self.recipe.name, state.to_dict())
        # Known as committed once mirrored too: when the save fails (or Ctrl-C lands in it),
        # `_settle_commit` learns from the commit's marker that it landed, and mirrors it.
        self._sequence += 1
        self._committed = counts
        result.stages["commit"].seconds += time.perf_counter() - tick
        log.debug("committed", extra={"stage": "commit", "counts": _counts(result)})

    def _finish(
        self, result: RunResult, clock: float, *, save: bool, committed: State | None = None
    ) -> None:
        """Record the run in the state's history; `committed`: the destination's state, newer
        than the state backend's copy (a commit whose mirror was lost), mirrored now."""
        result.duration_seconds = time.perf_counter() - clock
        stored = State.from_dict(self.backend.load(self.recipe.name))
        if committed is not None:
            for key in PROGRESS_KEYS:
                setattr(stored, key, getattr(committed, key))
        if save:
            stored.record_run(result.summary())
            self.backend.save(self.recipe.name, stored.to_dict())
        result.state = stored.to_dict()


@dataclass(frozen=True)
class _Target:
    """A table one attempt writes: the main table (`name` None) or a child table, with its
    schema manager, its schema history in the state and its declared columns."""

    name: str | None
    manager: SchemaManager
    history: dict[str, Any]
    declared: set[str]


_NO_TABLE = TableContract()


@dataclass(frozen=True)
class Produced:
    """A batch as read (after the cursor window) and as transformed, with its position."""

    read: ArrowBatch
    transformed: ArrowBatch
    cursor_max: Any
    checkpoint: Any


_RUN_COUNTS = (
    "rows_read",
    "rows_written",
    "bytes_written",
    "batches",
    "commits",
    "rows_quarantined",
    "rows_dropped",
    "schema_changes",
    "child_rows",
)
_STAGE_COUNTS = ("rows", "batches", "bytes")


def _count_read(result: RunResult, item: Produced) -> None:
    stages = result.stages
    stages["read"].rows += item.read.row_count
    stages["read"].batches += 1
    stages["read"].bytes += item.read.nbytes
    result.rows_read += item.read.row_count
    stages["transform"].rows += item.transformed.row_count
    stages["transform"].batches += 1


def _snapshot_counts(result: RunResult) -> dict[str, Any]:
    """The run's counters (not its seconds or retries), as a commit marker keeps them."""
    return {
        **{name: getattr(result, name) for name in _RUN_COUNTS},
        "stages": {
            stage: {name: getattr(metrics, name) for name in _STAGE_COUNTS}
            for stage, metrics in result.stages.items()
        },
    }


def _restore_counts(result: RunResult, counts: dict[str, Any]) -> None:
    """Counters back to `counts` (all zero when empty); seconds and retries are kept."""
    for name in _RUN_COUNTS:
        setattr(result, name, counts.get(name, 0))
    stages = counts.get("stages", {})
    for stage, metrics in result.stages.items():
        for name in _STAGE_COUNTS:
            setattr(metrics, name, stages.get(stage, {}).get(name, 0))


def _counts(result: RunResult) -> dict[str, Any]:
    return {
        "rows_read": result.rows_read,
        "rows_written": result.rows_written,
        "batches": result.batches,
        "commits": result.commits,
        "seconds": round(result.duration_seconds, 3),
    }


def _details(error: DataLoaderError) -> dict[str, Any]:
    """What a program reading the logs needs of a run's error (as the CLI reports others)."""
    details = {"error": type(error).__name__, "exit_code": error.exit_code}
    details.update({k: error.context[k] for k in ("file", "key", "expected") if k in error.context})
    return details


def _cause(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, DataLoaderError) else f"{type(exc).__name__}: {exc}"
