"""RecipeMerger: the merge rules, and `delete:` paths on a tree."""

from __future__ import annotations

import copy

import pytest

from dataloader.recipe.merger import RecipeMerger, leaf_paths


@pytest.fixture
def merger() -> RecipeMerger:
    return RecipeMerger()


def test_scalars_override(merger: RecipeMerger) -> None:
    merged = merger.merge(
        {"name": "parent", "runtime": {"batch_size": 100}},
        {"name": "child", "runtime": {"batch_size": 5}},
    )
    assert merged == {"name": "child", "runtime": {"batch_size": 5}}


def test_scalar_can_replace_a_dict_and_a_dict_can_replace_a_scalar(merger: RecipeMerger) -> None:
    merged = merger.merge({"a": {"x": 1}, "b": 2}, {"a": 3, "b": {"y": 4}})
    assert merged == {"a": 3, "b": {"y": 4}}


def test_dicts_deep_merge(merger: RecipeMerger) -> None:
    parent = {
        "source": {"type": "postgres", "options": {"host": "db", "port": 5432}},
        "runtime": {"retries": {"attempts": 3, "jitter": 0.1}},
    }
    child = {
        "source": {"options": {"port": 6543, "schema": "sales"}},
        "runtime": {"retries": {"attempts": 5}},
    }
    merged = merger.merge(parent, child)
    assert merged == {
        "source": {"type": "postgres", "options": {"host": "db", "port": 6543, "schema": "sales"}},
        "runtime": {"retries": {"attempts": 5, "jitter": 0.1}},
    }


def test_transform_steps_are_concatenated_parent_first(merger: RecipeMerger) -> None:
    parent = {"transform": {"steps": [{"type": "a"}, {"type": "b"}]}}
    child = {"transform": {"steps": [{"type": "c"}]}}
    merged = merger.merge(parent, child)
    assert [step["type"] for step in merged["transform"]["steps"]] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("parent", "child", "expected"),
    [
        (
            {"destination": {"merge_keys": ["id", "day"]}},
            {"destination": {"merge_keys": ["id"]}},
            {"destination": {"merge_keys": ["id"]}},
        ),
        (
            {"source": {"files": ["a", "b"]}},
            {"source": {"files": ["c"]}},
            {"source": {"files": ["c"]}},
        ),
        # a list named `steps` elsewhere is not `transform.steps`: replaced, not concatenated
        ({"source": {"steps": [1, 2]}}, {"source": {"steps": [3]}}, {"source": {"steps": [3]}}),
        ({"steps": [1, 2]}, {"steps": [3]}, {"steps": [3]}),
    ],
)
def test_other_lists_are_replaced(
    merger: RecipeMerger, parent: dict, child: dict, expected: dict
) -> None:
    assert merger.merge(parent, child) == expected


def test_merge_does_not_mutate_its_inputs(merger: RecipeMerger) -> None:
    parent = {"transform": {"steps": [{"type": "a"}]}, "source": {"x": {"y": 1}}}
    child = {"transform": {"steps": [{"type": "b"}]}, "source": {"x": {"z": 2}}}
    parent_before, child_before = copy.deepcopy(parent), copy.deepcopy(child)
    merged = merger.merge(parent, child)
    merged["transform"]["steps"][0]["type"] = "changed"
    merged["source"]["x"]["y"] = 99
    assert parent == parent_before
    assert child == child_before


def test_delete_removes_a_nested_key(merger: RecipeMerger) -> None:
    tree = {"destination": {"type": "x", "merge_keys": ["id"]}}
    merger.delete(tree, "destination.merge_keys")
    assert tree == {"destination": {"type": "x"}}


def test_delete_a_list_item_by_index(merger: RecipeMerger) -> None:
    tree = {"transform": {"steps": [{"type": "a"}, {"type": "b"}]}}
    merger.delete(tree, "transform.steps.0")
    assert tree == {"transform": {"steps": [{"type": "b"}]}}


@pytest.mark.parametrize(
    ("path", "missing"),
    [
        ("nothing", "nothing"),
        ("destination.nope", "destination.nope"),
        ("destination.type.deeper", "destination.type.deeper"),
        ("transform.steps.5", "transform.steps.5"),
    ],
)
def test_delete_of_a_missing_path_names_the_first_missing_part(
    merger: RecipeMerger, path: str, missing: str
) -> None:
    tree = {"destination": {"type": "x"}, "transform": {"steps": [{"type": "a"}]}}
    with pytest.raises(KeyError) as info:
        merger.delete(tree, path)
    assert info.value.args[0] == missing


def test_leaf_paths_descends_dicts_and_treats_lists_as_leaves() -> None:
    tree = {"a": {"b": 1, "c": {"d": 2}}, "e": [1, 2], "f": {}}
    assert sorted(leaf_paths(tree)) == ["a.b", "a.c.d", "e", "f"]
