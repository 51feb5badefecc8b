"""`validate` finds every problem before `run` does: typos anywhere with a suggestion and the
keys of their own section, format options, every problem in one pass, directories and
abstract recipes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import Field

from dataloader import (
    BaseConnector,
    Capabilities,
    ConnectorConfig,
    Format,
    FormatOptions,
    RecipeError,
    register_connector,
    register_format,
)
from dataloader.connectors import DESTINATION_ONLY, SOURCE_ONLY, TableOrQueryConfig
from dataloader.errors import Problem
from dataloader.recipe import RecipeLoader
from dataloader.registry import Registry, get_registry, unregister

Write = Callable[[str, str], Path]
RunCli = Callable[..., Any]


def problems_of(path: Path, registry: Registry) -> tuple[str, list[Problem]]:
    with pytest.raises(RecipeError) as info:
        RecipeLoader(registry=registry).load(path)
    return str(info.value), info.value.problems


# -- plugins of these tests: a SQL-like connector, a file connector and a format ---------------
class WarehouseConfig(TableOrQueryConfig):
    where: str | None = Field(default=None, json_schema_extra=SOURCE_ONLY)
    bulk_insert: bool = Field(default=False, json_schema_extra=DESTINATION_ONLY)


class Warehouse(BaseConnector):
    config_model = WarehouseConfig
    capabilities = Capabilities(
        read=True, write=True, write_modes=("append", "merge"), incremental=True
    )


class FilesConfig(ConnectorConfig):
    path: str
    format: str | None = None
    format_options: dict[str, Any] = Field(default_factory=dict)


class Files(BaseConnector):
    config_model = FilesConfig
    capabilities = Capabilities(read=True, write=True, write_modes=("append",))


class FixedWidthOptions(FormatOptions):
    widths: list[int] = Field(default_factory=list)
    strip: bool = True


class FixedWidth(Format):
    extensions: ClassVar[tuple[str, ...]] = (".fw",)
    options_model = FixedWidthOptions

    def read(self, stream: Any, *, batch_size: int) -> Iterator[Any]:
        raise NotImplementedError

    def write(self, batches: Any, stream: Any, schema: Any) -> int:
        raise NotImplementedError


@pytest.fixture
def plugins(registry: Registry) -> Iterator[Registry]:
    register_connector("warehouse")(Warehouse)
    register_connector("files")(Files)
    register_format("fixed_width")(FixedWidth)
    try:
        yield get_registry()
    finally:
        unregister("connector", "warehouse")
        unregister("connector", "files")
        unregister("format", "fixed_width")


# -- unknown keys: a suggestion, and the keys of the section they are in ------------------------
def test_a_destination_typo_is_offered_the_destination_keys(
    write: Write, plugins: Registry
) -> None:
    path = write(
        "typo.yaml",
        """
        name: typo
        source: {type: sequence, stop: 1}
        destination:
          type: warehouse
          table: t
          write_mode: merge
          merge_keys: [id]
          merge_key: [id]
        """,
    )
    message, [problem] = problems_of(path, plugins)
    assert problem.key == "destination.merge_key"
    assert "did you mean 'merge_keys'?" in message
    offered = (problem.expected or "").removeprefix("one of: ").split(", ")
    assert {"type", "write_mode", "merge_keys", "table", "bulk_insert"} <= set(offered)
    assert "query" not in offered and "where" not in offered  # a source's keys
    assert "incremental" not in offered


def test_a_source_typo_is_offered_the_source_keys(write: Write, plugins: Registry) -> None:
    path = write(
        "typo.yaml",
        """
        name: typo
        source: {type: warehouse, table: t, wehre: "id > 0"}
        destination: {type: memory_sink, table: t}
        """,
    )
    message, [problem] = problems_of(path, plugins)
    assert problem.key == "source.wehre"
    assert "did you mean 'where'?" in message
    offered = (problem.expected or "").removeprefix("one of: ").split(", ")
    assert {"type", "incremental", "table", "query", "where"} <= set(offered)
    assert "bulk_insert" not in offered and "write_mode" not in offered


@pytest.mark.parametrize(
    ("recipe", "key", "suggestion"),
    [
        (
            "name: t\nsource: {type: sequence, stop: 1, incremental: {cursor_colum: id}}\n"
            "destination: {type: memory_sink, table: t}\n",
            "source.incremental.cursor_colum",
            "cursor_column",
        ),
        (
            "name: t\nsource: {type: sequence, stop: 1}\n"
            "destination: {type: memory_sink, table: t}\nruntime: {batch_sise: 10}\n",
            "runtime.batch_sise",
            "batch_size",
        ),
        (
            "name: t\nsource: {type: sequence, stop: 1}\n"
            "destination: {type: memory_sink, table: t}\nextend: base.yaml\n",
            "extend",
            "extends",
        ),
    ],
)
def test_unknown_keys_anywhere_get_a_suggestion(
    write: Write, registry: Registry, recipe: str, key: str, suggestion: str
) -> None:
    path = write("typo.yaml", recipe)
    _, problems = problems_of(path, registry)
    [problem] = [p for p in problems if p.key == key]
    assert f"did you mean {suggestion!r}?" in problem.render()
    assert suggestion in (problem.expected or "")


def test_a_key_of_the_other_role_is_an_error(write: Write, plugins: Registry) -> None:
    path = write(
        "roles.yaml",
        """
        name: roles
        source: {type: warehouse, table: t, bulk_insert: true}
        destination: {type: warehouse, table: u, query: "select 1"}
        """,
    )
    message, problems = problems_of(path, plugins)
    assert {p.key for p in problems} == {"source.bulk_insert", "destination.query"}
    assert "applies to a destination only, not a source" in message
    assert "applies to a source only, not a destination" in message


# -- format options ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "source",
    [
        "{type: files, path: data/a.txt, format: fixed_width, format_options: {widht: [3]}}",
        "{type: files, path: data/*.fw, format_options: {widht: [3]}}",  # by extension
    ],
)
def test_a_format_options_typo_names_the_format_and_its_keys(
    write: Write, plugins: Registry, source: str
) -> None:
    path = write(
        "fmt.yaml", f"name: fmt\nsource: {source}\ndestination: {{type: memory_sink, table: t}}\n"
    )
    message, [problem] = problems_of(path, plugins)
    assert problem.key == "source.format_options.widht"
    assert problem.file == str(path)
    assert "unknown key 'widht' for format 'fixed_width'" in message
    assert "did you mean 'widths'?" in message
    assert problem.expected == "one of: strip, widths"


def test_a_bad_format_option_value_and_an_unknown_format(write: Write, plugins: Registry) -> None:
    path = write(
        "fmt.yaml",
        """
        name: fmt
        source: {type: files, path: a.fw, format_options: {strip: maybe}}
        destination: {type: files, path: out, format: fixed_widht}
        """,
    )
    message, problems = problems_of(path, plugins)
    assert {p.key for p in problems} == {"source.format_options.strip", "destination.format"}
    assert "unknown format 'fixed_widht'" in message
    assert "fixed_width" in message  # the formats there are


def test_format_options_are_not_checked_when_the_format_cannot_be_told(
    write: Write, plugins: Registry
) -> None:
    path = write(
        "fmt.yaml",
        """
        name: fmt
        source: {type: files, path: data/, format_options: {anything: 1}}
        destination: {type: memory_sink, table: t}
        """,
    )
    assert RecipeLoader(registry=plugins).load(path).name == "fmt"


# -- every problem in one pass -----------------------------------------------------------------
def test_a_missing_name_does_not_hide_the_problems_of_the_sections(
    write: Write, plugins: Registry
) -> None:
    path = write(
        "many.yaml",
        """
        source: {type: sequence, stop: 1, stpo: 2}
        destination:
          type: warehouse
          table: t
          merge_key: [id]
        transform:
          steps:
            - {type: no_such_step}
        """,
    )
    message, problems = problems_of(path, plugins)
    assert {p.key for p in problems} == {
        "name",
        "source.stpo",
        "destination.merge_key",
        "transform.steps[0].type",
    }
    assert "4 problems" in message


# -- directories and abstract recipes ----------------------------------------------------------
BASE = """
    abstract: true
    source: {type: sequence, stop: 3}
    destination: {type: memory_sink, table: t}
"""


def test_abstract_is_not_inherited(write: Write, registry: Registry) -> None:
    write("base.yaml", BASE)
    child = write("child.yaml", "extends: base.yaml\nname: child\n")
    recipe = RecipeLoader(registry=registry).load(child)
    assert recipe.name == "child"
    assert recipe.source.options == {"stop": 3}


def test_loading_an_abstract_recipe_says_what_it_is(write: Write, registry: Registry) -> None:
    base = write("base.yaml", BASE)
    message, [problem] = problems_of(base, registry)
    assert problem.key == "abstract"
    assert "abstract" in message and "extends" in message


def test_abstract_must_be_a_boolean(write: Write, registry: Registry) -> None:
    base = write("base.yaml", BASE.replace("abstract: true", "abstract: yes please"))
    message, [problem] = problems_of(base, registry)
    assert problem.key == "abstract"
    assert "true or false" in message


def test_validate_a_directory_like_run_skipping_abstract_recipes(
    run_cli: RunCli, write: Write, tmp_path: Path
) -> None:
    write("recipes/base.yaml", BASE)
    write("recipes/good.yaml", "extends: base.yaml\nname: good\n")
    write("recipes/bad.yaml", "extends: base.yaml\nname: bad\ndestination: {tabel: u}\n")
    write("recipes/notes.txt", "not a recipe")

    result = run_cli("validate", "recipes")
    text = result.stdout + result.stderr
    assert result.returncode == 2, text
    assert "base.yaml (abstract" in text and "skipped" in text
    assert "✓ recipes/good.yaml" in text
    assert "✗ recipes/bad.yaml" in text
    assert "did you mean 'table'?" in text
    assert "1 of 2 recipes invalid" in text
    assert "notes" not in text

    result = run_cli("validate", "recipes/g*.yaml", "recipes/base.yaml")
    text = result.stdout + result.stderr
    assert result.returncode == 0, text
    assert "✓ recipes/good.yaml" in text and "base.yaml (abstract" in text

    result = run_cli("validate", "recipes/nothing_*.yaml")
    assert result.returncode == 2
    assert "no recipe matches" in result.stdout + result.stderr
