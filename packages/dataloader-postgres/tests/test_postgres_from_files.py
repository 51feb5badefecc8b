"""CSV files (the filestore connector) into Postgres: append and merge, in small batches."""

from __future__ import annotations

import csv
import os
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

HEADER = "id,name,amount,updated_at"
# Key 2 repeats across files and key 4 within one file; the later row of a key is the newer one.
FILES = {
    "part1.csv": [
        '1,"alice, a.",10.50,2024-01-01 10:00:00',
        "2,bob,20.00,2024-01-01 11:00:00",
        '3,"carol ""c""",30.25,2024-01-01 12:00:00',
    ],
    "part2.csv": [
        "2,bob v2,21.00,2024-01-02 11:00:00",
        "5,eve,50.00,2024-01-02 12:00:00",
        "4,dave,40.00,2024-01-02 13:00:00",
        "4,dave v2,41.00,2024-01-02 14:00:00",
    ],
}
CAST = {
    "type": "cast",
    "columns": {"amount": "decimal(12,2)", "updated_at": {"type": "datetime"}},
}


def write_files(directory: Path, files: dict[str, list[str]], mtime: int = 1_700_000_000) -> None:
    """The files, with increasing modification times from `mtime` (the order they are read in)."""
    directory.mkdir(parents=True, exist_ok=True)
    for index, (name, lines) in enumerate(files.items()):
        path = directory / name
        path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
        os.utime(path, (mtime + index, mtime + index))


def parsed(files: dict[str, list[str]]) -> list[tuple[Any, ...]]:
    rows = []
    for lines in files.values():
        for record in csv.reader(lines):
            rows.append(
                (
                    int(record[0]),
                    record[1],
                    Decimal(record[2]),
                    datetime.fromisoformat(record[3]),
                )
            )
    return rows


def recipe(pg: Any, tmp_path: Path, mode: str, **destination: Any) -> dict[str, Any]:
    return {
        "name": f"csv_{mode}",
        "source": {
            "type": "filestore",
            "path": str(tmp_path / "in" / "*.csv"),
            "incremental": {"strategy": "modified_time"},
        },
        "transform": {"steps": [CAST]},
        "destination": pg.destination("orders", mode, **destination),
        "runtime": {"batch_size": 2},
    }


def table(pg: Any) -> list[tuple[Any, ...]]:
    return pg.query("SELECT id, name, amount, updated_at FROM orders ORDER BY id, updated_at")


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_csv_files_into_postgres(pg: Any, run: Any, tmp_path: Path, mode: str) -> None:
    write_files(tmp_path / "in", FILES)
    extra = {"merge_keys": ["id"]} if mode == "merge" else {}
    pg.execute(
        "CREATE TABLE orders (id bigint, name text, amount numeric(12,2), updated_at timestamp)"
    )
    pg.execute(
        "INSERT INTO orders VALUES (1, 'old', 1, '2023-01-01'), (99, 'zed', 9.99, '2023-01-01')"
    )
    seed = [
        (1, "old", Decimal("1.00"), datetime(2023, 1, 1)),
        (99, "zed", Decimal("9.99"), datetime(2023, 1, 1)),
    ]
    result = run(recipe(pg, tmp_path, mode, **extra))
    assert result.rows_written == 7
    rows = parsed(FILES)
    if mode == "append":
        assert table(pg) == sorted(seed + rows, key=lambda r: (r[0], r[3]))
    else:
        latest = {row[0]: row for row in seed + rows}
        assert table(pg) == [latest[key] for key in sorted(latest)]
        assert [r[1] for r in table(pg)] == [
            "alice, a.",
            "bob v2",
            'carol "c"',
            "dave v2",
            "eve",
            "zed",
        ]

    # A second run reads only the new file; unchanged files are not read again.
    new = {
        "part3.csv": ["6,frank,60.00,2024-01-03 10:00:00", "1,alice v3,11.00,2024-01-03 11:00:00"]
    }
    write_files(tmp_path / "in", new, mtime=1_800_000_000)
    assert run(recipe(pg, tmp_path, mode, **extra)).rows_written == 2
    everything = seed + rows + parsed(new)
    if mode == "append":
        assert table(pg) == sorted(everything, key=lambda r: (r[0], r[3]))
    else:
        latest = {row[0]: row for row in everything}
        assert table(pg) == [latest[key] for key in sorted(latest)]
    committed = pg.scalar(
        "SELECT count(*) FROM _dataloader_state WHERE recipe = %s", (f"csv_{mode}",)
    )
    assert committed == 1
