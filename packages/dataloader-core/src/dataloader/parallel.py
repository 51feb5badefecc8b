"""Bounded, ordered concurrency for the data plane.

Threads, not asyncio: the heavy work (pyarrow parsing, DuckDB, COPY, network reads) releases
the GIL, so plain threads overlap it without rewriting connectors as coroutines. Every queue is
bounded, so memory stays within a few batches per worker whatever the data size.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _pump(
    producer: Callable[[], Iterable[Any]], sink: queue.Queue[Any], stop: threading.Event
) -> None:
    try:
        for item in producer():  # calling the producer may fail too: the consumer hears of it
            while not stop.is_set():
                try:
                    sink.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
        sink.put(_DONE)
    except BaseException as exc:
        sink.put(_Failure(exc))


def read_ahead(source: Iterable[T], depth: int, name: str = "read-ahead") -> Iterator[T]:
    """Iterate `source` in a background thread, at most `depth` items ahead of the consumer."""
    yield from ordered_merge([lambda: source], workers=1, depth=depth, name=name)


def ordered_merge(
    producers: Iterable[Callable[[], Iterable[T]]],
    *,
    workers: int,
    depth: int = 2,
    name: str = "reader",
) -> Iterator[T]:
    """Run up to `workers` producers at once; yield all of the first one's items, then the
    second's, and so on — the order a serial run would give. Each producer runs at most
    `depth` items ahead. An error in a producer is raised in the consumer.
    """
    stop = threading.Event()
    pending = iter(producers)
    running: list[tuple[queue.Queue[Any], threading.Thread]] = []

    def start_next() -> bool:
        producer = next(pending, None)
        if producer is None:
            return False
        channel: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))

        thread = threading.Thread(
            target=_pump,
            args=(producer, channel, stop),
            name=f"dataloader-{name}-{len(running)}",
            daemon=True,
        )
        thread.start()
        running.append((channel, thread))
        return True

    try:
        while len(running) < max(1, workers) and start_next():
            pass
        while running:
            channel, thread = running[0]
            while True:
                item = channel.get()
                if item is _DONE:
                    break
                if isinstance(item, _Failure):
                    raise item.error
                yield item
            thread.join()
            running.pop(0)
            start_next()
    finally:
        stop.set()
        for channel, thread in running:
            while thread.is_alive():
                with contextlib.suppress(queue.Empty):
                    channel.get(timeout=0.05)
            thread.join()
