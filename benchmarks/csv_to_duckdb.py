"""CSV files → DuckDB: dataloader beside DuckDB's own `read_csv` of the same files.

Generates N rows (default 2,000,000) of a mixed-type orders table as 8 CSV files, then times,
each in a fresh process: DuckDB `CREATE TABLE AS SELECT * FROM read_csv(...)` (the reference),
and `dataloader run` of a recipe loading the same files (append and merge). Prints rows/s, peak
memory and the time ratio to the reference.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from _measure import measure, report

FILES = 8


def generate(directory: Path, rows: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    per_file = rows // FILES
    statuses = np.array(["new", "paid", "shipped", "cancelled", "returned"])
    for index in range(FILES):
        start = index * per_file
        n = per_file if index < FILES - 1 else rows - start
        ids = np.arange(start + 1, start + n + 1)
        table = pa.table(
            {
                "order_id": ids,
                "customer_id": rng.integers(1, 200_000, n),
                "status": statuses[rng.integers(0, len(statuses), n)],
                "amount": np.round(rng.uniform(0, 5000, n), 2),
                "quantity": rng.integers(1, 20, n).astype(np.int32),
                "ordered_at": pa.array(
                    (1_700_000_000_000_000 + ids * 1_000_000).astype("datetime64[us]")
                ),
                "note": np.where(rng.random(n) < 0.1, 'gift, "wrapped"', "standard delivery"),
            }
        )
        pacsv.write_csv(table, directory / f"orders-{index}.csv")


RECIPE = """
name: bench_{mode}
source:
  type: filestore
  path: {data}/*.csv
destination:
  type: duckdb
  database: {db}
  table: orders
  write_mode: {mode}
{keys}
runtime:
  batch_size: {batch_size}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--batch-size", type=int, default=250_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dl-bench-") as tmp:
        root = Path(tmp)
        data = root / "data"
        data.mkdir()
        generate(data, args.rows)
        size = sum(f.stat().st_size for f in data.glob("*.csv")) / 2**20
        print(f"{args.rows:,} rows in {FILES} CSV files, {size:.0f} MiB")
        reference = measure(
            "duckdb read_csv (reference)",
            f"import duckdb\ncon = duckdb.connect({str(root / 'ref.duckdb')!r})\n"
            f"con.execute(\"CREATE TABLE orders AS SELECT * FROM read_csv('{data}/*.csv')\")\ncon.close()\n",
            args.rows,
        )
        results = []
        for mode in ("append", "merge"):
            recipe = root / f"{mode}.yaml"
            keys = "  merge_keys: [order_id]" if mode == "merge" else ""
            recipe.write_text(
                RECIPE.format(
                    mode=mode,
                    data=data,
                    db=root / f"{mode}.duckdb",
                    keys=keys,
                    batch_size=args.batch_size,
                )
            )
            results.append(
                measure(
                    f"dataloader {mode}",
                    f"from dataloader import run_recipe_from_yaml\n"
                    f"result = run_recipe_from_yaml({str(recipe)!r}, state_dir={str(root / 'state')!r})\n"
                    f"assert result.rows_written == {args.rows}, result.rows_written\n",
                    args.rows,
                    setup="import dataloader, duckdb, pyarrow\n",
                )
            )
        report("CSV → DuckDB", reference, results)


if __name__ == "__main__":
    main()
