"""A connector that declares itself experimental says so in `list-connectors` and in the log
of every run that uses it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dataloader import LocalStateBackend, register_connector, run_recipe
from dataloader.cli.app import _register_commands, cli
from dataloader.connectors import BaseConnector, Capabilities
from dataloader.recipe import Recipe
from dataloader.registry import unregister


class TrialSink(BaseConnector):
    """A destination that keeps nothing; declared experimental."""

    capabilities = Capabilities(write=True, write_modes=("append",), experimental=True)

    def write_batch(self, batch: object, state: object) -> None:
        pass


@pytest.fixture
def trial_sink() -> Iterator[str]:
    register_connector("trial_sink")(TrialSink)
    try:
        yield "trial_sink"
    finally:
        unregister("connector", "trial_sink")


def test_list_connectors_marks_an_experimental_connector(trial_sink: str) -> None:
    _register_commands()
    result = CliRunner(env={"COLUMNS": "200"}).invoke(cli, ["list-connectors"])

    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if f" {trial_sink} " in line)
    assert "experimental, write (append)" in row
    sequence = next(line for line in result.stdout.splitlines() if " sequence " in line)
    assert "experimental" not in sequence


def test_a_run_with_an_experimental_destination_warns(
    trial_sink: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recipe = Recipe.model_validate(
        {
            "name": "trial",
            "source": {"type": "sequence", "stop": 3},
            "destination": {"type": trial_sink},
        }
    )
    with caplog.at_level(logging.WARNING, logger="dataloader"):
        run_recipe(recipe, LocalStateBackend(str(tmp_path)))

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "destination connector 'trial_sink' is experimental (see its documentation)" in warnings
    assert not any("source connector" in w for w in warnings)
