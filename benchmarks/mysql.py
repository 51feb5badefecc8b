"""Postgres → MariaDB append through `run_recipe`, against the `mariadb` client's LOAD DATA.

Starts a throwaway PostgreSQL and a throwaway MariaDB, generates N rows (default 2,000,000) of
an `orders` table (integers, a decimal, text, a timestamp, a date) in Postgres, and writes them
out with a server-side `COPY … TO` a CSV file (untimed). Then it times, each in the same run:
- the recipe Postgres → MariaDB (`write_mode: append` into a table that does not exist yet),
  in a fresh process, through `run_recipe_from_yaml`;
- the reference: the `mariadb` command-line client running `LOAD DATA LOCAL INFILE` of that
  CSV file into an empty table of the same definition (`CREATE TABLE … LIKE` the recipe's
  table); only the client command is timed.
Prints both times and their ratio.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from _measure import Measurement, measure, report

from dataloader_mysql.testing import DB_USER, MariaDBServer
from dataloader_postgres.testing import PostgresServer

TABLE_SQL = """
CREATE TABLE orders (
    order_id bigint PRIMARY KEY,
    customer_id integer NOT NULL,
    quantity integer,
    amount numeric(12,2),
    status text NOT NULL,
    note text,
    ordered_at timestamp NOT NULL,
    ship_date date
);
INSERT INTO orders
SELECT i,
       ((i::bigint * 7919) % 200000)::int,
       1 + i % 19,
       round(((i::bigint * 104729) % 500000) / 100.0, 2),
       (ARRAY['new','paid','shipped','cancelled','returned'])[1 + i % 5],
       CASE WHEN i % 10 = 0 THEN 'gift, "wrapped"' WHEN i % 7 = 0 THEN NULL
            ELSE 'standard delivery' END,
       timestamp '2024-01-01' + i * interval '1 second' + (i % 1000) * interval '1 millisecond',
       date '2024-01-01' + (i % 400)
FROM generate_series(1, %(rows)s) AS i;
ANALYZE orders;
"""
COLUMNS = "order_id, customer_id, quantity, amount, status, note, ordered_at, ship_date"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--batch-size", type=int, default=100_000)
    args = parser.parse_args()
    rows = args.rows
    with (
        PostgresServer() as pg,
        MariaDBServer() as maria,
        tempfile.TemporaryDirectory(prefix="dl-mysqlbench-") as tmp,
    ):
        root = Path(tmp)
        os.chmod(root, 0o777)  # the Postgres server (another OS user) writes the CSV file here
        pg_conn = pg.connect()
        pg_conn.autocommit = True
        cursor = pg_conn.cursor()
        cursor.execute(TABLE_SQL.replace("%(rows)s", str(rows)))
        csv_file = root / "orders.csv"
        # With `ESCAPED BY ''`, LOAD DATA reads an unquoted NULL as NULL (COPY quotes a text
        # value equal to its NULL string, so none is mistaken for one).
        cursor.execute(
            f"COPY (SELECT {COLUMNS} FROM orders ORDER BY order_id) TO '{csv_file}' "
            "(FORMAT csv, NULL 'NULL')"
        )
        pg_conn.close()
        print(f"{rows:,} rows in orders; CSV file {csv_file.stat().st_size / 2**20:.0f} MiB")

        database = maria.create_database()
        settings = {**pg.connection_settings(), "table": "orders"}
        target = {**maria.connection_settings(database), "table": "orders"}
        recipe = root / "pg_to_mariadb.yaml"
        lines = ["name: pg_to_mariadb", "source:", "  type: postgres"]
        lines += [f"  {key}: {value!r}" for key, value in settings.items()]
        lines += ["destination:", "  type: mysql", "  write_mode: append"]
        lines += [f"  {key}: {value!r}" for key, value in target.items()]
        lines += ["runtime:", f"  batch_size: {args.batch_size}"]
        recipe.write_text("\n".join(lines) + "\n")
        loaded = measure(
            "postgres → mariadb (run_recipe)",
            "from dataloader import run_recipe_from_yaml\n"
            f"result = run_recipe_from_yaml({str(recipe)!r}, state_dir={str(root / 'state')!r})\n"
            f"assert result.rows_written == {rows}, result.rows_written\n",
            rows,
            setup="import dataloader, pyarrow, psycopg2, pymysql, dataloader_mysql.connector\n",
        )

        maria_conn = maria.connect(database, autocommit=True)
        maria_cursor = maria_conn.cursor()
        maria_cursor.execute("CREATE TABLE reference LIKE orders")
        load = (
            f"LOAD DATA LOCAL INFILE '{csv_file}' INTO TABLE reference CHARACTER SET utf8mb4 "
            "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' "
            f"LINES TERMINATED BY '\\n' ({COLUMNS})"
        )
        client = [
            "mariadb",
            "--no-defaults",
            "--skip-ssl",
            "--local-infile=1",
            "-h",
            "127.0.0.1",
            "-P",
            str(maria.port),
            "-u",
            DB_USER,
            database,
            "-e",
            load,
        ]
        start = time.perf_counter()
        subprocess.run(client, check=True, env={**os.environ, "MYSQL_PWD": maria.password})
        reference_seconds = time.perf_counter() - start

        checks = {}
        for table in ("orders", "reference"):
            maria_cursor.execute(
                f"SELECT COUNT(*), SUM(amount), SUM(note IS NULL), MAX(ordered_at), "
                f"MIN(ship_date), SUM(CRC32(CONCAT_WS('|', {COLUMNS}))) FROM {table}"
            )
            checks[table] = maria_cursor.fetchone()
        maria_conn.close()
        assert checks["orders"] == checks["reference"], checks
        assert checks["orders"][0] == rows, checks

        reference = Measurement("mariadb client LOAD DATA LOCAL", reference_seconds, 0, rows)
        report(
            "Postgres → MariaDB append (ratio to the mariadb client's LOAD DATA)",
            reference,
            [loaded],
        )
        print(
            f"\nreference {reference_seconds:.2f} s, run_recipe {loaded.seconds:.2f} s: "
            f"ratio {loaded.seconds / reference_seconds:.2f}x (target 1.5x)"
        )


if __name__ == "__main__":
    main()
