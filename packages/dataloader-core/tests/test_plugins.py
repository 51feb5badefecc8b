"""The plugin host: entry points, broken plugins, switches, conflicts and accelerators."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

import pytest

from dataloader import PluginError, RecipeError, hookimpl, plugins
from dataloader.plugins import IN_PROCESS, PluginInfo, create_plugin_manager
from dataloader.recipe import RecipeLoader
from dataloader.registry import Registry

EXAMPLE_DIST = "dataloader-example"

Install = Callable[..., Path]


def fresh_registry(extra_plugins: dict | None = None) -> Registry:
    return Registry(*create_plugin_manager(extra_plugins))


def plugin_named(registry: Registry, name: str) -> PluginInfo:
    [info] = [info for info in registry.plugins if info.name == name]
    return info


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """`install(dist, version, entry_points={name: module}, modules={module: code})`.

    Writes a real `*.dist-info` directory (METADATA + entry_points.txt) and the modules into a
    directory put on sys.path, so `importlib.metadata` finds the plugin like an installed one.
    """
    imported: list[str] = []

    def _install(
        dist: str, version: str, *, entry_points: dict[str, str], modules: dict[str, str]
    ) -> Path:
        root = tmp_path / f"site-{dist}"
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
        )
        lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[dataloader]\n{lines}", encoding="utf-8")
        for module, code in modules.items():
            (root / f"{module}.py").write_text(textwrap.dedent(code), encoding="utf-8")
            imported.append(module)
        monkeypatch.syspath_prepend(str(root))
        return root

    yield _install
    for module in imported:
        sys.modules.pop(module, None)


CONNECTOR_MODULE = """
    from dataloader import BaseConnector, Capabilities, hookimpl

    class Connector(BaseConnector):
        name = {name!r}
        capabilities = Capabilities(read=True, incremental=True)
        accelerator = {accelerator!r}

    @hookimpl
    def register_connectors():
        return [Connector]
"""


def connector_module(name: str, accelerator: bool = False) -> str:
    return textwrap.dedent(CONNECTOR_MODULE).format(name=name, accelerator=accelerator)


# -- discovery --------------------------------------------------------------------------------
def test_example_plugin_is_found_through_its_entry_point() -> None:
    registry = fresh_registry()
    info = plugin_named(registry, "example")
    assert info.distribution == EXAMPLE_DIST
    assert info.version == metadata.version(EXAMPLE_DIST)
    assert info.module == "dataloader_example.plugin"
    assert info.status == "loaded"
    assert info.error is None

    sequence = registry.connector("sequence")
    assert sequence.distribution == EXAMPLE_DIST
    assert sequence.version == metadata.version(EXAMPLE_DIST)
    assert sequence.plugin == "example"
    assert sequence.capabilities is not None
    assert sequence.capabilities.read and sequence.capabilities.incremental
    assert not sequence.capabilities.write
    assert registry.transform("upper_case").distribution == EXAMPLE_DIST


def test_builtins_are_registered_as_the_core_plugin() -> None:
    registry = fresh_registry()
    core = plugin_named(registry, "core")
    assert (core.distribution, core.status) == ("dataloader-core", "loaded")
    assert set(registry.names("transform")) >= {
        "rename_columns",
        "cast",
        "add_column",
        "select_columns",
        "drop_columns",
        "filter",
        "fill_null",
    }
    local = registry.state_backend("local")
    assert local.distribution == "dataloader-core"
    assert local.plugin == "core"
    for name in registry.names("transform"):
        if name != "upper_case":
            assert registry.transform(name).distribution == "dataloader-core"


def test_unknown_name_lists_what_is_available() -> None:
    with pytest.raises(PluginError) as info:
        fresh_registry().get("connector", "nope")
    assert "unknown connector 'nope'" in str(info.value)
    assert "sequence" in str(info.value)


# -- broken plugins ---------------------------------------------------------------------------
def test_plugin_that_fails_to_import_is_reported_and_others_still_load(install: Install) -> None:
    install(
        "dataloader-broken",
        "9.8.7",
        entry_points={"broken": "dl_test_broken_plugin"},
        modules={"dl_test_broken_plugin": "raise RuntimeError('boom at import')\n"},
    )
    registry = fresh_registry()
    info = plugin_named(registry, "broken")
    assert info.status == "broken"
    assert info.distribution == "dataloader-broken"
    assert info.version == "9.8.7"
    assert info.error is not None
    assert "RuntimeError" in info.error
    assert "boom at import" in info.error
    assert info in registry.broken_plugins()
    assert plugin_named(registry, "core") not in registry.broken_plugins()
    # the others still load
    assert plugin_named(registry, "example").status == "loaded"
    assert registry.connector("sequence").distribution == EXAMPLE_DIST
    assert "cast" in registry.names("transform")


def test_fake_entry_point_whose_load_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    real_entry_points = metadata.entry_points
    ghost = metadata.EntryPoint(
        name="ghost", value="dl_test_module_that_does_not_exist.plugin", group="dataloader"
    )

    def entry_points(**selection: str) -> metadata.EntryPoints:
        found = real_entry_points(**selection)
        return metadata.EntryPoints([*found, ghost])

    monkeypatch.setattr(plugins.metadata, "entry_points", entry_points)
    registry = fresh_registry()
    info = plugin_named(registry, "ghost")
    assert info.status == "broken"
    assert info.module == "dl_test_module_that_does_not_exist.plugin"
    assert "ModuleNotFoundError" in (info.error or "")
    assert "dl_test_module_that_does_not_exist" in (info.error or "")
    assert plugin_named(registry, "example").status == "loaded"
    assert "sequence" in registry.names("connector")


def test_plugin_whose_hook_raises_is_reported_and_others_still_load(install: Install) -> None:
    install(
        "dataloader-hookfail",
        "1.0.0",
        entry_points={"hookfail": "dl_test_hookfail_plugin"},
        modules={
            "dl_test_hookfail_plugin": """
                from dataloader import hookimpl

                @hookimpl
                def register_connectors():
                    raise ValueError("no connectors today")
            """
        },
    )
    registry = fresh_registry()
    info = plugin_named(registry, "hookfail")
    assert info.status == "broken"
    assert (info.distribution, info.version) == ("dataloader-hookfail", "1.0.0")
    assert "register_connectors failed" in (info.error or "")
    assert "no connectors today" in (info.error or "")
    assert registry.connector("sequence").distribution == EXAMPLE_DIST


# -- switches ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["1", "all", "example", "other, example"])
def test_disable_plugins(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("DATALOADER_DISABLE_PLUGINS", value)
    registry = fresh_registry()
    info = plugin_named(registry, "example")
    assert info.status == "disabled"
    assert info.distribution == EXAMPLE_DIST
    assert "DATALOADER_DISABLE_PLUGINS" in (info.error or "")
    assert "sequence" not in registry.names("connector")
    assert "upper_case" not in registry.names("transform")
    # built-ins are not entry-point plugins: never disabled
    assert "cast" in registry.names("transform")
    assert "local" in registry.names("state_backend")


def test_disable_plugins_naming_another_plugin_keeps_example(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATALOADER_DISABLE_PLUGINS", "something_else")
    registry = fresh_registry()
    assert plugin_named(registry, "example").status == "loaded"
    assert "sequence" in registry.names("connector")


def test_load_plugins_is_an_allowlist(monkeypatch: pytest.MonkeyPatch, install: Install) -> None:
    install(
        "dataloader-other",
        "2.0.0",
        entry_points={"other": "dl_test_other_plugin"},
        modules={"dl_test_other_plugin": connector_module("other_source")},
    )
    assert "other_source" in fresh_registry().names("connector")

    monkeypatch.setenv("DATALOADER_LOAD_PLUGINS", "example")
    registry = fresh_registry()
    assert plugin_named(registry, "example").status == "loaded"
    other = plugin_named(registry, "other")
    assert other.status == "disabled"
    assert "DATALOADER_LOAD_PLUGINS" in (other.error or "")
    assert "other_source" not in registry.names("connector")
    assert "sequence" in registry.names("connector")

    monkeypatch.setenv("DATALOADER_LOAD_PLUGINS", "other")
    registry = fresh_registry()
    assert plugin_named(registry, "example").status == "disabled"
    assert "other_source" in registry.names("connector")
    assert "cast" in registry.names("transform")  # built-ins always load


# -- conflicts and accelerators ---------------------------------------------------------------
def test_name_provided_by_two_distributions_is_an_error_naming_both(
    install: Install, write: Callable[[str, str], Path], sink: str
) -> None:
    install(
        "dataloader-dup",
        "0.3.0",
        entry_points={"dup": "dl_test_dup_plugin"},
        modules={"dl_test_dup_plugin": connector_module("sequence")},
    )
    registry = fresh_registry()
    conflict = registry.conflicts[("connector", "sequence")]
    assert set(conflict.distributions) == {EXAMPLE_DIST, "dataloader-dup"}
    with pytest.raises(PluginError) as info:
        registry.connector("sequence")
    message = str(info.value)
    assert EXAMPLE_DIST in message
    assert "dataloader-dup" in message
    assert "connector 'sequence'" in message

    # a recipe using the name reports the conflict against its `type` key
    path = write(
        "r.yaml",
        "name: r\nsource: {type: sequence, stop: 1}\ndestination: {type: memory_sink, table: t}\n",
    )
    with pytest.raises(RecipeError) as recipe_info:
        RecipeLoader(registry=registry).load(path)
    [problem] = recipe_info.value.problems
    assert problem.key == "source.type"
    assert EXAMPLE_DIST in str(recipe_info.value)
    assert "dataloader-dup" in str(recipe_info.value)


def test_accelerator_wins_and_names_what_it_replaces(install: Install) -> None:
    install(
        "dataloader-fast",
        "0.9.0",
        entry_points={"fast": "dl_test_fast_plugin"},
        modules={"dl_test_fast_plugin": connector_module("sequence", accelerator=True)},
    )
    registry = fresh_registry()
    assert ("connector", "sequence") not in registry.conflicts
    winner = registry.connector("sequence")
    assert winner.distribution == "dataloader-fast"
    assert winner.version == "0.9.0"
    assert winner.accelerator
    assert winner.replaces == EXAMPLE_DIST
    assert f"accelerates {EXAMPLE_DIST}" in winner.describe()


def test_accelerator_wins_whatever_the_registration_order() -> None:
    from dataloader import BaseConnector, Capabilities

    class FastSequence(BaseConnector):
        name = "sequence"
        capabilities = Capabilities(read=True)
        accelerator = True

    class FastPlugin:
        @hookimpl
        def register_connectors(self) -> list:
            return [FastSequence]

    # extra plugins register after the entry points: the accelerator comes second here
    registry = fresh_registry({"fast": FastPlugin()})
    winner = registry.connector("sequence")
    assert winner.factory is FastSequence
    assert winner.replaces == EXAMPLE_DIST
    assert winner.distribution == IN_PROCESS


def test_in_process_registration_overrides_without_conflict() -> None:
    from dataloader import BaseConnector, Capabilities

    class MySequence(BaseConnector):
        name = "sequence"
        capabilities = Capabilities(read=True)

    class Mine:
        @hookimpl
        def register_connectors(self) -> list:
            return [MySequence]

    registry = fresh_registry({"mine": Mine()})
    assert ("connector", "sequence") not in registry.conflicts
    assert registry.connector("sequence").factory is MySequence


@pytest.mark.parametrize("columns", [80, 120])
def test_list_connectors_wraps_a_broken_plugins_error_to_the_terminal(
    install: Install, columns: int
) -> None:
    from click.testing import CliRunner

    from dataloader.cli.app import _register_commands, cli
    from dataloader.registry import reset_registry

    install(
        "dataloader-broken",
        "9.8.7",
        entry_points={"broken": "dl_test_broken_plugin"},
        modules={"dl_test_broken_plugin": "import dl_test_a_module_nobody_installed_anywhere\n"},
    )
    reset_registry()
    try:
        _register_commands()
        result = CliRunner(env={"COLUMNS": str(columns)}).invoke(cli, ["list-connectors"])
    finally:
        reset_registry()
    assert result.exit_code == 0, result.output
    assert "dl_test_a_module_nobody_installed_anywhere" in result.output.replace("\n", "")
    assert max(len(line) for line in result.output.splitlines()) <= columns
