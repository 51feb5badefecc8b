"""The run loop: read → transform → write → commit, with state advanced per committed batch.

Exactly-once rests on one rule: a destination's `commit(state)` makes the data staged since
the last commit visible *together with* the state that describes it. The engine reads the
authoritative state from the destination when it keeps one (`transactional_state`), so a run
killed at any instant resumes exactly after its last commit.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dataloader.batch import ArrowBatch, as_arrow_batch
from dataloader.context import RunContext
from dataloader.engine.result import RunResult
from dataloader.errors import DataLoaderError, EngineError
from dataloader.incremental import CursorTracker, window_for
from dataloader.recipe.binding import BoundRecipe
from dataloader.state.backend import StateBackend
from dataloader.state.model import State
from dataloader.transforms.pipeline import TransformPipeline

ProgressCallback = Callable[[RunResult], None]


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
        }
        source = RunContext(role="source", **common)
        destination = RunContext(
            role="destination",
            write_mode=write_mode,
            merge_keys=tuple(recipe.destination.merge_keys or ()),
            **common,
        )
        return source, destination

    def _initial_state(self, destination: Any) -> State:
        state = State.from_dict(self.backend.load(self.recipe.name))
        if (
            self.bound.destination.registration.capabilities
            and self.bound.destination.registration.capabilities.transactional_state
        ):
            committed = destination.load_state()
            committed = committed if committed is not None else State()
            state.cursor_values = committed.cursor_values
            state.watermarks = committed.watermarks
        if self.options.full_refresh:
            state.cursor_values = {}
            state.watermarks = {}
        return state

    def run(self) -> RunResult:
        started_at = datetime.now(UTC)
        run_id = new_run_id(started_at)
        result = RunResult(self.recipe.name, run_id, started_at)
        clock = time.perf_counter()
        source_context, destination_context = self._contexts(run_id, started_at)
        with self.backend.lock(self.recipe.name), ExitStack() as stack:
            source = self.bound.source.create()
            destination = self.bound.destination.create()
            pipeline = TransformPipeline([step.create() for step in self.bound.steps])
            destination.open(destination_context)
            stack.callback(destination.close)
            source.open(source_context)
            stack.callback(source.close)
            state = self._initial_state(destination)
            destination.begin(state)
            if self.options.estimate_callback is not None:
                self.options.estimate_callback(source.estimate_rows())
            try:
                self._loop(source, destination, pipeline, state, destination_context, result, clock)
            except BaseException as exc:
                result.status = "failed"
                result.error = (
                    str(exc) if isinstance(exc, DataLoaderError) else f"{type(exc).__name__}: {exc}"
                )
                try:
                    destination.abort()
                finally:
                    self._finish(state, result, clock, save=not isinstance(exc, KeyboardInterrupt))
                if isinstance(exc, DataLoaderError) or not isinstance(exc, Exception):
                    raise
                raise EngineError(
                    f"run of recipe {self.recipe.name!r} failed: {type(exc).__name__}: {exc}",
                    file=str(self.recipe.file) if self.recipe.file else None,
                ) from exc
            self._finish(state, result, clock, save=True)
        return result

    def _batches(self, source: Any, state: State) -> Iterator[tuple[ArrowBatch, Any]]:
        read_state = state.copy_deep()
        incremental = self.recipe.source.incremental
        raw = (as_arrow_batch(batch) for batch in source.read_batches(read_state))
        if incremental is not None and incremental.strategy == "cursor":
            tracker = CursorTracker(
                window_for(incremental, state.cursor_values), source_name=self.recipe.source.type
            )
            yield from tracker.aligned(raw)
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
        stages = result.stages
        incremental = self.recipe.source.incremental
        cursor_column = (
            incremental.cursor_column
            if incremental is not None and incremental.strategy == "cursor"
            else None
        )
        capabilities = self.bound.source.registration.capabilities
        resumable = bool(capabilities and capabilities.resumable)
        # Committing per batch is only safe when a killed run can resume where it stopped;
        # otherwise the whole run is one commit, so a re-run starts from a clean slate.
        commit_each_batch = context.write_mode != "overwrite" and (
            cursor_column is not None or resumable
        )
        batches = self._batches(source, state)
        while True:
            tick = time.perf_counter()
            try:
                batch, cursor_max = next(batches)
            except StopIteration:
                break
            stages["read"].seconds += time.perf_counter() - tick
            stages["read"].rows += batch.row_count
            stages["read"].batches += 1
            stages["read"].bytes += batch.nbytes
            result.rows_read += batch.row_count
            checkpoint = batch.metadata.get("checkpoint")

            tick = time.perf_counter()
            transformed = pipeline.apply(batch, context)
            stages["transform"].seconds += time.perf_counter() - tick
            stages["transform"].rows += transformed.row_count
            stages["transform"].batches += 1

            if cursor_max is not None and cursor_column is not None:
                previous = state.cursor_values.get(cursor_column)
                state.cursor_values[cursor_column] = (
                    cursor_max if previous is None or cursor_max > previous else previous
                )
            if checkpoint:
                deep_merge(state.watermarks, checkpoint)

            tick = time.perf_counter()
            destination.write_batch(transformed, state)
            stages["write"].seconds += time.perf_counter() - tick
            stages["write"].rows += transformed.row_count
            stages["write"].batches += 1
            stages["write"].bytes += transformed.nbytes
            result.rows_written += transformed.row_count
            result.bytes_written += transformed.nbytes
            result.batches += 1

            if commit_each_batch:
                self._commit(destination, state, result)
            if self.options.progress is not None:
                result.duration_seconds = time.perf_counter() - clock
                self.options.progress(result)
        if incremental is None and state.watermarks:
            # A full read's checkpoints only serve to resume this run; the next run reads all again.
            state.watermarks = {}
        if not commit_each_batch or result.commits == 0 or incremental is None:
            self._commit(destination, state, result)

    def _commit(self, destination: Any, state: State, result: RunResult) -> None:
        tick = time.perf_counter()
        destination.commit(state)
        self.backend.save(self.recipe.name, state.to_dict())
        result.stages["commit"].seconds += time.perf_counter() - tick
        result.stages["commit"].batches += 1
        result.commits += 1

    def _finish(self, state: State, result: RunResult, clock: float, *, save: bool) -> None:
        result.duration_seconds = time.perf_counter() - clock
        result.state = state.to_dict()
        if not save:
            return
        stored = State.from_dict(self.backend.load(self.recipe.name))
        stored.record_run(result.summary())
        self.backend.save(self.recipe.name, stored.to_dict())
        result.state = stored.to_dict()
