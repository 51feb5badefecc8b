"""Accelerator slots: a plugin fills a named slot (`register_accelerators`) with a faster
implementation of work the core does itself; the core uses it when present and its own code
when the slot is empty, disabled, broken, or declines the input."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from dataloader import PluginError, PluginRef, hookimpl
from dataloader.normalize import keys
from dataloader.plugins import create_plugin_manager
from dataloader.registry import Registry, reset_registry

CALLS: list[int] = []


def doubled_hash(columns: Any, names: Any) -> np.ndarray:
    """An accelerator that gives its own values, to see that the core used it."""
    CALLS.append(len(columns[0]))
    return keys.python_hash_rows(columns, names) * np.uint64(2)


def declining_hash(columns: Any, names: Any) -> None:
    CALLS.append(-1)
    return None


@pytest.fixture(autouse=True)
def no_installed_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the plugins a test registers fill slots, whatever is installed."""
    monkeypatch.setenv("DATALOADER_DISABLE_PLUGINS", "all")


def accelerating(*items: PluginRef, name: str = "fast") -> Registry:
    class Plugin:
        @hookimpl
        def register_accelerators(self) -> list[Any]:
            return list(items)

    return Registry(*create_plugin_manager({name: Plugin()}))


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make `registry` the process's registry for one test."""

    def install(registry: Registry) -> Registry:
        monkeypatch.setattr("dataloader.registry._default", registry)
        return registry

    CALLS.clear()
    yield install
    reset_registry()


def test_an_empty_slot_is_none() -> None:
    assert accelerating().accelerator("row_hash") is None


def test_a_filled_slot_gives_the_implementation_and_lists_what_it_accelerates() -> None:
    registry = accelerating(
        PluginRef(
            "row_hash",
            f"{__name__}:doubled_hash",
            accelerates="dataloader-core row hashing",
        )
    )
    assert registry.accelerator("row_hash") is doubled_hash
    [registration] = registry.all("accelerator")
    assert registration.describe() == "accelerates dataloader-core row hashing"


def test_hash_rows_uses_the_accelerator_and_falls_back_when_it_declines(installed: Any) -> None:
    column = pa.array([1, 2, None])
    installed(accelerating(PluginRef("row_hash", f"{__name__}:doubled_hash")))
    assert np.array_equal(
        keys.hash_rows([column], ["a"]), keys.python_hash_rows([column], ["a"]) * np.uint64(2)
    )
    assert CALLS == [3]
    installed(accelerating(PluginRef("row_hash", f"{__name__}:declining_hash")))
    assert np.array_equal(keys.hash_rows([column], ["a"]), keys.python_hash_rows([column], ["a"]))
    assert CALLS == [3, -1]


def test_hash_rows_checks_its_input_before_any_accelerator_sees_it(installed: Any) -> None:
    installed(accelerating(PluginRef("row_hash", f"{__name__}:doubled_hash")))
    with pytest.raises(ValueError, match="column 1 has 1 rows, expected 2"):
        keys.hash_rows([pa.array([1, 2]), pa.array([1])])
    assert CALLS == []


def test_a_broken_accelerator_is_dropped_with_a_warning_and_the_core_does_the_work(
    installed: Any, caplog: pytest.LogCaptureFixture
) -> None:
    registry = installed(accelerating(PluginRef("row_hash", "dl_test_no_such_module:hash")))
    column = pa.array(["x", "y"])
    with caplog.at_level(logging.WARNING, logger="dataloader.plugins"):
        lanes = keys.hash_rows([column], ["a"])
    assert np.array_equal(lanes, keys.python_hash_rows([column], ["a"]))
    assert "accelerator 'row_hash' is not used" in caplog.text
    [fast] = [info for info in registry.plugins if info.name == "fast"]
    assert fast.status == "broken" and "dl_test_no_such_module" in (fast.error or "")
    assert registry.accelerator("row_hash") is None


def test_two_distributions_filling_one_slot_is_an_error_naming_both() -> None:
    class One:
        @hookimpl
        def register_accelerators(self) -> list[Any]:
            return [PluginRef("row_hash", f"{__name__}:doubled_hash")]

    class Two:
        @hookimpl
        def register_accelerators(self) -> list[Any]:
            return [PluginRef("row_hash", f"{__name__}:declining_hash")]

    manager, infos = create_plugin_manager({"one": One(), "two": Two()})
    infos = [info.__class__(info.name, f"dist-{info.name}", "1", "") for info in infos]
    with pytest.raises(PluginError, match="more than one distribution"):
        Registry(manager, infos).accelerator("row_hash")
