"""Regressions of silent loss and corruption found by attacking the MySQL connector: text
keys and cursors that differ only in trailing spaces, LOAD DATA into non-utf8mb4 columns,
sub-second digits in narrow temporal columns, a merge whose batches differ in columns, case-
insensitive user keys, float32 extremes, TLS file errors and NOT NULL columns with defaults."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest

from dataloader import ConnectorError
from dataloader_mysql.types import text_collation


def test_merge_keys_differing_in_trailing_spaces_are_distinct_rows(
    my: Any, run: Any, rows_source: str
) -> None:
    keys = ["x", "x ", "x  ", "x\t", "y"]
    recipe = {
        "name": "pad_keys",
        "source": {"type": rows_source, "batches": [[{"k": k, "v": repr(k)} for k in keys]]},
        "destination": my.destination("dst", "merge", merge_keys=["k"]),
    }
    run(recipe)
    assert sorted(my.query("SELECT k, v FROM dst")) == sorted((k, repr(k)) for k in keys)
    recipe["source"]["batches"] = [[{"k": "x ", "v": "updated"}]]
    run(recipe)
    got = dict(my.query("SELECT k, v FROM dst"))
    assert got == {**{k: repr(k) for k in keys}, "x ": "updated"}


def test_text_cursor_values_differing_in_trailing_spaces_load_once(my: Any, run: Any) -> None:
    my.execute("CREATE TABLE s (id INT PRIMARY KEY, cur VARCHAR(10) COLLATE utf8mb4_bin)")
    my.execute("INSERT INTO s VALUES (1, 'a'), (2, 'b'), (3, 'b  '), (4, 'b ')")
    recipe = {
        "name": "pad_cursor",
        "source": my.source(table="s", incremental={"cursor_column": "cur"}),
        "destination": my.destination("d"),
        "runtime": {"batch_size": 1},
    }
    run(recipe)
    run(recipe)
    my.execute("INSERT INTO s VALUES (5, 'b   '), (6, 'c')")
    run(recipe)
    run(recipe)
    assert my.query("SELECT id, COUNT(*) FROM d GROUP BY id ORDER BY id") == [
        (i, 1) for i in range(1, 7)
    ]


def test_text_collation_is_the_servers_no_pad_binary_one() -> None:
    assert text_collation("5.5.5-10.11.6-MariaDB-0+deb12u1") == "utf8mb4_nopad_bin"
    assert text_collation("10.2.44-MariaDB") == "utf8mb4_nopad_bin"
    assert text_collation("10.1.48-MariaDB") == "utf8mb4_bin"
    assert text_collation("8.0.36") == "utf8mb4_0900_bin"
    assert text_collation("8.4.0-log") == "utf8mb4_0900_bin"
    assert text_collation("5.7.44-log") == "utf8mb4_bin"


@pytest.mark.parametrize("charset", ["latin1", "ucs2", "utf8mb3"])
def test_append_into_a_non_utf8mb4_column_converts_the_text(
    my: Any, run: Any, rows_source: str, charset: str
) -> None:
    my.execute(f"CREATE TABLE dst (id BIGINT PRIMARY KEY, c VARCHAR(20) CHARACTER SET {charset})")
    rows = [{"id": 1, "c": "é"}, {"id": 2, "c": "Grüße ©"}, {"id": 3, "c": None}]
    run(
        {
            "name": "cs",
            "source": {"type": rows_source, "batches": [rows]},
            "destination": my.destination("dst"),
        }
    )
    assert my.query("SELECT id, c FROM dst ORDER BY id") == [(r["id"], r["c"]) for r in rows]


@pytest.mark.parametrize(
    ("charset", "value"), [("utf8mb3", "a😀b"), ("latin1", "a😀b"), ("ascii", "é")]
)
@pytest.mark.parametrize("mode", ["append", "merge"])
def test_text_a_columns_charset_cannot_hold_fails(
    my: Any, run: Any, rows_source: str, charset: str, value: str, mode: str
) -> None:
    my.execute(f"CREATE TABLE dst (id BIGINT PRIMARY KEY, c TEXT CHARACTER SET {charset})")
    keys = {"merge_keys": ["id"]} if mode == "merge" else {}
    recipe = {
        "name": "cs_fail",
        "source": {"type": rows_source, "batches": [[{"id": 1, "c": value}]]},
        "destination": my.destination("dst", mode, **keys),
    }
    with pytest.raises(Exception, match="Incorrect string value"):
        run(recipe)
    assert my.query("SELECT COUNT(*) FROM dst") == [(0,)]


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_narrow_temporal_columns_are_widened_to_microseconds(my: Any, run: Any, mode: str) -> None:
    my.execute(
        "CREATE TABLE src (id BIGINT PRIMARY KEY, a DATETIME(6), b DATETIME(6), t TIME(6), "
        "z TIMESTAMP(6) NULL)"
    )
    stamp = datetime(2020, 1, 1, 0, 0, 0, 123456)
    my.execute("INSERT INTO src VALUES (1, %s, %s, '01:02:03.500001', %s)", (stamp, stamp, stamp))
    my.execute(
        "CREATE TABLE dst (id BIGINT PRIMARY KEY, a DATETIME NOT NULL COMMENT 'kept', "
        "b DATETIME(3) DEFAULT NULL, t TIME, z TIMESTAMP(2) NULL)"
    )
    keys = {"merge_keys": ["id"]} if mode == "merge" else {}
    run(
        {
            "name": "narrow",
            "source": my.source(table="src"),
            "destination": my.destination("dst", mode, **keys),
        }
    )
    my.execute("SET time_zone = '+00:00'")
    assert my.query("SELECT a, b, t, z FROM dst") == [
        (stamp, stamp, timedelta(hours=1, minutes=2, seconds=3, microseconds=500001), stamp)
    ]
    assert my.column_types("dst") == {
        "id": "bigint(20)",
        "a": "datetime(6)",
        "b": "datetime(6)",
        "t": "time(6)",
        "z": "timestamp(6)",
    }
    assert my.query(
        "SELECT COLUMN_NAME, IS_NULLABLE, COLUMN_COMMENT FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'dst' AND COLUMN_NAME = 'a'"
    ) == [("a", "NO", "kept")]


def test_merge_batches_write_only_their_own_columns(my: Any, run: Any, rows_source: str) -> None:
    def recipe(batches: list[list[dict[str, Any]]]) -> dict[str, Any]:
        return {
            "name": "drift",
            "source": {"type": rows_source, "batches": batches},
            "destination": my.destination("dst", "merge", merge_keys=["id"]),
        }

    run(recipe([[{"id": i, "v": "v0", "w": "w0", "x": "x0"} for i in (1, 2, 3)]]))
    run(
        recipe(
            [
                [{"id": 1, "v": "v1", "w": "w1"}],
                [{"id": 1, "w": "w2"}, {"id": 2, "w": "w2"}],
                [{"id": 3, "x": "x3"}, {"id": 2, "x": "x3"}],
            ]
        )
    )
    assert my.query("SELECT id, v, w, x FROM dst ORDER BY id") == [
        (1, "v1", "w2", "x0"),
        (2, "v0", "w2", "x3"),
        (3, "v0", "w0", "x3"),
    ]
    assert my.tables() == ["_dataloader_state", "dst"]


def test_merge_into_a_case_insensitive_key_keeps_the_last_row(
    my: Any, run: Any, rows_source: str
) -> None:
    my.execute("CREATE TABLE dst (k VARCHAR(20) COLLATE utf8mb4_unicode_ci PRIMARY KEY, v TEXT)")
    my.execute("INSERT INTO dst VALUES ('old', 'stored')")
    n = 50
    rows = [{"k": f"k{i}", "v": "first"} for i in range(n)]
    rows += [{"k": f"K{i}", "v": "last"} for i in range(n)] + [{"k": "OLD", "v": "new"}]
    run(
        {
            "name": "ci",
            "source": {"type": rows_source, "batches": [rows]},
            "destination": my.destination("dst", "merge", merge_keys=["k"]),
        }
    )
    got = my.query("SELECT k, v FROM dst")
    assert sorted(got) == sorted([(f"K{i}", "last") for i in range(n)] + [("OLD", "new")])


def test_merge_dedup_sort_under_a_case_insensitive_key(my: Any, run: Any, rows_source: str) -> None:
    my.execute(
        "CREATE TABLE dst (k VARCHAR(20) COLLATE utf8mb4_unicode_ci PRIMARY KEY, ver INT, v TEXT)"
    )
    rows = [
        {"k": "a", "ver": 2, "v": "a-v2"},
        {"k": "A", "ver": 1, "v": "A-v1"},
        {"k": "e\u0301", "ver": 1, "v": "decomposed-v1"},
        {"k": "\u00e9", "ver": 2, "v": "composed-v2"},
    ]
    run(
        {
            "name": "ci_sort",
            "source": {"type": rows_source, "batches": [rows]},
            "destination": my.destination(
                "dst", "merge", merge_keys=["k"], dedup_sort={"column": "ver"}
            ),
        }
    )
    assert sorted(my.query("SELECT k, ver, v FROM dst")) == [
        ("a", 2, "a-v2"),
        ("\u00e9", 2, "composed-v2"),
    ]


def test_float32_extremes_load_into_float_columns(my: Any, run: Any) -> None:
    my.execute("CREATE TABLE src (id INT PRIMARY KEY, f FLOAT)")
    largest = float(np.finfo(np.float32).max)
    values = [largest, -largest, 0.1, float(np.finfo(np.float32).tiny)]
    my.executemany("INSERT INTO src VALUES (%s, %s)", list(enumerate(values)))
    run({"name": "f32", "source": my.source(table="src"), "destination": my.destination("dst")})
    assert my.column_types("dst")["f"] == "float"
    stored = my.query("SELECT id, CAST(f AS DOUBLE) FROM src ORDER BY id")
    assert my.query("SELECT id, CAST(f AS DOUBLE) FROM dst ORDER BY id") == stored
    assert [np.float32(v) for _, v in stored] == [np.float32(v) for v in values]


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_a_not_null_column_with_a_default_is_filled_by_it(
    my: Any, run: Any, rows_source: str, mode: str
) -> None:
    my.execute(
        "CREATE TABLE dst (id BIGINT PRIMARY KEY, c INT, extra INT NOT NULL DEFAULT 7, "
        "note VARCHAR(10) NOT NULL DEFAULT 'keep')"
    )
    keys = {"merge_keys": ["id"]} if mode == "merge" else {}
    run(
        {
            "name": "defaults",
            "source": {"type": rows_source, "batches": [[{"id": 1, "c": 2}]]},
            "destination": my.destination("dst", mode, **keys),
        }
    )
    assert my.query("SELECT id, c, extra, note FROM dst") == [(1, 2, 7, "keep")]


def test_a_missing_ssl_ca_file_is_an_error_naming_the_key_and_path(
    my: Any, run: Any, rows_source: str, tmp_path: Any
) -> None:
    missing = tmp_path / "no_such_ca.pem"
    recipe = {
        "name": "no_ca",
        "source": {"type": rows_source, "batches": [[{"id": 1}]]},
        "destination": my.destination("dst", ssl_ca=str(missing)),
    }
    with pytest.raises(ConnectorError) as raised:
        run(recipe)
    text = str(raised.value)
    assert "destination.ssl_ca" in text and str(missing) in text
    assert my.settings()["password"] not in text
