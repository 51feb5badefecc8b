"""DuckDB as a source: tables, queries, incremental cursors, and identifiers that need quoting."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dataloader import DataLoaderError, RunResult
from dataloader.recipe import RecipeLoader

Run = Callable[..., RunResult]


def duckdb_recipe(
    source_db: Path,
    dest_db: Path,
    *,
    name: str = "orders",
    source: dict[str, Any] | None = None,
    destination: dict[str, Any] | None = None,
    incremental: dict[str, Any] | None = None,
    batch_size: int = 50_000,
) -> dict[str, Any]:
    source = source or {}
    src = {"type": "duckdb", "database": str(source_db), **source}
    if "query" not in source:
        src.setdefault("table", "orders")
    if incremental is not None:
        src["incremental"] = incremental
    return {
        "name": name,
        "source": src,
        "destination": {
            "type": "duckdb",
            "database": str(dest_db),
            "table": "orders",
            **(destination or {}),
        },
        "runtime": {"batch_size": batch_size},
    }


@pytest.fixture
def orders(source_db: Path, sql: Any) -> Path:
    """A source table of 5 orders, `id` 1..5, `seq` = id * 10, one per day from 2024-01-01."""
    sql.execute(
        source_db,
        "CREATE TABLE orders (id INTEGER, seq BIGINT, customer VARCHAR, amount DECIMAL(12, 2), "
        "updated_at TIMESTAMPTZ)",
        "INSERT INTO orders SELECT i, i * 10, 'c' || (i % 2), i * 1.25, "
        "TIMESTAMPTZ '2024-01-01 00:00:00+00' + (i - 1) * INTERVAL 1 DAY FROM range(1, 6) t(i)",
    )
    return source_db


def test_table_source_copies_every_row_and_column_type(
    run: Run, orders: Path, dest_db: Path, sql: Any
) -> None:
    result = run(duckdb_recipe(orders, dest_db))

    assert result.status == "success"
    assert result.rows_read == result.rows_written == 5
    assert sql.query(dest_db, "SELECT * FROM orders ORDER BY id") == sql.query(
        orders, "SELECT * FROM orders ORDER BY id"
    )
    types = dict(sql.query(dest_db, "SELECT column_name, column_type FROM (DESCRIBE orders)"))
    assert types["amount"] == "DECIMAL(12,2)"
    assert types["updated_at"] == "TIMESTAMP WITH TIME ZONE"


def test_query_source_loads_the_query_result(
    run: Run, orders: Path, dest_db: Path, sql: Any
) -> None:
    recipe = duckdb_recipe(
        orders,
        dest_db,
        source={"query": "SELECT customer, sum(amount) AS total FROM orders GROUP BY customer"},
        destination={"table": "totals"},
    )

    result = run(recipe)

    assert result.rows_written == 2
    assert sql.query(dest_db, "SELECT customer, total FROM totals ORDER BY customer") == sql.query(
        orders, "SELECT customer, sum(amount) FROM orders GROUP BY customer ORDER BY customer"
    )


def test_yaml_recipe_from_recipe_loader_runs(
    run: Run, orders: Path, dest_db: Path, tmp_path: Path, sql: Any
) -> None:
    path = tmp_path / "orders.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            name: orders_yaml
            source:
              type: duckdb
              database: {str(orders)!r}
              query: SELECT id, amount FROM orders WHERE id > 2
              incremental:
                cursor_column: id
            destination:
              type: duckdb
              database: {str(dest_db)!r}
              table: analytics.orders
              write_mode: merge
              merge_keys: [id]
            runtime:
              batch_size: 2
            """
        ),
        encoding="utf-8",
    )
    recipe = RecipeLoader().load(path)

    result = run(recipe)

    assert result.rows_written == 3
    assert sql.query(dest_db, "SELECT id FROM analytics.orders ORDER BY id") == [(3,), (4,), (5,)]


def test_incremental_run_reads_only_rows_after_the_stored_cursor(
    run: Run, orders: Path, dest_db: Path, sql: Any
) -> None:
    recipe = duckdb_recipe(orders, dest_db, incremental={"cursor_column": "seq"}, batch_size=2)
    assert run(recipe).rows_written == 5

    sql.execute(
        orders,
        "INSERT INTO orders VALUES (6, 60, 'c0', 7.5, '2024-01-06 00:00:00+00'), "
        "(7, 5, 'late', 9, '2024-01-07 00:00:00+00')",  # seq 5 is below the cursor: not read
    )
    second = run(recipe)

    assert second.rows_read == 1
    assert sql.query(dest_db, "SELECT id FROM orders ORDER BY id") == [(i,) for i in range(1, 7)]
    assert run(recipe).rows_written == 0


def test_query_source_is_incremental_on_a_cursor_column(
    run: Run, orders: Path, dest_db: Path, sql: Any
) -> None:
    recipe = duckdb_recipe(
        orders,
        dest_db,
        source={"query": "SELECT id, seq * 2 AS doubled FROM orders"},
        destination={"table": "doubled"},
        incremental={"cursor_column": "doubled"},
    )
    run(recipe)
    sql.execute(orders, "INSERT INTO orders VALUES (6, 60, 'c0', 1, '2024-02-01 00:00:00+00')")

    assert run(recipe).rows_read == 1
    assert sql.query(dest_db, "SELECT max(doubled), count(*) FROM doubled") == [(120, 6)]


def test_initial_value_and_end_value_bound_a_backfill_window(
    run: Run, orders: Path, dest_db: Path, sql: Any, backend_state: Callable[[str], Any]
) -> None:
    recipe = duckdb_recipe(
        orders,
        dest_db,
        incremental={
            "cursor_column": "updated_at",
            "initial_value": "2024-01-02T00:00:00+00:00",  # exclusive
            "end_value": "2024-01-04T00:00:00+00:00",  # inclusive
        },
    )

    result = run(recipe)

    assert result.rows_written == 2
    assert sql.query(dest_db, "SELECT id FROM orders ORDER BY id") == [(3,), (4,)]
    assert backend_state("orders").cursor_values["updated_at"] == datetime(2024, 1, 4, tzinfo=UTC)


def test_lag_rereads_recent_rows_and_merge_keeps_keys_unique(
    run: Run, orders: Path, dest_db: Path, sql: Any, backend_state: Callable[[str], Any]
) -> None:
    recipe = duckdb_recipe(
        orders,
        dest_db,
        incremental={"cursor_column": "updated_at", "lag": "1d"},
        destination={"write_mode": "merge", "merge_keys": ["id"]},
        batch_size=2,
    )
    assert run(recipe).rows_written == 5  # up to 2024-01-05
    # A row that arrives late, 12h before the stored cursor, and a correction of order 5.
    sql.execute(
        orders,
        "INSERT INTO orders VALUES (6, 60, 'late', 1, '2024-01-04 12:00:00+00')",
        "UPDATE orders SET customer = 'fixed' WHERE id = 5",
    )

    second = run(recipe)

    # The window is (2024-01-04, ∞): order 5 is read again, the late order 6 is picked up.
    assert second.rows_read == 2
    rows = sql.query(dest_db, "SELECT id, customer FROM orders ORDER BY id")
    assert [row[0] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert dict(rows)[5] == "fixed"
    # The cursor never moves back because of the lag.
    assert backend_state("orders").cursor_values["updated_at"] == datetime(2024, 1, 5, tzinfo=UTC)


def test_integer_lag_subtracts_cursor_units(
    run: Run, orders: Path, dest_db: Path, sql: Any
) -> None:
    recipe = duckdb_recipe(
        orders,
        dest_db,
        incremental={"cursor_column": "seq", "lag": 15},
        destination={"write_mode": "merge", "merge_keys": ["id"]},
    )
    run(recipe)

    second = run(recipe)

    assert second.rows_read == 2  # seq 40 and 50 are > 50 - 15
    assert sql.query(dest_db, "SELECT count(*), count(DISTINCT id) FROM orders") == [(5, 5)]


def test_schema_qualified_source_and_destination(
    run: Run, source_db: Path, dest_db: Path, sql: Any
) -> None:
    sql.execute(
        source_db,
        "CREATE SCHEMA sales",
        "CREATE TABLE sales.orders AS SELECT range AS id FROM range(3)",
        "CREATE TABLE main.orders AS SELECT 99 AS id",  # must not be read instead
    )
    recipe = duckdb_recipe(
        source_db,
        dest_db,
        source={"table": "sales.orders"},
        destination={"table": "analytics.orders", "write_mode": "overwrite"},
    )

    run(recipe)
    run(recipe)

    assert sql.query(dest_db, "SELECT id FROM analytics.orders ORDER BY id") == [(0,), (1,), (2,)]
    assert "main.orders" not in sql.tables(dest_db)


@pytest.mark.parametrize("write_mode", ["append", "overwrite", "merge"])
def test_identifiers_with_spaces_capitals_and_quotes(
    run: Run, source_db: Path, dest_db: Path, sql: Any, write_mode: str
) -> None:
    sql.execute(
        source_db,
        'CREATE SCHEMA "Sales Data"',
        'CREATE TABLE "Sales Data"."My ""Odd"" Table" ("Order ID" INTEGER, "Amount" DOUBLE, '
        '"say ""hi""" VARCHAR, "Updated At" INTEGER)',
        'INSERT INTO "Sales Data"."My ""Odd"" Table" VALUES '
        "(1, 1.5, 'a', 10), (2, 2.5, 'b', 20), (3, 3.5, 'c', 30)",
    )
    recipe = duckdb_recipe(
        source_db,
        dest_db,
        source={"table": '"Sales Data"."My ""Odd"" Table"'},
        destination={
            "table": '"Dest Schema"."My ""Odd"" Table"',
            "write_mode": write_mode,
            **({"merge_keys": ["Order ID"]} if write_mode == "merge" else {}),
        },
        incremental=None if write_mode == "overwrite" else {"cursor_column": "Updated At"},
        batch_size=2,
    )

    run(recipe)
    sql.execute(
        source_db,
        'INSERT INTO "Sales Data"."My ""Odd"" Table" VALUES (4, 4.5, \'d\', 40)',
    )
    run(recipe)

    rows = sql.query(
        dest_db,
        'SELECT "Order ID", "Amount", "say ""hi""" FROM "Dest Schema"."My ""Odd"" Table" '
        'ORDER BY "Order ID"',
    )
    assert rows == [(1, 1.5, "a"), (2, 2.5, "b"), (3, 3.5, "c"), (4, 4.5, "d")]
    assert not [name for name in sql.tables(dest_db) if "_dl_stage_" in name]


def test_unknown_cursor_column_fails_naming_it(run: Run, orders: Path, dest_db: Path) -> None:
    recipe = duckdb_recipe(orders, dest_db, incremental={"cursor_column": "no_such_column"})

    with pytest.raises(DataLoaderError, match="no_such_column"):
        run(recipe)
