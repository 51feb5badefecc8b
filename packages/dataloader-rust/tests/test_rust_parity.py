"""The CSV codec and the binary codec read the edges of Postgres' date, time and interval types
the same: BC dates and years past 9999 as exact Arrow values, the same error (type and words)
for infinity, timestamps past Arrow's year 294247 and intervals whose nanoseconds overflow,
and the same refusal of multi-dimensional arrays, naming the column and the row."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataloader import ConnectorError
from dataloader_postgres import PostgresConfig
from dataloader_postgres.codec import CsvCopyCodec
from dataloader_postgres.connection import connect
from dataloader_postgres.testing import PostgresServer
from dataloader_postgres.types import plan_column
from dataloader_rust.codec import BinaryCopyCodec
from dataloader_rust.copy_write import binary_encoder

BINARY = BinaryCopyCodec()
CSV = CsvCopyCodec()


@pytest.fixture(scope="module")
def conn(postgres_server: PostgresServer) -> Iterator[Any]:
    """One database and connection (with the connector's session settings) for the module."""
    database = postgres_server.create_database()
    config = PostgresConfig(**postgres_server.connection_settings(database), table="t")
    connection = connect(config, role="source")
    try:
        yield connection
    finally:
        connection.close()


def read(codec: Any, connection: Any, query: str, batch_size: int = 3) -> pa.Table:
    cursor = connection.cursor()
    try:
        cursor.execute(f"SELECT * FROM ({query}) AS q LIMIT 0")
    except Exception:
        connection.rollback()
        raise
    plans = []
    for column in cursor.description:
        cursor.execute("SELECT format_type(%s, NULL)", (column.type_code,))
        plans.append(
            plan_column(
                column.name,
                column.type_code,
                cursor.fetchone()[0],
                column.precision,
                column.scale,
                "decimal",
                column.internal_size,
            )
        )
    connection.rollback()
    try:
        batches = list(codec.read(connection, query, plans, batch_size))
    finally:
        connection.rollback()
    return pa.Table.from_batches(batches, schema=pa.schema([plan.field for plan in plans]))


def storage(column: pa.Array | pa.ChunkedArray) -> list[Any]:
    """The values as integers (Python's dates end at year 1 and 9999), lists kept."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    kind = array.type
    if pa.types.is_list(kind):
        return [
            None if not item.is_valid else storage(item.values) if len(item) else []
            for item in array
        ]
    if pa.types.is_date32(kind):
        return array.view(pa.int32()).to_pylist()
    if pa.types.is_timestamp(kind):
        return array.view(pa.int64()).to_pylist()
    return array.to_pylist()


def assert_codecs_agree(connection: Any, query: str) -> pa.Table:
    csv, binary = read(CSV, connection, query), read(BINARY, connection, query)
    assert csv.schema.equals(binary.schema, check_metadata=True)
    for name in csv.column_names:
        assert storage(csv.column(name)) == storage(binary.column(name)), name
    return csv


def error_of(codec: Any, connection: Any, query: str) -> ConnectorError:
    with pytest.raises(ConnectorError) as caught:
        read(codec, connection, query)
    return caught.value


def assert_same_error(connection: Any, query: str) -> str:
    """Both codecs fail with a ConnectorError of the same words; the binary codec's may name
    its stream (`binary COPY data, `) where the CSV codec's does not."""
    csv = str(error_of(CSV, connection, query))
    binary = str(error_of(BINARY, connection, query)).replace("binary COPY data, ", "")
    assert csv == binary
    return csv


EDGES = """SELECT * FROM (VALUES
 (1, '4713-01-01 BC'::date, '4713-01-01 00:00 BC'::timestamp,
  '4713-01-01 00:00:00.000001+00 BC'::timestamptz, '1 year -2 mons 3 days'::interval,
  '{2024-02-29,NULL,4713-11-24 BC}'::date[], '{"0001-12-31 23:59:59.999999 BC"}'::timestamp[],
  '{"10000-01-01 00:00+00"}'::timestamptz[], '{"2562047:47:16.854775", NULL}'::interval[]),
 (2, '5874897-12-31', '294247-01-10 04:00:54.775807', '294247-01-10 04:00:54.775807+00',
  '-2562047:47:16.854775', '{}', '{}', NULL, '{"-1 days +2562047:47:16.854775"}'),
 (3, '0001-01-01 BC', '0001-12-31 23:59:59.5 BC', '1582-10-04 12:00+00',
  '2562047:47:16.854775', NULL, NULL, '{NULL}', '{}'),
 (4, '10000-02-29', '12345-06-07 08:09:10.11', '9999-12-31 23:59:59.999999+00',
  '-178000000 years -2147483647 days', '{1970-01-01}', '{"1969-12-31 23:59:59.999999"}',
  '{"1900-01-01 00:00:00.000001+00"}', '{"2562047 hours"}'),
 (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (6, '2000-02-29', '2000-02-29 00:00', '2000-02-29 00:00+00', '00:00', NULL, NULL, NULL, NULL)
) AS v(id, d, ts, tz, iv, ds, tss, tzs, ivs) ORDER BY id"""


def micros_since_1970(column: str) -> str:
    """SQL for a timestamp's microseconds since 1970, exact (extract on an interval is)."""
    since = f"({column} - '1970-01-01 00:00+00')"
    return (
        f"(extract(day FROM {since}) * 86400000000 + extract(hour FROM {since}) * 3600000000"
        f" + extract(minute FROM {since}) * 60000000 + extract(microseconds FROM {since}))::bigint"
    )


def test_bc_far_future_and_longest_values_read_the_same(conn: Any) -> None:
    table = assert_codecs_agree(conn, EDGES)
    expected = conn.cursor()
    expected.execute(
        f"SELECT d - date '1970-01-01', {micros_since_1970('ts')}, {micros_since_1970('tz')}"
        f" FROM ({EDGES}) AS e ORDER BY id"
    )
    days, stamps, zoned = zip(*expected.fetchall(), strict=True)
    conn.rollback()
    assert storage(table.column("d")) == list(days)
    assert storage(table.column("ts")) == list(stamps)
    assert storage(table.column("tz")) == list(zoned)
    longest = table.column("iv")[2].as_py()
    assert longest.nanoseconds == 9_223_372_036_854_775_000


@pytest.mark.parametrize("batch_size", [1, 2, 100])
def test_batch_sizes_do_not_change_the_values(conn: Any, batch_size: int) -> None:
    csv = read(CSV, conn, EDGES, batch_size)
    binary = read(BINARY, conn, EDGES, batch_size)
    for name in csv.column_names:
        assert storage(csv.column(name)) == storage(binary.column(name)), name


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 'infinity'::date AS d",
        "SELECT '-infinity'::date AS d",
        "SELECT 'infinity'::timestamp AS ts",
        "SELECT '-infinity'::timestamptz AS tz",
        "SELECT '294247-01-10 04:00:54.775808'::timestamp AS ts",
        "SELECT '294276-12-31 23:59:59.999999+00'::timestamptz AS tz",
        "SELECT '2562047:47:16.854776'::interval AS iv",
        "SELECT '1 year -2 mons -3 days -2562047:47:16.854776'::interval AS iv",
        "SELECT '-1 days +3000000:00:00.5'::interval AS iv",
        "SELECT '{2024-01-01,infinity}'::date[] AS ds",
        "SELECT '{NULL,-infinity}'::timestamp[] AS tss",
        "SELECT ARRAY['1 day'::interval, NULL, '-3000000 hours -1 second'] AS ivs",
        "SELECT '{{1,2},{3,NULL}}'::int[] AS grid",
        "SELECT '{{{a}}}'::text[] AS cube",
        "SELECT '{{1 day},{NULL}}'::interval[] AS ivs",
        'SELECT \'{{2024-01-01}}\'::date[] AS "odd ""name"',
    ],
)
def test_values_arrow_cannot_hold_fail_the_same_way(conn: Any, query: str) -> None:
    assert_same_error(conn, f"SELECT 1 AS id, * FROM ({query}) AS v")


def test_the_first_bad_value_in_row_order_is_reported(conn: Any) -> None:
    """The binary codec stops at the first bad row (its leftmost bad column); so does CSV."""
    query = """SELECT * FROM (VALUES
        (1, '2024-01-01'::date, '{1}'::int[], '1 day'::interval),
        (2, '2024-01-01', '{1}', '3000000 hours'),
        (3, 'infinity', '{{1}}', '1 day')) AS v(id, d, grid, iv) ORDER BY id"""
    message = assert_same_error(conn, query)
    assert "'iv' holds '3000000:00:00'" in message
    later = query.replace("'3000000 hours'", "'1 hour'")
    message = assert_same_error(conn, later)
    assert "'d' holds 'infinity'" in message
    last = later.replace("(3, 'infinity'", "(3, '2024-01-02'")
    assert 'column "grid", row 3: a 2-dimensional array' in assert_same_error(conn, last)


# Dates, timestamps (up to Arrow's last microsecond) and intervals Postgres holds, as SQL.
DATES = st.integers(-2_440_588, 2_145_042_905).map(lambda days: f"date '1970-01-01' + {days}")
STAMPS = st.integers(-210_866_803_200_000_000, 2**63 - 1).map(
    lambda micros: (
        "timestamp '1970-01-01' + make_interval(days => {}) + interval '1 microsecond' * {}".format(
            *divmod(micros, 86_400_000_000)
        )
    )
)


def _interval_sql(months: int, days: int, micros: int) -> str:
    seconds, fraction = divmod(abs(micros), 1_000_000)
    sign = "-" if micros < 0 else ""
    clock = f"{sign}{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{fraction:06d}"
    return f"make_interval(months => {months}, days => {days}) + interval '{clock}'"


INTERVALS = st.builds(
    _interval_sql,
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**63) + 1, 2**63 - 1) | st.integers(-(10**16), 10**16),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(st.none() | DATES, st.none() | STAMPS, st.none() | INTERVALS),
        min_size=1,
        max_size=6,
    )
)
def test_random_dates_stamps_and_intervals_read_the_same(conn: Any, rows: list[Any]) -> None:
    values = ", ".join(
        f"({index}, ({date_sql or 'NULL::date'}), ({stamp_sql or 'NULL::timestamp'}),"
        f" ({stamp_sql or 'NULL::timestamp'})::timestamptz, ({interval_sql or 'NULL::interval'}))"
        for index, (date_sql, stamp_sql, interval_sql) in enumerate(rows)
    )
    query = f"SELECT * FROM (VALUES {values}) AS v(id, d, ts, tz, iv) ORDER BY id"
    try:
        csv: pa.Table | ConnectorError = read(CSV, conn, query)
    except ConnectorError as exc:
        csv = exc
    try:
        binary: pa.Table | ConnectorError = read(BINARY, conn, query)
    except ConnectorError as exc:
        binary = exc
    if isinstance(csv, ConnectorError) or isinstance(binary, ConnectorError):
        assert str(csv) == str(binary)
        return
    for name in csv.column_names:
        assert storage(csv.column(name)) == storage(binary.column(name)), name


# Written by both codecs: BC, years past 9999 (and past pyarrow's 32767/65535 text limits),
# date64 that is not whole days, lists of them. Days and microseconds since 1970.
FAR_MICROS = [
    -210_866_803_200_000_000,  # 4714-11-24 00:00 BC, Postgres' first instant
    -735_160 * 86_400_000_000 + 43_200_000_123,  # 0044-03-15 12:00:00.000123 BC
    -62_135_596_800_000_001,  # the last microsecond BC
    253_402_300_800_000_000,  # 10000-01-01
    971_890_963_200_000_000,  # 32768-01-01
    72_329_124 * 86_400_000_000 + 123_456,  # 200000-06-01
    2**63 - 1,
    None,
]
FAR_DAYS = [-2_440_588, -719_163, 2_932_897, 11_248_738, 72_329_124, 2_145_042_905, 0, None]
DATE64_MS = [-1, 86_400_005, -210_866_803_199_999, 2_932_897 * 86_400_000 + 1, None]


@pytest.fixture
def writer(postgres_server: PostgresServer) -> Iterator[Any]:
    """A fresh database and a destination connection to it."""
    database = postgres_server.create_database()
    config = PostgresConfig(**postgres_server.connection_settings(database), table="t")
    connection = connect(config, role="destination")
    try:
        yield connection
    finally:
        connection.close()


def _written_by(codec: Any, connection: Any, columns: str, batch: pa.RecordBatch) -> list[Any]:
    """`batch` written by `codec` into a new table `w` of `columns`, read back as text."""
    cursor = connection.cursor()
    cursor.execute(f"DROP TABLE IF EXISTS w; CREATE TABLE w ({columns})")
    codec.write(connection, "w", batch)
    cursor.execute(
        f"SELECT {', '.join(f'{n}::text' for n in batch.schema.names)} FROM w ORDER BY n"
    )
    rows = cursor.fetchall()
    connection.commit()
    return rows


def _binary_writes(connection: Any, columns: str, batch: pa.RecordBatch) -> None:
    """The binary encoder itself takes `batch`, not its CSV fallback."""
    connection.cursor().execute(f"DROP TABLE IF EXISTS w; CREATE TABLE w ({columns})")
    encoder, reason = binary_encoder(connection, "w", batch)
    connection.rollback()
    assert encoder is not None, reason


def test_far_dates_and_instants_are_written_the_same(writer: Any) -> None:
    stamps = pa.record_batch(
        {
            "n": pa.array(range(len(FAR_MICROS)), pa.int32()),
            "tz": pa.array(FAR_MICROS, pa.timestamp("us", "UTC")),
            "berlin": pa.array(FAR_MICROS, pa.timestamp("us", "Europe/Berlin")),
            "ts": pa.array(FAR_MICROS, pa.timestamp("us")),
            "tzs": pa.array([[m, None] for m in FAR_MICROS], pa.list_(pa.timestamp("us", "UTC"))),
        }
    )
    days = pa.record_batch(
        {
            "n": pa.array(range(len(FAR_DAYS)), pa.int32()),
            "d": pa.array(FAR_DAYS, pa.date32()),
            "d64": pa.array([None if d is None else d * 86_400_000 for d in FAR_DAYS], pa.date64()),
            "ds": pa.array([[d] for d in FAR_DAYS], pa.list_(pa.date32())),
        }
    )
    odd = pa.record_batch(
        {
            "n": pa.array(range(len(DATE64_MS)), pa.int32()),
            "d": pa.array(DATE64_MS, pa.date64()),
            "t": pa.array([0, 86_400_000_000, 1, 86_399_999_999, None], pa.time64("us")),
        }
    )
    writer.cursor().execute("SET TimeZone = 'UTC'")
    written = []
    for columns, batch in [
        ("n int, tz timestamptz, berlin timestamptz, ts timestamp, tzs timestamptz[]", stamps),
        ("n int, d date, d64 date, ds date[]", days),
        ("n int, d date, t time", odd),
    ]:
        _binary_writes(writer, columns, batch)
        csv = _written_by(CSV, writer, columns, batch)
        assert csv == _written_by(BINARY, writer, columns, batch)
        written.append(csv)
    assert [row[1] for row in written[0]] == [
        "4714-11-24 00:00:00+00 BC",
        "0044-03-15 12:00:00.000123+00 BC",
        "0001-12-31 23:59:59.999999+00 BC",
        "10000-01-01 00:00:00+00",
        "32768-01-01 00:00:00+00",
        "200000-06-01 00:00:00.123456+00",
        "294247-01-10 04:00:54.775807+00",
        None,
    ]
    assert [row[1] for row in written[1]] == [
        "4714-11-24 BC",
        "0001-12-31 BC",
        "10000-01-01",
        "32768-01-01",
        "200000-06-01",
        "5874897-12-31",
        "1970-01-01",
        None,
    ]
    assert [row[1] for row in written[2]] == [
        "1969-12-31",
        "1970-01-02",
        "4714-11-24 BC",
        "10000-01-01",
        None,
    ]
    assert [row[2] for row in written[2]] == [
        "00:00:00",
        "24:00:00",
        "00:00:00.000001",
        "23:59:59.999999",
        None,
    ]


@pytest.mark.parametrize(
    "array",
    [
        pa.array([[0], [1_600_000_000_999_999_999]], pa.list_(pa.timestamp("ns", "UTC"))),
        pa.array([[0], [86_399_999_999_999]], pa.list_(pa.time64("ns"))),
    ],
)
def test_nanoseconds_inside_lists_are_refused_the_same(writer: Any, array: pa.Array) -> None:
    batch = pa.record_batch({"n": pa.array([1, 2], pa.int32()), "x": array})
    kind = "timestamptz[]" if pa.types.is_timestamp(array.type.value_type) else "time[]"
    writer.cursor().execute(f"CREATE TABLE w (n int, x {kind})")
    writer.commit()
    errors = []
    for codec in (CSV, BINARY):
        with pytest.raises(ConnectorError) as caught:
            codec.write(writer, "w", batch)
        writer.rollback()
        errors.append(str(caught.value))
    assert errors[0] == errors[1]
    assert "column 'x' holds nanoseconds" in errors[0]


def test_view_and_extension_arrays_are_written_the_same(writer: Any) -> None:
    columns = "n int, s text, b bytea, j jsonb"
    batch = pa.record_batch(
        {
            "n": pa.array([1, 2], pa.int32()),
            "s": pa.array(["é" * 20, None], pa.string_view()),
            "b": pa.array([b"\x00\xff", None], pa.binary_view()),
            "j": pa.array(['{"a": 1}', None], pa.json_()),
        }
    )
    csv = _written_by(CSV, writer, columns, batch)
    assert csv == _written_by(BINARY, writer, columns, batch)
    assert csv == [("1", "é" * 20, "\\x00ff", '{"a": 1}'), ("2", None, None, None)]
