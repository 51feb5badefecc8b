"""Files of a useful size: a Parquet export cut into parts by size beside one part per batch.

Writes N rows (default 2,000,000) of a mixed-type `orders` table to one Parquet file, then
exports it with `dataloader run` to a filestore Parquet destination, each in a fresh process:
once with `rows_per_file` equal to `batch_size`, a part per batch (the reference, how the
destination worked before parts were cut by size), and once with the defaults (parts of about
`target_file_size`, 128 MiB). Reports time, peak RSS and the number of files written.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from _measure import measure, report

RECIPE = """
name: parts_{label}
source:
  type: filestore
  path: {source}
destination:
  type: filestore
  path: {out}
  format: parquet
{destination}
runtime:
  batch_size: 50000
"""


def orders(rows: int) -> pa.Table:
    ids = pa.array(range(rows), pa.int64())
    return pa.table(
        {
            "id": ids,
            "customer": pc.binary_join_element_wise(
                "customer ", pc.cast(pc.divide(ids, 7), pa.string()), ""
            ),
            "amount": pc.cast(pc.divide(pc.multiply(ids, 37), 100.0), pa.decimal128(12, 2)),
            "status": pc.if_else(pc.equal(pc.bit_wise_and(ids, 3), 0), "open", "shipped"),
            "updated_at": pc.cast(pc.add(ids, 1_700_000_000), pa.timestamp("s", tz="UTC")),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dl-bench-") as tmp:
        root = Path(tmp)
        source = root / "orders.parquet"
        pq.write_table(orders(args.rows), source)
        print(f"{args.rows:,} rows, {source.stat().st_size / 2**20:.0f} MiB of Parquet")
        runs, counts = [], []
        for label, destination in (
            ("per_batch", "  rows_per_file: 50000"),
            ("by_size", ""),
        ):
            out = root / label
            recipe = root / f"{label}.yaml"
            recipe.write_text(
                RECIPE.format(label=label, source=source, out=out, destination=destination)
            )
            title = "a part per batch (reference)" if label == "per_batch" else "parts by size"
            runs.append(
                measure(
                    title,
                    f"from dataloader import run_recipe_from_yaml\n"
                    f"result = run_recipe_from_yaml({str(recipe)!r}, state_dir={str(root / 'state')!r})\n"
                    f"assert result.rows_written == {args.rows}, result.rows_written\n",
                    args.rows,
                    setup="import dataloader, pyarrow, pyarrow.parquet\n",
                )
            )
            files = [p for p in out.iterdir() if p.suffix == ".parquet"]
            counts.append((title, len(files), sum(p.stat().st_size for p in files) / len(files)))
        report("Parquet export: files by size", runs[0], runs[1:])
        for title, count, mean in counts:
            print(f"{title:<34} {count:>5} files, {mean / 2**20:8.1f} MiB each on average")


if __name__ == "__main__":
    main()
