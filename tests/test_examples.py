"""The shipped example recipes: they validate, and re-running one loads the same table."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from e2e_support import duckdb_rows, run_cli

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def copy_examples(tmp_path: Path) -> Path:
    for part in ("recipes", "data"):
        shutil.copytree(EXAMPLES / part, tmp_path / "examples" / part)
    return tmp_path / "examples" / "recipes"


def test_every_orders_example_validates(tmp_path: Path, run_ok: Callable[..., str]) -> None:
    recipes = copy_examples(tmp_path)
    out = run_ok("validate", *map(str, sorted(recipes.glob("orders_*.yaml"))))
    assert "orders_paid_only" in out


def test_the_examples_directory_validates_with_its_base_recipe_skipped(
    tmp_path: Path, cli_env: dict
) -> None:
    copy_examples(tmp_path)
    secrets = {"GITHUB_TOKEN": "demo-token", "STRIPE_API_KEY": "sk_test_demo"}
    env = cli_env | {"DATALOADER_WAREHOUSE": "examples/out/warehouse.duckdb"} | secrets
    code, out, err = run_cli(("validate", "examples/recipes"), tmp_path, env)
    assert code == 0, out + err
    assert "base_recipe.yaml (abstract" in out
    assert out.count("✓") == len(list((EXAMPLES / "recipes").glob("*.yaml"))) - 1
    assert "sk_test_demo" not in out + err


def test_paid_orders_overwrite_is_the_same_table_on_every_run(
    tmp_path: Path, load: Callable[..., str]
) -> None:
    """An overwrite is a full read: unchanged input gives the same table, a new file adds to it."""
    recipes = copy_examples(tmp_path)
    warehouse = tmp_path / "examples" / "out" / "warehouse.duckdb"
    count = "SELECT count(*), sum(amount) FROM paid_orders"

    load(recipes / "orders_paid_only.yaml")
    first = duckdb_rows(warehouse, count)
    load(recipes / "orders_paid_only.yaml")
    assert duckdb_rows(warehouse, count) == first
    assert first[0][0] > 0

    march = "SELECT count(*) FROM paid_orders WHERE month(ordered_at) = 3"
    [(paid_in_march,)] = duckdb_rows(warehouse, march)
    orders = tmp_path / "examples" / "data" / "orders"
    shutil.copy(orders / "orders-2024-03.csv", orders / "orders-2024-04.csv")
    load(recipes / "orders_paid_only.yaml")
    [(rows, _)] = duckdb_rows(warehouse, count)
    assert rows == first[0][0] + paid_in_march  # all files again, March's rows twice


def test_nested_customers_become_the_same_four_tables_on_every_run(
    tmp_path: Path, load: Callable[..., str]
) -> None:
    """The nested example: structs into columns, lists into linked child tables; merged on
    `id`, so a second run of the same file leaves every table exactly as it was."""
    recipes = copy_examples(tmp_path)
    warehouse = tmp_path / "examples" / "out" / "warehouse.duckdb"
    tables = ["customers", "customers__orders", "customers__orders__items", "customers__tags"]

    def snapshot() -> dict[str, list[tuple]]:
        return {t: duckdb_rows(warehouse, f"SELECT * FROM {t} ORDER BY ALL") for t in tables}

    load(recipes / "customers_nested_to_duckdb.yaml")
    first = snapshot()
    load(recipes / "customers_nested_to_duckdb.yaml")
    assert snapshot() == first
    assert [len(first[t]) for t in tables] == [4, 4, 6, 3]
    [(orphans,)] = duckdb_rows(
        warehouse,
        "SELECT count(*) FROM customers__orders__items i LEFT JOIN customers__orders o "
        "ON i._dl_parent_id = o._dl_id WHERE o._dl_id IS NULL",
    )
    assert orphans == 0
    [(city,)] = duckdb_rows(warehouse, "SELECT address__city FROM customers WHERE id = 4")
    assert city == "Paris"
