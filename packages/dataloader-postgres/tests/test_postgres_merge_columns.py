"""Merge into Postgres when the source and the target do not carry the same columns: columns only
the target has keep their values (both statement paths), and a column that appears in a later
batch of a run reaches the target and the merge stage."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.parametrize("keyed", [True, False], ids=["on_conflict", "update_from"])
def test_merge_keeps_target_columns_the_source_does_not_carry(
    pg: Any, run: Any, keyed: bool
) -> None:
    key = "PRIMARY KEY" if keyed else ""
    pg.execute(f"CREATE TABLE dst (id int {key}, name text, note text)")
    pg.execute("INSERT INTO dst VALUES (1, 'one', 'keep me'), (2, 'two', 'me too')")
    pg.execute("CREATE TABLE src (id int, name text)")
    pg.execute("INSERT INTO src VALUES (1, 'ONE'), (3, 'three')")
    run(
        {
            "name": f"merge_extra_{keyed}",
            "source": pg.source(table="src"),
            "destination": pg.destination("dst", "merge", merge_keys=["id"]),
        }
    )
    assert pg.query("SELECT id, name, note FROM dst ORDER BY id") == [
        (1, "ONE", "keep me"),
        (2, "two", "me too"),
        (3, "three", None),
    ]


@pytest.mark.parametrize("keyed", [True, False], ids=["on_conflict", "update_from"])
def test_a_column_appearing_in_a_later_batch_reaches_the_merge_target(
    pg: Any, run: Any, rows_source: str, keyed: bool
) -> None:
    if keyed:
        pg.execute("CREATE TABLE dst (id int PRIMARY KEY, name text)")
    else:
        pg.execute("CREATE TABLE dst (id int, name text)")
    first = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    second = [{"id": 2, "name": "B", "extra": "x2"}, {"id": 3, "name": "c", "extra": "x3"}]
    recipe = {
        "name": f"merge_new_column_{keyed}",
        "source": {"type": rows_source, "batches": [first, second]},
        "destination": pg.destination("dst", "merge", merge_keys=["id"]),
        "runtime": {"batch_size": 100},  # both batches in one transaction
    }
    run(recipe)
    assert pg.query("SELECT id, name, extra FROM dst ORDER BY id") == [
        (1, "a", None),
        (2, "B", "x2"),
        (3, "c", "x3"),
    ]

    # A re-run whose batches bring yet another column, after ones that do not carry `extra`.
    third = [{"id": 1, "name": "A", "more": 10}, {"id": 4, "name": "d", "more": 40}]
    recipe["source"]["batches"] = [first[:1], third, second[:1]]
    run(recipe)
    assert pg.query("SELECT id, name, extra, more FROM dst ORDER BY id") == [
        (1, "A", None, 10),
        (2, "B", "x2", None),
        (3, "c", "x3", None),
        (4, "d", None, 40),
    ]


def test_a_user_table_named_like_the_merge_stage_is_left_alone(pg: Any, run: Any) -> None:
    """The stage is a temporary table: `DROP … _dl_merge_stage` must not reach `public`'s."""
    pg.execute("CREATE TABLE _dl_merge_stage (mine text)")
    pg.execute("INSERT INTO _dl_merge_stage VALUES ('still here')")
    pg.execute("CREATE TABLE src (id int, name text)")
    pg.execute("INSERT INTO src VALUES (1, 'one')")
    run(
        {
            "name": "merge_stage_name",
            "source": pg.source(table="src"),
            "destination": pg.destination("dst", "merge", merge_keys=["id"]),
        }
    )
    assert pg.query("SELECT id, name FROM dst") == [(1, "one")]
    assert pg.query("SELECT mine FROM public._dl_merge_stage") == [("still here",)]
