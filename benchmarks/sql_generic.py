"""The generic `sql` connector (SQLAlchemy) on SQLite: table → table in another file, against
a hand-written loop over `sqlite3` (read every row, `executemany` them into a new table in one
transaction) measured in the same run.

Rows: `id`, `name` (text with non-ASCII), `amount` (decimal(12,2)), `at` (an instant), `flag`.
The dataloader runs are `append`, `merge` (on `id`, into an empty table) and `overwrite`, each
in a fresh process, CLI start-up and recipe loading included.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
from pathlib import Path

from _measure import measure, report

RECIPE = """
name: bench_{mode}
source:
  type: sql
  url: "sqlite:///{source}"
  table: src
destination:
  type: sql
  url: "sqlite:///{target}"
  table: dst_{mode}
  write_mode: {mode}
{keys}runtime:
  batch_size: 10000
"""

RUN = """
from dataloader import LocalStateBackend, from_yaml, run_recipe
result = run_recipe(from_yaml({recipe!r}), LocalStateBackend({state!r}))
assert result.status == "success" and result.rows_written == {rows}, result
"""

REFERENCE = """
import sqlite3
source = sqlite3.connect({source!r})
target = sqlite3.connect({target!r})
target.execute("CREATE TABLE ref (id INTEGER, name TEXT, amount DECIMAL_TEXT(12, 2), at TIMESTAMP, flag BOOLEAN)")
cursor = source.execute("SELECT id, name, amount, at, flag FROM src")
while rows := cursor.fetchmany(10000):
    target.executemany("INSERT INTO ref VALUES (?, ?, ?, ?, ?)", rows)
target.commit()
"""


def seed(path: Path, rows: int) -> None:
    connection = sqlite3.connect(path)
    connection.execute(
        "CREATE TABLE src (id INTEGER, name TEXT, amount DECIMAL_TEXT(12, 2), at TIMESTAMP, flag BOOLEAN)"
    )
    connection.executemany(
        "INSERT INTO src VALUES (?, ?, ?, ?, ?)",
        (
            (
                i,
                f"customer-{i % 977}-Zoë",
                f"{i % 100000}.{i % 100:02d}",
                f"2024-01-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:00.{i % 1000000:06d}",
                i % 2,
            )
            for i in range(rows)
        ),
    )
    connection.commit()
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        source = directory / "source.sqlite"
        seed(source, args.rows)
        target = directory / "target.sqlite"
        reference = measure(
            "sqlite3 executemany (reference)",
            REFERENCE.format(source=str(source), target=str(target)),
            args.rows,
        )
        runs = []
        for mode in ("append", "merge", "overwrite"):
            recipe = directory / f"bench_{mode}.yaml"
            keys = "  merge_keys: [id]\n" if mode == "merge" else ""
            recipe.write_text(
                RECIPE.format(mode=mode, source=source, target=target, keys=keys), "utf-8"
            )
            code = RUN.format(recipe=str(recipe), state=str(directory / "state"), rows=args.rows)
            runs.append(measure(f"dataloader sql {mode}", code, args.rows))
        report(f"SQLite → SQLite, {args.rows:,} rows", reference, runs)


if __name__ == "__main__":
    main()
