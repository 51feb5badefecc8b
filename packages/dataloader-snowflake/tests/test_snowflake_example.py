"""The shipped example `orders_csv_to_snowflake.yaml` runs as written against fakesnow, its
connection taken from the environment as the recipe documents."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest

from dataloader import LocalStateBackend, RecipeLoader, run_recipe
from dataloader_snowflake.testing import FakeSnowflake

ROOT = Path(__file__).resolve().parents[3]
RECIPE = ROOT / "examples" / "recipes" / "orders_csv_to_snowflake.yaml"


def test_the_example_recipe_merges_the_orders_into_snowflake(
    snowflake_db: FakeSnowflake, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = snowflake_db.settings()
    for key in ("account", "user", "password", "database", "schema", "host", "port", "protocol"):
        monkeypatch.setenv(f"DATALOADER_SNOWFLAKE_{key.upper()}", str(settings[key]))
    monkeypatch.chdir(ROOT)  # the recipe's CSV path is relative to the project
    state = LocalStateBackend(tmp_path / "state")
    first = run_recipe(RecipeLoader().load(RECIPE), state)
    expected: dict[int, Decimal | None] = {}
    for path in sorted((ROOT / "examples" / "data" / "orders").glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                amount = row["amount"]
                expected[int(row["order_id"])] = Decimal(amount) if amount else None
    assert first.rows_written >= len(expected)
    rows = snowflake_db.query('SELECT "order_id", "amount" FROM "orders" ORDER BY "order_id"')
    assert dict(rows) == expected
    # Nothing new: a re-run loads nothing and the table is unchanged.
    assert run_recipe(RecipeLoader().load(RECIPE), state).rows_written == 0
    assert snowflake_db.query('SELECT COUNT(*) FROM "orders"') == [(len(expected),)]
