"""`destination.dedup_sort`: which row of a merge key wins. Checked when the recipe is bound:
it only has a meaning for `write_mode: merge`, and only on a column that is not a merge key."""

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


def test_dedup_sort_is_read_as_a_destination_key(write: Write, registry: Registry) -> None:
    path = write(
        "latest.yaml",
        """
        name: latest
        source: {type: sequence, stop: 1}
        destination:
          type: memory_sink
          table: t
          write_mode: merge
          merge_keys: [id]
          dedup_sort: {column: updated_at}
        """,
    )
    recipe = RecipeLoader(registry=registry).load(path)
    assert recipe.destination.dedup_sort is not None
    assert (recipe.destination.dedup_sort.column, recipe.destination.dedup_sort.order) == (
        "updated_at",
        "desc",
    )
    assert "dedup_sort" not in recipe.destination.options  # not a connector key


def test_dedup_sort_without_merge_is_rejected(write: Write, registry: Registry) -> None:
    path = write(
        "append.yaml",
        """
        name: append
        source: {type: sequence, stop: 1}
        destination: {type: memory_sink, table: t, dedup_sort: {column: updated_at}}
        """,
    )
    message, [problem] = problems_of(path, registry)
    assert problem.key == "destination.dedup_sort"
    assert problem.file == str(path)
    assert problem.value == {"column": "updated_at", "order": "desc"}
    assert "write_mode: merge" in (problem.expected or "")
    assert "append" in message


def test_dedup_sort_on_a_merge_key_is_rejected(write: Write, registry: Registry) -> None:
    path = write(
        "key.yaml",
        """
        name: key
        source: {type: sequence, stop: 1}
        destination:
          type: memory_sink
          table: t
          write_mode: merge
          merge_keys: [id]
          dedup_sort: {column: id}
        """,
    )
    _, [problem] = problems_of(path, registry)
    assert problem.key == "destination.dedup_sort.column"
    assert problem.value == "id"
    assert problem.file == str(path)


def test_dedup_sort_keys_are_checked(write: Write, registry: Registry) -> None:
    path = write(
        "typo.yaml",
        """
        name: typo
        source: {type: sequence, stop: 1}
        destination:
          type: memory_sink
          table: t
          write_mode: merge
          merge_keys: [id]
          dedup_sort: {colum: updated_at, order: newest}
        """,
    )
    _, problems = problems_of(path, registry)
    assert {problem.key for problem in problems} == {
        "destination.dedup_sort.colum",
        "destination.dedup_sort.column",
        "destination.dedup_sort.order",
    }
