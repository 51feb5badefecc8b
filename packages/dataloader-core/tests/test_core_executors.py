"""Choosing what runs a load: `runtime.executor`/`runtime.address`, `run --executor`, and
the errors of a name no plugin provides. (Distributed runs themselves are tested in
packages/dataloader-dask.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from dataloader.cli.app import _register_commands, cli
from dataloader.engine import Runner
from dataloader.engine.distributed import PartitionTask, create_run
from dataloader.errors import PluginError
from dataloader.recipe.binding import bind_recipe
from dataloader.recipe.models import Recipe, RuntimeConfig
from dataloader.registry import get_registry
from dataloader.state.local import LocalStateBackend

Write = Callable[[str, str], Path]


def test_runtime_executor_and_address_are_validated() -> None:
    assert RuntimeConfig().executor == "local" and RuntimeConfig().address is None
    config = RuntimeConfig(executor="dask", address="tcp://127.0.0.1:8786")
    assert (config.executor, config.address) == ("dask", "tcp://127.0.0.1:8786")
    with pytest.raises(ValidationError, match="executor"):
        RuntimeConfig(executor="Dask cluster")
    with pytest.raises(ValidationError, match="address"):
        RuntimeConfig(address="127.0.0.1:8786")  # no scheme


def test_local_is_the_single_process_engine(tmp_path: Path, sink: str) -> None:
    recipe = Recipe.model_validate(
        {
            "name": "local_run",
            "source": {"type": "sequence", "stop": 3},
            "destination": {"type": sink, "table": "t"},
        }
    )
    run = create_run(bind_recipe(recipe, get_registry()), LocalStateBackend(tmp_path))
    assert isinstance(run, Runner)
    assert run.run().rows_written == 3


def test_an_unknown_executor_names_the_key_and_what_is_installed(tmp_path: Path, sink: str) -> None:
    recipe = Recipe.model_validate(
        {
            "name": "remote_run",
            "source": {"type": "sequence", "stop": 3},
            "destination": {"type": sink, "table": "t"},
            "runtime": {"executor": "nowhere"},
        }
    )
    with pytest.raises(PluginError) as raised:
        create_run(bind_recipe(recipe, get_registry()), LocalStateBackend(tmp_path))
    assert raised.value.problem.key == "runtime.executor"
    assert "unknown executor 'nowhere'" in str(raised.value)
    assert "one of: local" in str(raised.value)


def test_run_executor_flag_overrides_the_recipe(write: Write, sink: str, tmp_path: Path) -> None:
    recipe = write(
        "flagged.yaml",
        f"""
        name: flagged
        source: {{type: sequence, stop: 3}}
        destination: {{type: {sink}, table: t}}
        """,
    )
    _register_commands()
    state = str(tmp_path / "state")
    refused = CliRunner().invoke(
        cli, ["run", str(recipe), "--state-dir", state, "--executor", "nowhere"]
    )
    assert refused.exit_code == 1, refused.output
    assert "runtime.executor" in refused.output and "nowhere" in refused.output
    local = CliRunner().invoke(
        cli, ["run", str(recipe), "--state-dir", state, "--executor", "local"]
    )
    assert local.exit_code == 0, local.output


def test_a_tasks_repr_leaves_the_recipe_and_state_out() -> None:
    task = PartitionTask(
        recipe={"source": {"password": "hunter2-secret"}},
        partition={"index": 0},
        state={"watermarks": {"token": "hunter2-secret"}},
        run_id="r",
        started_at="2024-01-01T00:00:00+00:00",
        full_refresh=False,
    )
    assert "hunter2" not in repr(task)
