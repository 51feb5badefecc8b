"""Writes through the real Snowflake connector to fakesnow: append, overwrite, merge, state."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

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
