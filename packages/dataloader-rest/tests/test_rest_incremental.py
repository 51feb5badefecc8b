"""Incremental reads of the `rest` source through the engine into DuckDB: the committed
cursor goes to the API as a request parameter, so a second run asks only for what is new;
ties at the boundary, updated records (append and merge), `initial_value`/`end_value`
windows and a Stripe-shaped `created[gte]` listing newest first."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dataloader.testing import local_runner
from dataloader_rest.testing import DemoApi

Runner = Callable[..., Any]


def items_recipe(
    api: DemoApi,
    tmp_path: Path,
    *,
    incremental: dict[str, Any] | None = None,
    resource: dict[str, Any] | None = None,
    destination: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`/offset/items` by `updated_at`, the cursor sent as `since`, into DuckDB."""
    return {
        "name": "items",
        "source": {
            "type": "rest",
            "client": {"base_url": api.base_url},
            "incremental": {"cursor_column": "updated_at", **(incremental or {})},
            "resource": {
                "path": "/offset/items",
                "data_selector": "items",
                "paginator": {"type": "offset", "limit": 40},
                "incremental": {"param": "since"},
                **(resource or {}),
            },
        },
        "destination": {
            "type": "duckdb",
            "database": str(tmp_path / "out.duckdb"),
            "table": "items",
            **(destination or {}),
        },
        "runtime": {"batch_size": 40},
    }


def rows(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(tmp_path / "out.duckdb"), read_only=True) as con:
        return con.sql(sql).fetchall()


def ids(tmp_path: Path, table: str = "items") -> list[Any]:
    return [row[0] for row in rows(tmp_path, f"SELECT id FROM {table} ORDER BY id")]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return local_runner(tmp_path / "state")


def test_a_second_run_sends_the_committed_cursor_and_loads_only_new_records(
    demo_api: DemoApi, tmp_path: Path, run: Runner
) -> None:
    recipe = items_recipe(demo_api, tmp_path)
    run(recipe)
    assert ids(tmp_path) == list(range(1, 251))
    assert all("since" not in request.query for request in demo_api.requests)
    newest = max(instant(record["updated_at"]) for record in demo_api.records)

    added = demo_api.add_records(15)
    demo_api.reset_log()
    second = run(recipe)

    assert ids(tmp_path) == list(range(1, 266))
    assert second.rows_written == 15
    first = demo_api.requests[0]
    assert instant(first.query["since"]) == newest
    assert {request.query["since"] for request in demo_api.requests} == {first.query["since"]}
    assert [r["id"] for r in added] == list(range(251, 266))


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_an_updated_record_loads_again_and_merge_replaces_it(
    mode: str, demo_api: DemoApi, tmp_path: Path, run: Runner
) -> None:
    destination = {"write_mode": mode, "merge_keys": ["id"]} if mode == "merge" else {}
    recipe = items_recipe(demo_api, tmp_path, destination=destination)
    run(recipe)

    demo_api.update_record(7, name="Renamed 7")
    second = run(recipe)

    assert second.rows_written == 1
    names = rows(tmp_path, "SELECT name FROM items WHERE id = 7 ORDER BY updated_at")
    if mode == "append":
        assert [name for (name,) in names] == [names[0][0], "Renamed 7"]
        assert rows(tmp_path, "SELECT count(*) FROM items") == [(251,)]
    else:
        assert names == [("Renamed 7",)]
        assert rows(tmp_path, "SELECT count(*), count(DISTINCT id) FROM items") == [(250, 250)]


def test_records_arriving_later_with_the_committed_timestamp_load_and_none_twice(
    demo_api: DemoApi, tmp_path: Path, run: Runner
) -> None:
    recipe = items_recipe(demo_api, tmp_path)
    run(recipe)
    newest = max(record["updated_at"] for record in demo_api.records)
    tied = [record for record in demo_api.records if record["updated_at"] == newest]
    with demo_api.lock:
        for record_id in (9001, 9002):
            demo_api.records.append({**tied[0], "id": record_id, "name": f"Late {record_id}"})

    demo_api.reset_log()
    second = run(recipe)

    assert second.rows_written == 2
    assert ids(tmp_path) == [*range(1, 251), 9001, 9002]
    assert demo_api.requests[0].query["since"]
    assert instant(demo_api.requests[0].query["since"]) == instant(newest)


def test_ties_inside_the_listing_load_once_across_runs(
    demo_api: DemoApi, tmp_path: Path, run: Runner
) -> None:
    by_time: dict[str, int] = {}
    for record in demo_api.records:
        by_time[record["updated_at"]] = by_time.get(record["updated_at"], 0) + 1
    assert max(by_time.values()) >= 2  # the demo data has records sharing `updated_at`

    recipe = items_recipe(demo_api, tmp_path)
    for _ in range(3):
        run(recipe)
        demo_api.add_records(7)

    assert ids(tmp_path) == list(range(1, 265))


def test_initial_and_end_value_bound_the_window_sent_as_since_and_until(
    demo_api: DemoApi, tmp_path: Path, run: Runner
) -> None:
    ordered = demo_api.ordered_records()
    low, high = ordered[40]["updated_at"], ordered[120]["updated_at"]
    recipe = items_recipe(
        demo_api,
        tmp_path,
        incremental={"initial_value": low, "end_value": high},
        resource={"incremental": {"param": "since", "end_param": "until"}},
    )
    run(recipe)

    expected = sorted(r["id"] for r in ordered if low < r["updated_at"] <= high)
    assert ids(tmp_path) == expected
    first = demo_api.requests[0].query
    assert instant(first["since"]) == instant(low)
    assert instant(first["until"]) == instant(high)


def stripe_recipe(api: DemoApi, tmp_path: Path) -> dict[str, Any]:
    return {
        "name": "customers",
        "source": {
            "type": "rest",
            "client": {
                "base_url": api.base_url,
                "auth": {"type": "bearer", "token": api.stripe_key},
            },
            "incremental": {"cursor_column": "created"},
            "resource": {
                "path": "/stripe/v1/customers",
                "params": {"limit": 10},
                "data_selector": "data",
                "paginator": "starting_after",
                "incremental": {"param": "created[gte]", "format": "unix", "order": "desc"},
            },
        },
        "destination": {
            "type": "duckdb",
            "database": str(tmp_path / "out.duckdb"),
            "table": "customers",
        },
        "runtime": {"batch_size": 10, "commit_interval_seconds": 1e-9},
    }


def test_stripe_created_gte_as_unix_seconds_newest_first(
    demo_api: DemoApi, tmp_path: Path, run: Runner
) -> None:
    recipe = stripe_recipe(demo_api, tmp_path)
    run(recipe)
    assert rows(tmp_path, "SELECT count(*), count(DISTINCT id) FROM customers") == [(37, 37)]
    newest = max(customer["created"] for customer in demo_api.customers)

    added = demo_api.add_customers(12)
    demo_api.reset_log()
    second = run(recipe)

    assert second.rows_written == 12
    loaded = sorted(id_ for (id_,) in rows(tmp_path, "SELECT id FROM customers"))
    assert loaded == sorted(c["id"] for c in demo_api.customers)
    requests = demo_api.requests_to("/stripe/v1/customers")
    assert {request.query["created[gte]"] for request in requests} == {str(newest)}
    assert len(requests) == 2  # 12 new customers (and the boundary's) in pages of 10
    assert [c["created"] for c in added] == sorted(c["created"] for c in added)


def test_lag_sends_a_lower_since_and_merge_keeps_one_row_per_record(
    demo_api: DemoApi, tmp_path: Path, run: Runner
) -> None:
    recipe = items_recipe(
        demo_api,
        tmp_path,
        incremental={"lag": "2h"},
        destination={"write_mode": "merge", "merge_keys": ["id"]},
    )
    run(recipe)
    newest = max(instant(record["updated_at"]) for record in demo_api.records)

    demo_api.add_records(5)
    demo_api.reset_log()
    run(recipe)

    since = instant(demo_api.requests[0].query["since"])
    assert (newest - since).total_seconds() == 7200
    assert rows(tmp_path, "SELECT count(*), count(DISTINCT id) FROM items") == [(255, 255)]


def test_csv_bodies_read_incrementally(demo_api: DemoApi, tmp_path: Path, run: Runner) -> None:
    recipe = items_recipe(
        demo_api,
        tmp_path,
        resource={"path": "/csv/items", "format": "csv", "data_selector": None},
    )
    run(recipe)
    demo_api.add_records(4)
    demo_api.reset_log()
    second = run(recipe)

    assert second.rows_written == 4
    assert "since" in demo_api.requests[0].query
    loaded = sorted(int(id_) for (id_,) in rows(tmp_path, "SELECT id FROM items"))
    assert loaded == list(range(1, 255))
