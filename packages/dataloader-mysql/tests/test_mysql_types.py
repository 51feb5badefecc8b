"""Every MariaDB type read into Arrow by its column metadata, and back into MariaDB: the
values survive exactly (per-column checksums computed by the server on both tables)."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from dataloader import RunResult

SOURCE_DDL = """
CREATE TABLE src (
  id INT NOT NULL PRIMARY KEY,
  b BOOLEAN, ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT, i INT,
  iu INT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED,
  f FLOAT, d DOUBLE, d65 DECIMAL(65,30), d10 DECIMAL(10,2), du DECIMAL(20,0) UNSIGNED,
  dt DATETIME(6), ts TIMESTAMP(6) NULL, dd DATE, tt TIME(6), y YEAR,
  j JSON, bit1 BIT(1), bit8 BIT(8), bit64 BIT(64),
  e ENUM('small', 'large'), st SET('a', 'b', 'c'),
  vc VARCHAR(100), tx TEXT, lt LONGTEXT, ch CHAR(3),
  bn BINARY(4), vb VARBINARY(20), bl BLOB
) DEFAULT CHARSET=utf8mb4
"""

ROWS: list[tuple[Any, ...]] = [
    (
        1,
        True,
        -128,
        255,
        -32768,
        -8388608,
        -2147483648,
        4294967295,
        -9223372036854775808,
        18446744073709551615,
        1.5,
        2.718281828459045,
        Decimal("12345678901234567890123456789012345.123456789012345678901234567891"),
        Decimal("-99999999.99"),
        Decimal("99999999999999999999"),
        datetime(2024, 2, 29, 23, 59, 59, 123456),
        datetime(2038, 1, 19, 3, 14, 7, 999999),
        date(1000, 1, 1),
        time(23, 59, 59, 999999),
        2155,
        '{"a": [1, 2.5, "x"], "b": null}',
        1,
        255,
        18446744073709551615,
        "large",
        "a,c",
        "emoji 😀 and ñ",
        "tab\there\nnewline \\ backslash \\N",
        "x" * 5000,
        "abc",
        b"\x00\x01\xfe\xff",
        b"\t\n\\\x00N",
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
    ),
    (2,) + (None,) * 32,
    (
        3,
        False,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        -0.25,
        -1e300,
        Decimal("-0." + "0" * 29 + "1"),
        Decimal("0.00"),
        Decimal("0"),
        datetime(1000, 1, 1),
        datetime(1970, 1, 1, 0, 0, 1),
        date(9999, 12, 31),
        time(0, 0),
        1901,
        "[]",
        0,
        0,
        0,
        "small",
        "",
        "",
        "",
        "",
        "",
        b"abcd",
        b"",
        b"",
    ),
]
COLUMNS = [
    "id", "b", "ti", "tu", "si", "mi", "i", "iu", "bi", "bu", "f", "d", "d65", "d10", "du",
    "dt", "ts", "dd", "tt", "y", "j", "bit1", "bit8", "bit64", "e", "st", "vc", "tx", "lt",
    "ch", "bn", "vb", "bl",
]  # fmt: skip


def load_source(my: Any) -> None:
    my.execute(SOURCE_DDL)
    placeholders = ", ".join(["%s"] * len(COLUMNS))
    my.executemany(f"INSERT INTO src VALUES ({placeholders})", ROWS)


def checksum(my: Any, table: str, column: str) -> Any:
    """The server's digest of one column over every row, by id (NULL counted as NULL); BIT
    columns as their number (they arrive as BOOLEAN or BIGINT UNSIGNED)."""
    value = f"`{column}` + 0" if column.startswith("bit") else f"`{column}`"
    return my.scalar(
        f"SELECT MD5(GROUP_CONCAT(IFNULL(HEX(CAST({value} AS CHAR CHARACTER SET utf8mb4)), "
        f"'<null>') ORDER BY id SEPARATOR ',')) FROM `{table}`"
    )


def copy(run: Any, my: Any, name: str = "types", **source: Any) -> RunResult:
    return run(
        {
            "name": name,
            "source": my.source(table="src", **source),
            "destination": my.destination("dst"),
        }
    )


def test_read_types_come_from_the_column_metadata(my: Any) -> None:
    from dataloader.context import RunContext
    from dataloader.state.model import State
    from dataloader_mysql import MySQLConfig, MySQLConnector

    load_source(my)
    connector = MySQLConnector(MySQLConfig(**my.settings(), table="src"))
    connector.open(RunContext(recipe_name="t", run_id="r", started_at=datetime.now()))
    try:
        batch = next(iter(connector.read_batches(State()))).to_arrow()
    finally:
        connector.close()
    types = dict(zip(batch.schema.names, batch.schema.types, strict=True))
    assert types == {
        "id": pa.int32(), "b": pa.bool_(), "ti": pa.int8(), "tu": pa.uint8(),
        "si": pa.int16(), "mi": pa.int32(), "i": pa.int32(), "iu": pa.uint32(),
        "bi": pa.int64(), "bu": pa.uint64(), "f": pa.float32(), "d": pa.float64(),
        "d65": pa.decimal256(65, 30), "d10": pa.decimal128(10, 2),
        "du": pa.decimal128(20, 0), "dt": pa.timestamp("us"),
        "ts": pa.timestamp("us", tz="UTC"), "dd": pa.date32(), "tt": pa.time64("us"),
        "y": pa.int16(), "j": pa.string(), "bit1": pa.bool_(), "bit8": pa.uint64(),
        "bit64": pa.uint64(), "e": pa.string(), "st": pa.string(), "vc": pa.string(),
        "tx": pa.string(), "lt": pa.string(), "ch": pa.string(), "bn": pa.binary(),
        "vb": pa.binary(), "bl": pa.binary(),
    }  # fmt: skip
    assert batch.schema.field("j").metadata == {b"pg_type": b"json"}
    first = batch.slice(0, 1).to_pylist()[0]
    assert first["d65"] == ROWS[0][12]
    assert first["dt"] == ROWS[0][15]
    assert first["tt"] == ROWS[0][18]
    assert first["bu"] == 18446744073709551615 and first["bit64"] == 18446744073709551615
    assert first["vc"] == "emoji 😀 and ñ"
    assert first["bl"] == ROWS[0][32]
    assert batch.slice(1, 1).to_pylist()[0] == {"id": 2} | {c: None for c in COLUMNS[1:]}


def test_every_type_round_trips_mariadb_arrow_mariadb(run: Any, my: Any) -> None:
    load_source(my)
    result = copy(run, my)
    assert result.rows_written == 3
    for column in COLUMNS:
        assert checksum(my, "dst", column) == checksum(my, "src", column), column
    types = my.column_types("dst")
    assert types["d65"] == "decimal(65,30)" and types["dt"] == "datetime(6)"
    assert types["vc"] == "longtext" and types["bu"] == "bigint(20) unsigned"
    assert my.scalar("SELECT JSON_VALUE(j, '$.a[1]') FROM dst WHERE id = 1") == "2.5"


def test_text_keys_compare_by_code_point(run: Any, my: Any, rows_source: str) -> None:
    batches = [[{"k": "a", "v": 1}, {"k": "A", "v": 2}, {"k": "ä", "v": 3}]]
    recipe = {
        "name": "keys",
        "source": {"type": rows_source, "batches": batches},
        "destination": my.destination("dst", "merge", merge_keys=["k"]),
    }
    run(recipe)
    assert my.query("SELECT k, v FROM dst ORDER BY k") == [("A", 2), ("a", 1), ("ä", 3)]


def test_nan_is_refused_naming_the_column(run: Any, my: Any, rows_source: str) -> None:
    recipe = {
        "name": "nan",
        "source": {"type": rows_source, "batches": [[{"x": float("nan")}]]},
        "destination": my.destination("dst"),
    }
    with pytest.raises(Exception, match="column 'x' holds NaN"):
        run(recipe)
