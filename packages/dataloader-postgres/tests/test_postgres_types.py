"""Every Postgres type the connector maps, through Postgres → Postgres (checked exactly, column by
column, with checksums computed in SQL), Postgres → DuckDB and Postgres → Parquet (checked in
Python against the expected values), and the Arrow types `plan_columns` reads them as."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataloader import ConnectorError
from dataloader_postgres import PostgresConfig, PostgresConnector
from dataloader_postgres.codec import CsvCopyCodec, in_microseconds
from dataloader_postgres.connection import connect

ODD = 'Odd "Name" Col'
ODD_SQL = '"Odd ""Name"" Col"'

COLUMNS = {
    "id": "integer PRIMARY KEY",
    "c_smallint": "smallint",
    "c_integer": "integer",
    "c_bigint": "bigint",
    "c_numeric": "numeric(12,3)",
    "c_numeric_any": "numeric",
    "c_real": "real",
    "c_double": "double precision",
    "c_text": "text",
    "c_varchar": "varchar(12)",
    "c_char": "char(5)",
    "c_bool": "boolean",
    "c_date": "date",
    "c_time": "time",
    "c_timestamp": "timestamp",
    "c_timestamptz": "timestamptz",
    "c_interval": "interval",
    "c_uuid": "uuid",
    "c_bytea": "bytea",
    "c_json": "json",
    "c_jsonb": "jsonb",
    "c_int_array": "int[]",
    "c_text_array": "text[]",
    ODD: "text",
}
NAMES = list(COLUMNS)

ALL_BYTES = bytes(range(256))
TEXT_ARRAY = [
    "plain",
    None,
    "NULL",
    'with "quotes"',
    "comma, here",
    "back\\slash",
    "new\nline",
    "",
    "{braces}",
    "ü€😀",
]
JSON_TEXT = '{"b": 1,  "a": [1, 2.50, "x"]}'  # json keeps its text: spacing, key order, 2.50
JSON_UNICODE = '{"unicode": "ü€😀", "esc": "a\\"b\\\\c"}'

# Row values as inserted (strings are literals Postgres parses into the column's type).
ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "c_smallint": 1,
        "c_integer": 1,
        "c_bigint": 1,
        "c_numeric": "1.500",
        "c_numeric_any": "1.50",
        "c_real": 1.25,
        "c_double": 0.1 + 0.2,
        "c_text": 'hello, "world"\nsecond line\\ tab\t end',
        "c_varchar": "café ☕",
        "c_char": "ab",
        "c_bool": True,
        "c_date": date(2024, 2, 29),
        "c_time": time(23, 59, 59, 999999),
        "c_timestamp": datetime(2024, 1, 1, 12, 34, 56, 789012),
        "c_timestamptz": "2024-01-01 12:34:56.789012+05:30",
        "c_interval": "1 year 2 mons 3 days 04:05:06.789",
        "c_uuid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "c_bytea": b"\x00\x01binary\xff",
        "c_json": JSON_TEXT,
        "c_jsonb": '{"z": null, "a": {"nested": [true, false]}}',
        "c_int_array": [1, None, -3],
        "c_text_array": TEXT_ARRAY,
        ODD: "x",
    },
    {
        "id": 2,
        "c_smallint": -32768,
        "c_integer": -2147483648,
        "c_bigint": -(2**63),
        "c_numeric": "-999999999.999",
        "c_numeric_any": "12345678901234567890.123456789",
        "c_real": "-Infinity",
        "c_double": "NaN",
        "c_text": "",
        "c_varchar": "",
        "c_char": "",
        "c_bool": False,
        "c_date": date(1, 1, 1),
        "c_time": time(0, 0),
        "c_timestamp": datetime(1970, 1, 1),
        "c_timestamptz": "1999-12-31 23:59:59.999999-08:00",
        "c_interval": "-1 mons -2 days -00:00:00.000001",
        "c_uuid": "00000000-0000-0000-0000-000000000000",
        "c_bytea": b"",
        "c_json": "[]",
        "c_jsonb": "{}",
        "c_int_array": [],
        "c_text_array": [],
        ODD: "",
    },
    {
        "id": 3,
        "c_smallint": 32767,
        "c_integer": 2147483647,
        "c_bigint": 2**63 - 1,
        "c_numeric": "999999999.999",
        "c_numeric_any": "-0.000000001",
        "c_real": "Infinity",
        "c_double": 1e308,
        "c_text": "NULL",
        "c_varchar": "x" * 12,
        "c_char": "abcde",
        "c_bool": True,
        "c_date": date(9999, 12, 31),
        "c_time": time(12, 0, 0, 1),
        "c_timestamp": datetime(9999, 12, 31, 23, 59, 59, 999999),
        "c_timestamptz": "2038-01-19 03:14:08.000001+14:00",
        "c_interval": "100 years 11 mons 30 days 23:59:59.999999",
        "c_uuid": "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
        "c_bytea": ALL_BYTES,
        "c_json": JSON_UNICODE,
        "c_jsonb": '[1, "two", null, 2.50]',
        "c_int_array": [2147483647, -2147483648],
        "c_text_array": [None],
        ODD: "Ω",
    },
    {"id": 4, **dict.fromkeys(NAMES[1:])},
    {
        **{"id": 5, **dict.fromkeys(NAMES[1:])},
        "c_numeric_any": "0",
        "c_real": 0.1,
        "c_double": -0.0,
        "c_interval": "-1 years 1 days 36:00:00",
        "c_timestamptz": "2024-06-30 23:00:00-02:30",
        "c_text_array": ["only"],
    },
]


def _f32(value: float) -> float:
    return float(np.float32(value))


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# The values a reader of the Arrow data gets back, per row id and column.
EXPECTED: dict[int, dict[str, Any]] = {
    1: {
        **ROWS[0],
        "c_numeric": Decimal("1.500"),
        "c_numeric_any": Decimal("1.5"),
        "c_char": "ab   ",
        "c_timestamptz": datetime(2024, 1, 1, 7, 4, 56, 789012, tzinfo=UTC),
        "c_interval": (14, 3, (4 * 3600 + 5 * 60 + 6) * 10**9 + 789 * 10**6),
        "c_jsonb": {"z": None, "a": {"nested": [True, False]}},
    },
    2: {
        **ROWS[1],
        "c_numeric": Decimal("-999999999.999"),
        "c_numeric_any": Decimal("12345678901234567890.123456789"),
        "c_real": -math.inf,
        "c_double": math.nan,
        "c_char": "     ",
        "c_timestamptz": datetime(2000, 1, 1, 7, 59, 59, 999999, tzinfo=UTC),
        "c_interval": (-1, -2, -1000),
        "c_jsonb": {},
    },
    3: {
        **ROWS[2],
        "c_numeric": Decimal("999999999.999"),
        "c_numeric_any": Decimal("-0.000000001"),
        "c_real": math.inf,
        "c_timestamptz": _utc("2038-01-19 03:14:08.000001+14:00"),
        "c_interval": (100 * 12 + 11, 30, 86399999999000),
        "c_uuid": "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "c_jsonb": [1, "two", None, 2.5],
    },
    4: dict(ROWS[3]),
    5: {
        **ROWS[4],
        "c_numeric_any": Decimal(0),
        "c_real": _f32(0.1),
        "c_interval": (-12, 1, 36 * 3600 * 10**9),
        "c_timestamptz": datetime(2024, 7, 1, 1, 30, tzinfo=UTC),
    },
}


@pytest.fixture
def source_table(pg: Any) -> str:
    columns = ", ".join(
        f"{ODD_SQL if name == ODD else name} {kind}" for name, kind in COLUMNS.items()
    )
    pg.execute(f"CREATE TABLE src ({columns})")
    column_list = ", ".join(ODD_SQL if name == ODD else name for name in NAMES)
    placeholders = ", ".join(["%s"] * len(NAMES))
    for row in ROWS:
        values = [
            psycopg2.Binary(row[name]) if isinstance(row[name], bytes) else row[name]
            for name in NAMES
        ]
        pg.execute(f"INSERT INTO src ({column_list}) VALUES ({placeholders})", values)
    return "src"


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, float) and math.isnan(expected):
        return isinstance(actual, float) and math.isnan(actual)
    if isinstance(actual, pa.MonthDayNano):
        return tuple(actual) == tuple(expected)
    return (type(actual) is not bool and actual == expected) or actual is expected


def _check_rows(rows: list[dict[str, Any]], columns: list[str]) -> None:
    assert [row["id"] for row in rows] == sorted(EXPECTED)
    problems = []
    for row in rows:
        for name in columns:
            actual, expected = row[name], EXPECTED[row["id"]][name]
            if name == "c_jsonb" and actual is not None:
                actual = json.loads(actual)
            if isinstance(expected, bool) or isinstance(actual, bool):
                ok = actual is expected
            else:
                ok = _same(actual, expected)
            if not ok:
                problems.append(f"id {row['id']} {name}: got {actual!r}, expected {expected!r}")
    assert not problems, "\n".join(problems)


def _checksums(pg: Any, table: str, expressions: dict[str, str]) -> dict[str, str]:
    """One md5 per column over the rows in id order; NULL and '' stay apart (`%L`)."""
    select = ", ".join(
        f"md5(string_agg(format('%L', {expression}), '|' ORDER BY id))"
        for expression in expressions.values()
    )
    row = pg.query(f"SELECT count(*), {select} FROM {table}")[0]
    return {"rows": row[0], **dict(zip(expressions, row[1:], strict=True))}


def _expressions(numeric_any: str = "trim_scale({})") -> dict[str, str]:
    expressions = {name: ODD_SQL if name == ODD else name for name in NAMES}
    expressions["c_numeric_any"] = numeric_any.format("c_numeric_any")
    return expressions


def test_postgres_to_postgres_keeps_every_value(
    pg: Any, source_table: str, run: Any, tmp_path: Path
) -> None:
    run(
        {
            "name": "types_pg",
            "source": pg.source(table=source_table),
            "destination": pg.destination("dst"),
            "runtime": {"batch_size": 2},
        }
    )
    # Unconstrained numeric travels as decimal128(38, 9): the value is kept, its display scale
    # is not (1.50 arrives as 1.500000000), so it is compared by value here and exactly below.
    expected = _checksums(pg, "src", _expressions())
    assert _checksums(pg, "dst", _expressions()) == expected
    assert expected["rows"] == len(ROWS)

    types = pg.column_types("dst")
    wanted = {
        "c_smallint": "smallint",
        "c_integer": "integer",
        "c_bigint": "bigint",
        "c_numeric": "numeric(12,3)",
        "c_numeric_any": "numeric",
        "c_real": "real",
        "c_double": "double precision",
        "c_text": "text",
        "c_bool": "boolean",
        "c_date": "date",
        "c_time": "time without time zone",
        "c_timestamp": "timestamp without time zone",
        "c_timestamptz": "timestamp with time zone",
        "c_interval": "interval",
        "c_uuid": "uuid",
        "c_bytea": "bytea",
        "c_json": "json",
        "c_jsonb": "jsonb",
        "c_int_array": "integer[]",
        "c_text_array": "text[]",
        ODD: "text",
    }
    assert {name: types.get(name) for name in wanted} == wanted

    # NULL and the empty string are different values, in plain and quoted-name columns alike.
    assert pg.query("SELECT id FROM dst WHERE c_text IS NULL ORDER BY id") == [(4,), (5,)]
    assert pg.query("SELECT id FROM dst WHERE c_text = '' ORDER BY id") == [(2,)]
    assert pg.query(f"SELECT id FROM dst WHERE {ODD_SQL} = '' ORDER BY id") == [(2,)]
    assert pg.query("SELECT c_text_array FROM dst WHERE id = 1")[0][0] == TEXT_ARRAY
    assert bytes(pg.scalar("SELECT c_bytea FROM dst WHERE id = 3")) == ALL_BYTES
    assert pg.scalar("SELECT c_bigint FROM dst WHERE id = 3") == 2**63 - 1


def test_unconstrained_numeric_as_string_is_exact(pg: Any, source_table: str, run: Any) -> None:
    run(
        {
            "name": "types_numeric_string",
            "source": pg.source(table=source_table, unconstrained_numeric="string"),
            "destination": pg.destination("dst"),
        }
    )
    exact = _expressions(numeric_any="{}")
    assert _checksums(pg, "dst", exact) == _checksums(pg, "src", exact)
    assert pg.column_types("dst")["c_numeric_any"] == "numeric"
    assert pg.scalar("SELECT c_numeric_any::text FROM dst WHERE id = 1") == "1.50"


def test_postgres_to_duckdb_values(pg: Any, source_table: str, run: Any, tmp_path: Path) -> None:
    database = tmp_path / "warehouse.duckdb"
    run(
        {
            "name": "types_duckdb",
            "source": pg.source(table=source_table),
            "destination": {"type": "duckdb", "database": str(database), "table": "dst"},
            "runtime": {"batch_size": 3},
        }
    )
    con = duckdb.connect(str(database), read_only=True)
    try:
        rows = con.sql("SELECT * FROM dst ORDER BY id").to_arrow_table().to_pylist()
        types = dict(
            con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'dst'"
            ).fetchall()
        )
    finally:
        con.close()
    _check_rows(rows, NAMES)
    assert types["c_numeric"] == "DECIMAL(12,3)"
    assert types["c_timestamptz"] == "TIMESTAMP WITH TIME ZONE"
    assert types["c_interval"] == "INTERVAL"
    assert types["c_bytea"] == "BLOB"
    assert types["c_int_array"] == "INTEGER[]"


def test_postgres_to_parquet_values(pg: Any, source_table: str, run: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(
        {
            "name": "types_parquet",
            "source": pg.source(table=source_table),
            # Parquet has no month/day/nano interval type that pyarrow writes: leave it out.
            "transform": {"steps": [{"type": "drop_columns", "columns": ["c_interval"]}]},
            "destination": {"type": "filestore", "path": str(out), "format": "parquet"},
            "runtime": {"batch_size": 2},
        }
    )
    files = sorted(p for p in out.glob("*.parquet") if not p.name.startswith((".", "_")))
    assert files
    table = pa.concat_tables([pq.read_table(p) for p in files])
    rows = table.sort_by("id").to_pylist()
    _check_rows(rows, [name for name in NAMES if name != "c_interval"])
    schema = table.schema
    assert schema.field("c_numeric").type == pa.decimal128(12, 3)
    assert schema.field("c_timestamptz").type == pa.timestamp("us", tz="UTC")
    assert schema.field("c_bytea").type == pa.binary()
    assert schema.field("c_uuid").metadata == {b"pg_type": b"uuid"}


def test_plan_columns_arrow_types(pg: Any, source_table: str) -> None:
    config = PostgresConfig(**pg.settings(), table=source_table)
    connector = PostgresConnector(config)
    connector.conn = connect(config, role="source")
    try:
        plans = connector.plan_columns(f"SELECT * FROM {source_table}")
    finally:
        connector.conn.close()
    fields = {plan.name: plan.field for plan in plans}
    assert list(fields) == NAMES
    expected_types = {
        "id": pa.int32(),
        "c_smallint": pa.int16(),
        "c_integer": pa.int32(),
        "c_bigint": pa.int64(),
        "c_numeric": pa.decimal128(12, 3),
        "c_numeric_any": pa.decimal128(38, 9),
        "c_real": pa.float32(),
        "c_double": pa.float64(),
        "c_text": pa.string(),
        "c_varchar": pa.string(),
        "c_char": pa.string(),
        "c_bool": pa.bool_(),
        "c_date": pa.date32(),
        "c_time": pa.time64("us"),
        "c_timestamp": pa.timestamp("us"),
        "c_timestamptz": pa.timestamp("us", tz="UTC"),
        "c_interval": pa.month_day_nano_interval(),
        "c_uuid": pa.string(),
        "c_bytea": pa.binary(),
        "c_json": pa.string(),
        "c_jsonb": pa.string(),
        "c_int_array": pa.list_(pa.int32()),
        "c_text_array": pa.list_(pa.string()),
        ODD: pa.string(),
    }
    assert {name: field.type for name, field in fields.items()} == expected_types
    tags = {name: (field.metadata or {}).get(b"pg_type") for name, field in fields.items()}
    assert tags["c_uuid"] == b"uuid"
    assert tags["c_json"] == b"json"
    assert tags["c_jsonb"] == b"jsonb"
    assert tags["c_numeric_any"] == b"numeric"
    assert tags["c_numeric"] is None
    assert tags["c_text"] is None


def test_timestamptz_inputs_with_offsets_land_in_utc(pg: Any, run: Any) -> None:
    """The loader's session is UTC whatever the server's TimeZone: offsets are converted once."""
    pg.execute(f"ALTER DATABASE {pg.database} SET TimeZone = 'America/New_York'")
    pg.close()
    pg.execute("CREATE TABLE ts (id int, at timestamptz)")
    offsets = [timezone(timedelta(hours=h, minutes=m)) for h, m in ((5, 30), (-8, 0), (0, 0))]
    pg.executemany(
        "INSERT INTO ts VALUES (%s, %s)",
        [(i, datetime(2024, 3, 10, 1, 30, 0, 123456, tzinfo=tz)) for i, tz in enumerate(offsets)],
    )
    run({"name": "tz", "source": pg.source(table="ts"), "destination": pg.destination("ts_copy")})
    assert pg.query("SELECT id, at FROM ts ORDER BY id") == pg.query(
        "SELECT id, at FROM ts_copy ORDER BY id"
    )


@pytest.mark.parametrize(
    "values",
    [[None, "a", None, "", None], [None, None, None]],
    ids=["mixed", "only_nulls"],
)
def test_single_column_rows_holding_null_are_kept(pg: Any, run: Any, values: list[Any]) -> None:
    """A one-column NULL row is an empty line in COPY's CSV: it must not be skipped."""
    pg.execute("CREATE TABLE one (v text)")
    pg.executemany("INSERT INTO one VALUES (%s)", [(v,) for v in values])
    result = run(
        {
            "name": "one_column",
            "source": pg.source(query="SELECT v FROM one"),
            "destination": pg.destination("one_copy"),
            "runtime": {"batch_size": 2},
        }
    )
    assert result.rows_written == len(values)
    assert sorted(pg.query("SELECT v FROM one_copy"), key=repr) == sorted(
        [(v,) for v in values], key=repr
    )


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/St_Johns"])
def test_csv_writes_zoned_instants_exactly_even_with_an_offset_in_seconds(
    pg: Any, zone: str
) -> None:
    # Berlin kept +00:53:28 until 1893; pyarrow's CSV text rounds an offset to minutes.
    micros = [-2524521600_000_000, 0, 1_700_000_000_123_456]
    batch = pa.record_batch({"at": pa.array(micros, pa.timestamp("us", zone))})
    pg.execute("CREATE TABLE zoned (at timestamptz, wall timestamp)")
    connection = connect(PostgresConfig(**pg.settings(), table="zoned"), role="destination")
    try:
        CsvCopyCodec().write(connection, '"zoned"', batch)
        both = pa.record_batch({"at": batch.column(0), "wall": batch.column(0)})
        CsvCopyCodec().write(connection, '"zoned"', both)
        connection.commit()
    finally:
        connection.close()
    stored = pg.query(
        "SELECT (extract(epoch FROM at) * 1000000)::bigint, "
        "(extract(epoch FROM wall) * 1000000)::bigint FROM zoned"
    )
    assert [at for at, _ in stored] == micros * 2
    assert [wall for _, wall in stored if wall is not None] == micros  # the UTC wall clock


# Instants and days outside years 0001-9999, as Postgres prints them: pyarrow's CSV text would
# write `-4712-…` (refused) or wrap the year past 32767 (stored wrong, silently).
FAR_INSTANTS = [
    "4713-11-24 00:00:00+00 BC",
    "0044-03-15 12:00:00.000123+00 BC",
    "0001-12-31 23:59:59.999999+00 BC",
    "0001-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
    "10000-01-01 00:00:00+00",
    "32768-01-01 00:00:00+00",
    "40000-02-29 06:30:00.5+00",
    "200000-06-01 12:00:00+00",
    "294247-01-10 04:00:54.775807+00",
]
FAR_DAYS = [
    "4714-11-24 BC",
    "0001-12-31 BC",
    "0001-01-01",
    "9999-12-31",
    "10000-01-01",
    "65536-03-01",
    "5874897-12-31",
]


def _write_csv(pg: Any, table: str, batch: pa.RecordBatch) -> None:
    connection = connect(PostgresConfig(**pg.settings(), table=table), role="destination")
    try:
        CsvCopyCodec().write(connection, f'"{table}"', batch)
        connection.commit()
    finally:
        connection.close()


def test_csv_writes_instants_and_days_outside_years_1_to_9999_exactly(pg: Any) -> None:
    micros = [
        pg.scalar(
            # whole seconds and microseconds apart: the epoch as one numeric loses digits here
            "SELECT extract(epoch FROM date_trunc('second', t))::bigint * 1000000"
            " + extract(microseconds FROM t)::bigint %% 1000000 FROM (SELECT %s::timestamptz) s(t)",
            (text,),
        )
        for text in FAR_INSTANTS
    ]
    days = [pg.scalar("SELECT %s::date - date '1970-01-01'", (text,)) for text in FAR_DAYS]
    pg.execute("CREATE TABLE far (n int, at timestamptz, wall timestamp, ats timestamptz[])")
    pg.execute("CREATE TABLE far_days (n int, d date, d64 date)")
    stamps = [*micros, None]
    _write_csv(
        pg,
        "far",
        pa.record_batch(
            {
                "n": pa.array(range(len(stamps)), pa.int32()),
                "at": pa.array(stamps, pa.timestamp("us", "UTC")),
                "wall": pa.array(stamps, pa.timestamp("us")),
                "ats": pa.array([[m, None] for m in stamps], pa.list_(pa.timestamp("us", "UTC"))),
            }
        ),
    )
    _write_csv(
        pg,
        "far_days",
        pa.record_batch(
            {
                "n": pa.array(range(len(days) + 1), pa.int32()),
                "d": pa.array([*days, None], pa.date32()),
                "d64": pa.array([d * 86_400_000 for d in days] + [None], pa.date64()),
            }
        ),
    )
    stored = pg.query("SELECT at::text, wall::text, ats::text FROM far ORDER BY n")
    walls = [text.replace("+00", "") for text in FAR_INSTANTS]
    arrays = [f'{{"{text}",NULL}}' for text in FAR_INSTANTS]
    assert stored == [*zip(FAR_INSTANTS, walls, arrays, strict=True), (None, None, "{NULL,NULL}")]
    stored_days = pg.query("SELECT d::text, d64::text FROM far_days ORDER BY n")
    assert stored_days == [*((text, text) for text in FAR_DAYS), (None, None)]


def test_csv_floors_date64_to_whole_days_as_binary_copy_does(pg: Any) -> None:
    pg.execute("CREATE TABLE floored (n int, d date)")
    bc_noon = pg.scalar("SELECT date '0044-03-15 BC' - date '1970-01-01'") * 86_400_000 + 43_200_000
    values = [-1, 86_400_005, -86_400_000, bc_noon, 253402300799999 + 1]
    _write_csv(
        pg,
        "floored",
        pa.record_batch(
            {"n": pa.array(range(len(values)), pa.int32()), "d": pa.array(values, pa.date64())}
        ),
    )
    assert pg.query("SELECT d::text FROM floored ORDER BY n") == [
        ("1969-12-31",),
        ("1970-01-02",),
        ("1969-12-31",),
        ("0044-03-15 BC",),
        ("10000-01-01",),
    ]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("timestamptz", pa.array([10**13], pa.timestamp("s", "UTC"))),
        ("timestamp", pa.array([-211_000_000_000_000_000], pa.timestamp("us"))),
        ("date", pa.array([2_147_483_000], pa.date32())),
        ("date", pa.array([-2_440_589], pa.date32())),
    ],
)
def test_csv_still_refuses_values_outside_postgres_range(
    pg: Any, column: str, value: pa.Array
) -> None:
    pg.execute(f"CREATE TABLE beyond (v {column})")
    with pytest.raises(psycopg2.Error, match="out of range"):
        _write_csv(pg, "beyond", pa.record_batch({"v": value}))
    assert pg.query("SELECT count(*) FROM beyond") == [(0,)]


@pytest.mark.parametrize(
    "array",
    [
        pa.array([[0], [1_600_000_000_999_999_999]], pa.list_(pa.timestamp("ns", "UTC"))),
        pa.array([[0], None, [86_399_999_999_999]], pa.large_list(pa.time64("ns"))),
        pa.array([[[None, 1]]], pa.list_(pa.list_(pa.time64("ns")))),
    ],
)
def test_nanoseconds_inside_lists_are_refused_naming_the_column(array: pa.Array) -> None:
    batch = pa.record_batch({"id": pa.array([1] * len(array)), "nested": array})
    with pytest.raises(ConnectorError, match="column 'nested' holds nanoseconds"):
        in_microseconds(batch)


def test_whole_microseconds_inside_lists_are_written_exactly(pg: Any) -> None:
    pg.execute("CREATE TABLE listed (n int, ats timestamptz[], ts time[])")
    ats = pa.array([[1_600_000_000_123_456_000, None], None], pa.list_(pa.timestamp("ns", "UTC")))
    ts = pa.array([[86_399_999_999_000], [1_000]], pa.list_(pa.time64("ns")))
    batch = pa.record_batch({"n": pa.array([1, 2], pa.int32()), "ats": ats, "ts": ts})
    assert in_microseconds(batch).schema.field("ats").type == pa.list_(pa.timestamp("us", "UTC"))
    _write_csv(pg, "listed", batch)
    assert pg.query("SELECT ats::text, ts::text FROM listed ORDER BY n") == [
        ('{"2020-09-13 12:26:40.123456+00",NULL}', "{23:59:59.999999}"),
        (None, "{00:00:00.000001}"),
    ]


def test_csv_writes_the_end_of_the_day_as_postgres_time_holds_it(pg: Any) -> None:
    pg.execute("CREATE TABLE clock (n int, t time, ts time[])")
    micros = [0, 86_399_999_999, 86_400_000_000, None]
    batch = pa.record_batch(
        {
            "n": pa.array(range(len(micros)), pa.int32()),
            "t": pa.array(micros, pa.time64("us")),
            "ts": pa.array([[m] for m in micros], pa.list_(pa.time64("us"))),
        }
    )
    _write_csv(pg, "clock", batch)
    assert pg.query("SELECT t::text, ts::text FROM clock ORDER BY n") == [
        ("00:00:00", "{00:00:00}"),
        ("23:59:59.999999", "{23:59:59.999999}"),
        ("24:00:00", "{24:00:00}"),
        (None, "{NULL}"),
    ]
    with pytest.raises(psycopg2.Error):
        _write_csv(pg, "clock", pa.record_batch({"t": pa.array([86_400_000_001], pa.time64("us"))}))


def test_csv_writes_view_and_extension_arrays(pg: Any) -> None:
    pg.execute("CREATE TABLE views (n int, s text, b bytea, j jsonb, ss text[])")
    batch = pa.record_batch(
        {
            "n": pa.array([1, 2], pa.int32()),
            "s": pa.array(["é" * 20, None], pa.string_view()),
            "b": pa.array([b"\x00\xff", None], pa.binary_view()),
            "j": pa.array(['{"a": 1}', None], pa.json_()),
            "ss": pa.array([["x", None], None], pa.list_(pa.string_view())),
        }
    )
    _write_csv(pg, "views", batch)
    assert pg.query("SELECT s, encode(b, 'hex'), j::text, ss::text FROM views ORDER BY n") == [
        ("é" * 20, "00ff", '{"a": 1}', "{x,NULL}"),
        (None, None, None, None),
    ]
