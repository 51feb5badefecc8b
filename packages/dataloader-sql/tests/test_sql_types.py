"""Types round-trip through SQLite: rows written by the `sql` destination and read back by the
`sql` source keep every value (NULLs, unicode, exact decimals, instants, times, bytes), which
per-column checksums compare; and reads of tables SQLite made itself get their declared types."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pyarrow as pa
from sql_support import Sqlite, read_table

ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "small": 7,
        "amount": "12345678901234567890123456789.123456789",
        "price": "0.10",
        "ratio": 0.1,
        "name": "Zoë 🚀 naïve",
        "flag": True,
        "day": "2024-02-29",
        "at": "2024-01-01T00:00:00.123456+00:00",
        "local": "1999-12-31T23:59:59.999999",
        "clock": time(23, 59, 59, 1),
        "blob": b"hello\x00",
    },
    {
        "id": 2,
        "small": -7,
        "amount": "-0.000000001",
        "price": "99999999.99",
        "ratio": -1.5e300,
        "name": "",
        "flag": False,
        "day": "1970-01-01",
        "at": "2038-01-19T03:14:08+02:00",
        "local": "2024-06-01T12:00:00",
        "clock": time(0, 0),
        "blob": b"",
    },
    {key: None for key in ("small", "amount", "price", "ratio", "name", "flag", "day", "at")}
    | {"id": 3, "local": None, "clock": None, "blob": None},
]
CASTS = {
    "small": "int16",
    "amount": "decimal(38,9)",
    "price": "decimal(10,2)",
    "day": "date",
    "at": {"type": "datetime", "timezone": "UTC"},
    "local": "datetime",
}
EXPECTED = {
    "id": pa.int64(),
    "small": pa.int16(),
    "amount": pa.decimal128(38, 9),
    "price": pa.decimal128(10, 2),
    "ratio": pa.float64(),
    "name": pa.string(),
    "flag": pa.bool_(),
    "day": pa.date32(),
    "at": pa.timestamp("us", tz="UTC"),
    "local": pa.timestamp("us"),
    "clock": pa.time64("us"),
    "blob": pa.binary(),
}


def checksums(table: pa.Table) -> dict[str, str]:
    """One digest per column over its values in `id` order (NULLs included)."""
    table = table.sort_by("id")
    return {
        name: hashlib.sha256(repr(table.column(name).to_pylist()).encode()).hexdigest()
        for name in table.column_names
    }


def load(run: Any, rows_source: str, sqlite_db: Sqlite, table: str) -> None:
    recipe = {
        "name": f"types_{table}",
        "source": {"type": rows_source, "batches": [ROWS[:1], ROWS[1:]]},
        "transform": {"steps": [{"type": "cast", "columns": CASTS}]},
        "destination": sqlite_db.destination(table),
    }
    assert run(recipe).status == "success"


def test_every_type_round_trips_with_its_values(
    run: Any, rows_source: str, sqlite_db: Sqlite
) -> None:
    load(run, rows_source, sqlite_db, "typed")
    loaded = read_table(sqlite_db.url, "typed")
    for name, kind in EXPECTED.items():
        assert loaded.schema.field(name).type == kind, name
    values = loaded.sort_by("id").to_pylist()
    assert values[0]["amount"] == Decimal("12345678901234567890123456789.123456789")
    assert values[1]["amount"] == Decimal("-0.000000001")
    assert values[0]["price"] == Decimal("0.10")
    assert values[0]["name"] == "Zoë 🚀 naïve"
    assert values[0]["at"] == datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    assert values[1]["at"] == datetime(2038, 1, 19, 1, 14, 8, tzinfo=UTC)
    assert values[0]["local"] == datetime(1999, 12, 31, 23, 59, 59, 999999)
    assert values[0]["day"] == date(2024, 2, 29)
    assert values[0]["clock"] == time(23, 59, 59, 1)
    assert values[1]["ratio"] == -1.5e300
    assert all(value is None for key, value in values[2].items() if key != "id")
    # Decimals are stored as their digits: exact, whatever their size.
    assert sqlite_db.query("SELECT amount, typeof(amount) FROM typed WHERE id = 1") == [
        ("12345678901234567890123456789.123456789", "text")
    ]


def test_a_second_hop_through_the_source_keeps_every_checksum(
    run: Any, rows_source: str, sqlite_db: Sqlite
) -> None:
    load(run, rows_source, sqlite_db, "first")
    recipe = {
        "name": "hop",
        "source": sqlite_db.source(table="first"),
        "destination": sqlite_db.destination("second"),
        "runtime": {"batch_size": 1},
    }
    assert run(recipe).rows_written == 3
    first, second = read_table(sqlite_db.url, "first"), read_table(sqlite_db.url, "second")
    assert first.schema == second.schema
    assert checksums(first) == checksums(second)


def test_tables_sqlite_made_itself_read_with_their_declared_types(sqlite_db: Sqlite) -> None:
    sqlite_db.execute(
        "CREATE TABLE native (i INTEGER, b BIGINT, n NUMERIC(12, 2), r REAL, t TEXT, "
        "v VARCHAR(10), d DATE, ts DATETIME, z TIMESTAMP, bo BOOLEAN, bl BLOB, j JSON, odd GEOMETRY)"
    )
    sqlite_db.execute(
        "INSERT INTO native VALUES (9007199254740993, 2, 12.25, 0.5, 'x', 'y', '2024-01-02', "
        "'2024-01-02 03:04:05.000006', '2024-01-02 03:04:05', 1, x'00ff', '{\"a\": [1, 2]}', 'POINT(1 2)')"
    )
    table = read_table(sqlite_db.url, "native")
    assert table.schema.types == [
        pa.int64(),
        pa.int64(),
        pa.decimal128(12, 2),
        pa.float64(),
        pa.string(),
        pa.string(),
        pa.date32(),
        pa.timestamp("us"),
        pa.timestamp("us", tz="UTC"),
        pa.bool_(),
        pa.binary(),
        pa.string(),
        pa.string(),
    ]
    [row] = table.to_pylist()
    assert row["i"] == 9007199254740993
    assert row["n"] == Decimal("12.25")
    assert row["ts"] == datetime(2024, 1, 2, 3, 4, 5, 6)
    assert row["z"] == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert row["bl"] == b"\x00\xff"
    assert row["j"] == '{"a": [1, 2]}'
    assert row["odd"] == "POINT(1 2)"  # an unknown type: its text


def test_a_query_is_typed_by_its_values(sqlite_db: Sqlite) -> None:
    sqlite_db.execute("CREATE TABLE q (id INTEGER, name TEXT)")
    sqlite_db.execute("INSERT INTO q VALUES (1, 'a'), (2, NULL)")
    table = read_table(
        sqlite_db.url, query="SELECT id, name, id * 1.5 AS scaled FROM q ORDER BY id"
    )
    assert table.schema.types == [pa.int64(), pa.string(), pa.float64()]
    assert table.to_pylist() == [
        {"id": 1, "name": "a", "scaled": 1.5},
        {"id": 2, "name": None, "scaled": 3.0},
    ]


def test_decimals_inside_nested_values_stay_exact_json_numbers(
    run: Any, rows_source: str, sqlite_db: Sqlite
) -> None:
    import json

    rows = [
        {"id": 1, "doc": {"a": Decimal("1.10"), "xs": [Decimal("12345678901234567890.5")]}},
    ]
    recipe = {
        "name": "nested",
        "source": {"type": rows_source, "batches": [rows]},
        "destination": sqlite_db.destination("docs"),
    }
    assert run(recipe).status == "success"
    [(text,)] = sqlite_db.query("SELECT doc FROM docs")
    assert json.loads(text, parse_float=Decimal) == {
        "a": Decimal("1.10"),
        "xs": [Decimal("12345678901234567890.5")],
    }


def test_nanoseconds_a_column_cannot_keep_fail_naming_it(sqlite_db: Sqlite) -> None:
    from datetime import UTC, datetime

    import pytest

    from dataloader import ArrowBatch, State
    from dataloader.context import RunContext
    from dataloader.errors import ConnectorError
    from dataloader_sql import SqlConfig, SqlConnector

    connector = SqlConnector(SqlConfig(url=sqlite_db.url, table="ns"))
    context = RunContext(
        recipe_name="ns", run_id="1", started_at=datetime.now(UTC), role="destination"
    )
    connector.open(context)
    try:
        connector.begin(State())
        whole = pa.record_batch({"at": pa.array([1000, None], pa.timestamp("ns"))})
        connector.write_batch(ArrowBatch(whole, {}), State())
        cut = pa.record_batch({"at": pa.array([1001], pa.timestamp("ns"))})
        with pytest.raises(ConnectorError, match=r"column 'at'.*whole microseconds"):
            connector.write_batch(ArrowBatch(cut, {}), State())
    finally:
        connector.close()


def test_uint64_beyond_a_signed_bigint_fails_naming_the_column(sqlite_db: Sqlite) -> None:
    from datetime import UTC, datetime

    import pytest

    from dataloader import ArrowBatch, State
    from dataloader.context import RunContext
    from dataloader.errors import ConnectorError
    from dataloader_sql import SqlConfig, SqlConnector

    connector = SqlConnector(SqlConfig(url=sqlite_db.url, table="u"))
    connector.open(
        RunContext(recipe_name="u", run_id="1", started_at=datetime.now(UTC), role="destination")
    )
    try:
        connector.begin(State())
        fits = pa.record_batch({"n": pa.array([2**63 - 1, None], pa.uint64())})
        connector.write_batch(ArrowBatch(fits, {}), State())
        big = pa.record_batch({"n": pa.array([2**64 - 1], pa.uint64())})
        with pytest.raises(ConnectorError, match=r"column 'n'.*uint64 value 18446744073709551615"):
            connector.write_batch(ArrowBatch(big, {}), State())
    finally:
        connector.close()


def test_decimals_the_column_type_would_round_fail_naming_column_and_value(
    sqlite_db: Sqlite,
) -> None:
    import pytest

    from dataloader.errors import ConnectorError

    sqlite_db.execute("CREATE TABLE d (id INTEGER, n DECIMAL_TEXT(38, 9))")
    sqlite_db.execute("INSERT INTO d VALUES (1, '0.123456789'), (2, '0.1234567891234')")
    with pytest.raises(ConnectorError) as caught:
        read_table(sqlite_db.url, "d")
    message = str(caught.value)
    assert "'n'" in message and "0.1234567891234" in message
    assert "decimal(38, 9)" in message and "query" in message
    sqlite_db.execute("DELETE FROM d WHERE id = 2")
    assert read_table(sqlite_db.url, "d").column("n").to_pylist() == [Decimal("0.123456789")]
