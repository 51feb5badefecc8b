"""Writes through the real Snowflake connector to fakesnow: append, overwrite, merge, state."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from dataloader_snowflake.testing import FakeSnowflake


def recipe(
    db: FakeSnowflake, source: str, batches: list[list[dict[str, Any]]], **destination: Any
) -> dict[str, Any]:
    return {
        "name": destination.pop("name", "sf_writes"),
        "source": {"type": source, "batches": batches},
        "destination": {"type": "snowflake", **db.settings(), "table": "items", **destination},
    }


def test_append_twice_adds_rows_and_saves_state(
    snowflake_db: FakeSnowflake, rows_source: str, run: Callable[..., Any]
) -> None:
    batches = [[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], [{"id": 3, "name": "c"}]]
    result = run(recipe(snowflake_db, rows_source, batches))
    assert result.rows_written == 3
    run(recipe(snowflake_db, rows_source, [[{"id": 4, "name": "d"}]]))
    rows = snowflake_db.query('SELECT "id", "name" FROM "items" ORDER BY "id"')
    assert rows == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    [(document,)] = snowflake_db.query(
        "SELECT STATE FROM _DATALOADER_STATE WHERE RECIPE = 'sf_writes'"
    )
    assert json.loads(document)
    # The staging table and its files are gone.
    tables = snowflake_db.query(
        "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = 'PUBLIC'"
    )
    assert sorted(name for (name,) in tables) == ["_DATALOADER_STATE", "items"]


def test_overwrite_replaces_the_table(
    snowflake_db: FakeSnowflake, rows_source: str, run: Callable[..., Any]
) -> None:
    run(recipe(snowflake_db, rows_source, [[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]]))
    run(recipe(snowflake_db, rows_source, [[{"id": 7, "name": "x"}]], write_mode="overwrite"))
    assert snowflake_db.query('SELECT "id", "name" FROM "items"') == [(7, "x")]


def test_merge_updates_and_inserts_by_key_latest_row_wins(
    snowflake_db: FakeSnowflake, rows_source: str, run: Callable[..., Any]
) -> None:
    first = [[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]]
    run(recipe(snowflake_db, rows_source, first, write_mode="merge", merge_keys=["id"]))
    second = [[{"id": 2, "name": "b1"}, {"id": 3, "name": "c"}, {"id": 2, "name": "b2"}]]
    run(recipe(snowflake_db, rows_source, second, write_mode="merge", merge_keys=["id"]))
    rows = snowflake_db.query('SELECT "id", "name" FROM "items" ORDER BY "id"')
    assert rows == [(1, "a"), (2, "b2"), (3, "c")]


def test_merge_with_dedup_sort_keeps_a_stored_row_that_wins(
    snowflake_db: FakeSnowflake, rows_source: str, run: Callable[..., Any]
) -> None:
    keys: dict[str, Any] = {
        "write_mode": "merge",
        "merge_keys": ["id"],
        "dedup_sort": {"column": "version"},
    }
    run(recipe(snowflake_db, rows_source, [[{"id": 1, "version": 5, "name": "v5"}]], **keys))
    later = [[{"id": 1, "version": 3, "name": "v3"}, {"id": 2, "version": 1, "name": "new"}]]
    run(recipe(snowflake_db, rows_source, later, **keys))
    rows = snowflake_db.query('SELECT "id", "version", "name" FROM "items" ORDER BY "id"')
    assert rows == [(1, 5, "v5"), (2, 1, "new")]


def test_a_new_column_is_added_to_the_table(
    snowflake_db: FakeSnowflake, rows_source: str, run: Callable[..., Any]
) -> None:
    run(recipe(snowflake_db, rows_source, [[{"id": 1}]]))
    run(recipe(snowflake_db, rows_source, [[{"id": 2, "extra": "e"}]]))
    rows = snowflake_db.query('SELECT "id", "extra" FROM "items" ORDER BY "id"')
    assert rows == [(1, None), (2, "e")]


def test_columns_differing_only_in_case_are_refused(
    snowflake_db: FakeSnowflake, rows_source: str, run: Callable[..., Any]
) -> None:
    from dataloader import ConnectorError

    with pytest.raises(ConnectorError, match="'id' and 'ID' differ only in case"):
        run(recipe(snowflake_db, rows_source, [[{"id": 1, "ID": 2}]]))


def test_overwrite_with_no_rows_empties_the_table(
    snowflake_db: FakeSnowflake, rows_source: str, run: Callable[..., Any]
) -> None:
    run(recipe(snowflake_db, rows_source, [[{"id": 1, "name": "a"}]]))
    run(recipe(snowflake_db, rows_source, [], write_mode="overwrite"))
    assert snowflake_db.query('SELECT COUNT(*) FROM "items"') == [(0,)]
