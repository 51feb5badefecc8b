"""The `rest` source end to end: the demo API (real HTTP on 127.0.0.1) loaded into DuckDB
and into Postgres alike; every record once, a killed run resumed into Postgres, a second run
loading only new records, and merge mode replacing updated ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dataloader import LocalStateBackend, State
from dataloader.testing import local_runner
from dataloader_postgres.testing import PostgresServer
from dataloader_rest.testing import DemoApi, DemoServer, Killed, killed_at, run_server

Runner = Callable[..., Any]


@pytest.fixture(scope="module")
def rest_server() -> Iterator[DemoServer]:
    with run_server(DemoApi(0, customers=0)) as server:
        yield server


@pytest.fixture
def api(rest_server: DemoServer) -> Iterator[DemoApi]:
    """A fresh demo API with 250 records for this test."""
    yield rest_server.install(DemoApi(250))
    rest_server.install(DemoApi(0, customers=0))


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return local_runner(tmp_path / "state")


def recipe(
    api: DemoApi, destination: dict[str, Any], name: str = "items", *, normalize: bool = True
) -> dict[str, Any]:
    """`/offset/items` in pages of 25, incremental on `updated_at` sent as `since`; nested
    values normalized (`address__city`, a child table `items__tags`) unless `normalize` is
    False."""
    return {
        "name": name,
        "source": {
            "type": "rest",
            "client": {"base_url": api.base_url},
            "incremental": {"cursor_column": "updated_at"},
            "resource": {
                "path": "/offset/items",
                "data_selector": "items",
                "paginator": {"type": "offset", "limit": 25},
                "incremental": {"param": "since"},
            },
        },
        "destination": {"table": "items", **destination},
        "runtime": {"batch_size": 25, "commit_interval_seconds": 1e-9, "retries": 0},
        "normalization": {"enabled": normalize},
    }


def duckdb_destination(tmp_path: Path, **keys: Any) -> dict[str, Any]:
    return {"type": "duckdb", "database": str(tmp_path / "out.duckdb"), **keys}


def postgres_destination(server: PostgresServer, database: str, **keys: Any) -> dict[str, Any]:
    return {"type": "postgres", **server.connection_settings(database), **keys}


def duckdb_rows(tmp_path: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(tmp_path / "out.duckdb"), read_only=True) as con:
        return con.sql("SELECT id, name, amount, updated_at FROM items ORDER BY id").fetchall()


def postgres_rows(server: PostgresServer, database: str) -> list[tuple[Any, ...]]:
    connection = server.connect(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, name, amount, updated_at FROM items ORDER BY id")
            return cursor.fetchall()
    finally:
        connection.close()


def expected(api: DemoApi) -> list[tuple[int, str, float, datetime]]:
    return [
        (r["id"], r["name"], r["amount"], datetime.fromisoformat(r["updated_at"]))
        for r in sorted(api.records, key=lambda record: record["id"])
    ]


def comparable(rows: list[tuple[Any, ...]]) -> list[tuple[int, str, float, datetime]]:
    return [
        (int(id_), name, float(amount) if isinstance(amount, Decimal) else amount, at)
        for id_, name, amount, at in rows
    ]


def test_the_same_api_loads_into_duckdb_and_postgres_alike(
    api: DemoApi,
    tmp_path: Path,
    run: Runner,
    postgres_server: PostgresServer,
    postgres_database: str,
) -> None:
    run(recipe(api, duckdb_destination(tmp_path), "to_duckdb"))
    run(recipe(api, postgres_destination(postgres_server, postgres_database), "to_postgres"))

    assert comparable(duckdb_rows(tmp_path)) == expected(api)
    assert comparable(postgres_rows(postgres_server, postgres_database)) == expected(api)


@pytest.mark.parametrize("kill_at", [3, 9])
def test_a_killed_run_into_postgres_resumes_at_its_checkpointed_page(
    kill_at: int,
    api: DemoApi,
    tmp_path: Path,
    run: Runner,
    monkeypatch: pytest.MonkeyPatch,
    postgres_server: PostgresServer,
    postgres_database: str,
) -> None:
    loading = recipe(api, postgres_destination(postgres_server, postgres_database))
    with killed_at(kill_at), pytest.raises(Killed):
        run(loading)
    state = State.from_dict(LocalStateBackend(tmp_path / "state").load("items"))
    checkpoint = state.watermarks["rest"]["request"]
    committed = [row[0] for row in postgres_rows(postgres_server, postgres_database)]
    assert committed == list(range(1, len(committed) + 1))

    api.reset_log()
    run(loading)

    assert comparable(postgres_rows(postgres_server, postgres_database)) == expected(api)
    assert api.requests[0].query["offset"] == str(checkpoint["params"]["offset"])


def test_a_second_run_into_postgres_loads_only_new_records(
    api: DemoApi,
    tmp_path: Path,
    run: Runner,
    postgres_server: PostgresServer,
    postgres_database: str,
) -> None:
    loading = recipe(api, postgres_destination(postgres_server, postgres_database))
    run(loading)
    api.add_records(30)
    api.reset_log()

    second = run(loading)

    assert second.rows_written == 30
    assert "since" in api.requests[0].query
    assert comparable(postgres_rows(postgres_server, postgres_database)) == expected(api)


def test_merge_mode_replaces_updated_records_in_duckdb_and_postgres(
    api: DemoApi,
    tmp_path: Path,
    run: Runner,
    postgres_server: PostgresServer,
    postgres_database: str,
) -> None:
    merge = {"write_mode": "merge", "merge_keys": ["id"]}
    to_duckdb = recipe(api, duckdb_destination(tmp_path, **merge), "to_duckdb")
    to_postgres = recipe(
        api, postgres_destination(postgres_server, postgres_database, **merge), "to_postgres"
    )
    run(to_duckdb)
    run(to_postgres)

    api.update_record(3, name="Renamed 3")
    api.update_record(200, amount=1.5)
    api.add_records(4)
    assert run(to_duckdb).rows_written == 6
    assert run(to_postgres).rows_written == 6

    assert comparable(duckdb_rows(tmp_path)) == expected(api)
    assert comparable(postgres_rows(postgres_server, postgres_database)) == expected(api)
    assert len(expected(api)) == 254


def postgres_tags(server: PostgresServer, database: str) -> int:
    connection = server.connect(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM items__tags")
            return cursor.fetchone()[0]
    finally:
        connection.close()


def test_nested_values_normalize_alike_into_postgres(
    api: DemoApi,
    tmp_path: Path,
    run: Runner,
    postgres_server: PostgresServer,
    postgres_database: str,
) -> None:
    run(recipe(api, postgres_destination(postgres_server, postgres_database)))

    assert postgres_tags(postgres_server, postgres_database) == sum(
        len(record["tags"]) for record in api.records
    )


def test_a_second_run_of_nested_values_into_postgres_jsonb(
    api: DemoApi,
    tmp_path: Path,
    run: Runner,
    postgres_server: PostgresServer,
    postgres_database: str,
) -> None:
    loading = recipe(api, postgres_destination(postgres_server, postgres_database), normalize=False)
    run(loading)
    api.add_records(5)

    assert run(loading).rows_written == 5
