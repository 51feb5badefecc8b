"""The client-side rate limiter and `Retry-After` parsing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from dataloader_rest.ratelimit import RateLimiter, retry_after_seconds


class FakeClock:
    """Monotonic time that only moves when something sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_requests_per_second_spaces_starts() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, 2, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(5):
        with limiter.slot():
            starts.append(clock())
    assert [round(s - starts[0], 9) for s in starts] == [0, 0.25, 0.5, 0.75, 1.0]
    assert clock.sleeps == pytest.approx([0.25] * 4)


def test_time_already_spent_is_not_waited_again() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, 1, clock=clock, sleep=clock.sleep)
    with limiter.slot():
        clock.now += 0.2  # the request took 0.2 s
    with limiter.slot():
        pass
    assert clock.sleeps == pytest.approx([0.3])
    clock.now += 5  # idle: no credit builds up for a burst
    with limiter.slot():
        pass
    with limiter.slot():
        pass
    assert clock.sleeps == pytest.approx([0.3, 0.5])


def test_without_rate_nothing_waits() -> None:
    clock = FakeClock()
    limiter = RateLimiter(None, 1, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        with limiter.slot():
            pass
    assert clock.sleeps == []


def test_threads_reserve_distinct_start_times() -> None:
    clock = FakeClock()
    lock = threading.Lock()
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # record, don't advance: every thread asks at t=1000
        with lock:
            waits.append(seconds)

    limiter = RateLimiter(10, 8, clock=clock, sleep=sleep)
    threads = [threading.Thread(target=limiter.wait_for_start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(waits) == pytest.approx([0.1 * i for i in range(1, 8)])


def test_concurrency_never_above_max() -> None:
    limiter = RateLimiter(None, 3)
    state = threading.Condition()
    in_flight = 0
    most = 0
    release = threading.Event()

    def request() -> None:
        nonlocal in_flight, most
        with limiter.slot():
            with state:
                in_flight += 1
                most = max(most, in_flight)
                state.notify_all()
            release.wait(10)
            with state:
                in_flight -= 1

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    with state:
        assert state.wait_for(lambda: in_flight == 3, timeout=10)
    release.set()
    for thread in threads:
        thread.join(10)
    assert most == 3
    assert in_flight == 0


def test_slot_is_released_when_the_request_fails() -> None:
    limiter = RateLimiter(None, 1)
    with pytest.raises(RuntimeError), limiter.slot():
        raise RuntimeError("boom")
    with limiter.slot():  # would block forever if the place were lost
        pass


def test_invalid_limits() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0, 1)
    with pytest.raises(ValueError):
        RateLimiter(None, 0)


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", 1.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        ("Fri, 02 Jan 2026 03:04:35 GMT", 30.0),
        ("Fri, 02 Jan 2026 03:03:00 GMT", 0.0),  # in the past
        ("Fri, 02 Jan 2026 04:04:05 +0100", 0.0),  # an offset other than GMT
        ("-5", None),
        ("soon", None),
        ("", None),
        ("nan", None),
    ],
)
def test_retry_after(value: str, expected: float | None) -> None:
    assert retry_after_seconds({"Retry-After": value}, NOW) == expected


def test_retry_after_absent_or_lowercase() -> None:
    assert retry_after_seconds({}, NOW) is None
    assert retry_after_seconds({"retry-after": "3"}, NOW) == 3.0


def test_retry_after_date_against_current_time() -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    seconds = retry_after_seconds({"Retry-After": format_datetime(later, usegmt=True)})
    assert seconds is not None and 3500 < seconds <= 3600
