"""`PluginRef`: a hook may name its implementation instead of returning it. The registry lists
the item and binds a recipe to its config model without importing the implementation, imports
it when the item is created, and holds it to what the reference declared."""

from __future__ import annotations

import hashlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dataloader import PluginError, PluginRef, RecipeError, hookimpl
from dataloader.plugins import KINDS, create_plugin_manager
from dataloader.recipe import RecipeLoader
from dataloader.registry import Registry

CONFIG = """
    from dataloader import ConnectorConfig

    class RowsConfig(ConnectorConfig):
        rows: int = 3
"""
IMPLEMENTATION = """
    from dataloader import BaseConnector, Capabilities
    from {prefix}_config import RowsConfig

    class Rows(BaseConnector):
        name = "dl_test_rows"
        config_model = RowsConfig
        capabilities = Capabilities(read=True, incremental=True)
"""


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: Any) -> Iterator[str]:
    """A config module and an implementation module on sys.path, not imported; the prefix of
    their names (unique per test, so that no test sees another's imports)."""
    prefix = f"dl_test_ref_{hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:12]}"
    (tmp_path / f"{prefix}_config.py").write_text(textwrap.dedent(CONFIG))
    (tmp_path / f"{prefix}_impl.py").write_text(
        textwrap.dedent(IMPLEMENTATION).format(prefix=prefix)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield prefix
    for name in (f"{prefix}_config", f"{prefix}_impl"):
        sys.modules.pop(name, None)


def registry_with(*items: Any) -> Registry:
    class Plugin:
        @hookimpl
        def register_connectors(self) -> list[Any]:
            return list(items)

    return Registry(*create_plugin_manager({"refs": Plugin()}))


def write_recipe(tmp_path: Path, source: str) -> Path:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"name: refs\nsource: {source}\n"
        f"destination: {{type: filestore, path: {tmp_path / 'out'}, format: jsonl}}\n"
    )
    return recipe


def test_a_reference_is_validated_without_its_implementation_and_created_on_use(
    modules: str, tmp_path: Path
) -> None:
    registry = registry_with(
        PluginRef(
            "dl_test_rows",
            f"{modules}_impl:Rows",
            config_model=f"{modules}_config:RowsConfig",
            capabilities={"read": True, "incremental": True},
        )
    )
    registration = registry.connector("dl_test_rows")
    assert registration.lazy and registration.capabilities.incremental
    recipe = RecipeLoader(registry=registry).load(
        write_recipe(tmp_path, "{type: dl_test_rows, rows: 5}")
    )
    assert f"{modules}_config" in sys.modules
    assert f"{modules}_impl" not in sys.modules

    created = registration.create(registration.config_model.model_validate({"rows": 5}))
    assert type(created).__name__ == "Rows" and created.config.rows == 5
    assert recipe.source.options == {"rows": 5}

    with pytest.raises(RecipeError) as caught:
        RecipeLoader(registry=registry).load(write_recipe(tmp_path, "{type: dl_test_rows, row: 5}"))
    assert "source.row" in str(caught.value)


def test_capabilities_not_declared_are_read_from_the_implementation(modules: str) -> None:
    registration = registry_with(PluginRef("dl_test_rows", f"{modules}_impl:Rows")).connector(
        "dl_test_rows"
    )
    assert f"{modules}_impl" not in sys.modules
    assert registration.capabilities.read and registration.capabilities.incremental
    assert registration.config_model.__name__ == "RowsConfig"


@pytest.mark.parametrize(
    "declared, disagreement",
    [
        ({"name": "dl_test_other"}, "name 'dl_test_rows', not 'dl_test_other'"),
        ({"capabilities": {"read": True, "write": True}}, "capabilities (read, incremental)"),
        ({"config_model": "dataloader.connectors:ConnectorConfig"}, "config_model"),
    ],
)
def test_a_reference_that_disagrees_with_its_implementation_is_an_error(
    modules: str, declared: dict[str, Any], disagreement: str
) -> None:
    fields: dict[str, Any] = {
        "name": "dl_test_rows",
        "target": f"{modules}_impl:Rows",
        "config_model": f"{modules}_config:RowsConfig",
        "capabilities": {"read": True, "incremental": True},
    } | declared
    registry = registry_with(PluginRef(**fields))
    registration = registry.connector(fields["name"])
    with pytest.raises(PluginError) as caught:
        registration.create(registration.config_model.model_validate({}))
    message = str(caught.value)
    assert "plugin 'refs'" in message and "does not match the plugin's PluginRef" in message
    assert disagreement in message, message


def test_list_connectors_imports_every_reference_and_marks_a_broken_one(modules: str) -> None:
    registry = registry_with(
        PluginRef("dl_test_rows", f"{modules}_impl:Rows"),
        PluginRef("dl_test_gone", "dl_test_no_such_module:Gone"),
    )
    assert {"dl_test_rows", "dl_test_gone"} <= set(registry.names("connector"))
    registry.import_all()
    assert "dl_test_gone" not in registry.names("connector")
    assert "dl_test_rows" in registry.names("connector")
    [refs] = [info for info in registry.plugins if info.name == "refs"]
    assert refs.status == "broken"
    assert "dl_test_no_such_module" in (refs.error or "")
    assert registry.connector("duckdb").distribution == "dataloader-duckdb"


def test_a_config_model_that_fails_to_import_is_a_recipe_problem(tmp_path: Path) -> None:
    registry = registry_with(
        PluginRef("dl_test_rows", "dl_test_nowhere:Rows", config_model="dl_test_nowhere:Cfg")
    )
    with pytest.raises(RecipeError) as caught:
        RecipeLoader(registry=registry).load(write_recipe(tmp_path, "{type: dl_test_rows}"))
    [problem] = caught.value.problems
    assert problem.key == "source.type"
    assert "plugin 'refs'" in problem.message and "dl_test_nowhere:Cfg" in problem.message


def test_a_reference_that_is_not_module_colon_name_marks_its_plugin_broken() -> None:
    registry = registry_with(PluginRef("dl_test_rows", "dl_test_rows.Rows"))
    [refs] = [info for info in registry.plugins if info.name == "refs"]
    assert refs.status == "broken" and "package.module:Name" in (refs.error or "")


def test_every_installed_reference_agrees_with_its_implementation() -> None:
    # What the installed plugins' references declare (names, capabilities, extensions, config
    # models) is what their classes say: validate and run cannot disagree.
    registry = Registry(*create_plugin_manager())
    lazy = [r for kind in KINDS for r in registry.all(kind) if r.lazy]
    assert {("connector", "duckdb"), ("format", "parquet"), ("transform", "cast")} <= {
        (r.kind, r.name) for r in lazy
    }
    registry.import_all()
    assert not registry.broken_plugins(), registry.broken_plugins()
    for registration in lazy:
        assert registry.get(registration.kind, registration.name).implementation is not None


def test_the_references_of_the_built_ins_name_every_built_in() -> None:
    from dataloader.transforms import BUILTIN_TRANSFORMS
    from dataloader_filestore.formats import BUILTIN_FORMATS

    registry = Registry(*create_plugin_manager())
    core = {r.name for r in registry.all("transform") if r.distribution == "dataloader-core"}
    assert core == {transform.name for transform in BUILTIN_TRANSFORMS}
    formats = {r.name for r in registry.all("format") if r.distribution == "dataloader-filestore"}
    assert formats == {file_format.name for file_format in BUILTIN_FORMATS}
