"""Binary COPY writes (`dataloader_rust.copy_write.write_batch`) against a real Postgres: every
Arrow type into every target type the CSV codec writes leaves the table exactly as
`CsvCopyCodec.write` does; values a column cannot hold fail as they do on the CSV path."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
from collections.abc import Iterator
from typing import Any

import psycopg2
import psycopg2.errors
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataloader import ConnectorError
from dataloader_postgres.codec import CsvCopyCodec
from dataloader_postgres.testing import PostgresServer
from dataloader_rust import _native, copy_write
from dataloader_rust.copy_write import binary_encoder, write_batch

_tables = itertools.count(1)


@pytest.fixture
def conn(postgres_server: PostgresServer, postgres_database: str) -> Iterator[Any]:
    """A connection as the connector opens one: UTF8 client, UTC session, a transaction open."""
    connection = postgres_server.connect(postgres_database)
    connection.set_client_encoding("UTF8")
    connection.cursor().execute("SET TimeZone = 'UTC'")
    connection.commit()
    try:
        yield connection
    finally:
        connection.close()


def _query(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    cursor = conn.cursor()
    cursor.execute(sql)
    return [
        tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
        for row in cursor.fetchall()
    ]


def _tables_for(conn: Any, columns: str) -> tuple[str, str]:
    n = next(_tables)
    csv, binary = f"csv_{n}", f"bin_{n}"
    for name in (csv, binary):
        conn.cursor().execute(f"CREATE TABLE {name} ({columns})")
    conn.commit()
    return csv, binary


def _rows_text(conn: Any, table: str) -> list[str]:
    return [row for (row,) in _query(conn, f"SELECT t::text FROM {table} t ORDER BY 1")]


def assert_same(conn: Any, columns: str, batch: pa.RecordBatch, native: bool = True) -> None:
    """`batch` written through the CSV codec and through `write_batch` into two tables made
    with `columns`: the same rows, value for value and in their text form. `native`: whether
    the binary encoder (not the CSV fallback) must take the batch."""
    csv, binary = _tables_for(conn, columns)
    encoder, reason = binary_encoder(conn, binary, batch)
    assert (encoder is not None) == native, reason
    CsvCopyCodec().write(conn, csv, batch)
    write_batch(conn, binary, batch)
    conn.commit()
    assert _rows_text(conn, binary) == _rows_text(conn, csv)
    values = _query(conn, f"SELECT * FROM {binary} t ORDER BY t::text")
    expected = _query(conn, f"SELECT * FROM {csv} t ORDER BY t::text")
    assert len(values) == len(expected) == batch.num_rows
    assert repr(values) == repr(expected)  # repr: NaN equals itself, -0.0 differs from 0.0


def _batch(**columns: pa.Array) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))


INTS = [0, 1, -1, 127, -128, None]


@pytest.mark.parametrize(
    ("arrow_type", "values", "pg_type"),
    [
        (pa.int8(), INTS, "smallint"),
        (pa.int16(), [*INTS, 32767, -32768], "smallint"),
        (pa.int32(), [*INTS, 2**31 - 1, -(2**31)], "integer"),
        (pa.int64(), [*INTS, 2**63 - 1, -(2**63)], "bigint"),
        (pa.int32(), [*INTS, 2**31 - 1, -(2**31)], "bigint"),
        (pa.int64(), [*INTS, 32767], "smallint"),
        (pa.int64(), [*INTS, 2**31 - 1], "integer"),
        (pa.uint8(), [0, 255, None], "smallint"),
        (pa.uint16(), [0, 65535, None], "integer"),
        (pa.uint32(), [0, 2**32 - 1, None], "bigint"),
        (pa.uint64(), [0, 2**64 - 1, 10**19, None], "numeric(20,0)"),
        (pa.int64(), [*INTS, 2**63 - 1, -(2**63)], "numeric"),
        (pa.int64(), [*INTS, 2**53 + 1, -(2**63)], "double precision"),
        (pa.int64(), [*INTS, 2**24 + 1, 16777217, 2**63 - 1], "real"),
    ],
)
def test_integers(conn: Any, arrow_type: pa.DataType, values: list[Any], pg_type: str) -> None:
    assert_same(conn, f"v {pg_type}", _batch(v=pa.array(values, arrow_type)))


FLOATS = [
    0.0,
    -0.0,
    0.1,
    -1.5,
    1e-7,
    1.5e-7,
    123456.789,
    1e16,
    1.2345678901234567e20,
    2.5e-300,
    float("nan"),
    float("inf"),
    float("-inf"),
    None,
]


@pytest.mark.parametrize(
    ("arrow_type", "values", "pg_type"),
    [
        (pa.float64(), FLOATS, "double precision"),
        (pa.float64(), FLOATS, "numeric"),
        (pa.float64(), [v for v in FLOATS if v != 2.5e-300], "real"),
        (pa.float32(), FLOATS[:10] + FLOATS[11:], "real"),
        (pa.float32(), FLOATS[:10] + FLOATS[11:], "double precision"),
        (pa.float32(), FLOATS[:10] + FLOATS[11:], "numeric"),
        (pa.float64(), [0.1, -1.25, 1.0005, 123.4564, None], "numeric(10,3)"),
    ],
)
def test_floats(conn: Any, arrow_type: pa.DataType, values: list[Any], pg_type: str) -> None:
    assert_same(conn, f"v {pg_type}", _batch(v=pa.array(values, arrow_type)))


def test_float_out_of_range_for_real_fails_like_csv(conn: Any) -> None:
    for value in (1e300, 2.5e-300):
        batch = _batch(v=pa.array([1.0, value], pa.float64()))
        _assert_same_failure(conn, "v real", batch, psycopg2.errors.NumericValueOutOfRange)


D = decimal.Decimal


@pytest.mark.parametrize(
    ("arrow_type", "values", "pg_type"),
    [
        (
            pa.decimal128(38, 10),
            [D("0"), D("1.5"), D("-1234567890123456789012345678.0123456789"), D("1E-10"), None],
            "numeric(38,10)",
        ),
        (pa.decimal128(5, 2), [D("1.50"), D("-999.99"), D("0.01"), D("100.00"), None], "numeric"),
        (pa.decimal128(9, 0), [D("10000"), D("-99990000"), D("123456789"), None], "numeric"),
        (
            pa.decimal256(60, 20),
            [D("1" * 40 + "." + "9" * 20), D("-0.00000000000000000001"), D("0"), None],
            "numeric(60,20)",
        ),
        (pa.decimal128(12, 6), [D("1.234567"), D("-0.000001"), None], "numeric(8,3)"),
        (pa.decimal128(5, -2), [D("12345E2"), D("-1E2"), D("0"), None], "numeric"),
        (pa.decimal128(38, 0), [D("9" * 38), D("-" + "9" * 38), D("1" + "0" * 37)], "numeric"),
        (pa.decimal128(38, 38), [D("0." + "9" * 38), D("-1E-38")], "numeric"),
    ],
)
def test_decimals(conn: Any, arrow_type: pa.DataType, values: list[Any], pg_type: str) -> None:
    assert_same(conn, f"v {pg_type}", _batch(v=pa.array(values, arrow_type)))


TEXTS = ["", "plain", "Zürich «déjà» ½", "日本語", 'a\tb\nc,"d"\\e', "💡", None]


@pytest.mark.parametrize("pg_type", ["text", "varchar(20)", "char(20)", "varchar"])
@pytest.mark.parametrize("arrow_type", [pa.string(), pa.large_string()])
def test_strings(conn: Any, arrow_type: pa.DataType, pg_type: str) -> None:
    assert_same(conn, f"v {pg_type}", _batch(v=pa.array(TEXTS, arrow_type)))


def test_json_and_uuid_text(conn: Any) -> None:
    docs = ['{"b": 1, "a": [1, 2.50, null]}', '"x"', "null", "[]", '{"k": "ü"}', None]
    uuids = [
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "{A0EEBC99-9C0B4EF8-BB6D6BB9-BD380A11}",
        "a0eebc999c0b4ef8bb6d6bb9bd380a11",
        "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
        None,
        None,
    ]
    batch = _batch(j=pa.array(docs), b=pa.array(docs), u=pa.array(uuids))
    assert_same(conn, "j json, b jsonb, u uuid", batch)


def test_bool_dates_times(conn: Any) -> None:
    days = [dt.date(1970, 1, 1), dt.date(2000, 1, 1), dt.date(1, 1, 1), dt.date(9999, 12, 31)]
    batch = _batch(
        b=pa.array([True, False, None, True]),
        d32=pa.array(days, pa.date32()),
        d64=pa.array([*days[:3], None], pa.date64()),
        ts=pa.array([0, 86399, None, 3600], pa.time32("s")),
        tms=pa.array([0, 86399999, 1, None], pa.time32("ms")),
        tus=pa.array([0, 86399999999, None, 1], pa.time64("us")),
        tns=pa.array([0, 86399999999000, None, 1000], pa.time64("ns")),
    )
    assert_same(
        conn,
        "b boolean, d32 date, d64 date, ts time, tms time, tus time, tns time",
        batch,
    )


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_timestamps(conn: Any, unit: str) -> None:
    if unit == "ns":
        stamps = [dt.datetime(1970, 1, 1), dt.datetime(1677, 9, 22), dt.datetime(2262, 4, 11)]
    else:
        stamps = [dt.datetime.min, dt.datetime.max.replace(microsecond=0), dt.datetime(2000, 1, 1)]
    stamps += [dt.datetime(1999, 12, 31, 23, 59, 59), dt.datetime(1960, 5, 6, 7, 8, 9), None]
    naive = pa.array(stamps, pa.timestamp(unit))
    zoned = naive.cast(pa.timestamp(unit, "UTC"))
    batch = _batch(n=naive, z=zoned, nz=naive, zn=zoned)
    assert_same(conn, "n timestamp, z timestamptz, nz timestamptz, zn timestamp", batch)


def test_zoned_timestamps_keep_their_instant(conn: Any) -> None:
    """A zone's offset does not matter: the instant is stored. (The CSV path writes offsets in
    whole minutes, so before 1893 Berlin's +00:53:28 loses 28 seconds there; binary does not.)"""
    stamps = [dt.datetime(1, 1, 1), dt.datetime(1850, 6, 1, 12), dt.datetime(2020, 3, 29, 1, 30)]
    zoned = pa.array(stamps, pa.timestamp("us", "UTC"))
    _, table = _tables_for(conn, "z timestamptz, b timestamptz")
    write_batch(conn, table, _batch(z=zoned, b=zoned.cast(pa.timestamp("us", "Europe/Berlin"))))
    assert _query(conn, f"SELECT count(*) FROM {table} WHERE z = b") == [(3,)]
    later = _batch(
        b=pa.array([dt.datetime(2020, 3, 29, 1, 30)], pa.timestamp("us", "Europe/Berlin"))
    )
    assert_same(conn, "b timestamptz", later)


def test_max_timestamp_microseconds(conn: Any) -> None:
    batch = _batch(v=pa.array([dt.datetime.max, dt.datetime.min], pa.timestamp("us", "UTC")))
    assert_same(conn, "v timestamptz", batch)


def test_intervals(conn: Any) -> None:
    batch = _batch(
        s=pa.array([0, 86400 * 40, -5, None], pa.duration("s")),
        ms=pa.array([1, -1500, None, 10**12], pa.duration("ms")),
        us=pa.array([1, -1, 2**40, None], pa.duration("us")),
        ns=pa.array([1000, -2000, None, 0], pa.duration("ns")),
        mdn=pa.array(
            [(1, 2, 3000), (-1, -2, -3500), None, (0, 0, 1999)], pa.month_day_nano_interval()
        ),
    )
    assert_same(conn, "s interval, ms interval, us interval, ns interval, mdn interval", batch)


def test_binaries(conn: Any) -> None:
    values = [b"", b"\x00\x01\xff", b"plain", None]
    batch = _batch(
        b=pa.array(values, pa.binary()),
        lb=pa.array(values, pa.large_binary()),
        fb=pa.array([b"ab", b"\x00\xff", None, b"zz"], pa.binary(2)),
    )
    assert_same(conn, "b bytea, lb bytea, fb bytea", batch)


def test_lists(conn: Any) -> None:
    batch = _batch(
        i=pa.array([[1, None, 3], [], None, [2**40]], pa.list_(pa.int64())),
        i4=pa.array([[1, 2], [None], [], None], pa.list_(pa.int64())),
        s=pa.array([["a", None, 'q"\\,{}'], [""], None, []], pa.list_(pa.string())),
        f=pa.array(
            [[1.5, float("nan")], [float("inf"), None], [], None], pa.large_list(pa.float64())
        ),
        b=pa.array([[True, None], None, [], [False]], pa.list_(pa.bool_())),
        d=pa.array([[D("1.50")], [None, D("-2.25")], None, []], pa.list_(pa.decimal128(5, 2))),
        t=pa.array(
            [[dt.datetime(2020, 1, 1)], None, [], [None]], pa.list_(pa.timestamp("us", "UTC"))
        ),
        j=pa.array([['{"a": 1}'], None, [], [None]], pa.list_(pa.string())),
    )
    assert_same(
        conn,
        "i bigint[], i4 integer[], s text[], f double precision[], b boolean[], d numeric[], "
        "t timestamptz[], j jsonb[]",
        batch,
    )


def _nested_structs() -> pa.Array:
    """A fixed-size list of structs holding a struct, sliced: arrow-rs (59) asserts when it
    imports this layout as it is."""
    inner = pa.array([{"a": {"b": i}} for i in range(6)])
    return pa.FixedSizeListArray.from_arrays(inner, 2).slice(1)


def test_a_batch_arrow_rs_cannot_import_is_unsupported_not_a_panic() -> None:
    nested = _nested_structs()
    targets = [(20, -1, 0), (3807, -1, 3802)]
    batch = _batch(k=pa.array([1, 2], pa.int64()), v=nested)
    assert _native.copy_encoder(batch, targets, True) is None
    assert _native.encode_copy_binary(batch, targets, True) is None
    assert "panicked" in (_native.unsupported_reason(batch, targets, True) or "")
    struct_in_struct = pa.array([{"s": {"b": i}} for i in range(3)]).slice(1)
    batch = _batch(v=struct_in_struct)
    assert _native.copy_encoder(batch, [(3802, -1, 0)], True) is None


def test_sliced_structs_in_fixed_size_lists_take_the_csv_path(conn: Any) -> None:
    """The CSV codec does not write fixed-size lists of structs: the binary path fails with its
    error (arrow-rs' assertion on this layout must not escape as a PanicException)."""
    batch = _batch(k=pa.array([1, 2], pa.int64()), v=_nested_structs())
    _assert_same_failure(conn, "k bigint, v jsonb[]", batch, pa.ArrowInvalid)


def test_nested_values_as_json_dictionaries_and_nulls(conn: Any) -> None:
    structs = pa.array(
        [{"a": 1, "b": "x"}, None, {"a": None, "b": "ü"}, {"a": 2, "b": None}],
        pa.struct([("a", pa.int64()), ("b", pa.string())]),
    )
    maps = pa.array([[("k", 1.5)], None, [], [("z", None)]], pa.map_(pa.string(), pa.float64()))
    dictionary = pa.array(["a", None, "b", "a"]).dictionary_encode()
    batch = _batch(
        s=structs, m=maps, d=dictionary, n=pa.nulls(4), k=pa.array([1, 2, 3, 4], pa.int64())
    )
    assert_same(conn, "s jsonb, m jsonb, d text, n text, k bigint", batch)


def test_a_sliced_batch(conn: Any) -> None:
    batch = _batch(
        s=pa.array(["a", "b", None, "d", "e"]),
        l=pa.array([[1], [2, 3], None, [], [5]], pa.list_(pa.int64())),
        i=pa.array([1, None, 3, 4, 5], pa.int32()),
    ).slice(1, 3)
    assert_same(conn, "s text, l bigint[], i integer", batch)


def test_the_stream_comes_in_chunks_of_whole_rows(
    conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = 2000
    batch = _batch(
        i=pa.array(range(rows), pa.int64()),
        s=pa.array([f"row {i}" * (i % 7) if i % 11 else None for i in range(rows)]),
        l=pa.array([[i, None] if i % 3 else [] for i in range(rows)], pa.list_(pa.int32())),
    )
    targets = [(20, -1, 0), (25, -1, 0), (1007, -1, 23)]
    whole = _native.encode_copy_binary(batch, targets, True)
    encoder = _native.copy_encoder(batch, targets, True)
    chunks = []
    while chunk := encoder.read(500):
        chunks.append(chunk)
    assert len(chunks) > 10 and b"".join(chunks) == whole
    assert encoder.read(500) == b""
    monkeypatch.setattr(copy_write, "COPY_CHUNK", 300)
    assert_same(conn, "i bigint, s text, l integer[]", batch)


def test_pairs_not_encoded_natively_fall_back_to_csv(conn: Any) -> None:
    conn.cursor().execute("CREATE DOMAIN positive AS integer CHECK (VALUE > 0)")
    conn.commit()
    batch = _batch(
        n=pa.array([[[1, 2], [3, 4]], None], pa.list_(pa.list_(pa.int64()))),
        p=pa.array([1, 2], pa.int64()),
        t=pa.array(["7", "8"]),
    )
    assert_same(conn, "n bigint[], p positive, t integer", batch, native=False)
    for columns in ("n bigint[]", "p positive", "t integer"):
        name = columns.split()[0]
        _, reason = binary_encoder(conn, _tables_for(conn, columns)[1], batch.select([name]))
        assert reason is not None and repr(name) in reason


def test_naive_timestamps_into_timestamptz_follow_a_non_utc_session(conn: Any) -> None:
    conn.cursor().execute("SET TimeZone = 'America/New_York'")
    batch = _batch(v=pa.array([dt.datetime(2020, 6, 1, 12)], pa.timestamp("us")))
    assert_same(conn, "v timestamptz", batch, native=False)
    assert _query(conn, "SELECT count(*) FROM bin_" + str(next(_tables) - 1))[0][0] == 1


def test_a_quoted_schema_qualified_table(conn: Any) -> None:
    conn.cursor().execute('CREATE SCHEMA "My Schema"')
    conn.cursor().execute('CREATE TABLE "My Schema"."Odd ""Name""" ("Key Col" bigint, v text[])')
    batch = _batch(**{"Key Col": pa.array([1, 2]), "v": pa.array([["x"], None])})
    table = '"My Schema"."Odd ""Name"""'
    assert binary_encoder(conn, table, batch)[0] is not None
    write_batch(conn, table, batch)
    conn.commit()
    assert _query(conn, f'SELECT "Key Col", v FROM {table} ORDER BY 1') == [(1, ["x"]), (2, None)]


def test_array_elements_keep_the_column_typmod(conn: Any) -> None:
    assert_same(conn, "v varchar(3)[]", _batch(v=pa.array([["abc", None], []])))
    _assert_same_failure(
        conn,
        "v varchar(3)[]",
        _batch(v=pa.array([["abc", "abcd"]])),
        psycopg2.errors.StringDataRightTruncation,
    )


def test_columns_added_by_schema_evolution_are_seen(conn: Any) -> None:
    _, table = _tables_for(conn, "a bigint")
    write_batch(conn, table, _batch(a=pa.array([1], pa.int64())))
    conn.cursor().execute(f"ALTER TABLE {table} ADD COLUMN b integer, ALTER COLUMN a TYPE int2")
    write_batch(conn, table, _batch(a=pa.array([2], pa.int64()), b=pa.array([3], pa.int64())))
    conn.commit()
    assert _query(conn, f"SELECT a, b FROM {table} ORDER BY a") == [(1, None), (2, 3)]


def _assert_same_failure(
    conn: Any, columns: str, batch: pa.RecordBatch, error: type[BaseException]
) -> None:
    """Both paths refuse `batch` with `error`; after the rollback the table is unchanged."""
    csv, binary = _tables_for(conn, columns)
    for table, writer in ((csv, CsvCopyCodec().write), (binary, write_batch)):
        conn.cursor().execute(f"INSERT INTO {table} DEFAULT VALUES")
        conn.commit()
        with pytest.raises(error) as raised:
            writer(conn, table, batch)
        conn.rollback()
        assert _query(conn, f"SELECT count(*) FROM {table}") == [(1,)]
        if table == binary:
            binary_error = raised.value
        else:
            csv_error = raised.value
    # The same error; only the CONTEXT line may differ (binary input has no value text to show).
    assert getattr(binary_error, "pgcode", None) == getattr(csv_error, "pgcode", None)
    assert str(binary_error).splitlines()[0] == str(csv_error).splitlines()[0]


def test_out_of_range_integer_fails_like_csv_and_writes_nothing(conn: Any) -> None:
    batch = _batch(k=pa.array([1, 2, 2**31], pa.int64()))
    _assert_same_failure(conn, "k integer", batch, psycopg2.errors.NumericValueOutOfRange)
    with pytest.raises(ValueError, match=r"column 'k', row 3: 2147483648 is out of range"):
        _native.encode_copy_binary(batch, [(23, -1, 0)], True)


def test_bad_uuid_fails_like_csv(conn: Any) -> None:
    batch = _batch(u=pa.array(["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "not-a-uuid"]))
    _assert_same_failure(conn, "u uuid", batch, psycopg2.errors.InvalidTextRepresentation)
    with pytest.raises(ValueError, match=r"column 'u', row 2: invalid input syntax for type uuid"):
        _native.encode_copy_binary(batch, [(2950, -1, 0)], True)


def test_server_checks_apply_to_binary_input_as_to_csv(conn: Any) -> None:
    _assert_same_failure(
        conn,
        "v varchar(3)",
        _batch(v=pa.array(["abc", "abcd"])),
        psycopg2.errors.StringDataRightTruncation,
    )
    _assert_same_failure(
        conn, "v char(2)", _batch(v=pa.array(["abc"])), psycopg2.errors.StringDataRightTruncation
    )
    _assert_same_failure(
        conn, "v text", _batch(v=pa.array(["a\x00b"])), psycopg2.errors.CharacterNotInRepertoire
    )
    _assert_same_failure(
        conn, "v jsonb", _batch(v=pa.array(["{oops"])), psycopg2.errors.InvalidTextRepresentation
    )
    _assert_same_failure(
        conn,
        "v numeric(3,1)",
        _batch(v=pa.array([D("123.4")], pa.decimal128(4, 1))),
        psycopg2.errors.NumericValueOutOfRange,
    )


def test_sub_microsecond_nanoseconds_are_refused_as_on_csv(conn: Any) -> None:
    _, table = _tables_for(conn, "v timestamp")
    batch = _batch(v=pa.array([1_500], pa.timestamp("ns")))
    with pytest.raises(ConnectorError, match="nanoseconds"):
        write_batch(conn, table, batch)


# Days and microseconds since 2000-01-01 that Postgres reads as -infinity and infinity.
NOBEGIN_DAYS, NOEND_DAYS = -(2**31), 2**31 - 1
NOBEGIN_MICROS = -(2**63)
EPOCH_DAYS, EPOCH_MICROS = 10_957, 946_684_800_000_000
DAY_MS = 86_400_000


@pytest.mark.parametrize(
    ("columns", "oid", "element", "array"),
    [
        ("v date", 1082, 0, pa.array([0, NOBEGIN_DAYS + EPOCH_DAYS], pa.date32())),
        ("v date", 1082, 0, pa.array([0, (NOBEGIN_DAYS + EPOCH_DAYS) * DAY_MS], pa.date64())),
        ("v date", 1082, 0, pa.array([0, (NOEND_DAYS + EPOCH_DAYS) * DAY_MS], pa.date64())),
        ("v timestamp", 1114, 0, pa.array([0, NOBEGIN_MICROS + EPOCH_MICROS], pa.timestamp("us"))),
        # Beyond the epoch shift: refused before streaming too, not by aborting the COPY.
        ("v timestamp", 1114, 0, pa.array([0, -(2**63) + 1], pa.timestamp("us"))),
        (
            "v timestamptz",
            1184,
            0,
            pa.array([0, NOBEGIN_MICROS + EPOCH_MICROS], pa.timestamp("us", "UTC")),
        ),
        (
            "v date[]",
            1182,
            1082,
            pa.array([[0], [0, NOBEGIN_DAYS + EPOCH_DAYS]], pa.list_(pa.date32())),
        ),
    ],
)
def test_values_postgres_reads_as_infinity_fail_like_csv(
    conn: Any, columns: str, oid: int, element: int, array: pa.Array
) -> None:
    """In binary these values would be stored as -infinity/infinity, where the CSV path's text
    is refused: the encoder refuses them, the batch takes the CSV path and fails as it does."""
    batch = _batch(v=array)
    _assert_same_failure(conn, columns, batch, psycopg2.Error)
    with pytest.raises(ValueError, match=r"column 'v', row 2: .* is out of range"):
        _native.encode_copy_binary(batch, [(oid, -1, element)], True)


def test_wrong_value_count_is_a_clear_error() -> None:
    batch = _batch(a=pa.array([1], pa.int64()), b=pa.array([2], pa.int64()))
    with pytest.raises(ValueError, match="2 columns but 1 target column types"):
        _native.encode_copy_binary(batch, [(20, -1, 0)], True)


def test_untranslatable_character_fails_like_csv(postgres_server: PostgresServer) -> None:
    name = postgres_server.create_database(encoding="LATIN1")
    conn = postgres_server.connect(name)
    conn.set_client_encoding("UTF8")
    try:
        _assert_same_failure(
            conn,
            "v text",
            _batch(v=pa.array(["Zürich", "日本"])),
            psycopg2.errors.UntranslatableCharacter,
        )
        assert_same(
            conn,
            "v text, l text[]",
            _batch(v=pa.array(["Zürich", "½ ÿ"]), l=pa.array([["ø"], None])),
        )
    finally:
        conn.close()


SCALARS = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(
            st.none() | st.integers(-(2**63), 2**63 - 1),
            st.none() | st.floats(allow_nan=True, allow_infinity=True),
            st.none()
            | st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")),
            st.none()
            | st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
            st.none()
            | st.decimals(places=4, min_value=-(10**20), max_value=10**20, allow_nan=False),
            st.none() | st.lists(st.none() | st.integers(-(2**31), 2**31 - 1), max_size=4),
        ),
        max_size=20,
    )
)
def test_random_tables_match_the_csv_codec(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in range(6)]
    batch = _batch(
        i=pa.array(columns[0], pa.int64()),
        f=pa.array(columns[1], pa.float64()),
        s=pa.array(columns[2], pa.string()),
        t=pa.array(columns[3], pa.timestamp("us", "UTC")),
        d=pa.array(columns[4], pa.decimal128(30, 4)),
        l=pa.array(columns[5], pa.list_(pa.int32())),
    )
    assert_same(
        conn,
        "i bigint, f double precision, s text, t timestamptz, d numeric(30,4), l integer[], "
        "fn numeric DEFAULT NULL",
        batch,
    )
