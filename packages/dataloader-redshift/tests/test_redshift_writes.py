"""The destination's transaction and state logic, run through the Redshift dialect's SQL on
the PostgreSQL stand-in (no `staging`: the stage is filled by multi-row INSERTs)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from dataloader import RunResult
from dataloader.errors import DataLoaderError


def recipe(
    source: str, warehouse: Any, batches: list[list[dict[str, Any]]], mode: str, **keys: Any
) -> dict[str, Any]:
    return {
        "name": "rs_customers",
        "source": {"type": source, "batches": batches},
        "destination": {
            "type": "redshift",
            **warehouse.settings(),
            "table": "dw.customers",
            "write_mode": mode,
            **keys,
        },
    }


def rows(warehouse: Any) -> list[tuple[Any, ...]]:
    return warehouse.query("SELECT id, name FROM dw.customers ORDER BY id")


def stored_state(warehouse: Any) -> dict[str, Any]:
    [(document,)] = warehouse.query(
        "SELECT state FROM dw._dataloader_state WHERE recipe = 'rs_customers'"
    )
    return json.loads(document)


def test_append_writes_rows_and_state_in_one_transaction(
    warehouse: Any, rows_source: str, run: Callable[..., RunResult]
) -> None:
    first = [[{"id": 1, "name": "ada"}, {"id": 2, "name": "bob"}], [{"id": 3, "name": "cy"}]]
    run(recipe(rows_source, warehouse, first, "append"))
    assert rows(warehouse) == [(1, "ada"), (2, "bob"), (3, "cy")]
    assert stored_state(warehouse)["last_commit"]
    run(recipe(rows_source, warehouse, [[{"id": 4, "name": "di"}]], "append"))
    assert [row[0] for row in rows(warehouse)] == [1, 2, 3, 4]
    # the temporary stages went with their sessions
    assert warehouse.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE '\\_dl\\_stage\\_%%'"
    ) == [(0,)]


def test_merge_deletes_matching_keys_and_inserts_the_last_row_of_each(
    warehouse: Any, rows_source: str, run: Callable[..., RunResult]
) -> None:
    run(
        recipe(
            rows_source,
            warehouse,
            [[{"id": 1, "name": "ada"}, {"id": 2, "name": "bob"}]],
            "merge",
            merge_keys=["id"],
        )
    )
    batches = [
        [{"id": 2, "name": "bobby"}, {"id": 3, "name": "cy"}],
        [{"id": 3, "name": "cyrus"}, {"id": 2, "name": "robert"}],
    ]
    run(recipe(rows_source, warehouse, batches, "merge", merge_keys=["id"]))
    assert rows(warehouse) == [(1, "ada"), (2, "robert"), (3, "cyrus")]


def test_merge_with_dedup_sort_keeps_the_highest_version_of_the_batch(
    warehouse: Any, rows_source: str, run: Callable[..., RunResult]
) -> None:
    batch = [
        {"id": 1, "name": "new", "version": 2},
        {"id": 1, "name": "old", "version": 1},
    ]
    result = run(
        recipe(
            rows_source,
            warehouse,
            [batch],
            "merge",
            merge_keys=["id"],
            dedup_sort={"column": "version"},
        )
    )
    assert result.rows_written == 2
    assert rows(warehouse) == [(1, "new")]


def test_overwrite_replaces_the_table_and_its_columns(
    warehouse: Any, rows_source: str, run: Callable[..., RunResult]
) -> None:
    run(recipe(rows_source, warehouse, [[{"id": 1, "name": "ada", "old": 1}]], "append"))
    run(recipe(rows_source, warehouse, [[{"id": 7, "name": "gus"}]], "overwrite"))
    assert rows(warehouse) == [(7, "gus")]
    columns = warehouse.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers' "
        "ORDER BY ordinal_position"
    )
    assert columns == [("id",), ("name",)]


def test_a_failed_commit_leaves_neither_rows_nor_state(
    warehouse: Any, rows_source: str, run: Callable[..., RunResult]
) -> None:
    run(recipe(rows_source, warehouse, [[{"id": 1, "name": "ada"}]], "append"))
    before = stored_state(warehouse)
    # a text that does not fit the existing BIGINT column fails the INSERT … SELECT
    warehouse.query("ALTER TABLE dw.customers ADD CONSTRAINT small_ids CHECK (id < 100)")
    with pytest.raises(DataLoaderError, match="small_ids"):
        run(
            recipe(
                rows_source,
                warehouse,
                [[{"id": 5, "name": "ok"}, {"id": 500, "name": "no"}]],
                "append",
            )
        )
    assert rows(warehouse) == [(1, "ada")]
    assert stored_state(warehouse) == before


def test_new_columns_are_added_to_the_table(
    warehouse: Any, rows_source: str, run: Callable[..., RunResult]
) -> None:
    run(recipe(rows_source, warehouse, [[{"id": 1, "name": "ada"}]], "append"))
    run(recipe(rows_source, warehouse, [[{"id": 2, "name": "bob", "city": "Oslo"}]], "append"))
    assert warehouse.query("SELECT id, city FROM dw.customers ORDER BY id") == [
        (1, None),
        (2, "Oslo"),
    ]


def test_merge_with_dedup_sort_keeps_a_stored_row_that_wins(
    warehouse: Any, rows_source: str, run: Callable[..., RunResult]
) -> None:
    keys = {"merge_keys": ["id"], "dedup_sort": {"column": "version"}}
    stored = [{"id": 1, "name": "v5", "version": 5}, {"id": 2, "name": "v1", "version": 1}]
    run(recipe(rows_source, warehouse, [stored], "merge", **keys))
    incoming = [{"id": 1, "name": "v3", "version": 3}, {"id": 2, "name": "v2", "version": 2}]
    run(recipe(rows_source, warehouse, [incoming], "merge", **keys))
    assert rows(warehouse) == [(1, "v5"), (2, "v2")]


def test_a_run_refuses_to_commit_after_another_run_of_the_recipe_committed(
    warehouse: Any, stand_in: type[Any]
) -> None:
    from datetime import UTC, datetime

    from dataloader import State
    from dataloader.context import RunContext
    from dataloader_redshift.config import RedshiftConfig

    config = RedshiftConfig.model_validate({**warehouse.settings(), "table": "dw.customers"})
    runs = []
    for run_id in ("first", "second"):
        context = RunContext("rs_race", run_id, datetime.now(UTC), role="destination")
        connector = stand_in(config)
        connector.open(context)
        connector.begin(State())
        runs.append(connector)
    first, second = runs
    try:
        first.commit(State(cursor_values={"id": 1}))
        with pytest.raises(DataLoaderError, match="another run of recipe 'rs_race' committed"):
            second.commit(State(cursor_values={"id": 2}))
        first.commit(State(cursor_values={"id": 3}))  # the first run goes on
    finally:
        first.close()
        second.close()
    [(document,)] = warehouse.query("SELECT state FROM dw._dataloader_state")
    assert json.loads(document)["cursor_values"] == {"id": 3}
