"""An unknown connector, format or state backend that one of the family's distributions
provides is named with that distribution: to install, or whose plugin is disabled."""

from __future__ import annotations

import pytest

from dataloader.errors import PluginError
from dataloader.plugins import create_plugin_manager
from dataloader.registry import KNOWN_PROVIDERS, Registry, get_registry

FAMILY = {
    "dataloader-filestore",
    "dataloader-duckdb",
    "dataloader-postgres",
    "dataloader-aws",
    "dataloader-rest",
    "dataloader-mysql",
    "dataloader-sql",
    "dataloader-snowflake",
    "dataloader-redshift",
    "dataloader-dask",
}


def test_known_providers_match_what_the_distributions_register() -> None:
    registry = get_registry()
    provided = {
        (registration.kind, registration.name): registration.distribution
        for kind in ("connector", "format", "state_backend", "executor")
        for registration in registry.all(kind)  # type: ignore[arg-type]
        if registration.distribution in FAMILY
    }
    assert provided == KNOWN_PROVIDERS


def test_a_name_of_a_distribution_that_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A core + postgres installation: filestore and duckdb are not there at all."""
    monkeypatch.setenv("DATALOADER_LOAD_PLUGINS", "postgres")
    manager, infos = create_plugin_manager()
    installed = [
        i for i in infos if i.distribution not in ("dataloader-filestore", "dataloader-duckdb")
    ]
    registry = Registry(manager, installed)
    for kind, name, distribution in (
        ("connector", "filestore", "dataloader-filestore"),
        ("connector", "duckdb", "dataloader-duckdb"),
        ("format", "parquet", "dataloader-filestore"),
    ):
        with pytest.raises(PluginError) as info:
            registry.get(kind, name)  # type: ignore[arg-type]
        message = str(info.value)
        assert f"unknown {kind} {name!r}" in message
        assert f"pip install {distribution}" in message
    assert registry.get("connector", "postgres").distribution == "dataloader-postgres"


def test_a_name_of_a_disabled_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATALOADER_DISABLE_PLUGINS", "filestore")
    registry = Registry(*create_plugin_manager())
    with pytest.raises(PluginError) as info:
        registry.get("connector", "filestore")
    message = str(info.value)
    assert "provided by dataloader-filestore" in message
    assert "disabled" in message and "DATALOADER_DISABLE_PLUGINS" in message


def test_other_unknown_names_are_listed_as_before() -> None:
    with pytest.raises(PluginError) as info:
        get_registry().get("connector", "filestor")
    assert str(info.value).startswith("unknown connector 'filestor'; expected one of: ")
