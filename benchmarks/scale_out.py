"""A distributed run against the single-process run: Postgres → Parquet on a 2-worker cluster.

Generates N rows (default 2,000,000) of the `postgres` benchmark's `orders` table in a
throwaway PostgreSQL 15, starts a Dask local cluster of 2 worker processes (one thread each)
in this process, warms its workers with one small distributed run, then times, median of
`--repeat` (3) runs interleaved, each in a fresh driver process:
- single-process: the recipe with `runtime.executor: local` (the reference);
- on the running cluster: the same recipe with `executor: dask` and the cluster's `address`;
- with its own cluster: `executor: dask` without an address, so the run starts and stops a
  local cluster of 2 workers (what `dataloader run --executor dask` costs on one machine).
Each run checks its row count; the Parquet files of the last distributed run are compared
with the single-process run's (same rows, by a hash of each row's text). The driver logs one
line per staged partition; from them the benchmark prints the per-worker throughput (rows/s
of a partition's task in a warm worker) that `docs/distributed.md` plans with, and the
ratios of the distributed runs to the reference (issue 17's bound: within 1.3x).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from _measure import Measurement, measure
from postgres import TABLE_SQL

from dataloader_postgres.testing import PG_USER, PostgresServer

PASSWORD_VARIABLE = "DL_BENCH_PG_PASSWORD"
SETUP = "import dataloader, pyarrow, psycopg2\n"
# The driver process: runs the recipe, checks the rows, prints the staged partitions' figures.
DRIVER = """
import logging, re
from dataloader import run_recipe_from_yaml
figures = []
class Partitions(logging.Handler):
    def emit(self, record):
        found = re.match(r"partition (\\d+): ([0-9,]+) rows staged in ([0-9.]+)s", record.getMessage())
        if found:
            figures.append([int(found[1]), int(found[2].replace(",", "")), float(found[3])])
logging.getLogger("dataloader.engine").addHandler(Partitions())
logging.getLogger("dataloader.engine").setLevel(logging.INFO)
result = run_recipe_from_yaml({recipe!r}, state_dir={state!r})
assert result.rows_written == {rows}, result.rows_written
print("__PARTITIONS__" + json.dumps(figures))
"""
ROWS_HASH = "SELECT count(*), sum(hash(t::VARCHAR)) FROM read_parquet({files!r}) AS t"


def recipe(root: Path, name: str, port: int, runtime: str) -> Path:
    path = root / f"{name}.yaml"
    path.write_text(
        f"name: {name}\n"
        "source:\n  type: postgres\n  host: 127.0.0.1\n"
        f"  port: {port}\n  database: postgres\n  user: {PG_USER}\n"
        f"  password: \"{{{{ env_var('{PASSWORD_VARIABLE}') }}}}\"\n"
        "  table: orders\n  partition_column: order_id\n"
        f"destination:\n  type: filestore\n  path: {root / name}\n  format: parquet\n"
        f"runtime:\n{runtime}"
    )
    return path


def run(label: str, path: Path, state: Path, rows: int) -> tuple[Measurement, list[list[float]]]:
    """One fresh driver process: its measurement and its partitions' (index, rows, seconds)."""
    code = DRIVER.format(recipe=str(path), state=str(state), rows=rows)
    output: list[str] = []
    measured = measure(label, code, rows, setup=SETUP + "import json\n", output=output)
    line = next(x for x in output if x.startswith("__PARTITIONS__"))
    return measured, json.loads(line.removeprefix("__PARTITIONS__"))


def parquet_rows(directory: Path) -> tuple[int, int]:
    import duckdb

    files = str(directory / "*.parquet")
    with duckdb.connect() as con:
        count, total = con.execute(ROWS_HASH.format(files=files)).fetchall()[0]
    return count, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=100_000)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    with (
        PostgresServer() as server,
        tempfile.TemporaryDirectory(prefix="dl-distbench-") as tmp,
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster),
    ):
        root = Path(tmp)
        os.environ[PASSWORD_VARIABLE] = server.password
        connection = server.connect()
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(TABLE_SQL.replace("%(rows)s", str(args.rows)))
            cursor.execute("VACUUM ANALYZE orders")
            cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('orders'))")
            print(f"{args.rows:,} rows in orders ({cursor.fetchone()[0]})", flush=True)
        connection.close()
        base = f"  batch_size: {args.batch_size}\n  parallelism: 2\n"
        shapes = {
            "single-process": "  executor: local\n  parallelism: 1\n"
            f"  batch_size: {args.batch_size}\n",
            "dask, running cluster": f"  executor: dask\n  address: {cluster.scheduler_address}\n"
            + base,
            "dask, own local cluster": "  executor: dask\n" + base,
        }
        samples: dict[str, list[Measurement]] = {label: [] for label in shapes}
        partitions: dict[str, list[list[float]]] = {label: [] for label in shapes}
        # Untimed: the first task of each worker imports and registers the plugins.
        warm = recipe(root, "warm", server.port, shapes["dask, running cluster"])
        run("warm-up", warm, root / "state-warm", args.rows)
        for attempt in range(args.repeat):
            for number, (label, runtime) in enumerate(shapes.items()):
                name = f"run{number}_{attempt}"
                measured, figures = run(
                    label, recipe(root, name, server.port, runtime), root / f"s-{name}", args.rows
                )
                samples[label].append(measured)
                partitions[label] += figures
        reference = statistics.median(m.seconds for m in samples["single-process"])
        print(f"\nPostgres → Parquet, {args.rows:,} rows, median of {args.repeat}")
        print(f"{'run':<26} {'seconds':>8} {'rows/s':>11} {'peak MiB':>9} {'ratio':>7}")
        for label, measured in samples.items():
            seconds = statistics.median(m.seconds for m in measured)
            peak = max(m.peak_rss_mib for m in measured)
            print(
                f"{label:<26} {seconds:>8.2f} {args.rows / seconds:>11,.0f} {peak:>9.0f} "
                f"{seconds / reference:>6.2f}x"
            )
        staged = partitions["dask, running cluster"]
        rates = [rows / seconds for _, rows, seconds in staged if seconds > 0]
        print(
            f"\nper worker (a partition's task, warm worker): median "
            f"{statistics.median(rates):,.0f} rows/s over {len(rates)} tasks "
            f"(min {min(rates):,.0f}, max {max(rates):,.0f})"
        )
        local = parquet_rows(root / f"run0_{args.repeat - 1}")
        for number in (1, 2):
            assert parquet_rows(root / f"run{number}_{args.repeat - 1}") == local, number
        print(f"same rows in every run's Parquet files: {local[0]:,}")
        written = sum(
            f.stat().st_size for f in (root / f"run0_{args.repeat - 1}").glob("*.parquet")
        )
        print(f"Parquet written: {written / 2**20:,.1f} MiB, {written / args.rows:.1f} bytes/row")
        bound = statistics.median(m.seconds for m in samples["dask, running cluster"])
        verdict = "met" if bound / reference <= 1.3 else "NOT met"
        print(f"issue 17 bound, running cluster within 1.3x: {bound / reference:.2f}x, {verdict}")
        print(json.dumps({label: [m.seconds for m in ms] for label, ms in samples.items()}))


if __name__ == "__main__":
    main()
