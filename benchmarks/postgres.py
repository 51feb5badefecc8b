"""Postgres workloads against a throwaway PostgreSQL 15 server, beside the raw COPY ceilings.

Generates N rows (default 2,000,000) of a mixed-type `orders` table, then times, each in a fresh
process: Postgres → Parquet, Postgres → DuckDB, Postgres → Postgres (overwrite, merge) and
Parquet → Postgres. Reads are compared with `psql` running `COPY … TO STDOUT` into /dev/null,
writes with a server-side `COPY … FROM` a file of the same data, both measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from _measure import Measurement, measure, report

from dataloader_postgres.testing import PostgresServer

TABLE_SQL = """
CREATE TABLE orders (
    order_id bigint PRIMARY KEY,
    customer_id integer NOT NULL,
    status text NOT NULL,
    amount numeric(12,2),
    quantity integer,
    is_gift boolean,
    ordered_at timestamptz NOT NULL,
    updated_at timestamp NOT NULL,
    note text
);
INSERT INTO orders
SELECT i,
       ((i::bigint * 7919) % 200000)::int,
       (ARRAY['new','paid','shipped','cancelled','returned'])[1 + i % 5],
       round(((i::bigint * 104729) % 500000) / 100.0, 2),
       1 + i % 19,
       i % 10 = 0,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second',
       timestamp '2024-01-01' + i * interval '1 second',
       CASE WHEN i % 10 = 0 THEN 'gift, "wrapped"' ELSE 'standard delivery' END
FROM generate_series(1, %(rows)s) AS i;
ANALYZE orders;
"""


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def run_recipe_code(recipe: Path, state: Path, rows: int) -> str:
    return (
        "from dataloader import run_recipe_from_yaml\n"
        f"result = run_recipe_from_yaml({str(recipe)!r}, state_dir={str(state)!r})\n"
        f"assert result.rows_written == {rows}, result.rows_written\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--batch-size", type=int, default=100_000)
    parser.add_argument(
        "--parallelism",
        default="1,2,4",
        help="comma-separated runtime.parallelism values for the reads",
    )
    args = parser.parse_args()
    rows = args.rows
    with PostgresServer() as server, tempfile.TemporaryDirectory(prefix="dl-pgbench-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o777)
        connection = server.connect()
        connection.autocommit = True
        cursor = connection.cursor()
        cursor.execute(TABLE_SQL.replace("%(rows)s", str(rows)))
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('orders'))")
        print(f"{rows:,} rows in orders ({cursor.fetchone()[0]})")
        env = {**os.environ, "PGPASSWORD": server.password}
        psql = [
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(server.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-X",
            "-q",
            "-c",
        ]

        read_csv = timed([*psql, "COPY orders TO STDOUT (FORMAT csv)"], env)
        read_binary = timed([*psql, "COPY orders TO STDOUT (FORMAT binary)"], env)
        dump = root / "orders.csv"
        cursor.execute(f"COPY orders TO '{dump}' (FORMAT csv)")
        cursor.execute("CREATE TABLE ceiling (LIKE orders)")
        start = time.perf_counter()
        cursor.execute(f"COPY ceiling FROM '{dump}' (FORMAT csv)")
        write_ceiling = time.perf_counter() - start
        cursor.execute("DROP TABLE ceiling")

        settings = server.connection_settings()
        connection_yaml = "\n".join(f"  {key}: {value!r}" for key, value in settings.items())
        state = root / "state"

        def recipe(name: str, source: str, destination: str, parallelism: int = 1) -> Path:
            path = root / f"{name}.yaml"
            path.write_text(
                f"name: {name}\nsource:\n{source}\ndestination:\n{destination}\nruntime:\n  batch_size: {args.batch_size}\n  parallelism: {parallelism}\n"
            )
            return path

        pg_source = f"  type: postgres\n{connection_yaml}\n  table: orders"
        parquet_dir = root / "parquet"
        workloads: list[tuple[str, Path]] = [
            (
                "postgres → parquet",
                recipe(
                    "to_parquet",
                    pg_source,
                    f"  type: filestore\n  path: {parquet_dir}\n  format: parquet\n  write_mode: overwrite",
                ),
            ),
            (
                "postgres → duckdb",
                recipe(
                    "to_duckdb",
                    pg_source,
                    f"  type: duckdb\n  database: {root / 'w.duckdb'}\n  table: orders\n  write_mode: overwrite",
                ),
            ),
            (
                "postgres → postgres overwrite",
                recipe(
                    "to_pg_overwrite",
                    pg_source,
                    f"  type: postgres\n{connection_yaml}\n  table: copy.orders\n  write_mode: overwrite",
                ),
            ),
            (
                "postgres → postgres merge",
                recipe(
                    "to_pg_merge",
                    pg_source,
                    f"  type: postgres\n{connection_yaml}\n  table: merged.orders\n  write_mode: merge\n  merge_keys: [order_id]",
                ),
            ),
        ]
        results: dict[str, Measurement] = {}
        for label, path in workloads:
            results[label] = measure(
                label,
                run_recipe_code(path, state, rows),
                rows,
                setup="import dataloader, duckdb, pyarrow, sqlalchemy, psycopg2\n",
            )
        parquet_to_pg = recipe(
            "parquet_to_pg",
            f"  type: filestore\n  path: {parquet_dir}\n  format: parquet",
            f"  type: postgres\n{connection_yaml}\n  table: from_parquet.orders\n  write_mode: append",
        )
        results["parquet → postgres"] = measure(
            "parquet → postgres",
            run_recipe_code(parquet_to_pg, state, rows),
            rows,
            setup="import dataloader, duckdb, pyarrow, sqlalchemy, psycopg2\n",
        )
        half = recipe(
            "to_parquet_quarter",
            f"{pg_source}\n  where: order_id <= {rows // 4}",
            f"  type: filestore\n  path: {root / 'quarter'}\n  format: parquet",
        )
        quarter = measure(
            "postgres → parquet (N/4 rows)",
            run_recipe_code(half, state, rows // 4),
            rows // 4,
            setup="import dataloader, duckdb, pyarrow, sqlalchemy, psycopg2\n",
        )

        levels = [int(x) for x in args.parallelism.split(",") if x.strip()]
        parallel: list[Measurement] = []
        for level in levels:
            for label, destination in (
                (
                    "parquet",
                    f"  type: filestore\n  path: {root / f'par{level}'}\n  format: parquet\n  write_mode: overwrite",
                ),
                (
                    "duckdb",
                    f"  type: duckdb\n  database: {root / f'par{level}.duckdb'}\n  table: orders\n  write_mode: overwrite",
                ),
            ):
                path = recipe(f"par_{label}_{level}", pg_source, destination, parallelism=level)
                parallel.append(
                    measure(
                        f"postgres → {label} parallelism {level}",
                        run_recipe_code(path, state, rows),
                        rows,
                        setup="import dataloader, duckdb, pyarrow, sqlalchemy, psycopg2\n",
                    )
                )

        read_reference = Measurement("psql COPY TO STDOUT csv (ceiling)", read_csv, 0, rows)
        report(
            "Reads (ratio to psql COPY csv)",
            read_reference,
            [
                Measurement("psql COPY TO STDOUT binary", read_binary, 0, rows),
                *(results[k] for k in ("postgres → parquet", "postgres → duckdb")),
                quarter,
            ],
        )
        report("Reads by runtime.parallelism (ratio to psql COPY csv)", read_reference, parallel)
        write_reference = Measurement("server COPY FROM file (ceiling)", write_ceiling, 0, rows)
        report(
            "Writes (ratio to server-side COPY FROM)",
            write_reference,
            [
                results[k]
                for k in (
                    "parquet → postgres",
                    "postgres → postgres overwrite",
                    "postgres → postgres merge",
                )
            ],
        )
        print(
            f"\npeak memory: {results['postgres → parquet'].peak_rss_mib:.0f} MiB for {rows:,} rows, {quarter.peak_rss_mib:.0f} MiB for {rows // 4:,} rows"
        )


if __name__ == "__main__":
    main()
