"""Fixtures of the `sql` connector tests: a SQLite file per test, recipes run in-process with
a local state backend in tmp_path, an in-process rows source, and reads through the connector.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sql_support import Sqlite

from dataloader import LocalStateBackend, RunResult, register_connector, run_recipe
from dataloader.recipe.models import Recipe
from dataloader.registry import unregister
from dataloader.testing import RowsSource


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Sqlite:
    return Sqlite(tmp_path / "data.sqlite")


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def run(state_dir: Path) -> Callable[..., RunResult]:
    """`run(recipe_dict, **options)`: the recipe run in-process with local state in tmp_path."""

    def _run(recipe: dict[str, Any], **kwargs: Any) -> RunResult:
        return run_recipe(Recipe.model_validate(recipe), LocalStateBackend(state_dir), **kwargs)

    return _run


@pytest.fixture
def rows_source() -> Iterator[str]:
    """An in-process source that yields batches exactly as configured."""
    name = "dl_sql_test_rows"
    register_connector(name)(type("SqlTestRows", (RowsSource,), {}))
    try:
        yield name
    finally:
        unregister("connector", name)
