"""The local state backend's lock keeps two runs of one recipe apart even when they start in
different working directories, so that their relative state directories differ while they
write the same destination."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dataloader import StateError
from dataloader.engine import state_backend_for
from dataloader.recipe import RecipeLoader
from dataloader.registry import Registry

Write = Callable[[str, str], Path]

RECIPE = """
    name: orders
    source: {type: sequence, stop: 3}
    destination: {type: memory_sink, table: "{{ var('table', 'orders') }}"}
"""


def test_runs_from_two_working_directories_are_kept_apart(
    write: Write, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write("recipes/orders.yaml", RECIPE)
    recipe = RecipeLoader(registry=registry).load(path)
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()

    monkeypatch.chdir(first_dir)
    first = state_backend_for(recipe, ".state")  # `--state-dir .state`
    with first.lock("orders"):
        monkeypatch.chdir(second_dir)
        second = state_backend_for(recipe)  # the default, `.state/`, of another directory
        absolute = state_backend_for(recipe, str(tmp_path / "elsewhere"))
        for other in (second, absolute):
            with pytest.raises(StateError, match="already running") as caught, other.lock("orders"):
                pytest.fail("two runs of one recipe hold its lock")
            assert str(first_dir / ".state") in str(caught.value)  # where the other run is
        # Another destination (here: another table through --var) is another load.
        elsewhere = RecipeLoader({"table": "archive"}, registry=registry).load(path)
        with state_backend_for(elsewhere).lock("orders"):
            pass
    assert not (second_dir / ".state" / "orders.json").exists()
    with second.lock("orders"):  # released with the first run's lock
        pass
