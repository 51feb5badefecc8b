"""Read-ahead: the source is read (and transformed) a batch ahead of the writes, in a thread of
its own, at `parallelism: 1` too; `runtime.read_ahead: 0` reads and writes in turn.

Every test orders events with gates (events the other side sets), never with sleeps: a gate
that is never opened fails the test after `WAIT` seconds instead of hanging it.
"""

from __future__ import annotations

import contextvars
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dataloader import (
    ArrowBatch,
    BaseConnector,
    Capabilities,
    ConnectorConfig,
    EngineError,
    LocalStateBackend,
    Recipe,
    RecipeError,
    RunResult,
    State,
    register_connector,
    run_recipe,
)
from dataloader.engine.result import RunInterrupted
from dataloader.logs import RunContextFilter
from dataloader.parallel import ordered_merge, read_ahead
from dataloader.recipe import RecipeLoader
from dataloader.registry import unregister

WAIT = 10.0
ROWS = 4  # rows per batch, and the recipes' batch_size: every batch is committed on its own
_probe: contextvars.ContextVar[str] = contextvars.ContextVar("probe", default="unset")


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("dataloader-read-")]


# -- parallel.py: context variables and the one-item-ahead bound -----------------------------
def test_a_context_variable_set_before_read_ahead_is_seen_in_the_producer() -> None:
    seen: list[tuple[str, str]] = []

    def produce() -> Iterator[int]:
        seen.append((_probe.get(), threading.current_thread().name))
        _probe.set("changed in the producer")  # its own copy: the consumer keeps its value
        yield 1

    token = _probe.set("run-42")
    try:
        assert list(read_ahead(produce(), depth=0, name="ctx")) == [1]
        assert _probe.get() == "run-42"
    finally:
        _probe.reset(token)
    assert seen == [("run-42", "dataloader-ctx-0")]


def test_a_context_variable_set_before_ordered_merge_is_seen_in_every_producer() -> None:
    seen: list[str] = []
    lock = threading.Lock()

    def producer(index: int) -> Callable[[], Iterator[int]]:
        def produce() -> Iterator[int]:
            with lock:
                seen.append(f"{index}:{_probe.get()}")
            yield index

        return produce

    token = _probe.set("run-7")
    try:
        merged = ordered_merge([producer(i) for i in range(4)], workers=2, depth=1, name="ctxm")
        assert list(merged) == [0, 1, 2, 3]
    finally:
        _probe.reset(token)
    assert sorted(seen) == [f"{i}:run-7" for i in range(4)]


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="no per-thread signal masks")
def test_producer_threads_leave_ctrl_c_to_the_main_thread() -> None:
    """A Ctrl-C the kernel handed to a producer thread would not wake a main thread blocked
    on a lock (Python runs handlers in the main thread only): producers block SIGINT."""
    masks: list[set[int]] = []

    def produce() -> Iterator[int]:
        masks.append(signal.pthread_sigmask(signal.SIG_BLOCK, []))
        yield 1

    # Python's own handler, as in the CLI (a run started in the background inherits SIGINT
    # ignored, and an ignored signal needs no blocking).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert list(read_ahead(produce(), depth=0, name="mask")) == [1]
    finally:
        signal.signal(signal.SIGINT, previous)
    assert signal.SIGINT in masks[0]
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # not here


def test_read_ahead_with_depth_zero_produces_one_item_ahead_of_the_consumer() -> None:
    started: list[int] = []  # items whose production began
    progress = threading.Condition()

    def produce() -> Iterator[int]:
        for item in range(6):
            with progress:
                started.append(item)
                progress.notify_all()
            yield item

    ahead = read_ahead(produce(), depth=0, name="one")
    try:
        for held in range(6):
            assert next(ahead) == held
            # While the consumer holds item `held`, the next one is produced…
            with progress:
                assert progress.wait_for(lambda h=held: len(started) >= min(h + 2, 6), WAIT)
                # …and no further one: the producer waits until `held + 1` is taken.
                assert len(started) == min(held + 2, 6), started
        assert next(ahead, None) is None
    finally:
        ahead.close()


def test_closing_a_read_ahead_ends_the_source_in_the_producer_thread() -> None:
    closed_in: list[str] = []

    def produce() -> Iterator[int]:
        try:
            yield from range(100)
        finally:
            closed_in.append(threading.current_thread().name)

    ahead = read_ahead(produce(), depth=0, name="close")
    assert next(ahead) == 0
    ahead.close()  # returns once the producer has ended the source
    assert closed_in == ["dataloader-close-0"]
    assert not [t for t in threading.enumerate() if t.name.startswith("dataloader-close-")]


# -- the engine: test connectors -------------------------------------------------------------
class Journal:
    """What the test source and destination did, with gates between them."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.events: list[tuple[str, int]] = []
        self.threads: dict[str, set[str]] = {"read": set(), "write": set()}
        self.writes_done = 0
        self.reads_started = 0
        self.run_ids: set[str | None] = set()
        # With `overlap`, the write of batch i waits until the read of batch i + 1 began.
        self.overlap = False
        self.fail_read_at: int | None = None
        self.fail_write_at: int | None = None
        self.interrupt_write_at: int | None = None
        self.total = 0
        self.bounded = False  # the destination is the recording sink, which counts its writes

    def note(self, event: str, number: int) -> None:
        with self.lock:
            self.events.append((event, number))
            self.lock.notify_all()

    def wait(self, condition: Callable[[], bool]) -> None:
        with self.lock:
            assert self.lock.wait_for(condition, WAIT), f"gate never opened: {self.events}"


JOURNAL = Journal()


class PacedConfig(ConnectorConfig):
    batches: int


class PacedSource(BaseConnector):
    """Yields `batches` batches of `ROWS` ids, each with a checkpoint (so each is committed
    on its own and a re-run resumes after the last committed one)."""

    config_model = PacedConfig
    capabilities = Capabilities(read=True, resumable=True)

    def read_batches(self, state: State) -> Iterator[ArrowBatch]:
        journal = JOURNAL
        first = state.watermarks.get("paced", {}).get("next", 0)
        try:
            for number in range(first, self.config.batches):
                with journal.lock:
                    # One batch ahead at most: batch `number` is read only once the writes
                    # of all batches before `number - 1` are done.
                    if journal.bounded:
                        assert journal.writes_done >= number - first - 1, journal.events
                    journal.reads_started += 1
                    journal.threads["read"].add(threading.current_thread().name)
                record = logging.LogRecord("dataloader.test", logging.INFO, "", 0, "read", (), None)
                RunContextFilter().filter(record)
                journal.run_ids.add(record.run_id)
                journal.note("read", number)
                if number == journal.fail_read_at:
                    raise ValueError(f"the source broke at batch {number}")
                ids = list(range(number * ROWS, (number + 1) * ROWS))
                batch = pa.RecordBatch.from_pydict({"id": ids})
                yield ArrowBatch(batch, {"checkpoint": {"paced": {"next": number + 1}}})
        finally:
            journal.note("read ended", -1)
            journal.threads["read ended"] = {threading.current_thread().name}

    def close(self) -> None:
        JOURNAL.note("source closed", -1)


class RecordingSinkConfig(ConnectorConfig):
    table: str


class RecordingSink(BaseConnector):
    """A destination that keeps committed ids (and the state with them) in the journal."""

    config_model = RecordingSinkConfig
    capabilities = Capabilities(write=True, write_modes=("append",))
    committed: list[int] = []  # survives the connector object, as a table would

    def begin(self, state: State) -> None:
        self.staged: list[int] = []

    def write_batch(self, batch: ArrowBatch, state: State) -> None:
        journal = JOURNAL
        ids = batch.to_arrow().column("id").to_pylist()
        number = ids[0] // ROWS
        journal.threads["write"].add(threading.current_thread().name)
        if number == journal.fail_write_at:
            raise OSError(f"the destination broke at batch {number}")
        if number == journal.interrupt_write_at:
            raise KeyboardInterrupt
        if journal.overlap and number + 1 < journal.total:
            journal.wait(lambda: ("read", number + 1) in journal.events)
        self.staged.extend(ids)
        with journal.lock:
            journal.writes_done += 1
        journal.note("written", number)

    def commit(self, state: State) -> None:
        RecordingSink.committed.extend(self.staged)
        self.staged = []
        JOURNAL.note("committed", len(RecordingSink.committed))

    def abort(self) -> None:
        self.staged = []


@pytest.fixture
def journal() -> Iterator[Journal]:
    global JOURNAL
    JOURNAL = Journal()
    RecordingSink.committed = []
    register_connector("paced")(PacedSource)
    register_connector("recording_sink")(RecordingSink)
    try:
        yield JOURNAL
    finally:
        unregister("connector", "paced")
        unregister("connector", "recording_sink")


def paced_recipe(batches: int, **runtime: Any) -> Recipe:
    JOURNAL.total, JOURNAL.bounded = batches, True
    return Recipe.model_validate(
        {
            "name": "paced",
            "source": {"type": "paced", "batches": batches},
            "destination": {"type": "recording_sink", "table": "t"},
            "runtime": {"batch_size": ROWS, "retries": 0, **runtime},
        }
    )


def run(recipe: Recipe, tmp_path: Path) -> RunResult:
    return run_recipe(recipe, LocalStateBackend(tmp_path / "state"))


# -- the engine ------------------------------------------------------------------------------
def test_the_read_of_the_next_batch_overlaps_the_write_at_parallelism_one(
    journal: Journal, tmp_path: Path
) -> None:
    journal.overlap = True  # each write waits for the next batch's read to begin

    result = run(paced_recipe(5), tmp_path)

    assert RecordingSink.committed == list(range(5 * ROWS))  # in order, each once
    assert result.commits == 6 and result.batches == 5  # one per batch, and the final one
    assert journal.threads["read"] == {"dataloader-read-0"}
    assert journal.threads["write"] == {threading.current_thread().name}
    assert journal.run_ids == {result.run_id}  # the logs of the reader carry the run's id
    assert not reader_threads()


def test_read_ahead_zero_reads_and_writes_in_turn_in_one_thread(
    journal: Journal, tmp_path: Path
) -> None:
    result = run(paced_recipe(4, read_ahead=0), tmp_path)

    me = threading.current_thread().name
    assert journal.threads["read"] == journal.threads["write"] == {me}
    reads_and_writes = [e for e in journal.events if e[0] in ("read", "written")]
    assert reads_and_writes == [(kind, n) for n in range(4) for kind in ("read", "written")]
    assert RecordingSink.committed == list(range(4 * ROWS))
    assert journal.run_ids == {result.run_id}


def test_a_failure_in_the_reader_fails_the_run_keeping_what_was_committed(
    journal: Journal, tmp_path: Path
) -> None:
    journal.fail_read_at = 3

    with pytest.raises(
        EngineError, match="failed in read: ValueError: the source broke at batch 3"
    ):
        run(paced_recipe(6), tmp_path)

    assert RecordingSink.committed == list(range(3 * ROWS))  # batches 0-2, committed in turn
    assert not reader_threads()
    assert journal.run_ids == {next(iter(journal.run_ids))}  # one run id, never None
    assert None not in journal.run_ids


def test_a_failed_write_stops_the_reader_before_the_source_is_closed(
    journal: Journal, tmp_path: Path
) -> None:
    journal.fail_write_at = 2

    with pytest.raises(EngineError, match="the destination broke at batch 2"):
        run(paced_recipe(8), tmp_path)

    ended = journal.events.index(("read ended", -1))
    assert ended < journal.events.index(("source closed", -1))
    assert journal.threads["read ended"] == {"dataloader-read-0"}
    # The reader was at most one batch ahead of the failed write.
    assert max(n for kind, n in journal.events if kind == "read") <= 3
    assert RecordingSink.committed == list(range(2 * ROWS))
    assert not reader_threads()


@pytest.mark.parametrize("read_ahead_setting", [1, 0])
def test_an_interrupted_run_keeps_its_commits_and_a_re_run_loads_exactly_the_rest(
    journal: Journal, tmp_path: Path, read_ahead_setting: int
) -> None:
    journal.interrupt_write_at = 3

    with pytest.raises(RunInterrupted) as interrupted:
        run(paced_recipe(6, read_ahead=read_ahead_setting), tmp_path)

    assert interrupted.value.result.rows_written == 3 * ROWS
    assert RecordingSink.committed == list(range(3 * ROWS))
    saved = State.from_dict(LocalStateBackend(tmp_path / "state").load("paced"))
    assert saved.watermarks == {"paced": {"next": 3}}  # the state agrees with the data
    assert not reader_threads()

    journal.interrupt_write_at = None
    result = run(paced_recipe(6, read_ahead=read_ahead_setting), tmp_path)

    assert result.rows_written == 3 * ROWS
    assert RecordingSink.committed == list(range(6 * ROWS))


def test_ctrl_c_in_the_state_save_after_a_commit_landed_still_mirrors_that_commit(
    tmp_path: Path, journal: Journal
) -> None:
    """The destination keeps the state: its commit landed, then Ctrl-C came while the state
    backend saved its copy. The run ends interrupted with the backend's copy up to date."""
    database = tmp_path / "w.duckdb"
    recipe = Recipe.model_validate(
        {
            "name": "paced",
            "source": {"type": "paced", "batches": 5},
            "destination": {"type": "duckdb", "database": str(database), "table": "t"},
            "runtime": {"batch_size": ROWS, "retries": 0},
        }
    )
    journal.total = 5

    class InterruptedSave(LocalStateBackend):
        saves = 0

        def save(self, recipe_name: str, state: dict[str, Any]) -> None:
            InterruptedSave.saves += 1
            if InterruptedSave.saves == 2:  # the second commit's mirror
                raise KeyboardInterrupt
            super().save(recipe_name, state)

    backend = InterruptedSave(tmp_path / "state")
    with pytest.raises(RunInterrupted) as interrupted:
        run_recipe(recipe, backend)

    assert interrupted.value.result.rows_written == 2 * ROWS
    saved = State.from_dict(LocalStateBackend(tmp_path / "state").load("paced"))
    assert saved.watermarks == {"paced": {"next": 2}}
    assert saved.last_commit["sequence"] == 2

    result = run_recipe(recipe, LocalStateBackend(tmp_path / "state"))
    assert result.rows_written == 3 * ROWS
    import duckdb

    con = duckdb.connect(str(database), read_only=True)
    try:
        assert con.execute("SELECT count(*), count(DISTINCT id) FROM t").fetchall() == [(20, 20)]
    finally:
        con.close()


# -- the recipe key ----------------------------------------------------------------------------
@pytest.mark.parametrize("value", [2, -1, "sometimes"])
def test_read_ahead_other_than_0_or_1_is_refused_naming_the_key(
    value: Any, write: Callable[[str, str], Path], registry: Any
) -> None:
    path = write(
        "bad.yaml",
        f"""
        name: bad
        source: {{type: paced, batches: 1}}
        destination: {{type: memory_sink, table: t}}
        runtime: {{read_ahead: {value}}}
        """,
    )
    register_connector("paced")(PacedSource)
    try:
        with pytest.raises(RecipeError) as raised:
            RecipeLoader(registry=registry).load(path)
    finally:
        unregister("connector", "paced")
    [problem] = raised.value.problems
    assert problem.key == "runtime.read_ahead"
    assert str(path) in str(raised.value)


def test_read_ahead_defaults_to_one() -> None:
    assert paced_recipe_default().runtime.read_ahead == 1


def paced_recipe_default() -> Recipe:
    return Recipe.model_validate(
        {"name": "d", "source": {"type": "x"}, "destination": {"type": "y"}}
    )
