"""Client-side rate limits (requests per second, requests in flight) and `Retry-After`."""

from __future__ import annotations

import email.utils
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime

_DELTA_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")  # RFC 9110 has digits only; some send 1.5


class RateLimiter:
    """Keeps requests at most `requests_per_second` apart on average and at most
    `max_concurrent` in flight.

    Starts are spaced `1 / requests_per_second` seconds apart: each caller reserves the next
    free start time under a lock, then sleeps until it outside the lock, so waiting threads
    start in the order they asked.
    """

    def __init__(
        self,
        requests_per_second: float | None,
        max_concurrent: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests_per_second is not None and requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.interval = 1.0 / requests_per_second if requests_per_second else 0.0
        self.max_concurrent = max_concurrent
        self._clock = clock
        self._sleep = sleep
        self._semaphore = threading.BoundedSemaphore(max_concurrent)
        self._lock = threading.Lock()
        self._next_start: float | None = None

    def wait_for_start(self) -> float:
        """Block until a request may start; returns the seconds waited."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = self._clock()
            start = now if self._next_start is None else max(now, self._next_start)
            self._next_start = start + self.interval
        delay = start - now
        if delay > 0:
            self._sleep(delay)
        return delay

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the `max_concurrent` places, started no sooner than the rate allows."""
        self._semaphore.acquire()
        try:
            self.wait_for_start()
            yield
        finally:
            self._semaphore.release()


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """The wait a `Retry-After` header asks for, in seconds: delta-seconds (`120`) or an HTTP
    date (`Wed, 21 Oct 2015 07:28:00 GMT`, relative to `now`, default the current UTC time).
    None without a header or with one that is neither; a date in the past gives 0."""
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # `-0000` means UTC without a claim about the local zone
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
