"""`ordered_merge`/`read_ahead` (order, bounded concurrency and read-ahead, errors, early exit)
and the retry helpers `backoff_delay`/`call_with_retries`."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from dataloader import retry as retry_module
from dataloader.parallel import ordered_merge, read_ahead
from dataloader.recipe.models import RetryConfig
from dataloader.retry import backoff_delay, call_with_retries

WAIT = 10.0  # seconds a test waits for a thread before it fails instead of hanging


def consume(
    iterator: Iterable[Any], into: list[Any] | None = None, timeout: float = WAIT
) -> list[Any]:
    """Everything `iterator` yields (appended to `into`), consumed in a helper thread: a hang
    fails the test instead of blocking it; an error is raised here."""
    items: list[Any] = [] if into is None else into
    failure: list[BaseException] = []

    def run() -> None:
        try:
            for item in iterator:
                items.append(item)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"the consumer hung after {len(items)} items: {items[-5:]}"
    if failure:
        raise failure[0]
    return items


def merge_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"dataloader-{name}-")]


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class Tracker:
    """Producers that record how many are running at once and how far each has produced."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.max_running = 0
        self.produced: dict[int, int] = {}
        self.finished: set[int] = set()

    def producer(
        self, index: int, count: int, delay: float = 0.0, meet: int = 0
    ) -> Callable[[], Iterator]:
        """With `meet`, the producer waits until `meet` producers run at once (and fails, after
        `WAIT` seconds, if they never do)."""

        def generate() -> Iterator[tuple[int, int]]:
            with self.lock:
                self.running += 1
                self.max_running = max(self.max_running, self.running)
            try:
                if meet:
                    met = wait_until(lambda: self.running >= meet)
                    assert met, f"producer {index}: {self.running} running, never {meet} at once"
                for item in range(count):
                    if delay:
                        time.sleep(delay)
                    with self.lock:
                        self.produced[index] = item + 1
                    yield index, item
            finally:
                with self.lock:
                    self.running -= 1
                    self.finished.add(index)

        return generate


# -- ordered_merge -----------------------------------------------------------------------
@pytest.mark.parametrize("workers", [1, 3, 8])
def test_ordered_merge_keeps_the_serial_order(workers: int) -> None:
    tracker = Tracker()
    # Later producers are faster, so a merge in completion order would come out scrambled.
    producers = [tracker.producer(i, 6, delay=0.004 * (7 - i)) for i in range(7)]
    items = consume(ordered_merge(producers, workers=workers, depth=2, name="order"))
    assert items == [(i, n) for i in range(7) for n in range(6)]
    assert tracker.finished == set(range(7))
    assert wait_until(lambda: not merge_threads("order"))


def test_ordered_merge_runs_at_most_workers_producers_at_once() -> None:
    tracker = Tracker()
    # The first three wait for each other, so they surely overlap however loaded the machine.
    producers = [tracker.producer(i, 4, delay=0.005, meet=3 if i < 3 else 0) for i in range(9)]
    items = consume(ordered_merge(producers, workers=3, depth=1, name="bound"))
    assert items == [(i, n) for i in range(9) for n in range(4)]
    assert tracker.max_running == 3  # never more, and they really overlap


def test_ordered_merge_producers_run_at_most_depth_plus_one_items_ahead() -> None:
    depth, count = 2, 12
    tracker = Tracker()
    producers = [tracker.producer(i, count) for i in range(3)]
    merged = ordered_merge(producers, workers=3, depth=depth, name="ahead")
    received: list[tuple[int, int]] = []
    try:
        for index, item in merged:
            received.append((index, item))
            consumed = item + 1  # items of producer `index` taken by the consumer so far
            bound = min(count, consumed + depth + 1)
            # Give the producers every chance to run ahead while the consumer holds this item.
            wait_until(lambda i=index, b=bound: tracker.produced.get(i, 0) >= b)
            time.sleep(0.01)
            with tracker.lock:
                produced = dict(tracker.produced)
            assert produced[index] == bound, (index, item, produced)
            for later in range(index + 1, 3):  # not consumed at all yet
                assert produced.get(later, 0) <= depth + 1, (later, produced)
    finally:
        merged.close()
    assert received == [(i, n) for i in range(3) for n in range(count)]


def test_read_ahead_is_bounded_and_ordered() -> None:
    produced = []

    def source() -> Iterator[int]:
        for n in range(20):
            produced.append(n)
            yield n

    ahead = read_ahead(source(), depth=3, name="ra")
    assert next(ahead) == 0
    wait_until(lambda: len(produced) >= 5)
    time.sleep(0.02)
    assert len(produced) == 1 + 3 + 1  # the consumed item, a full queue, one waiting to be put
    assert [0, *ahead] == list(range(20))


def test_an_error_in_a_producer_is_raised_in_the_consumer_after_the_items_before_it() -> None:
    tracker = Tracker()

    def failing() -> Iterator[tuple[int, int]]:
        yield 1, 0
        yield 1, 1
        raise ValueError("producer 1 broke")

    producers = [tracker.producer(0, 5, delay=0.005), failing, tracker.producer(2, 5)]
    received: list[tuple[int, int]] = []
    with pytest.raises(ValueError, match="producer 1 broke"):
        consume(ordered_merge(producers, workers=3, depth=2, name="fail"), received)
    # Producer 0's items all came first, then producer 1's two, in order; nothing after.
    assert received == [(0, n) for n in range(5)] + [(1, 0), (1, 1)]
    assert wait_until(lambda: not merge_threads("fail")), "workers left running"


def test_a_producer_that_fails_when_called_is_raised_in_the_consumer() -> None:
    def broken() -> Iterable[int]:
        raise ConnectionError("could not open the part")

    producers = [lambda: iter([1, 2]), broken, lambda: iter([3])]
    received: list[int] = []
    with pytest.raises(ConnectionError, match="could not open the part"):
        consume(ordered_merge(producers, workers=2, depth=2, name="callfail"), received)
    assert received == [1, 2]
    assert wait_until(lambda: not merge_threads("callfail")), "workers left running"


def test_early_consumer_exit_stops_the_workers() -> None:
    counters = [itertools.count() for _ in range(4)]
    produced = [0, 0, 0, 0]

    def endless(index: int) -> Callable[[], Iterator[tuple[int, int]]]:
        def generate() -> Iterator[tuple[int, int]]:
            for n in counters[index]:
                produced[index] = n + 1
                yield index, n

        return generate

    merged = ordered_merge([endless(i) for i in range(4)], workers=2, depth=2, name="early")
    taken = [next(merged) for _ in range(5)]
    assert taken == [(0, n) for n in range(5)]
    assert len(merge_threads("early")) == 2
    merged.close()  # what a `break` out of a for loop does to a generator
    assert wait_until(lambda: not merge_threads("early")), "workers still running after close"
    snapshot = list(produced)
    time.sleep(0.05)
    assert produced == snapshot  # nothing produces any more
    assert produced[2] == produced[3] == 0  # producers never started stay unstarted


def test_ordered_merge_with_no_producers_yields_nothing() -> None:
    assert consume(ordered_merge([], workers=4, name="none")) == []


# -- backoff_delay -----------------------------------------------------------------------
def test_backoff_delay_doubles_from_the_initial_backoff_up_to_the_maximum() -> None:
    policy = RetryConfig(attempts=10, initial_backoff=0.5, max_backoff=3.0, jitter=0)
    assert [backoff_delay(policy, n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_backoff_delay_jitter_stays_within_its_fraction() -> None:
    policy = RetryConfig(initial_backoff=1.0, max_backoff=100.0, jitter=0.25)
    delays = [backoff_delay(policy, 3) for _ in range(300)]
    assert all(4 * 0.75 <= d <= 4 * 1.25 for d in delays)
    assert len(set(delays)) > 1  # it does vary


# -- call_with_retries -------------------------------------------------------------------
class Flaky:
    """Fails with `errors` in turn, then returns its arguments."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return args, kwargs


def transient(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionError)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(retry_module.time, "sleep", recorded.append)
    return recorded


def test_call_with_retries_retries_transient_errors_with_backoff(sleeps: list[float]) -> None:
    operation = Flaky(ConnectionError("a"), ConnectionError("b"))
    retried: list[tuple[str, int]] = []
    policy = RetryConfig(attempts=3, initial_backoff=0.1, jitter=0)
    result = call_with_retries(
        operation,
        1,
        policy=policy,
        is_transient=transient,
        on_retry=lambda exc, n: retried.append((str(exc), n)),
        key="v",
    )
    assert result == ((1,), {"key": "v"})
    assert operation.calls == 3
    assert retried == [("a", 1), ("b", 2)]
    assert sleeps == [0.1, 0.2]


def test_call_with_retries_raises_a_permanent_error_at_once(sleeps: list[float]) -> None:
    operation = Flaky(ValueError("bad input"), ConnectionError("never reached"))
    with pytest.raises(ValueError, match="bad input"):
        call_with_retries(operation, policy=RetryConfig(attempts=5), is_transient=transient)
    assert operation.calls == 1
    assert sleeps == []


def test_call_with_retries_gives_up_after_the_attempts(sleeps: list[float]) -> None:
    operation = Flaky(*(ConnectionError(f"e{n}") for n in range(5)))
    policy = RetryConfig(attempts=2, initial_backoff=0.01, jitter=0)
    with pytest.raises(ConnectionError, match="e2"):
        call_with_retries(operation, policy=policy, is_transient=transient)
    assert operation.calls == 3  # the first try and two retries
    assert sleeps == [0.01, 0.02]


def test_call_with_retries_with_zero_attempts_does_not_retry(sleeps: list[float]) -> None:
    operation = Flaky(ConnectionError("down"))
    with pytest.raises(ConnectionError, match="down"):
        call_with_retries(operation, policy=RetryConfig(attempts=0), is_transient=transient)
    assert operation.calls == 1
    assert sleeps == []


def test_call_with_retries_defaults_to_the_default_policy(sleeps: list[float]) -> None:
    default = RetryConfig()
    operation = Flaky(*(ConnectionError("x") for _ in range(default.attempts + 1)))
    with pytest.raises(ConnectionError):
        call_with_retries(operation, policy=None, is_transient=transient)
    assert operation.calls == default.attempts + 1
    assert len(sleeps) == default.attempts
