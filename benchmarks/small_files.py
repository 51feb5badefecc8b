"""Many small files → DuckDB: commits grouped by `batch_size` rows beside a commit per file.

Writes N two-row CSV files (default 1,000) and loads them incrementally (`modified_time`) with
`dataloader run`, each in a fresh process: once with `commit_interval_seconds` near zero, which
commits after every batch (one per file: the reference, how the engine worked before commits
were grouped), and once with the defaults, which commit every `batch_size` rows.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _measure import measure, report

RECIPE = """
name: small_{label}
source:
  type: filestore
  path: {data}
  incremental: {{strategy: modified_time}}
destination:
  type: duckdb
  database: {db}
  table: t
runtime:
{runtime}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dl-bench-") as tmp:
        root = Path(tmp)
        data = root / "in"
        data.mkdir()
        for number in range(args.files):
            (data / f"f{number:06d}.csv").write_text(f"id,v\n{2 * number},x\n{2 * number + 1},y\n")
        rows = 2 * args.files
        print(f"{args.files:,} CSV files of 2 rows")
        runs = []
        for label, runtime in (
            ("per_file", "  commit_interval_seconds: 0.000001"),
            ("grouped", "  batch_size: 50000"),
        ):
            recipe = root / f"{label}.yaml"
            recipe.write_text(
                RECIPE.format(label=label, data=data, db=root / f"{label}.duckdb", runtime=runtime)
            )
            runs.append(
                measure(
                    f"commit {'per file (reference)' if label == 'per_file' else 'per batch_size'}",
                    f"from dataloader import run_recipe_from_yaml\n"
                    f"result = run_recipe_from_yaml({str(recipe)!r}, state_dir={str(root / 'state')!r})\n"
                    f"assert result.rows_written == {rows}, result.rows_written\n",
                    rows,
                    setup="import dataloader, duckdb, pyarrow\n",
                )
            )
        report("Small files → DuckDB", runs[0], runs[1:])


if __name__ == "__main__":
    main()
