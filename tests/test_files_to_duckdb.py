"""Files → DuckDB, DuckDB → Parquet and incremental loads, all through the CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from e2e_support import (
    duckdb_rows,
    duckdb_table,
    sorted_rows,
    visible_parquet,
    write_recipe,
)

# -- files → DuckDB, every format and write mode -------------------------------------------

COLUMNS = ["id", "name", "amount", "updated_at"]
# Two files; with batch_size 2 the second file is cut into [2, 5] and [4, 4]: key 2 repeats
# across files (and batches), key 4 within one batch. The later row of a key is the newer one.
FILE_ROWS = {
    "part1": [
        (1, "alice", "10.50", "2024-01-01 10:00:00"),
        (2, "bob", "20.00", "2024-01-01 11:00:00"),
        (3, "carol", "30.25", "2024-01-01 12:00:00"),
    ],
    "part2": [
        (2, "bob v2", "21.00", "2024-01-02 11:00:00"),
        (5, "eve", "50.00", "2024-01-02 12:00:00"),
        (4, "dave", "40.00", "2024-01-02 13:00:00"),
        (4, "dave v2", "41.00", "2024-01-02 14:00:00"),
    ],
}
SEED = [
    (1, "old alice", "1.00", "2023-01-01 00:00:00"),
    (99, "zed", "9.99", "2023-01-01 00:00:00"),
]


def _typed(rows: list[tuple]) -> list[tuple]:
    return [(i, n, Decimal(a), datetime.fromisoformat(t)) for i, n, a, t in rows]


def _write_source(directory: Path, fmt: str) -> None:
    directory.mkdir(parents=True)
    for stem, rows in FILE_ROWS.items():
        path = directory / f"{stem}.{fmt}"
        if fmt == "csv":
            lines = [",".join(COLUMNS)] + [",".join(map(str, row)) for row in rows]
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        elif fmt == "jsonl":
            lines = [
                json.dumps({"id": i, "name": n, "amount": float(a), "updated_at": t})
                for i, n, a, t in rows
            ]
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        else:
            table = pa.table({c: [row[k] for row in rows] for k, c in enumerate(COLUMNS)})
            pq.write_table(table, path)


def _seed(database: Path, tables: list[str]) -> None:
    con = duckdb.connect(str(database))
    try:
        for table in tables:
            con.execute(
                f"CREATE TABLE {table} (id BIGINT, name VARCHAR, amount DECIMAL(12,2), updated_at TIMESTAMP)"
            )
            con.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?)", SEED)
    finally:
        con.close()


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_files_to_duckdb_each_write_mode(
    tmp_path: Path, load: Callable[..., str], fmt: str
) -> None:
    _write_source(tmp_path / "in", fmt)
    database = tmp_path / "warehouse.duckdb"
    modes = {"append": {}, "overwrite": {}, "merge": {"merge_keys": ["id"]}}
    _seed(database, [f"t_{mode}" for mode in modes])
    recipes = []
    for mode, extra in modes.items():
        recipes.append(
            write_recipe(
                tmp_path / f"{fmt}_{mode}.yaml",
                {
                    "name": f"{fmt}_{mode}",
                    "source": {"type": "filestore", "path": f"in/*.{fmt}"},
                    "transform": {
                        "steps": [
                            {
                                "type": "cast",
                                "columns": {
                                    "amount": "decimal(12,2)",
                                    "updated_at": {"type": "datetime"},
                                },
                            }
                        ]
                    },
                    "destination": {
                        "type": "duckdb",
                        "database": "warehouse.duckdb",
                        "table": f"t_{mode}",
                        "write_mode": mode,
                        **extra,
                    },
                    "runtime": {"batch_size": 2},
                },
            ).name
        )
    load(*recipes)

    source = _typed(FILE_ROWS["part1"] + FILE_ROWS["part2"])
    seed = _typed(SEED)
    query = "SELECT id, name, amount, updated_at FROM {} ORDER BY id, updated_at, name"
    assert duckdb_rows(database, query.format("t_append")) == sorted(
        seed + source, key=lambda r: (r[0], r[3], r[1])
    )
    assert duckdb_rows(database, query.format("t_overwrite")) == sorted(
        source, key=lambda r: (r[0], r[3], r[1])
    )
    latest = {row[0]: row for row in seed + source}  # later rows win, as they are newer
    assert duckdb_rows(database, query.format("t_merge")) == [latest[k] for k in sorted(latest)]
    assert [r[1] for r in duckdb_rows(database, query.format("t_merge"))] == [
        "alice",
        "bob v2",
        "carol",
        "dave v2",
        "eve",
        "zed",
    ]


# -- DuckDB → Parquet ----------------------------------------------------------------------


def _make_source_table(database: Path, ids: range, version: str) -> None:
    con = duckdb.connect(str(database))
    try:
        con.execute(
            "CREATE OR REPLACE TABLE items (id BIGINT, label VARCHAR, price DECIMAL(12,2), "
            "seen_at TIMESTAMP, day DATE, ratio DOUBLE, flag BOOLEAN, note VARCHAR)"
        )
        con.execute(
            """
            INSERT INTO items
            SELECT i, ? || '-' || i, (i * 1.25)::DECIMAL(12,2),
                   TIMESTAMP '2024-03-01 00:00:00' + INTERVAL (i) MINUTE,
                   DATE '2024-03-01' + i::INTEGER, i / 3.0, i % 2 = 0,
                   CASE WHEN i % 5 = 0 THEN NULL ELSE 'n' || i END
            FROM range(?, ?) t(i)
            """,
            [version, ids.start, ids.stop],
        )
    finally:
        con.close()


def test_duckdb_to_parquet_append_and_overwrite(tmp_path: Path, load: Callable[..., str]) -> None:
    source_db = tmp_path / "source.duckdb"
    for mode in ("append", "overwrite"):
        write_recipe(
            tmp_path / f"pq_{mode}.yaml",
            {
                "name": f"pq_{mode}",
                "source": {"type": "duckdb", "database": "source.duckdb", "table": "items"},
                "destination": {
                    "type": "filestore",
                    "path": f"out_{mode}",
                    "format": "parquet",
                    "write_mode": mode,
                },
                "runtime": {"batch_size": 40},
            },
        )

    _make_source_table(source_db, range(0, 100), "v1")
    first = duckdb_table(source_db, "items")
    load("pq_append.yaml", "pq_overwrite.yaml")
    assert sorted_rows(visible_parquet(tmp_path / "out_append"), "id") == sorted_rows(first, "id")
    assert sorted_rows(visible_parquet(tmp_path / "out_overwrite"), "id") == sorted_rows(
        first, "id"
    )
    assert visible_parquet(tmp_path / "out_append").schema.field("price").type == pa.decimal128(
        12, 2
    )

    _make_source_table(source_db, range(50, 130), "v2")
    second = duckdb_table(source_db, "items")
    load("pq_append.yaml", "pq_overwrite.yaml")
    appended = pa.concat_tables([first, second])
    assert sorted_rows(visible_parquet(tmp_path / "out_append"), ["id", "label"]) == sorted_rows(
        appended, ["id", "label"]
    )
    assert sorted_rows(visible_parquet(tmp_path / "out_overwrite"), "id") == sorted_rows(
        second, "id"
    )
    for directory in ("out_append", "out_overwrite"):
        leftovers = [p.name for p in (tmp_path / directory).iterdir() if p.name.endswith(".tmp")]
        assert leftovers == []


# -- incremental: files by modification time -----------------------------------------------

T0 = 1_700_000_000


def _csv(path: Path, rows: list[tuple[int, str]], mtime: int) -> None:
    path.write_text("id,name\n" + "".join(f"{i},{n}\n" for i, n in rows), encoding="utf-8")
    os.utime(path, (mtime, mtime))


def test_filestore_incremental_reads_new_and_changed_files_only(
    tmp_path: Path, load: Callable[..., str], show_state: Callable[..., dict]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _csv(data / "a.csv", [(1, "a1"), (2, "a2"), (3, "a3")], T0)
    _csv(data / "b.csv", [(4, "b1"), (5, "b2"), (6, "b3")], T0 + 10)
    _csv(data / "c.csv", [(7, "c1"), (8, "c2"), (9, "c3")], T0 + 20)
    write_recipe(
        tmp_path / "files.yaml",
        {
            "name": "files_inc",
            "source": {
                "type": "filestore",
                "path": "data/*.csv",
                "incremental": {"strategy": "modified_time"},
            },
            "destination": {
                "type": "duckdb",
                "database": "w.duckdb",
                "table": "people",
                "write_mode": "merge",
                "merge_keys": ["id"],
            },
            "runtime": {"batch_size": 2},
        },
    )
    load("files.yaml")

    # A new file, and a file rewritten with the same size but other content and a later mtime.
    _csv(data / "d.csv", [(10, "d1"), (11, "d2")], T0 + 30)
    size_before = (data / "b.csv").stat().st_size
    _csv(data / "b.csv", [(4, "B1"), (5, "B2"), (6, "B3")], T0 + 40)
    assert (data / "b.csv").stat().st_size == size_before
    load("files.yaml")
    load("files.yaml")  # nothing changed: reads nothing

    runs = show_state("files.yaml")["checkpoints"]
    assert [run["status"] for run in runs] == ["success"] * 3
    assert [run["rows_read"] for run in runs] == [9, 5, 0]
    assert duckdb_rows(tmp_path / "w.duckdb", "SELECT id, name FROM people ORDER BY id") == [
        (1, "a1"),
        (2, "a2"),
        (3, "a3"),
        (4, "B1"),
        (5, "B2"),
        (6, "B3"),
        (7, "c1"),
        (8, "c2"),
        (9, "c3"),
        (10, "d1"),
        (11, "d2"),
    ]


# -- incremental: a cursor column, with ties at batch boundaries ---------------------------


def _insert_events(database: Path, rows: list[tuple[int, int, str]]) -> None:
    """(id, seconds after 2024-01-01, value) rows into `events`, created when missing."""
    con = duckdb.connect(str(database))
    try:
        con.execute(
            "CREATE TABLE IF NOT EXISTS events (id BIGINT, updated_at TIMESTAMP, val VARCHAR)"
        )
        for key, seconds, value in rows:
            con.execute("DELETE FROM events WHERE id = ?", [key])
            con.execute(
                "INSERT INTO events VALUES (?, TIMESTAMP '2024-01-01' + to_seconds(?), ?)",
                [key, seconds, value],
            )
    finally:
        con.close()


def _at(seconds: int) -> datetime:
    return datetime(2024, 1, 1, 0, 0, seconds)


def test_duckdb_cursor_incremental_merge_with_ties(
    tmp_path: Path, load: Callable[..., str], show_state: Callable[..., dict]
) -> None:
    source = tmp_path / "source.duckdb"
    # batch_size 3 cuts [1 2 2 | 2 2 3 | 4 4 4 | 4]: boundaries fall inside runs of 2s and of
    # 4s, and the run of 4s (the first run's max cursor) spans the last boundary.
    first = [
        (k, s, f"v{k}") for k, s in zip(range(1, 11), [1, 2, 2, 2, 2, 3, 4, 4, 4, 4], strict=True)
    ]
    _insert_events(source, first)
    for mode, extra in (("merge", {"merge_keys": ["id"]}), ("append", {})):
        write_recipe(
            tmp_path / f"cursor_{mode}.yaml",
            {
                "name": f"cursor_{mode}",
                "source": {
                    "type": "duckdb",
                    "database": "source.duckdb",
                    "table": "events",
                    "incremental": {"cursor_column": "updated_at"},
                },
                "destination": {
                    "type": "duckdb",
                    "database": "dest.duckdb",
                    "table": f"events_{mode}",
                    "write_mode": mode,
                    **extra,
                },
                "runtime": {"batch_size": 3},
            },
        )
    load("cursor_merge.yaml", "cursor_append.yaml")

    # New rows, more ties across boundaries, and key 3 updated with a newer cursor.
    second = [(k, s, f"v{k}") for k, s in zip(range(11, 18), [5, 5, 5, 5, 6, 6, 6], strict=True)]
    second.append((3, 6, "v3 updated"))
    _insert_events(source, second)
    load("cursor_merge.yaml", "cursor_append.yaml")

    # The second run reads the 8 newer rows only: no tie at the first run's max is read again.
    state = show_state("cursor_merge.yaml")
    assert [run["rows_read"] for run in state["checkpoints"]] == [10, 8]
    assert state["cursor_values"] == {"updated_at": {"$datetime": "2024-01-01T00:00:06.000000"}}
    dest = tmp_path / "dest.duckdb"
    expected_merge = {k: (k, _at(s), v) for k, s, v in first + second}
    assert duckdb_rows(dest, "SELECT * FROM events_merge ORDER BY id") == [
        expected_merge[k] for k in sorted(expected_merge)
    ]
    expected_append = sorted((k, _at(s), v) for k, s, v in first + second)
    assert duckdb_rows(dest, "SELECT * FROM events_append ORDER BY id, updated_at") == (
        expected_append
    )


def test_duckdb_cursor_initial_and_end_values(
    tmp_path: Path, load: Callable[..., str], show_state: Callable[..., dict]
) -> None:
    con = duckdb.connect(str(tmp_path / "source.duckdb"))
    con.execute(
        "CREATE TABLE seqs AS SELECT i AS id, i // 2 AS seq, "
        "TIMESTAMP '2024-01-01' + to_hours(i // 2) AS at FROM range(0, 20) t(i)"
    )
    con.close()

    def recipes(bounded: bool) -> None:
        """`window` on the integer `seq`; `window_ts` on the timestamp `at`, bounds as text."""
        for name, column, low, high in (
            ("window", "seq", 2, 5),
            ("window_ts", "at", "2024-01-01 02:00:00", "2024-01-01T05:00:00"),
        ):
            window = {"initial_value": low, **({"end_value": high} if bounded else {})}
            write_recipe(
                tmp_path / f"{name}.yaml",
                {
                    "name": name,
                    "source": {
                        "type": "duckdb",
                        "database": "source.duckdb",
                        "table": "seqs",
                        "incremental": {"cursor_column": column, **window},
                    },
                    "destination": {
                        "type": "duckdb",
                        "database": "dest.duckdb",
                        "table": name,
                        "write_mode": "append",
                    },
                    "runtime": {"batch_size": 3},
                },
            )

    def loaded() -> dict[str, list[int]]:
        sql = 'SELECT id FROM "{}" ORDER BY id'
        return {
            name: [r[0] for r in duckdb_rows(tmp_path / "dest.duckdb", sql.format(name))]
            for name in ("window", "window_ts")
        }

    # initial_value is exclusive, end_value inclusive: 2 < seq <= 5 → ids 6..11.
    recipes(bounded=True)
    load("window.yaml", "window_ts.yaml")
    assert loaded() == {"window": list(range(6, 12)), "window_ts": list(range(6, 12))}
    load("window.yaml", "window_ts.yaml")  # the window is exhausted
    assert loaded() == {"window": list(range(6, 12)), "window_ts": list(range(6, 12))}

    recipes(bounded=False)  # open the window: continue after the stored cursor (5)
    load("window.yaml", "window_ts.yaml")
    assert loaded() == {"window": list(range(6, 20)), "window_ts": list(range(6, 20))}
    for name in ("window.yaml", "window_ts.yaml"):
        runs = show_state(name)["checkpoints"]
        assert [run["rows_read"] for run in runs] == [6, 0, 8]
