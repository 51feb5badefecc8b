"""Nested JSONL → DuckDB parent + 2 child tables: dataloader's normalization beside DuckDB's own.

Generates N records (default 1,000,000) of nested JSONL, deterministically:
`{"id", "name", "address": {"city", "zip"}, "orders": [{"sku", "qty", "items": [{"n"}, ...]}]}`
(1 to 5 orders a record, 3 on average; 1 to 3 items an order, 2 on average). Then times, each
in a fresh process and into a fresh database file:

- the reference: DuckDB alone, `read_json` of the file into a temporary table, then `CREATE
  TABLE` of the parent (the struct flattened), the orders (`unnest`) and the items (`unnest` of
  `unnest`), each child with its link columns (the record's `id`, the positions);
- `dataloader run` of a filestore JSONL → DuckDB append recipe with `normalization: {enabled:
  true}`, which writes `customers`, `customers__orders` and `customers__orders__items`.

Prints seconds, peak RSS and the ratio to the reference at N and at N/4 (memory should not grow
with N), and checks that both give the same row counts. `--quick`: 50,000 records.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import duckdb
import numpy as np
from _measure import Measurement, measure

TABLES = ("customers", "customers__orders", "customers__orders__items")
CITIES = ("Lisbon", "Porto", "Braga", "Faro", "Coimbra", "Évora", "Aveiro", "Viseu")

RECIPE = """
name: bench_normalize
source:
  type: filestore
  path: {data}
  format: jsonl
destination:
  type: duckdb
  database: {db}
  table: customers
  write_mode: append
normalization: {{enabled: true}}
runtime:
  batch_size: {batch_size}
"""

REFERENCE = """
import duckdb
con = duckdb.connect({db!r})
con.execute("CREATE TEMP TABLE raw AS SELECT * FROM read_json({data!r}, format='newline_delimited')")
con.execute(
    "CREATE TABLE customers AS SELECT id, name, address.city AS address__city, "
    "address.zip AS address__zip FROM raw"
)
con.execute(
    "CREATE TEMP TABLE o AS SELECT id AS customer_id, generate_subscripts(orders, 1) - 1 "
    "AS order_idx, unnest(orders) AS o FROM raw"
)
con.execute(
    "CREATE TABLE customers__orders AS SELECT customer_id, order_idx, o.sku AS sku, "
    "o.qty AS qty FROM o"
)
con.execute(
    "CREATE TABLE customers__orders__items AS SELECT customer_id, order_idx, "
    "generate_subscripts(o.items, 1) - 1 AS item_idx, unnest(o.items).n AS n FROM o"
)
con.close()
"""


# The same tables with the same columns: DuckDB computes key columns like ours (a UUID from
# an MD5 of the record, of the parent's id and the position), so the comparison includes
# making and storing the keys, as the "into the same tables" asks.
SAME_TABLES = """
import duckdb
con = duckdb.connect({db!r})
con.execute(
    "CREATE TEMP TABLE raw AS SELECT *, md5(CAST(row(id, name, address, orders) AS VARCHAR))"
    "::UUID AS _dl_id FROM read_json({data!r}, format='newline_delimited')"
)
con.execute(
    "CREATE TABLE customers AS SELECT id, name, address.city AS address__city, "
    "address.zip AS address__zip, _dl_id FROM raw"
)
con.execute(
    "CREATE TEMP TABLE o AS SELECT _dl_id AS parent, generate_subscripts(orders, 1) - 1 "
    "AS idx, unnest(orders) AS o FROM raw"
)
con.execute(
    "CREATE TABLE customers__orders AS SELECT o.sku AS sku, o.qty AS qty, "
    "md5(parent::VARCHAR || ':orders:' || idx)::UUID AS _dl_id, parent AS _dl_parent_id, "
    "parent AS _dl_root_id, idx AS _dl_list_idx FROM o"
)
con.execute(
    "CREATE TABLE customers__orders__items AS SELECT item.n AS n, "
    "md5(order_id::VARCHAR || ':items:' || idx)::UUID AS _dl_id, order_id AS _dl_parent_id, "
    "root AS _dl_root_id, idx AS _dl_list_idx FROM (SELECT "
    "md5(parent::VARCHAR || ':orders:' || idx)::UUID AS order_id, parent AS root, "
    "generate_subscripts(o.items, 1) - 1 AS idx, unnest(o.items) AS item FROM o)"
)
con.close()
"""


def generate(path: Path, records: int, seed: int = 1) -> None:
    """Write `records` nested JSON lines to `path` (the same file for the same arguments)."""
    rng = np.random.default_rng(seed)
    with path.open("w", encoding="utf-8") as out:
        for start in range(0, records, 100_000):
            n = min(100_000, records - start)
            orders = rng.integers(1, 6, n)
            items = rng.integers(1, 4, int(orders.sum())).tolist()
            skus = rng.integers(0, 100_000, len(items)).tolist()
            qtys = rng.integers(1, 10, len(items)).tolist()
            cities = rng.integers(0, len(CITIES), n).tolist()
            lines, k = [], 0
            for row, count in enumerate(orders.tolist()):
                i = start + row
                parts = []
                for _ in range(count):
                    listed = ", ".join(f'{{"n": {j + 1}}}' for j in range(items[k]))
                    parts.append(
                        f'{{"sku": "SKU-{skus[k]:05d}", "qty": {qtys[k]}, "items": [{listed}]}}'
                    )
                    k += 1
                lines.append(
                    f'{{"id": {i}, "name": "customer {i}", "address": {{"city": '
                    f'"{CITIES[cities[row]]}", "zip": "{1000 + i % 9000}-{i % 1000:03d}"}}, '
                    f'"orders": [{", ".join(parts)}]}}\n'
                )
            out.write("".join(lines))


def counts(db: Path) -> tuple[int, ...]:
    """The row counts of the three tables in the database file `db`."""
    with duckdb.connect(str(db), read_only=True) as con:
        return tuple(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES)  # type: ignore[index]


def run_pair(root: Path, records: int, batch_sizes: list[int], tag: str) -> list[Measurement]:
    """Generate `records`, time the reference then dataloader at each batch size; check that
    their row counts agree."""
    data = root / f"customers-{tag}.jsonl"
    generate(data, records)
    size = data.stat().st_size / 2**20
    print(f"{records:,} records, {size:.0f} MiB of JSONL")
    ref_db = root / f"ref-{tag}.duckdb"
    reference = measure(
        "duckdb unnest (reference)",
        REFERENCE.format(db=str(ref_db), data=str(data)),
        records,
    )
    expected = counts(ref_db)
    same_db = root / f"same-{tag}.duckdb"
    same = measure(
        "duckdb, same tables with keys",
        SAME_TABLES.format(db=str(same_db), data=str(data)),
        records,
    )
    if counts(same_db) != expected:
        raise SystemExit(f"row counts differ: {counts(same_db)} against {expected}")
    print(
        "rows per table: " + ", ".join(f"{t} {c:,}" for t, c in zip(TABLES, expected, strict=True))
    )
    results = [reference, same]
    for batch_size in batch_sizes:
        recipe = root / f"recipe-{tag}-{batch_size}.yaml"
        db = root / f"dl-{tag}-{batch_size}.duckdb"
        recipe.write_text(RECIPE.format(data=data, db=db, batch_size=batch_size))
        state = root / f"state-{tag}-{batch_size}"
        results.append(
            measure(
                f"dataloader, batch_size {batch_size:,}",
                "from dataloader import run_recipe_from_yaml\n"
                f"result = run_recipe_from_yaml({str(recipe)!r}, state_dir={str(state)!r})\n"
                f"assert result.rows_written == {records}, result.rows_written\n",
                records,
                setup="import dataloader, duckdb, pyarrow\n",
            )
        )
        got = counts(db)
        if got != expected:
            raise SystemExit(f"row counts differ: reference {expected}, dataloader {got}")
        db.unlink()
    ref_db.unlink()
    same_db.unlink()
    data.unlink()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="50,000 records")
    parser.add_argument(
        "--batch-size", default="100000", help="runtime.batch_size, or several: 25000,100000"
    )
    args = parser.parse_args()
    records = 50_000 if args.quick else args.records
    sizes = [records // 4, records]
    batch_sizes = [int(size) for size in args.batch_size.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="dl-bench-") as tmp:
        for size in sizes:
            rows.append((size, run_pair(Path(tmp), size, batch_sizes, str(size))))
    print(
        f"\n{'records':>10} {'run':<34} {'seconds':>7} {'peak MiB':>8} {'/unnest':>8} {'/same':>7}"
    )
    for size, (reference, same, *loaded) in rows:
        for item in (reference, same, *loaded):
            print(
                f"{size:>10,} {item.label:<34} {item.seconds:>7.2f} {item.peak_rss_mib:>8.0f} "
                f"{item.seconds / reference.seconds:>7.2f}x {item.seconds / same.seconds:>6.2f}x"
            )


if __name__ == "__main__":
    main()
