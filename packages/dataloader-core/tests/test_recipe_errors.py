"""Recipe validation errors: each names the file, the key path and what was expected."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dataloader import RecipeError
from dataloader.errors import Problem
from dataloader.recipe import RecipeLoader
from dataloader.registry import Registry

Write = Callable[[str, str], Path]


def problems_of(path: Path, registry: Registry) -> tuple[str, list[Problem]]:
    with pytest.raises(RecipeError) as info:
        RecipeLoader(registry=registry).load(path)
    return str(info.value), info.value.problems


def test_valid_recipe_loads(valid_recipe: Path, registry: Registry) -> None:
    recipe = RecipeLoader(registry=registry).load(valid_recipe)
    assert recipe.name == "orders"
    assert recipe.destination.write_mode == "append"
    assert recipe.runtime.batch_size == 50_000
    assert recipe.state is None


def test_unknown_top_level_key(write: Write, registry: Registry) -> None:
    path = write(
        "typo.yaml",
        """
        name: typo
        sourse: {type: sequence, stop: 1}
        source: {type: sequence, stop: 1}
        destination: {type: memory_sink, table: t}
        """,
    )
    message, problems = problems_of(path, registry)
    [problem] = problems
    assert problem.key == "sourse"
    assert problem.file == str(path)
    assert "unknown key 'sourse'" in message
    # the known top-level keys are suggested
    assert "source" in (problem.expected or "")
    assert "destination" in (problem.expected or "")


@pytest.mark.parametrize("section", ["source", "destination"])
def test_unknown_connector_key_names_key_connector_and_file(
    write: Write, registry: Registry, section: str
) -> None:
    source = (
        "{type: sequence, stop: 1, stpo: 2}" if section == "source" else "{type: sequence, stop: 1}"
    )
    destination = (
        "{type: memory_sink, table: t, tabel: u}"
        if section == "destination"
        else "{type: memory_sink, table: t}"
    )
    path = write("typo.yaml", f"name: typo\nsource: {source}\ndestination: {destination}\n")
    message, problems = problems_of(path, registry)
    [problem] = problems
    key, connector = ("stpo", "sequence") if section == "source" else ("tabel", "memory_sink")
    assert problem.key == f"{section}.{key}"
    assert f"unknown key {key!r}" in message
    assert f"connector {connector!r}" in message
    assert str(path) in message
    if section == "source":
        assert "dataloader-example" in message  # the distribution that provides it
        assert "stop" in (problem.expected or "")  # the connector's keys are listed


def test_missing_required_connector_key(write: Write, registry: Registry) -> None:
    path = write(
        "missing.yaml",
        "name: m\nsource: {type: sequence}\ndestination: {type: memory_sink, table: t}\n",
    )
    message, [problem] = problems_of(path, registry)
    assert problem.key == "source.stop"
    assert "required key is missing" in message
    assert "connector 'sequence'" in message


def test_unknown_transform_key_names_step_and_transform(write: Write, registry: Registry) -> None:
    path = write(
        "typo.yaml",
        """
        name: typo
        source: {type: sequence, stop: 1}
        destination: {type: memory_sink, table: t}
        transform:
          steps:
            - {type: select_columns, columns: [id]}
            - {type: rename_columns, maping: {id: key}}
        """,
    )
    message, problems = problems_of(path, registry)
    # the typo is reported, and so is the required key it was meant to be
    assert {problem.key for problem in problems} == {
        "transform.steps[1].maping",
        "transform.steps[1].mapping",
    }
    assert "unknown key 'maping'" in message
    assert "transform 'rename_columns'" in message
    assert str(path) in message


@pytest.mark.parametrize(
    ("section", "body", "kind", "available"),
    [
        (
            "source.type",
            "source: {type: sequense}\ndestination: {type: memory_sink, table: t}",
            "connector 'sequense'",
            ["memory_sink", "sequence"],
        ),
        (
            "destination.type",
            "source: {type: sequence, stop: 1}\ndestination: {type: nowhere}",
            "connector 'nowhere'",
            ["memory_sink", "sequence"],
        ),
        (
            "transform.steps[0].type",
            "source: {type: sequence, stop: 1}\ndestination: {type: memory_sink, table: t}\n"
            "transform: {steps: [{type: uppercase}]}",
            "transform 'uppercase'",
            ["cast", "filter", "rename_columns", "upper_case"],
        ),
        (
            "state.backend",
            "source: {type: sequence, stop: 1}\ndestination: {type: memory_sink, table: t}\n"
            "state: {backend: s4}",
            "state backend 's4'",
            ["local"],
        ),
    ],
)
def test_unknown_type_lists_what_is_available(
    write: Write, registry: Registry, section: str, body: str, kind: str, available: list[str]
) -> None:
    path = write("unknown.yaml", f"name: unknown\n{body}\n")
    message, [problem] = problems_of(path, registry)
    assert problem.key == section
    assert f"unknown {kind}" in message
    assert str(path) in message
    for name in available:
        assert name in (problem.expected or "")


def test_merge_without_merge_keys(write: Write, registry: Registry) -> None:
    path = write(
        "merge.yaml",
        """
        name: merge
        source: {type: sequence, stop: 1}
        destination: {type: memory_sink, table: t, write_mode: merge}
        """,
    )
    message, [problem] = problems_of(path, registry)
    assert problem.key == "destination"
    assert "merge_keys" in message
    assert str(path) in message


def test_invalid_write_mode_and_recipe_name(write: Write, registry: Registry) -> None:
    path = write(
        "bad.yaml",
        """
        name: "has spaces"
        source: {type: sequence, stop: 1}
        destination: {type: memory_sink, table: t, write_mode: upsert}
        """,
    )
    _, problems = problems_of(path, registry)
    assert {problem.key for problem in problems} == {"name", "destination.write_mode"}


def test_capabilities_are_checked(write: Write, registry: Registry) -> None:
    path = write(
        "caps.yaml",
        """
        name: caps
        source: {type: memory_sink, table: t}
        destination: {type: sequence, stop: 1}
        """,
    )
    message, problems = problems_of(path, registry)
    assert {problem.key for problem in problems} == {"source.type", "destination.type"}
    assert "cannot be used as a source" in message
    assert "cannot be used as a destination" in message


def test_incremental_needs_a_cursor_column(write: Write, registry: Registry) -> None:
    path = write(
        "inc.yaml",
        """
        name: inc
        source: {type: sequence, stop: 1, incremental: {strategy: cursor}}
        destination: {type: memory_sink, table: t}
        """,
    )
    message, [problem] = problems_of(path, registry)
    assert problem.key == "source.incremental"
    assert "cursor_column" in message


def test_overwrite_with_an_inherited_incremental_read_is_rejected(
    write: Write, registry: Registry
) -> None:
    """An overwrite of what an incremental run reads would empty the table on a re-run."""
    parent = write(
        "parent.yaml",
        """
        name: parent
        source: {type: sequence, stop: 3, incremental: {cursor_column: n}}
        destination: {type: memory_sink, table: t, write_mode: merge, merge_keys: [n]}
        """,
    )
    child = write(
        "child.yaml",
        """
        extends: parent.yaml
        name: child
        delete: [destination.merge_keys]
        destination: {write_mode: overwrite}
        """,
    )
    message, [problem] = problems_of(child, registry)
    assert problem.key == "source.incremental"
    assert problem.file == str(parent)  # where the incremental read comes from
    assert "overwrite" in message and "full read" in message
    assert "delete: [source.incremental]" in (problem.expected or "")

    fixed = write(
        "fixed.yaml",
        """
        extends: child.yaml
        name: fixed
        delete: [source.incremental]
        """,
    )
    assert RecipeLoader(registry=registry).load(fixed).source.incremental is None


def test_every_problem_in_the_recipe_model_is_listed(write: Write, registry: Registry) -> None:
    path = write(
        "many.yaml",
        """
        name: many
        sourse: oops
        source: {type: sequence, stop: 1}
        destination: {type: memory_sink, table: t, write_mode: merge}
        runtime: {batch_size: 0}
        """,
    )
    message, problems = problems_of(path, registry)
    assert {problem.key for problem in problems} == {
        "sourse",
        "destination",
        "runtime.batch_size",
    }
    assert "3 problems" in message
    for key in ("sourse", "destination", "runtime.batch_size"):
        assert f"{path}:{key}:" in message


def test_every_problem_in_the_plugin_sections_is_listed(write: Write, registry: Registry) -> None:
    path = write(
        "many.yaml",
        """
        name: many
        source: {type: sequence, stop: 1, colour: red}
        destination: {type: memory_sink, table: t, tabel: u}
        transform:
          steps:
            - {type: no_such_step}
            - {type: cast, columns: {id: notatype}}
        """,
    )
    message, problems = problems_of(path, registry)
    assert {problem.key for problem in problems} == {
        "source.colour",
        "destination.tabel",
        "transform.steps[0].type",
        "transform.steps[1].columns.id.type",
    }
    assert "4 problems" in message
    assert "unknown type 'notatype'" in message


def test_problem_render_includes_value_and_expected() -> None:
    problem = Problem("bad", file="f.yaml", key="a.b", value=3, expected="a string")
    assert problem.render() == "f.yaml:a.b: bad (got 3); expected a string"
    assert Problem("plain").render() == "plain"


def test_recipe_error_is_exit_code_2(write: Write, registry: Registry) -> None:
    path = write("bad.yaml", "name: bad\n")
    with pytest.raises(RecipeError) as info:
        RecipeLoader(registry=registry).load(path)
    assert info.value.exit_code == 2
    assert {p.key for p in info.value.problems} == {"source", "destination"}
