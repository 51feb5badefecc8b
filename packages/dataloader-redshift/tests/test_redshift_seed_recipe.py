"""The seed's example recipe (ARCHITECTURE.md §3), as shipped in examples/recipes/redshift/,
run as written: Postgres `public.customers` -> `type: redshift` (the PostgreSQL stand-in, no
S3 staging: the stage is filled by INSERT batches), merge on `id`, 4 parallel readers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dataloader import LocalStateBackend, RecipeLoader, run_recipe
from dataloader_postgres.testing import PostgresServer

RECIPE = (
    Path(__file__).resolve().parents[3]
    / "examples"
    / "recipes"
    / "redshift"
    / "customers_postgres_to_redshift.yaml"
)
START = datetime(2024, 1, 1, tzinfo=UTC)


def test_the_seed_recipe_runs_as_written_and_merges_changes(
    warehouse: Any,
    postgres_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    source_db = postgres_server.create_database()
    source = postgres_server.connect(source_db)
    source.autocommit = True
    cursor = source.cursor()
    cursor.execute(
        "CREATE TABLE public.customers (id bigint PRIMARY KEY, fname text, lname text, "
        "email text, updated_at timestamptz NOT NULL)"
    )
    cursor.execute(
        "INSERT INTO public.customers SELECT i, 'f' || i, 'l' || i, i || '@example.com', "
        "%s + i * interval '1 minute' FROM generate_series(1, 12000) AS i",
        (START,),
    )
    pg, dw = postgres_server.connection_settings(source_db), warehouse.settings()
    for name, value in {
        "DB_HOST": pg["host"],
        "DB_PORT": str(pg["port"]),
        "DB_NAME": source_db,
        "DB_USER": pg["user"],
        "DB_PASSWORD": pg["password"],
        "DW_HOST": dw["host"],
        "DW_PORT": str(dw["port"]),
        "DW_DB": dw["database"],
        "DW_USER": dw["user"],
        "DW_PASSWORD": dw["password"],
    }.items():
        monkeypatch.setenv(name, value)

    recipe = RecipeLoader().load(RECIPE)
    assert recipe.runtime.parallelism == 4 and recipe.runtime.batch_size == 5000
    state = LocalStateBackend(tmp_path / "state")
    first = run_recipe(recipe, state)
    assert first.rows_written == 12000
    count = "SELECT count(*), count(DISTINCT id), min(first_name), max(last_name) FROM dw.customers"
    assert warehouse.query(count) == [(12000, 12000, "f1", "l9999")]

    later = START + timedelta(days=30)
    cursor.execute(
        "UPDATE public.customers SET fname = 'changed', updated_at = %s WHERE id IN (5, 6)",
        (later,),
    )
    cursor.execute(
        "INSERT INTO public.customers VALUES (12001, 'new', 'row', 'n@example.com', %s)", (later,)
    )
    second = run_recipe(RecipeLoader().load(RECIPE), state)
    assert second.rows_written == 3
    assert warehouse.query(count)[0][:2] == (12001, 12001)
    assert warehouse.query(
        "SELECT id, first_name, last_name FROM dw.customers WHERE id IN (4, 5, 6, 12001) ORDER BY id"
    ) == [(4, "f4", "l4"), (5, "changed", "l5"), (6, "changed", "l6"), (12001, "new", "row")]
    source.close()
