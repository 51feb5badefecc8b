"""The example recipe `examples/recipes/orders_csv_to_sqlite.yaml` runs as written: the orders
CSV files merged into a SQLite file through `type: sql`, new files only on the next run."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest
from sql_support import read_table

from dataloader import LocalStateBackend, from_yaml, run_recipe

ROOT = Path(__file__).resolve().parents[3]


def test_orders_csv_to_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = tmp_path / "orders.sqlite"
    monkeypatch.chdir(ROOT)  # the recipe's paths are relative to the repository
    monkeypatch.setenv("DATALOADER_SQLITE", str(database))
    recipe = from_yaml(ROOT / "examples" / "recipes" / "orders_csv_to_sqlite.yaml")
    orders: dict[int, dict[str, str]] = {}
    for path in sorted((ROOT / "examples" / "data" / "orders").glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            orders.update({int(row["order_id"]): row for row in csv.DictReader(handle)})

    first = run_recipe(recipe, LocalStateBackend(tmp_path / "state"))
    assert first.status == "success"
    again = run_recipe(recipe, LocalStateBackend(tmp_path / "state"))
    assert again.rows_read == 0

    table = read_table(f"sqlite:///{database}", "orders").sort_by("order_id")
    assert table.num_rows == len(orders)
    assert table.column("order_id").to_pylist() == sorted(orders)
    loaded = {row["order_id"]: row for row in table.to_pylist()}
    for order_id, row in orders.items():
        amount = Decimal(row["amount"]) if row["amount"] else None  # some amounts are empty
        assert loaded[order_id]["amount"] == amount, order_id
        assert loaded[order_id]["customer"] == row["customer"]
        assert loaded[order_id]["ordered_at"].tzinfo is not None
