"""The binary COPY read path (`BinaryCopyCodec.read`) against the CSV codec on a real Postgres:
the same Arrow types, field metadata and values for every type the connector reads, the same
errors for values Arrow cannot hold, clear errors for damaged streams, and parallel reads."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dataloader_postgres.connector as connector_module
from dataloader import ConnectorError, LocalStateBackend, RecipeLoader, run_recipe
from dataloader_postgres import PostgresConfig
from dataloader_postgres.codec import CsvCopyCodec
from dataloader_postgres.connection import connect
from dataloader_postgres.testing import PostgresServer
from dataloader_postgres.types import ColumnPlan, plan_column
from dataloader_rust import copy_read
from dataloader_rust._native import CopyDecodeError, CopyDecoder, UnreadableValueError
from dataloader_rust.codec import BinaryCopyCodec
from dataloader_rust.copy_read import copy_query

BINARY = BinaryCopyCodec()
CSV = CsvCopyCodec()


@pytest.fixture
def config(postgres_server: PostgresServer, postgres_database: str) -> PostgresConfig:
    return PostgresConfig(**postgres_server.connection_settings(postgres_database), table="t")


@pytest.fixture
def conn(config: PostgresConfig) -> Iterator[Any]:
    """A connection with the connector's session settings (UTC, ISO dates…)."""
    connection = connect(config, role="source")
    try:
        yield connection
    finally:
        connection.close()


def execute(connection: Any, sql: str, params: Any = None) -> None:
    connection.cursor().execute(sql, params)
    connection.commit()


def plans_for(connection: Any, query: str, unconstrained: str = "decimal") -> list[ColumnPlan]:
    """The connector's plans for `query` (as `PostgresConnector.plan_columns` makes them)."""
    cursor = connection.cursor()
    cursor.execute(f"SELECT * FROM ({query}) AS q LIMIT 0")
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
                unconstrained,
                column.internal_size,
            )
        )
    connection.rollback()
    return plans


def read(
    codec: Any, connection: Any, query: str, unconstrained: str = "decimal", batch_size: int = 3
) -> list[pa.RecordBatch]:
    plans = plans_for(connection, query, unconstrained)
    batches = list(codec.read(connection, query, plans, batch_size))
    connection.rollback()
    return batches


def comparable(value: Any) -> Any:
    """NaN as a marker (NaN != NaN), recursively through lists."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, list):
        return [comparable(item) for item in value]
    return value


def assert_same(binary: list[pa.RecordBatch], csv: list[pa.RecordBatch]) -> None:
    """Same batch sizes, same schema (field metadata included), same values."""
    assert [batch.num_rows for batch in binary] == [batch.num_rows for batch in csv]
    for ours, theirs in zip(binary, csv, strict=True):
        assert ours.schema.equals(theirs.schema, check_metadata=True), (
            ours.schema,
            theirs.schema,
        )
        for name in ours.schema.names:
            mine, expected = ours.column(name), theirs.column(name)
            assert mine.type == expected.type
            assert comparable(mine.to_pylist()) == comparable(expected.to_pylist()), name


def assert_codecs_agree(connection: Any, query: str, unconstrained: str = "decimal") -> None:
    csv = read(CSV, connection, query, unconstrained)
    binary = read(BINARY, connection, query, unconstrained)
    assert csv, "the query returned no rows"
    assert_same(binary, csv)


SCALARS = """
CREATE TABLE t (
    id int, b bool, i2 smallint, i4 int, i8 bigint, o oid, f4 real, f8 double precision,
    n numeric(12,3), nw numeric(50,10), nu numeric, tx text, vc varchar(10), bp char(4),
    nm name, ch "char", by bytea, d date, tm time, ts timestamp, tz timestamptz,
    iv interval, u uuid, js json, jb jsonb, mood mood, cash money
)"""
SCALAR_ROWS = [
    "(1, true, -32768, -2147483648, -9223372036854775808, 0, 1.5, 0.1, -123456789.125,"
    " '-1234567890123456789012345678901234567890.0123456789', 1.5, 'héllo', 'x', 'ab',"
    " 'name', 'a', '\\x00ff5c', '2024-02-29', '00:00', '1970-01-01 00:00',"
    " '2024-01-01 12:00+05', '1 year 2 mons -3 days 04:05:06.000007',"
    ' \'a1b2c3d4-e5f6-4789-8abc-def012345678\', \'{"a": [1, 2.50]}\', \'{"b": "ü", "a": 1}\','
    " 'happy', 12.5)",
    "(2, false, 32767, 2147483647, 9223372036854775807, 4294967295, 'NaN', 'Infinity',"
    " 0, 0.0000000001, -0.000000001, '', 'line\nbreak', '', '', '\\303', '\\x', '0001-01-01',"
    " '23:59:59.999999', '9999-12-31 23:59:59.999999', '1900-01-01 00:00:00.000001+00',"
    " '-1 days +02:00:00', '00000000-0000-0000-0000-000000000000', 'null', '[]', 'sad', -1)",
    "(3, NULL, NULL, NULL, NULL, NULL, '-Infinity', '-0', NULL, NULL, 123456789012345678901,"
    " 'tab\tcomma,quote\"', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '0', NULL,"
    " NULL, NULL, NULL, NULL)",
    "(4, NULL, 0, 0, 0, 1, 3.4028235e38, 1.7976931348623157e308, 999999999.999, 1, NULL,"
    " NULL, 'ten chars!', 'abcd', 'n', '', '\\x00', '1970-01-01', '12:34:56.5',"
    " '2000-01-01 00:00', '1970-01-01 00:00+00', '178000000 years', NULL, NULL, NULL, NULL,"
    " NULL)",
    "(5, NULL, NULL, NULL, NULL, NULL, 1e-45, 5e-324, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    " NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
]


def test_every_scalar_type_reads_as_the_csv_codec_reads_it(conn: Any) -> None:
    execute(conn, "CREATE TYPE mood AS ENUM ('happy', 'sad')")
    execute(conn, SCALARS)
    execute(conn, "INSERT INTO t VALUES " + ", ".join(SCALAR_ROWS))
    assert_codecs_agree(conn, "SELECT * FROM t ORDER BY id")
    binary = pa.Table.from_batches(read(BINARY, conn, "SELECT * FROM t ORDER BY id"))
    assert binary.column("nw")[0].as_py() == Decimal(
        "-1234567890123456789012345678901234567890.0123456789"
    )
    assert binary.column("u").to_pylist()[:2] == [
        "a1b2c3d4-e5f6-4789-8abc-def012345678",
        "00000000-0000-0000-0000-000000000000",
    ]
    assert binary.schema.field("mood").metadata == {b"pg_type": b"mood"}


@pytest.mark.parametrize("mode", ["decimal", "string", "float"])
def test_unconstrained_numeric_in_each_mode(conn: Any, mode: str) -> None:
    execute(conn, "CREATE TABLE t (id int, n numeric, a numeric[])")
    values = ["0", "-1.5", "123456789012345678.123456789", "0.000000001", "1e20", "-0.1"]
    if mode != "decimal":
        values += ["NaN", "1E-36", "12345678901234567890.123456789012345", "Infinity"]
    conn.cursor().executemany(
        "INSERT INTO t VALUES (%s, %s::numeric, ARRAY[%s::numeric, NULL])",
        [(i, v, v) for i, v in enumerate(values)] + [(len(values), None, None)],
    )
    conn.commit()
    assert_codecs_agree(conn, "SELECT * FROM t ORDER BY id", mode)


ARRAYS = """
CREATE TABLE t (
    id int, b bool[], i2 smallint[], i4 int[], i8 bigint[], o oid[], f4 real[],
    f8 double precision[], n numeric(12,3)[], nw numeric(45,5)[], tx text[], vc varchar[],
    bp char(3)[], nm name[], ch "char"[], by bytea[], d date[], tm time[], ts timestamp[],
    tz timestamptz[], iv interval[], u uuid[], js json[], jb jsonb[]
)"""
ARRAY_ROWS = [
    "(1, '{t,NULL,f}', '{1,NULL,-32768}', '{2147483647}', '{-1,0}', '{7}',"
    " '{NaN,Infinity,-Infinity,1.25}', '{0.1,NULL,-0}', '{1.5,NULL,-999999999.999}',"
    ' \'{1234567890123456789012345678901234567890.12345}\', \'{"a b",NULL,"","\\"q\\""}\','
    " '{x}', '{a,NULL}', '{nm}', '{a,\\\\303}', '{\"\\\\x00ff\",NULL}',"
    " '{2024-01-01,NULL,1970-01-01}', '{00:00,23:59:59.999999,NULL}',"
    " '{\"2024-01-01 00:00:00.5\",NULL}', '{\"2024-01-01 00:00+02\"}',"
    ' \'{"1 day",NULL,"-00:00:00.000001","1 year 2 mons"}\','
    " '{a1b2c3d4-e5f6-4789-8abc-def012345678,NULL}', ARRAY['{\"k\": 1}'::json, NULL],"
    " ARRAY['{\"k\": [true]}'::jsonb])",
    "(2, '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}',"
    " '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}')",
    "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    " NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "(4, '{NULL}', '{NULL,NULL}', '[0:1]={5,6}', '[-3:-3]={8}', NULL, NULL, NULL, NULL, NULL,"
    " '{NULL}', NULL, NULL, NULL, NULL, '{NULL}', NULL, NULL, NULL, NULL, '{NULL}', NULL,"
    " NULL, '{NULL}')",
]


def test_one_dimensional_arrays_of_every_type_read_as_the_csv_codec_reads_them(
    conn: Any,
) -> None:
    execute(conn, ARRAYS)
    execute(conn, "INSERT INTO t VALUES " + ", ".join(ARRAY_ROWS))
    assert_codecs_agree(conn, "SELECT * FROM t ORDER BY id")
    binary = pa.Table.from_batches(read(BINARY, conn, "SELECT id, i4, i8 FROM t ORDER BY id"))
    assert binary.column("i4").to_pylist() == [[2147483647], [], None, [5, 6]]


def test_batches_are_cut_at_batch_size_and_zero_rows_give_no_batch(conn: Any) -> None:
    execute(conn, "CREATE TABLE t AS SELECT g AS id, g::text AS name FROM generate_series(1, 10) g")
    plans = plans_for(conn, "SELECT * FROM t")
    sizes = [b.num_rows for b in BINARY.read(conn, "SELECT * FROM t ORDER BY id", plans, 4)]
    assert sizes == [4, 4, 2]
    conn.rollback()
    assert list(BINARY.read(conn, "SELECT * FROM t WHERE false", plans, 4)) == []


# -- values Arrow cannot hold: the CSV codec's errors ---------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "SELECT '24:00:00'::time AS tm",
        "SELECT ARRAY['01:00'::time, '24:00:00'] AS tms",
        "SELECT 'NaN'::numeric(10,2) AS price",
        "SELECT 'Infinity'::numeric AS n",
        "SELECT '1E-36'::numeric AS n",
        "SELECT '1E+30'::numeric AS n",
        "SELECT ARRAY[1.5, 'NaN']::numeric[] AS ns",
        "SELECT '{infinity}'::date[] AS ds",
        "SELECT '{-infinity}'::timestamptz[] AS ts",
    ],
)
def test_unreadable_values_fail_with_the_csv_codecs_message(conn: Any, query: str) -> None:
    messages = []
    for codec in (CSV, BINARY):
        with pytest.raises(ConnectorError) as caught:
            read(codec, conn, f"SELECT 1 AS id, * FROM ({query}) AS v")
        messages.append(str(caught.value))
        conn.rollback()
    assert messages[0] == messages[1]


@pytest.mark.parametrize(
    ("query", "column", "value"),
    [
        ("SELECT 'infinity'::date AS d", "d", "infinity"),
        ("SELECT '-infinity'::timestamp AS ts", "ts", "-infinity"),
        ("SELECT 'infinity'::timestamptz AS tz", "tz", "infinity"),
        ("SELECT '294276-12-31 23:59:59.999999'::timestamp AS ts", "ts", "294276-12-31"),
        ("SELECT '1 day 3000000 hours'::interval AS iv", "iv", "1 day 3000000:00:00"),
    ],
)
def test_infinite_and_out_of_range_instants_name_column_and_value(
    conn: Any, query: str, column: str, value: str
) -> None:
    """The CSV codec fails on these with pyarrow's CSV conversion error; the binary codec
    names the column and the value as the CSV codec does for array elements."""
    with pytest.raises(ConnectorError) as caught:
        read(BINARY, conn, query)
    message = str(caught.value)
    assert f"column '{column}' holds" in message and value in message
    assert "cannot hold" in message


def test_dates_and_timestamps_beyond_python_read_exactly(conn: Any) -> None:
    """BC dates and years past 9999 (the CSV codec cannot parse them) are exact Arrow values."""
    query = (
        "SELECT d, ts, (d - date '1970-01-01') AS days,"
        " (extract(epoch FROM ts) * 1000000)::bigint AS micros FROM (VALUES"
        " ('4713-01-01 BC'::date, '4713-01-01 00:00 BC'::timestamp),"
        " ('5874897-12-31', '294246-12-31 23:59:59'),"
        " ('0001-01-01 BC', '0001-12-31 23:59:59.999999 BC')) AS v(d, ts)"
    )
    table = pa.Table.from_batches(read(BINARY, conn, query))
    assert table.column("d").cast(pa.int32()).to_pylist() == table.column("days").to_pylist()
    assert table.column("ts").cast(pa.int64()).to_pylist() == table.column("micros").to_pylist()


def read_error(codec: Any, conn: Any, query: str) -> ConnectorError:
    try:
        read(codec, conn, query)
    except ConnectorError as exc:
        return exc
    raise AssertionError("the read did not fail")


def test_multidimensional_arrays_fail_naming_column_and_row(conn: Any) -> None:
    query = "SELECT * FROM (VALUES (1, '{1}'::int[]), (2, '{{1,2},{3,NULL}}')) AS v(id, grid)"
    messages = []
    for codec in (BINARY, CSV):
        with pytest.raises(ConnectorError, match=r'column "grid", row 2: a 2-dimensional array'):
            read(codec, conn, query)
        messages.append(str(read_error(codec, conn, query)))
    assert messages[0] == messages[1]


# -- damaged streams: fed to the decoder directly -------------------------------------------
SCHEMA = pa.schema([("id", pa.int32()), ("name", pa.string()), ("tags", pa.list_(pa.int64()))])
TYPES = [(23, 0), (25, 0), (1016, 20)]


def stream(conn: Any) -> bytes:
    """A real binary COPY stream of (id int, name text, tags bigint[]) rows."""
    execute(
        conn,
        "CREATE TABLE t AS SELECT g AS id, 'row ' || g AS name, ARRAY[g::bigint, NULL] AS tags "
        "FROM generate_series(1, 3) g",
    )
    sink = _Sink()
    conn.cursor().copy_expert("COPY t TO STDOUT (FORMAT binary)", sink)
    conn.rollback()
    return bytes(sink.data)


class _Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes) -> int:
        self.data += chunk
        return len(chunk)


def decode_all(data: bytes, schema: pa.Schema = SCHEMA, types: Any = TYPES) -> pa.Table:
    decoder = CopyDecoder.from_bytes(data, schema, types)
    batches = []
    while (batch := decoder.read_batch(2)) is not None:
        batches.append(batch)
    return pa.Table.from_batches(batches, schema=schema)


HEADER = 19
FIRST_ROW = HEADER + 2 + 4 + 4 + 4 + 5  # field count, id, name "row 1"


def test_an_intact_stream_decodes(conn: Any) -> None:
    table = decode_all(stream(conn))
    assert table.to_pylist()[0] == {"id": 1, "name": "row 1", "tags": [1, None]}
    assert table.num_rows == 3


@pytest.mark.parametrize(
    ("damage", "expected", "truncated"),
    [
        (lambda d: b"PGCOPZ" + d[6:], r"row 1: not binary COPY data", False),
        (lambda d: d[:10], r"row 1: the data ends inside the binary COPY header", True),
        (lambda d: d[:HEADER], r"row 1: the data ends without the end-of-data marker", True),
        (lambda d: d[: HEADER + 1], r"row 1: the data ends inside a row's field count", True),
        (lambda d: d[: HEADER + 12], r'column "name", row 1: the data ends inside this', True),
        (lambda d: d[:-2], r"row 4: the data ends without the end-of-data marker", True),
        (lambda d: d[:HEADER] + b"\x00\x02" + d[HEADER + 2 :], r"row 1: a row of 2 fields", False),
        (
            lambda d: d[: HEADER + 2] + b"\x00\x00\x00\x03" + d[HEADER + 7 :],
            r'column "id", row 1: a field of 3 bytes where Int32 holds 4',
            False,
        ),
        (
            lambda d: d[: HEADER + 10] + b"\x7f\xff\xff\xff" + d[HEADER + 14 :],
            r'column "name", row 1: the data ends inside this field',
            True,
        ),
        (
            lambda d: d[: HEADER + 10] + b"\xff\xff\xff\xfe" + d[HEADER + 14 :],
            r'column "name", row 1: a field length of -2',
            False,
        ),
        (
            lambda d: d[: HEADER + 14] + b"\xff" + d[HEADER + 15 :],
            r'column "name", row 1: text that is not UTF-8',
            False,
        ),
        (lambda d: d + b"x", r"row 4: 1 bytes after the end-of-data marker", False),
        (
            lambda d: d[: FIRST_ROW + 4 + 8] + b"\x00\x00\x00\x17" + d[FIRST_ROW + 16 :],
            r'column "tags", row 1: array elements of type oid 23 where oid 20',
            False,
        ),
        (
            lambda d: d[: FIRST_ROW + 4 + 20] + b"\x00\x00\x00\x64" + d[FIRST_ROW + 28 :],
            r'column "tags", row 1: an array value running past its field',
            False,
        ),
    ],
)
def test_damaged_streams_raise_naming_column_and_row(
    conn: Any, damage: Any, expected: str, truncated: bool
) -> None:
    data = damage(stream(conn))
    with pytest.raises(CopyDecodeError, match=expected) as caught:
        decode_all(data)
    assert caught.value.truncated is truncated
    assert isinstance(caught.value.row, int)


def test_a_decoder_that_failed_keeps_failing_and_a_closed_one_refuses(conn: Any) -> None:
    decoder = CopyDecoder.from_bytes(stream(conn)[:-2], SCHEMA, TYPES)
    assert decoder.read_batch(3) is not None
    with pytest.raises(CopyDecodeError):
        decoder.read_batch(10)
    with pytest.raises(CopyDecodeError, match="failed earlier"):
        decoder.read_batch(10)
    decoder.close()
    with pytest.raises(ValueError, match="closed"):
        decoder.read_batch(10)


def test_a_schema_the_decoder_cannot_build_is_refused_naming_the_column() -> None:
    with pytest.raises(ValueError, match=r'column "name": no binary decoding of Postgres type'):
        CopyDecoder.from_bytes(b"", SCHEMA, [(23, 0), (23, 0), (1016, 20)])
    with pytest.raises(ValueError, match="2 Postgres types for 3 columns"):
        CopyDecoder.from_bytes(b"", SCHEMA, TYPES[:2])


def test_unreadable_value_error_carries_column_row_and_value() -> None:
    header = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
    row = b"\x00\x01" + (8).to_bytes(4, "big") + (86_400_000_000).to_bytes(8, "big")
    with pytest.raises(UnreadableValueError) as caught:
        decode_all(header + row + b"\xff\xff", pa.schema([("tm", pa.time64("us"))]), [(1083, 0)])
    assert (caught.value.column, caught.value.row, caught.value.value) == ("tm", 1, "24:00:00")
    assert caught.value.element is False


def test_a_decoder_waiting_on_its_pipe_does_not_hold_the_gil() -> None:
    """`read_batch` blocks on the pipe with the GIL released: this thread can write the data
    the decoder is waiting for (with the GIL held, both would wait forever)."""
    import os

    read_fd, write_fd = os.pipe()
    decoder = CopyDecoder(read_fd, SCHEMA, TYPES)
    results: list[Any] = []
    reader = threading.Thread(target=lambda: results.append(decoder.read_batch(1)))
    reader.start()
    with os.fdopen(write_fd, "wb") as sink:
        sink.write(_VALID_STREAM)
    reader.join(timeout=60)
    assert not reader.is_alive()
    decoder.close()
    assert results[0].to_pylist() == [{"id": 7, "name": "ab", "tags": [5, None]}]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_damage_never_panics(data: st.DataObject) -> None:
    valid = _VALID_STREAM
    position = data.draw(st.integers(0, len(valid)))
    junk = data.draw(st.binary(max_size=8))
    cut = data.draw(st.integers(0, 8))
    damaged = valid[:position] + junk + valid[position + cut :]
    try:
        decode_all(damaged)
    except CopyDecodeError as error:
        assert "binary COPY data" in str(error)


_VALID_STREAM = (
    b"PGCOPY\n\xff\r\n\x00"
    + bytes(8)
    + b"\x00\x03"
    + (4).to_bytes(4, "big")
    + (7).to_bytes(4, "big")
    + (2).to_bytes(4, "big")
    + b"ab"
    + (36).to_bytes(4, "big")
    + (1).to_bytes(4, "big")
    + (1).to_bytes(4, "big")
    + (20).to_bytes(4, "big")
    + (2).to_bytes(4, "big")
    + (1).to_bytes(4, "big")
    + (8).to_bytes(4, "big")
    + (5).to_bytes(8, "big")
    + b"\xff\xff\xff\xff"
    + b"\xff\xff"
)


# -- the read's life cycle ---------------------------------------------------------------------
def test_stopping_early_cancels_the_copy_and_leaves_the_connection_usable(conn: Any) -> None:
    execute(conn, "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 200000) g")
    plans = plans_for(conn, "SELECT * FROM t")
    batches = BINARY.read(conn, "SELECT * FROM t", plans, 1000)
    assert next(iter(batches)).num_rows == 1000
    batches.close()  # type: ignore[attr-defined]
    conn.rollback()
    cursor = conn.cursor()
    cursor.execute("SELECT count(*) FROM t")
    assert cursor.fetchone() == (200000,)


def test_a_failing_query_raises_the_servers_error(conn: Any) -> None:
    import psycopg2

    plans = plans_for(conn, "SELECT 1 AS x")
    with pytest.raises(psycopg2.Error, match="division by zero"):
        list(BINARY.read(conn, "SELECT 1 / (g - 3) AS x FROM generate_series(1, 5) g", plans, 2))


def test_a_connection_lost_mid_read_is_an_operational_error(
    conn: Any, postgres_server: PostgresServer, postgres_database: str
) -> None:
    import psycopg2

    # Row 200000 waits for an advisory lock another session holds: the COPY is mid-stream
    # (the first rows delivered) when its backend is terminated.
    query = (
        "SELECT g FROM generate_series(1, 300000) AS g"
        " WHERE g < 200000 OR length(pg_advisory_lock(42)::text) = 0"
    )
    plans = plans_for(conn, "SELECT 1 AS g")
    holder = postgres_server.connect(postgres_database)
    holder.autocommit = True
    try:
        holder.cursor().execute("SELECT pg_advisory_lock(42)")
        pid = conn.get_backend_pid()
        batches = iter(BINARY.read(conn, query, plans, 1000))
        assert next(batches).num_rows == 1000
        holder.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg2.OperationalError):
            for _ in batches:
                pass
    finally:
        holder.close()


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_a_pump_that_cannot_start_leaks_no_descriptor(
    conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Unstartable(threading.Thread):
        def start(self) -> None:
            raise RuntimeError("can't start new thread")

    monkeypatch.setattr(copy_read, "find_libpq", lambda: None)  # the pipe path
    monkeypatch.setattr(copy_read, "threading", SimpleNamespace(Thread=Unstartable))
    plans = plans_for(conn, "SELECT 1 AS x")
    before = _open_fds()
    with pytest.raises(RuntimeError, match="can't start new thread"):
        list(BINARY.read(conn, "SELECT 1 AS x", plans, 10))
    assert _open_fds() == before


def test_a_pipe_that_cannot_be_read_is_a_connector_error(
    conn: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The decoder's descriptor is swapped for a directory (reading it fails with EISDIR) while
    the pipe stays open, so the pump finishes its small COPY unhindered."""
    kept: list[int] = []

    def unreadable(fd: int, *args: Any) -> CopyDecoder:
        decoder = CopyDecoder(fd, *args)
        kept.append(os.dup(fd))
        directory = os.open(tmp_path, os.O_RDONLY)
        os.dup2(directory, fd)
        os.close(directory)
        return decoder

    monkeypatch.setattr(copy_read, "find_libpq", lambda: None)  # the pipe path
    monkeypatch.setattr(copy_read, "CopyDecoder", unreadable)
    plans = plans_for(conn, "SELECT 1 AS x")
    try:
        with pytest.raises(
            ConnectorError, match="the stream from the server could not be read: Is a directory"
        ):
            list(BINARY.read(conn, "SELECT g AS x FROM generate_series(1, 5) g", plans, 2))
    finally:
        for fd in kept:
            os.close(fd)
    conn.rollback()
    cursor = conn.cursor()
    cursor.execute("SELECT 1")
    assert cursor.fetchone() == (1,)


def test_copy_query_selects_native_columns_raw_and_others_as_text(conn: Any) -> None:
    execute(conn, "CREATE TYPE mood AS ENUM ('a')")
    plans = plans_for(
        conn,
        "SELECT 1::int AS i, 'a'::mood AS m, 1.5::numeric AS n, ARRAY[1.5]::numeric[] AS ns,"
        " gen_random_uuid() AS u, ARRAY[1]::int[] AS a",
        unconstrained="string",
    )
    sql, types = copy_query("SELECT 1", plans)
    assert '"i", "m"::text, "n"::text, "ns"::text[], "u", "a"' in sql
    assert types == [(23, 0), (25, 0), (25, 0), (1009, 25), (2950, 0), (1007, 23)]


# -- property: random tables through both codecs ------------------------------------------
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
TEXTS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
INSTANTS = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31))
DECIMALS = st.decimals(
    min_value=Decimal("-999999999.999"), max_value=Decimal("999999999.999"), places=3
)
ROWS = st.lists(
    st.tuples(
        st.none() | st.integers(-(2**63), 2**63 - 1),
        st.none() | FLOATS,
        st.none() | TEXTS,
        st.none() | DECIMALS,
        st.none() | INSTANTS,
        st.none() | st.dates(min_value=date(1, 1, 1)),
        st.none() | st.lists(st.none() | st.integers(-(2**31), 2**31 - 1), max_size=4),
        st.none() | st.lists(st.none() | TEXTS, max_size=3),
        st.none() | st.lists(st.none() | FLOATS, max_size=3),
    ),
    max_size=12,
)


@pytest.fixture(scope="module")
def shared(postgres_server: PostgresServer) -> Iterator[Any]:
    database = postgres_server.create_database()
    config = PostgresConfig(**postgres_server.connection_settings(database), table="t")
    connection = connect(config, role="source")
    execute(
        connection,
        "CREATE TABLE r (k serial, i bigint, f float8, s text, n numeric(12,3), ts timestamptz,"
        " d date, ai int[], at text[], af float8[])",
    )
    try:
        yield connection
    finally:
        connection.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=ROWS)
def test_random_tables_read_the_same_through_both_codecs(shared: Any, rows: list[Any]) -> None:
    execute(shared, "TRUNCATE r")
    shared.cursor().executemany(
        "INSERT INTO r (i, f, s, n, ts, d, ai, at, af) VALUES "
        "(%s, %s, %s, %s, %s::timestamp AT TIME ZONE 'UTC', %s, %s::int[], %s::text[],"
        " %s::float8[])",
        rows,
    )
    shared.commit()
    query = "SELECT * FROM r ORDER BY k"
    assert_same(read(BINARY, shared, query), read(CSV, shared, query))


# -- parallel reads ------------------------------------------------------------------------
class _RecordingCodec(BinaryCopyCodec):
    """The binary codec, noting the thread of each read."""

    def __init__(self) -> None:
        self.threads: set[str] = set()

    def read(self, connection: Any, query: str, plans: Any, batch_size: int) -> Any:
        self.threads.add(threading.current_thread().name)
        return super().read(connection, query, plans, batch_size)


def test_a_partitioned_read_with_parallelism_2_gives_the_csv_codecs_rows(
    conn: Any,
    postgres_server: PostgresServer,
    postgres_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    execute(
        conn,
        "CREATE TABLE src AS SELECT g AS id, md5(g::text) AS name, g * 0.5 AS price,"
        " ARRAY[g, NULL] AS tags, timestamptz '2024-01-01' + g * interval '1 minute' AS at"
        " FROM generate_series(1, 20000) g",
    )
    recording = _RecordingCodec()
    monkeypatch.setattr(
        connector_module,
        "choose_codec",
        lambda setting: recording if setting == "binary" else CsvCopyCodec(),
    )
    settings_ = postgres_server.connection_settings(postgres_database)
    results = {}
    for codec in ("csv", "binary"):
        recipe = {
            "name": f"parallel_{codec}",
            "source": {
                "type": "postgres",
                **settings_,
                "table": "src",
                "partition_column": "id",
                "codec": codec,
            },
            "destination": {
                "type": "postgres",
                **settings_,
                "table": f"dst_{codec}",
                "codec": "csv",
            },
            "runtime": {"batch_size": 1000, "parallelism": 2},
        }
        path = tmp_path / f"{codec}.yaml"
        path.write_text(yaml.safe_dump(recipe), "utf-8")
        result = run_recipe(RecipeLoader().load(path), LocalStateBackend(tmp_path / "state"))
        assert result.rows_written == 20000
        cursor = conn.cursor()
        cursor.execute(f"SELECT id, name, price, tags, at FROM dst_{codec} ORDER BY id")
        results[codec] = cursor.fetchall()
        conn.rollback()
    assert len(recording.threads) == 2, recording.threads  # each part read on its own thread
    assert results["binary"] == results["csv"]
    assert len(results["binary"]) == 20000
