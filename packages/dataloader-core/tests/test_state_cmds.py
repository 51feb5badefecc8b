"""`show-state`, `reset-state` and `import-state` against a run that holds the recipe's lock:
the commands that change state (in the destination or the backend) take the lock first and
fail clearly; `show-state` never opens the destination of a running recipe."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dataloader import BaseConnector, Capabilities, State, StateError, register_connector
from dataloader.cli.app import _register_commands, cli
from dataloader.registry import unregister
from dataloader.state import LocalStateBackend

Write = Callable[[str, str], Path]


class StatefulSink(BaseConnector):
    """A destination that keeps its state with its data; records what the commands do to it."""

    capabilities = Capabilities(write=True, write_modes=("append",), transactional_state=True)
    calls: list[str] = []

    def open(self, context: Any) -> None:
        super().open(context)
        self.calls.append("open")

    def load_state(self) -> State | None:
        self.calls.append("load_state")  # a filestore destination applies pending renames here
        return State(cursor_values={"id": 7})

    def reset_state(self) -> None:
        self.calls.append("reset_state")


@pytest.fixture
def recipe(write: Write) -> Iterator[Path]:
    register_connector("stateful_sink")(StatefulSink)
    StatefulSink.calls = []
    _register_commands()
    try:
        yield write(
            "orders.yaml",
            """
            name: orders
            source: {type: sequence, stop: 3}
            destination: {type: stateful_sink}
            """,
        )
    finally:
        unregister("connector", "stateful_sink")


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "state"
    LocalStateBackend(directory).save("orders", State(cursor_values={"id": 5}).to_dict())
    return directory


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def test_reset_state_while_a_run_holds_the_lock_changes_nothing(
    recipe: Path, state_dir: Path
) -> None:
    with LocalStateBackend(state_dir).lock("orders"):
        result = invoke("reset-state", str(recipe), "--state-dir", str(state_dir))
    assert isinstance(result.exception, StateError), result.output
    assert "already running" in str(result.exception)
    assert "reset_state" not in StatefulSink.calls  # the destination's state is untouched
    assert StatefulSink.calls == []
    assert LocalStateBackend(state_dir).load("orders") != {}

    result = invoke("reset-state", str(recipe), "--state-dir", str(state_dir))  # lock free
    assert result.exit_code == 0, result.output
    assert "reset_state" in StatefulSink.calls
    assert LocalStateBackend(state_dir).load("orders") == {}


def test_import_state_while_a_run_holds_the_lock_fails(
    recipe: Path, state_dir: Path, tmp_path: Path
) -> None:
    document = tmp_path / "import.json"
    document.write_text(json.dumps(State(cursor_values={"id": 99}).to_dict()), encoding="utf-8")
    with LocalStateBackend(state_dir).lock("orders"):
        result = invoke("import-state", str(recipe), str(document), "--state-dir", str(state_dir))
    assert isinstance(result.exception, StateError), result.output
    assert "already running" in str(result.exception)
    assert State.from_dict(LocalStateBackend(state_dir).load("orders")).cursor_values == {"id": 5}


def test_show_state_of_a_running_recipe_shows_the_backend_copy_without_opening_the_destination(
    recipe: Path, state_dir: Path
) -> None:
    with LocalStateBackend(state_dir).lock("orders"):
        result = invoke("show-state", str(recipe), "--state-dir", str(state_dir), "--json")
    assert result.exit_code == 0, result.output
    assert StatefulSink.calls == []  # opening it could apply the running commit's renames
    assert json.loads(result.stdout)["cursor_values"] == {"id": 5}
    assert "running" in result.stderr

    result = invoke("show-state", str(recipe), "--state-dir", str(state_dir), "--json")
    assert result.exit_code == 0, result.output
    assert StatefulSink.calls == ["open", "load_state"]  # not running: the destination decides
    assert json.loads(result.stdout)["cursor_values"] == {"id": 7}
