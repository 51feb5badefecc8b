"""Fixtures for the example plugin's tests: a SQLite file in tmp_path, an in-process source,
a runner with local state, and the SQLite destination driven step by step."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlite_support import Open, Sql

from dataloader import RunResult, register_connector
from dataloader.registry import reset_registry, unregister
from dataloader.testing import RowsSource, begun_destination, local_runner
from dataloader_example.config import SQLiteConfig
from dataloader_example.sqlite.connector import SQLiteDestination

ROWS_SOURCE = "example_test_rows"


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    reset_registry()
    yield
    reset_registry()


@pytest.fixture
def rows_source() -> Iterator[str]:
    """Register an in-process source yielding the batches its recipe gives; the fixture's
    value is its name."""
    register_connector(ROWS_SOURCE)(type("ExampleRows", (RowsSource,), {}))
    try:
        yield ROWS_SOURCE
    finally:
        unregister("connector", ROWS_SOURCE)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.sqlite"


@pytest.fixture
def run(tmp_path: Path) -> Callable[..., RunResult]:
    """`run(recipe)`: run a recipe (dict or `Recipe`) with local state in tmp_path."""
    return local_runner(tmp_path / "state")


@pytest.fixture
def destination(database: Path) -> Iterator[Open]:
    """`destination(write_mode=…, merge_keys=…)`: a SQLite destination of table `t`, opened and
    begun as one run of recipe `r` would; closed at the end of the test."""
    opened: list[SQLiteDestination] = []

    def open_one(write_mode: str = "append", run_id: str = "run-1", **extra: Any) -> Any:
        connector = SQLiteDestination(SQLiteConfig(database=str(database), table="t"))
        begun_destination(connector, write_mode, run_id, **extra)
        opened.append(connector)
        return connector

    yield open_one
    for connector in opened:
        connector.close()


@pytest.fixture
def sql() -> Sql:
    return Sql()
