"""The cost of the schema check: `SchemaManager.prepare` on every batch of the CSV → DuckDB run.

Generates the `csv_to_duckdb` files (default 2,000,000 rows), times `dataloader run` of the
append recipe in a fresh process (the reference), and in another fresh process reads the same
batches through the same source connector and times only the schema manager's work on them
(planning once per batch shape, casting, the NULL and key checks). Twice each, interleaved; the
fastest of each. The ratio is the check's share of a whole run; with `--contract` the recipe
declares every column with `nullable: false` and `order_id` unique, the most checking a batch
gets without a violation.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _measure import measure
from csv_to_duckdb import FILES, RECIPE, generate

CONTRACT = """
schema:
  columns:
    - {name: order_id, nullable: false, unique: true}
    - {name: customer_id, nullable: false}
    - {name: status, nullable: false}
    - {name: amount, nullable: false}
    - {name: quantity, nullable: false}
    - {name: ordered_at, nullable: false}
    - {name: note, nullable: false}
"""

CHECK_ONLY = """
from dataloader import from_yaml
from dataloader.batch import as_arrow_batch
from dataloader.context import RunContext
from dataloader.recipe.binding import bind_recipe
from dataloader.registry import get_registry
from dataloader.schema.manager import SchemaManager
from dataloader.state.model import State
from datetime import UTC, datetime

recipe = from_yaml({recipe!r})
bound = bind_recipe(recipe, get_registry())
source = bound.source.create()
source.open(RunContext(role="source", recipe_name=recipe.name, run_id="bench",
                       started_at=datetime.now(UTC), batch_size=recipe.runtime.batch_size))
batches = [as_arrow_batch(b).to_arrow() for b in source.read_batches(State())]
source.close()
manager = SchemaManager(recipe.table_schema, None)
_t0 = time.perf_counter()  # the reading above is not the check's
rows = sum(manager.prepare(batch).batch.num_rows for batch in batches)
assert rows == {rows}, rows
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--batch-size", type=int, default=250_000)
    parser.add_argument("--contract", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dl-bench-") as tmp:
        root = Path(tmp)
        data = root / "data"
        data.mkdir()
        generate(data, args.rows)
        print(f"{args.rows:,} rows in {FILES} CSV files")
        runs, checks = [], []
        for attempt in range(2):
            recipe = root / f"append-{attempt}.yaml"
            text = RECIPE.format(
                mode="append",
                data=data,
                db=root / f"append-{attempt}.duckdb",
                keys="",
                batch_size=args.batch_size,
            )
            recipe.write_text(text + (CONTRACT if args.contract else ""))
            runs.append(
                measure(
                    "dataloader append",
                    "from dataloader import run_recipe_from_yaml\n"
                    f"result = run_recipe_from_yaml({str(recipe)!r}, "
                    f"state_dir={str(root / f'state-{attempt}')!r})\n"
                    f"assert result.rows_written == {args.rows}, result.rows_written\n",
                    args.rows,
                    setup="import dataloader, duckdb, pyarrow\n",
                )
            )
            checks.append(
                measure(
                    "schema check only",
                    CHECK_ONLY.format(recipe=str(recipe), rows=args.rows),
                    args.rows,
                )
            )
        run = min(runs, key=lambda m: m.seconds)
        check = min(checks, key=lambda m: m.seconds)
        share = check.seconds / run.seconds
        contract = "with a contract" if args.contract else "no contract"
        print(f"{'step':<36} {'seconds':>9} {'ratio':>8}")
        print(f"{'dataloader run (reference)':<36} {run.seconds:>9.3f} {1:>7.3f}x")
        print(f"{'schema check, ' + contract:<36} {check.seconds:>9.3f} {share:>7.3f}x")


if __name__ == "__main__":
    main()
