"""Fixtures for the filestore tests: an in-process row source, a collecting destination that
can be told to die mid-run, and a run helper with state in tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dataloader import (
    BaseConnector,
    Capabilities,
    ConnectorConfig,
    RunResult,
    State,
    register_connector,
)
from dataloader.registry import reset_registry, unregister
from dataloader.testing import RowsSource, local_runner

ROWS_SOURCE = "dl_test_rows"
COLLECT_SINK = "dl_test_collect"

# Rows committed by the collecting destination, per `into`. Cleared by the `collected` fixture.
COLLECTED: dict[str, list[dict[str, Any]]] = {}


class Killed(Exception):
    """What the collecting destination raises to simulate a killed run."""


class CollectConfig(ConnectorConfig):
    """`into`: where committed rows go in `COLLECTED`; `fail_on_write`: die on this write
    (1-based). (Not `key`: a value under a key named like `key` is masked as a secret.)"""

    into: str = "rows"
    fail_on_write: int = 0


class CollectSink(BaseConnector):
    """Stages written rows and makes them visible in `COLLECTED[key]` on commit."""

    config_model = CollectConfig
    capabilities = Capabilities(write=True, write_modes=("append", "overwrite"))

    def __init__(self, config: CollectConfig) -> None:
        super().__init__(config)
        self.pending: list[dict[str, Any]] = []
        self.writes = 0

    def write_batch(self, batch: Any, state: State) -> None:
        self.writes += 1
        if self.writes == self.config.fail_on_write:
            raise Killed(f"killed on write {self.writes}")
        self.pending.extend(batch.to_arrow().to_pylist())

    def commit(self, state: State) -> None:
        assert self.context is not None
        if self.context.write_mode == "overwrite":
            COLLECTED[self.config.into] = []
        COLLECTED.setdefault(self.config.into, []).extend(self.pending)
        self.pending = []

    def abort(self) -> None:
        self.pending = []


@pytest.fixture(autouse=True)
def _test_connectors() -> Iterator[None]:
    """Register the in-process test connectors; the registry is rebuilt around each test."""
    reset_registry()
    register_connector(ROWS_SOURCE)(RowsSource)
    register_connector(COLLECT_SINK)(CollectSink)
    yield
    unregister("connector", ROWS_SOURCE)
    unregister("connector", COLLECT_SINK)
    reset_registry()


@pytest.fixture
def collected() -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Rows the collecting destination committed, per key."""
    COLLECTED.clear()
    yield COLLECTED
    COLLECTED.clear()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def run(state_dir: Path) -> Callable[..., RunResult]:
    """`run(recipe_dict_or_Recipe, **kwargs)`: run it with a local state backend in tmp_path."""
    return local_runner(state_dir)


@pytest.fixture
def read_back(run: Callable[..., RunResult], collected: dict[str, list[dict[str, Any]]]) -> Any:
    """`read_back(path, **source_options)`: every row the filestore source reads from `path`."""
    counter = {"n": 0}

    def _read(path: Any, **options: Any) -> list[dict[str, Any]]:
        counter["n"] += 1
        key = f"read_back_{counter['n']}"
        run(
            {
                "name": key,
                "source": {"type": "filestore", "path": path, **options},
                "destination": {"type": COLLECT_SINK, "into": key},
            }
        )
        return collected.get(key, [])

    return _read
