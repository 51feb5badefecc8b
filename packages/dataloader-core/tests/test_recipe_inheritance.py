"""Loading recipe files: extends (multi-level), delete, cycles, missing parents, YAML and JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from dataloader import RecipeError, from_yaml
from dataloader.recipe import RecipeLoader
from dataloader.registry import Registry

Write = Callable[[str, str], Path]

BASE = """
    name: base
    description: from the base
    source:
      type: sequence
      stop: 100
      label: base
    destination:
      type: memory_sink
      table: base_table
      write_mode: merge
      merge_keys: [id, label]
    transform:
      steps:
        - type: rename_columns
          mapping: {id: base_id}
    runtime:
      batch_size: 1000
      retries: {attempts: 7, jitter: 0.5}
"""


def load(path: Path, registry: Registry, **variables: str):
    return RecipeLoader(variables, registry=registry).load(path)


def test_child_inherits_and_overrides(write: Write, registry: Registry) -> None:
    write("base.yaml", BASE)
    child = write(
        "child.yaml",
        """
        extends: base.yaml
        name: child
        source:
          stop: 5
        destination:
          merge_keys: [id]
        transform:
          steps:
            - type: select_columns
              columns: [base_id]
        runtime:
          retries: {attempts: 2}
        """,
    )
    recipe = load(child, registry)
    assert recipe.name == "child"  # scalar override
    assert recipe.description == "from the base"  # inherited
    assert recipe.source.options == {"stop": 5, "label": "base"}  # deep merge
    assert recipe.destination.options == {"table": "base_table"}
    assert recipe.destination.write_mode == "merge"
    assert recipe.destination.merge_keys == ["id"]  # other lists replaced
    assert [s.type for s in recipe.transform.steps] == ["rename_columns", "select_columns"]
    assert recipe.runtime.batch_size == 1000
    assert recipe.runtime.retries.attempts == 2
    assert recipe.runtime.retries.jitter == 0.5
    assert recipe.file == child


def test_three_levels_deepest_parent_first(write: Write, registry: Registry) -> None:
    write(
        "grand.yaml",
        """
        name: grand
        source: {type: sequence, stop: 1, label: grand}
        destination: {type: memory_sink, table: grand}
        transform:
          steps:
            - {type: add_column, name: level, value: grand}
        runtime: {batch_size: 10, parallelism: 2}
        """,
    )
    write(
        "parent.yaml",
        """
        extends: grand.yaml
        name: parent
        source: {stop: 2}
        transform:
          steps:
            - {type: add_column, name: level2, value: parent}
        runtime: {batch_size: 20}
        """,
    )
    child = write(
        "child.yaml",
        """
        extends: parent.yaml
        name: child
        destination: {table: child}
        transform:
          steps:
            - {type: add_column, name: level3, value: child}
        """,
    )
    recipe = load(child, registry)
    assert recipe.name == "child"
    assert recipe.source.options == {"stop": 2, "label": "grand"}
    assert recipe.destination.options == {"table": "child"}
    assert [s.options["value"] for s in recipe.transform.steps] == ["grand", "parent", "child"]
    assert recipe.runtime.batch_size == 20
    assert recipe.runtime.parallelism == 2


def test_extends_is_relative_to_the_child_file(write: Write, registry: Registry) -> None:
    write("shared/base.yaml", BASE)
    child = write("recipes/team/child.yaml", "extends: ../../shared/base.yaml\nname: child\n")
    assert load(child, registry).destination.options == {"table": "base_table"}


def test_origin_of_follows_extends(write: Write, registry: Registry) -> None:
    base = write("base.yaml", BASE)
    child = write("child.yaml", "extends: base.yaml\nname: child\nsource: {stop: 3}\n")
    recipe = load(child, registry)
    assert recipe.origin_of("source.stop") == str(child)
    assert recipe.origin_of("source.label") == str(base)
    assert recipe.origin_of("destination.table") == str(base)


def test_error_in_an_inherited_key_names_the_parent_file(write: Write, registry: Registry) -> None:
    base = write("base.yaml", BASE.replace("label: base", "lable: base"))
    child = write("child.yaml", "extends: base.yaml\nname: child\n")
    with pytest.raises(RecipeError) as info:
        load(child, registry)
    [problem] = info.value.problems
    assert problem.file == str(base)
    assert problem.key == "source.lable"


# -- delete ---------------------------------------------------------------------------------
def test_delete_removes_an_inherited_key(write: Write, registry: Registry) -> None:
    write("base.yaml", BASE)
    child = write(
        "child.yaml",
        """
        extends: base.yaml
        name: child
        delete:
          - destination.merge_keys
          - transform.steps
          - source.label
        destination:
          write_mode: append
        """,
    )
    recipe = load(child, registry)
    assert recipe.destination.merge_keys is None
    assert recipe.transform.steps == []
    assert recipe.source.options == {"stop": 100}


def test_child_can_delete_and_redefine(write: Write, registry: Registry) -> None:
    write("base.yaml", BASE)
    child = write(
        "child.yaml",
        """
        extends: base.yaml
        name: child
        delete: [transform.steps, runtime.retries]
        transform:
          steps:
            - type: select_columns
              columns: [id]
        runtime:
          retries: {attempts: 1}
        """,
    )
    recipe = load(child, registry)
    # without the delete the steps would be concatenated: base's rename first
    assert [s.type for s in recipe.transform.steps] == ["select_columns"]
    # without the delete jitter would be inherited from the base (0.5)
    assert recipe.runtime.retries.attempts == 1
    assert recipe.runtime.retries.jitter == 0.1


def test_delete_works_across_levels(write: Write, registry: Registry) -> None:
    write("grand.yaml", BASE)
    write("parent.yaml", "extends: grand.yaml\nname: parent\n")
    child = write("child.yaml", "extends: parent.yaml\nname: child\ndelete: [description]\n")
    assert load(child, registry).description is None


def test_delete_of_a_path_that_does_not_exist_is_an_error_naming_it(
    write: Write, registry: Registry
) -> None:
    write("base.yaml", BASE)
    child = write(
        "child.yaml", "extends: base.yaml\nname: child\ndelete: [destination.no_such_key]\n"
    )
    with pytest.raises(RecipeError) as info:
        load(child, registry)
    message = str(info.value)
    assert "destination.no_such_key" in message
    assert str(child) in message
    assert info.value.problem.key == "delete"


def test_delete_must_be_a_list_of_paths(write: Write, registry: Registry) -> None:
    write("base.yaml", BASE)
    child = write("child.yaml", "extends: base.yaml\nname: child\ndelete: source.label\n")
    with pytest.raises(RecipeError, match="`delete` must be a list"):
        load(child, registry)


# -- cycles and missing parents -------------------------------------------------------------
def test_cycle_is_an_error_naming_the_chain(write: Write, registry: Registry) -> None:
    a = write("a.yaml", "extends: b.yaml\nname: a\n")
    b = write("b.yaml", "extends: c.yaml\nname: b\n")
    c = write("c.yaml", "extends: a.yaml\nname: c\n")
    with pytest.raises(RecipeError) as info:
        load(a, registry)
    message = str(info.value)
    assert "cycle" in message
    assert f"{a} -> {b} -> {c} -> {a}" in message


def test_a_recipe_extending_itself_is_a_cycle(write: Write, registry: Registry) -> None:
    a = write("a.yaml", "extends: a.yaml\nname: a\n")
    with pytest.raises(RecipeError, match="cycle") as info:
        load(a, registry)
    assert f"{a} -> {a}" in str(info.value)


def test_missing_parent_file_is_an_error_naming_it(write: Write, registry: Registry) -> None:
    child = write("child.yaml", "extends: missing/base.yaml\nname: child\n")
    with pytest.raises(RecipeError) as info:
        load(child, registry)
    message = str(info.value)
    assert "missing/base.yaml" in message
    assert "does not exist" in message
    assert str(child) in message
    assert info.value.problem.key == "extends"


def test_missing_recipe_file(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(RecipeError, match="does not exist"):
        load(tmp_path / "nope.yaml", registry)


# -- file formats ----------------------------------------------------------------------------
def test_json_recipe(write: Write, registry: Registry) -> None:
    path = write(
        "orders.json",
        json.dumps(
            {
                "name": "orders",
                "source": {"type": "sequence", "stop": 3},
                "destination": {"type": "memory_sink", "table": "t", "write_mode": "overwrite"},
            }
        ),
    )
    recipe = load(path, registry)
    assert recipe.name == "orders"
    assert recipe.destination.write_mode == "overwrite"


def test_yaml_child_can_extend_a_json_parent(write: Write, registry: Registry) -> None:
    write(
        "base.json",
        json.dumps(
            {
                "name": "base",
                "source": {"type": "sequence", "stop": 3},
                "destination": {"type": "memory_sink", "table": "t"},
            }
        ),
    )
    child = write("child.yaml", "extends: base.json\nname: child\nsource: {stop: 9}\n")
    assert load(child, registry).source.options == {"stop": 9}


def test_from_yaml_loads_with_the_default_registry(valid_recipe: Path, registry: Registry) -> None:
    recipe = from_yaml(valid_recipe)
    assert recipe.name == "orders"
    assert recipe.source.type == "sequence"


def test_invalid_yaml_names_the_line(write: Write, registry: Registry) -> None:
    path = write(
        "broken.yaml",
        """
        name: broken
        source:
          type: sequence
            stop: 3
        destination: {type: memory_sink, table: t}
        """,
    )
    with pytest.raises(RecipeError) as info:
        load(path, registry)
    message = str(info.value)
    assert "invalid YAML" in message
    assert "line 4" in message
    assert str(path) in message


def test_invalid_json_names_the_line(write: Write, registry: Registry) -> None:
    path = write("broken.json", '{\n  "name": "x",\n  "source": \n}\n')
    with pytest.raises(RecipeError) as info:
        load(path, registry)
    assert "invalid JSON at line 4" in str(info.value)


@pytest.mark.parametrize(("text", "fragment"), [("", "empty"), ("- a\n- b\n", "must be a mapping")])
def test_a_recipe_must_be_a_mapping(
    write: Write, registry: Registry, text: str, fragment: str
) -> None:
    path = write("odd.yaml", text)
    with pytest.raises(RecipeError, match=fragment):
        load(path, registry)
