"""Row hashing: the Rust accelerator's `hash_rows` beside the core's numpy path, same columns.

Builds N rows (default 1,000,000) of typical columns, deterministically: an int64 id, a
string name, a UTC timestamp, a float64 amount with NULLs, and a struct `address {city,
zip}`. Then hashes them with `dataloader.normalize.keys` (the pure numpy path) and with
`dataloader_rust.hashing`, each in a fresh process (the columns are built and the modules
imported untimed, before the clock starts), checks (untimed, in this process) that both give
the same hashes, and prints seconds, peak RSS and the ratio to the core. `--quick`: 100,000
rows.
"""

from __future__ import annotations

import argparse

import numpy as np
from _measure import measure, report

SETUP = """
import numpy as np
import pyarrow as pa
rng = np.random.default_rng(16)
n = {rows}
cities = np.array(["Lisbon", "Porto", "Braga", "Faro", "Coimbra", "Évora", "Aveiro", "Viseu"])
amount = rng.standard_normal(n) * 100
columns = [
    pa.array(np.arange(n, dtype=np.int64) * 7919),
    pa.array(np.char.add("customer-", np.arange(n).astype(str)).astype(object)),
    pa.array(1_600_000_000_000_000 + rng.integers(0, 10**14, n), pa.timestamp("us", "UTC")),
    pa.array(amount, mask=rng.random(n) < 0.1),
    pa.StructArray.from_arrays(
        [pa.array(cities[rng.integers(0, len(cities), n)]), pa.array(rng.integers(1000, 9999, n))],
        names=["city", "zip"],
    ),
]
names = ["id", "name", "created_at", "amount", "address"]
"""

IMPORTS = """
from dataloader.normalize import keys
from dataloader_rust import hashing
python_hash_rows = getattr(keys, "python_hash_rows", keys.hash_rows)
"""

CORE = "lanes = python_hash_rows(columns, names)\n"
RUST = "lanes = hashing.hash_rows(columns, names)\nassert lanes is not None\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 rows")
    args = parser.parse_args()
    rows = 100_000 if args.quick else args.rows

    setup = SETUP.format(rows=rows) + IMPORTS
    core = measure("core (numpy)", CORE, rows, setup=setup)
    rust = measure("dataloader-rust", RUST, rows, setup=setup)
    check: dict[str, object] = {}
    exec(setup + CORE + "expected = lanes\n" + RUST, check)
    if not np.array_equal(check["expected"], check["lanes"]):
        raise SystemExit("row_hash: the Rust hashes differ from the core's")
    report(f"Row hashing, {rows:,} rows x 5 columns (same hashes)", core, [rust])


if __name__ == "__main__":
    main()
