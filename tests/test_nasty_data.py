"""Awkward data through the CLI into DuckDB, checked value by value.

Quotes, delimiters, newlines and unicode in CSV fields; nulls against empty strings; empty
files; wide decimals; time zones; compressed files.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from e2e_support import duckdb_rows, run_cli, write_recipe

DB = "nasty.duckdb"

TRICKY_CSV = (
    "id,name,comment,qty\n"
    '1,"Dana ""DJ"" Jones","hello, world",3\n'
    '2,Zoë 🚀 Ωmega,"line one\nline two, with a comma",\n'
    '3,"",,4\n'
    '4,"  spaced  ","say ""hi""\nthen ""bye""",5\n'
    '5,日本語,"tab\there; semi;colon",6\n'
)
TRICKY_CSV_2 = 'id,name,comment,qty\n6,Ünïcödé,"€ £ ¥ — “curly”",7\n7,"a,b,c","",8\n'
TRICKY_EXPECTED = [
    (1, 'Dana "DJ" Jones', "hello, world", 3),
    (2, "Zoë 🚀 Ωmega", "line one\nline two, with a comma", None),
    (3, "", None, 4),  # quoted empty: an empty string; unquoted empty: NULL
    (4, "  spaced  ", 'say "hi"\nthen "bye"', 5),
    (5, "日本語", "tab\there; semi;colon", 6),
    (6, "Ünïcödé", "€ £ ¥ — “curly”", 7),
    (7, "a,b,c", "", 8),
    (8, "crlf", "x\r\ny", 9),
]

DECIMALS = [
    ("1", "1234567890123456789012345678.1234567890"),
    ("2", "-9999999999999999999999999999.9999999999"),
    ("3", "0.0000000001"),
    ("4", "-0.5"),
    ("5", "42"),
    ("6", ""),
]

PARIS = [
    # (id, local Paris wall time, the same instant with an offset, expected UTC)
    (1, "2024-01-15 08:00:00", "2024-01-15T08:00:00+01:00", datetime(2024, 1, 15, 7, 0)),
    (2, "2024-03-31 01:30:00", "2024-03-31T01:30:00+01:00", datetime(2024, 3, 31, 0, 30)),
    (3, "2024-03-31 03:30:00", "2024-03-31T03:30:00+02:00", datetime(2024, 3, 31, 1, 30)),
    (
        4,
        "2024-07-01 12:00:00.123456",
        "2024-07-01T10:00:00.123456Z",
        datetime(2024, 7, 1, 10, 0, 0, 123456),
    ),
    (5, "2024-10-27 04:00:00", "2024-10-27T03:00:00Z", datetime(2024, 10, 27, 3, 0)),
]


def _recipe(
    tmp_path: Path, name: str, source: dict, steps: list | None = None, batch_size: int = 2
) -> str:
    recipe = {
        "name": name,
        "source": {"type": "filestore", **source},
        "destination": {"type": "duckdb", "database": DB, "table": name},
        "runtime": {"batch_size": batch_size},
    }
    if steps:
        recipe["transform"] = {"steps": steps}
    return write_recipe(tmp_path / f"{name}.yaml", recipe).name


def _compress_zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as stream:
        stream.write(data)
    return sink.getvalue().to_pybytes()


@pytest.fixture(scope="module")
def nasty(tmp_path_factory: pytest.TempPathFactory, cli_env: dict) -> Path:
    """Write every awkward input and its recipe, then load them all in one CLI run."""
    tmp_path = tmp_path_factory.mktemp("nasty")
    recipes = []

    tricky = tmp_path / "tricky"
    tricky.mkdir()
    (tricky / "0_empty.csv").write_bytes(b"")
    (tricky / "a.csv").write_text(TRICKY_CSV, encoding="utf-8")
    (tricky / "b_empty.csv").write_bytes(b"")
    (tricky / "c_header_only.csv").write_text("id,name,comment,qty\n", encoding="utf-8")
    (tricky / "d.csv").write_text(TRICKY_CSV_2, encoding="utf-8")
    (tricky / "e_empty.csv").write_bytes(b"")
    # A byte order mark and Windows line ends, one inside a quoted field.
    (tricky / "f_bom_crlf.csv").write_bytes(
        '\ufeffid,name,comment,qty\r\n8,crlf,"x\r\ny",9\r\n'.encode()
    )
    # Empty files hold no columns: the transform steps must not trip over them.
    steps = [
        {"type": "cast", "columns": {"qty": "int32"}},
        {"type": "add_column", "name": "origin", "value": "tricky"},
    ]
    recipes.append(_recipe(tmp_path, "tricky", {"path": "tricky/*.csv"}, steps))

    (tmp_path / "null_markers.csv").write_text(
        'id,name,score\n1,NULL,NULL\n2,,1.5\n3,"",2.5\n4,"NULL",3.5\n', encoding="utf-8"
    )
    recipes.append(
        _recipe(
            tmp_path,
            "null_markers",
            {"path": "null_markers.csv", "format_options": {"null_values": ["NULL"]}},
        )
    )

    rows = [{"id": 1, "name": None}, {"id": 2, "name": ""}, {"id": 3}, {"id": 4, "name": "x"}]
    (tmp_path / "nulls.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8"
    )
    recipes.append(_recipe(tmp_path, "jsonl_nulls", {"path": "nulls.jsonl"}))

    (tmp_path / "decimals.csv").write_text(
        "id,big\n" + "".join(f"{i},{v}\n" for i, v in DECIMALS), encoding="utf-8"
    )
    recipes.append(
        _recipe(
            tmp_path,
            "decimals",
            # Read the digits as text: CSV type inference would make doubles of them.
            {"path": "decimals.csv", "format_options": {"column_types": {"big": "string"}}},
            [{"type": "cast", "columns": {"big": "decimal(38,10)"}}],
        )
    )

    (tmp_path / "paris.csv").write_text(
        "id,local_time,offset_time\n" + "".join(f"{i},{lt},{ot}\n" for i, lt, ot, _ in PARIS),
        encoding="utf-8",
    )
    paris = {"type": "datetime", "timezone": "Europe/Paris"}
    recipes.append(
        _recipe(
            tmp_path,
            "paris",
            {"path": "paris.csv"},
            [{"type": "cast", "columns": {"local_time": paris, "offset_time": paris}}],
        )
    )

    packed = tmp_path / "packed"
    packed.mkdir()
    plain = "id,city\n" + "".join(f"{i},Città {i} “q”\n" for i in range(1, 301))
    lines = plain.splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    (packed / "one.csv.gz").write_bytes(gzip.compress((header + "".join(body[:100])).encode()))
    (packed / "two.csv.zst").write_bytes(_compress_zstd((header + "".join(body[100:250])).encode()))
    (packed / "three.csv").write_text(header + "".join(body[250:]), encoding="utf-8")
    recipes.append(_recipe(tmp_path, "packed", {"path": "packed/*"}, batch_size=64))

    code, out, err = run_cli(["run", *recipes, "--state-dir", ".state"], tmp_path, cli_env)
    assert code == 0, f"exit {code}\nstdout:\n{out}\nstderr:\n{err}"
    return tmp_path / DB


def test_csv_quotes_commas_newlines_unicode_and_empty_files(nasty: Path) -> None:
    rows = duckdb_rows(nasty, "SELECT id, name, comment, qty, origin FROM tricky ORDER BY id")
    assert rows == [(*row, "tricky") for row in TRICKY_EXPECTED]
    assert duckdb_rows(
        nasty,
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_name = 'tricky' AND column_name = 'qty'",
    ) == [("INTEGER",)]


def test_csv_null_markers_against_empty_strings(nasty: Path) -> None:
    rows = duckdb_rows(nasty, "SELECT id, name, score FROM null_markers ORDER BY id")
    # An unquoted NULL is null; a quoted "NULL" and the empty fields are text.
    assert rows == [(1, None, None), (2, "", 1.5), (3, "", 2.5), (4, "NULL", 3.5)]


def test_jsonl_null_against_empty_string(nasty: Path) -> None:
    rows = duckdb_rows(nasty, "SELECT id, name, name IS NULL FROM jsonl_nulls ORDER BY id")
    assert rows == [(1, None, True), (2, "", False), (3, None, True), (4, "x", False)]


def test_wide_decimals(nasty: Path) -> None:
    assert duckdb_rows(
        nasty,
        "SELECT data_type FROM information_schema.columns WHERE table_name = 'decimals' AND column_name = 'big'",
    ) == [("DECIMAL(38,10)",)]
    rows = duckdb_rows(nasty, "SELECT id, big FROM decimals ORDER BY id")
    assert rows == [(int(i), Decimal(v) if v else None) for i, v in DECIMALS]
    assert str(rows[0][1]) == "1234567890123456789012345678.1234567890"


def test_timestamps_with_time_zone(nasty: Path) -> None:
    types = duckdb_rows(
        nasty,
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'paris' AND column_name LIKE '%time' ORDER BY column_name",
    )
    assert types == [
        ("local_time", "TIMESTAMP WITH TIME ZONE"),
        ("offset_time", "TIMESTAMP WITH TIME ZONE"),
    ]
    rows = duckdb_rows(
        nasty,
        "SELECT id, local_time AT TIME ZONE 'UTC', offset_time AT TIME ZONE 'UTC', "
        "strftime(local_time AT TIME ZONE 'Europe/Paris', '%Y-%m-%d %H:%M:%S') "
        "FROM paris ORDER BY id",
    )
    assert rows == [(i, utc, utc, local.split(".")[0]) for i, local, _, utc in PARIS]


def test_gzip_and_zstd_compressed_csv(nasty: Path) -> None:
    rows = duckdb_rows(nasty, "SELECT id, city FROM packed ORDER BY id")
    assert rows == [(i, f"Città {i} “q”") for i in range(1, 301)]
