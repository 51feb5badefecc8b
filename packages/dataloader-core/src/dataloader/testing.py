"""Helpers for testing dataloader and its plugins: a source that yields given rows, a runner
with local state, and the start/stop discipline of the real servers tests run against."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from dataloader.batch import ArrowBatch
from dataloader.connectors import BaseConnector, Capabilities, ConnectorConfig
from dataloader.state.model import State


def local_runner(state_dir: Path) -> Callable[..., Any]:
    """`run(recipe, **kwargs)`: run a `Recipe` (or its dict) with local state in `state_dir`;
    returns the `RunResult`."""
    from dataloader.engine import run_recipe
    from dataloader.recipe.models import Recipe
    from dataloader.state.local import LocalStateBackend

    def run(recipe: Any, **kwargs: Any) -> Any:
        if not isinstance(recipe, Recipe):
            recipe = Recipe.model_validate(recipe)
        return run_recipe(recipe, LocalStateBackend(state_dir), **kwargs)

    return run


class RowsConfig(ConnectorConfig):
    """`batches`: the batches the source yields, each a list of row dicts, in this order."""

    batches: list[list[dict[str, Any]]]


class RowsSource(BaseConnector):
    """A source that yields exactly the batches it is configured with: no sorting, no
    filtering. Register it under a name of your choice with `register_connector(name)`."""

    config_model = RowsConfig
    capabilities = Capabilities(read=True, incremental=True)

    def read_batches(self, state: State) -> Iterator[ArrowBatch]:
        for rows in self.config.batches:
            yield ArrowBatch.from_pylist(rows)


@contextmanager
def host_time_zone(zone: str) -> Iterator[None]:
    """This process (and the connections it opens: `TZ`, and `PGTZ` for libpq) in time zone
    `zone` until the block ends; the previous settings are restored."""
    saved = {name: os.environ.get(name) for name in ("TZ", "PGTZ")}
    os.environ["TZ"] = os.environ["PGTZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        time.tzset()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server(Protocol):
    def start(self) -> Any: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=Server)


def serve(server: S, what: str) -> Iterator[S]:
    """Body of a pytest fixture: start `server`, yield it, stop it.

    A server that cannot start fails the test with its reason: tests never skip for a
    missing service.
    """
    import pytest

    try:
        server.start()
    except Exception as exc:
        server.stop()
        pytest.fail(f"could not start {what} for the tests: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
