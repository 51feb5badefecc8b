"""Bounded, ordered concurrency for the data plane.

Threads, not asyncio: the heavy work (pyarrow parsing, DuckDB, COPY, network reads) releases
the GIL, so plain threads overlap it without rewriting connectors as coroutines. Every producer
is bounded, so memory stays within a few batches per worker whatever the data size.

Each producer thread runs in a copy of the context of the thread that started it, so context
variables (the run id and recipe name the logs carry) are seen by the producers too, and
blocks the signals Python handles, which only the main thread acts on.
"""

from __future__ import annotations

import contextvars
import queue
import signal
import threading
from collections.abc import Callable, Generator, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _leave_signals_to_the_main_thread() -> None:
    """Block, in this thread, the signals Python handles (Ctrl-C's SIGINT above all).

    Python runs signal handlers in the main thread only, and a signal the kernel hands to
    another thread does not wake a main thread blocked on a lock: with a producer thread
    picking up Ctrl-C, `dataloader run -j N` could sit in its wait for a recipe to end. Blocked
    here, the signal goes to a thread that acts on it.
    """
    if not hasattr(signal, "pthread_sigmask"):  # no per-thread signal masks (Windows)
        return
    handled: set[int] = set()
    for number in signal.valid_signals():
        try:
            handler = signal.getsignal(number)
        except (OSError, ValueError):
            continue
        if callable(handler):
            handled.add(number)
    if handled:
        signal.pthread_sigmask(signal.SIG_BLOCK, handled)


def _pump(
    producer: Callable[[], Iterable[Any]],
    sink: queue.SimpleQueue[Any],
    slots: threading.Semaphore,
    stop: threading.Event,
) -> None:
    """Produce into `sink`, taking a slot before each item (the consumer frees one per item
    it takes). Once the consumer has stopped, close the producer's iterator here, in its own
    thread, so its cleanup (a cancelled COPY, a closed cursor) is done before the consumer
    goes on."""
    try:
        _leave_signals_to_the_main_thread()
        iterator = iter(producer())  # calling the producer may fail too: the consumer hears of it
        while True:
            slots.acquire()
            if stop.is_set():
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
                return
            try:
                item = next(iterator)
            except StopIteration:
                sink.put(_DONE)
                return
            sink.put(item)
    except BaseException as exc:
        sink.put(_Failure(exc))


def read_ahead(
    source: Iterable[T], depth: int, name: str = "read-ahead"
) -> Generator[T, None, None]:
    """Iterate `source` in a background thread: besides the item it is producing, at most
    `depth` finished items wait for the consumer (`depth=0`: one item ahead, produced while
    the consumer works on the one before)."""
    yield from ordered_merge([lambda: source], workers=1, depth=depth, name=name)


def ordered_merge(
    producers: Iterable[Callable[[], Iterable[T]]],
    *,
    workers: int,
    depth: int = 2,
    name: str = "reader",
) -> Generator[T, None, None]:
    """Run up to `workers` producers at once; yield all of the first one's items, then the
    second's, and so on — the order a serial run would give. Each producer has at most `depth`
    finished items waiting besides the one it is producing (so `depth + 1` ahead of the
    consumer). An error in a producer is raised in the consumer. Closing the iterator (or
    leaving a loop over it) stops the producers and waits for them.
    """
    stop = threading.Event()
    pending = iter(producers)
    running: list[tuple[queue.SimpleQueue[Any], threading.Semaphore, threading.Thread]] = []
    started = 0

    def start_next() -> bool:
        nonlocal started
        producer = next(pending, None)
        if producer is None:
            return False
        channel: queue.SimpleQueue[Any] = queue.SimpleQueue()
        slots = threading.Semaphore(max(0, depth) + 1)
        # Taken here, in the consumer's thread: the producer sees its context variables.
        context = contextvars.copy_context()
        thread = threading.Thread(
            target=context.run,
            args=(_pump, producer, channel, slots, stop),
            name=f"dataloader-{name}-{started}",
            daemon=True,
        )
        started += 1
        thread.start()
        running.append((channel, slots, thread))
        return True

    try:
        while len(running) < max(1, workers) and start_next():
            pass
        while running:
            channel, slots, thread = running[0]
            while True:
                item = channel.get()
                if item is _DONE:
                    break
                if isinstance(item, _Failure):
                    raise item.error
                slots.release()  # the producer may start the next item while this one is used
                yield item
            thread.join()
            running.pop(0)
            start_next()
    finally:
        stop.set()
        for _, slots, _ in running:
            slots.release()  # wakes a producer waiting for a slot: it sees `stop` and ends
        for _, _, thread in running:
            thread.join()
