"""Print what the quickstart loaded: the DuckDB table and the Parquet files written from it."""

from pathlib import Path

import duckdb
import pyarrow.parquet as pq

OUT = Path("examples/out")

with duckdb.connect(str(OUT / "warehouse.duckdb"), read_only=True) as con:
    print(
        con.sql(
            "SELECT status, count(*) AS orders, sum(amount) AS amount FROM orders GROUP BY status ORDER BY status"
        )
    )
    print(
        con.sql(
            "SELECT order_id, customer, amount, ordered_at FROM orders ORDER BY order_id LIMIT 5"
        )
    )

files = sorted((OUT / "orders_parquet").glob("*.parquet"))
rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
print(f"{len(files)} Parquet file(s) in {OUT / 'orders_parquet'} with {rows} rows")
