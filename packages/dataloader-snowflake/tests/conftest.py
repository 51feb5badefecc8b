"""Fixtures of the Snowflake connector tests: a fakesnow database per test, recipes written as
YAML and run in-process with a local state backend in tmp_path, a rows source, and the
statements the connector logged."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dataloader import LocalStateBackend, RecipeLoader, RunResult, register_connector, run_recipe
from dataloader.registry import unregister
from dataloader.testing import RowsSource
from dataloader_snowflake.testing import fakesnow_server, snowflake_db

__all__ = ["fakesnow_server", "snowflake_db"]


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def write_recipe(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """`write_recipe(dict)`: the recipe as `<name>.yaml` in tmp_path; its path."""

    def _write(recipe: dict[str, Any]) -> Path:
        path = tmp_path / f"{recipe['name']}.yaml"
        path.write_text(yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True), "utf-8")
        return path

    return _write


@pytest.fixture
def run(
    write_recipe: Callable[[dict[str, Any]], Path], state_dir: Path
) -> Callable[..., RunResult]:
    """`run(recipe_dict)`: write it as YAML, load it and run it in-process."""

    def _run(recipe: dict[str, Any], **kwargs: Any) -> RunResult:
        loaded = RecipeLoader().load(write_recipe(recipe))
        return run_recipe(loaded, LocalStateBackend(state_dir), **kwargs)

    return _run


@pytest.fixture
def rows_source() -> Iterator[str]:
    """An in-process source that yields batches exactly as configured."""
    name = "dl_sf_test_rows"
    register_connector(name)(type("SfTestRows", (RowsSource,), {}))
    try:
        yield name
    finally:
        unregister("connector", name)


@pytest.fixture
def sf_statements(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """`sf_statements()`: the statements the connector sent so far in this test, as its DEBUG
    log shows them (credentials masked)."""
    prefix = "Snowflake statement: "
    caplog.set_level(logging.DEBUG, logger="dataloader_snowflake.connector")

    def _statements() -> list[str]:
        return [
            record.getMessage().removeprefix(prefix)
            for record in caplog.records
            if record.name == "dataloader_snowflake.connector"
            and record.getMessage().startswith(prefix)
        ]

    return _statements
