"""Values Postgres holds that the CSV read path once failed on with Arrow's words: numeric wider
than 38 digits (decimal256), unconstrained numeric values that decimal128(38,9) cannot hold,
`time '24:00:00'`, BC dates and years past 9999, infinity, intervals past 2^53 microseconds and
multi-dimensional arrays. Each either loads exactly or fails naming the column (and the row or
the value) and the way out."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from dataloader import ConnectorError
from dataloader_postgres.codec import CsvCopyCodec, _interval_text
from dataloader_postgres.types import ColumnPlan, plan_column


def test_numeric_wider_than_38_digits_loads_exactly(pg: Any, run: Any) -> None:
    pg.execute("CREATE TABLE wide (id int, n numeric(40,10), a numeric(40,10)[])")
    values = ["123456789012345678901234567890.0123456789", "-0.5", "0", None]
    pg.executemany(
        "INSERT INTO wide VALUES (%s, %s::numeric, ARRAY[%s::numeric, NULL])",
        [(i, v, v) for i, v in enumerate(values)],
    )
    result = run(
        {
            "name": "wide",
            "source": pg.source(table="wide"),
            "destination": pg.destination("wide_copy"),
            "runtime": {"batch_size": 3},
        }
    )
    assert result.rows_written == len(values)
    assert pg.column_types("wide_copy")["n"] == "numeric(40,10)"
    check = "SELECT id, n::text, a::text FROM {} ORDER BY id"
    assert pg.query(check.format("wide_copy")) == pg.query(check.format("wide"))
    assert pg.scalar("SELECT n FROM wide_copy WHERE id = 0") == Decimal(values[0])


@pytest.mark.parametrize("value", ["1E-36", "12345678901234567890.123456789012345", "1E+30"])
def test_unconstrained_numeric_that_decimal128_cannot_hold_names_column_and_way_out(
    pg: Any, run: Any, value: str
) -> None:
    pg.execute("CREATE TABLE loose (id int, n numeric)")
    pg.executemany("INSERT INTO loose VALUES (%s, %s::numeric)", [(1, "1.5"), (2, value)])
    with pytest.raises(ConnectorError) as caught:
        run(
            {
                "name": "loose",
                "source": pg.source(table="loose"),
                "destination": pg.destination("loose_copy"),
            }
        )
    message = str(caught.value)
    printed = pg.scalar("SELECT %s::numeric::text", (value,))
    assert "'n'" in message and printed in message
    assert "decimal128(38, 9)" in message
    assert "unconstrained_numeric" in message and "numeric(p,s)" in message
    assert not pg.exists("loose_copy")


def test_unconstrained_numeric_as_string_keeps_tiny_and_huge_values(pg: Any, run: Any) -> None:
    pg.execute("CREATE TABLE loose (id int, n numeric)")
    values = ["1E-36", "12345678901234567890.123456789012345", "NaN"]
    pg.executemany(
        "INSERT INTO loose VALUES (%s, %s::numeric)", [(i, v) for i, v in enumerate(values)]
    )
    run(
        {
            "name": "loose_text",
            "source": pg.source(table="loose", unconstrained_numeric="string"),
            "destination": pg.destination("loose_copy"),
        }
    )
    check = "SELECT id, n::text FROM {} ORDER BY id"
    assert pg.query(check.format("loose_copy")) == pg.query(check.format("loose"))


def test_numeric_nan_in_a_constrained_column_names_column_and_value(pg: Any, run: Any) -> None:
    pg.execute("CREATE TABLE nans (id int, price numeric(10,2))")
    pg.execute("INSERT INTO nans VALUES (1, 1.25), (2, 'NaN')")
    with pytest.raises(ConnectorError, match=r"'price'.*NaN"):
        run({"name": "nans", "source": pg.source(table="nans"), "destination": pg.destination("x")})


@pytest.mark.parametrize(
    ("column", "select"),
    [("tm", "tm"), ("tms", "ARRAY[tm, '01:00'] AS tms")],
    ids=["scalar", "array"],
)
def test_time_24_00_is_refused_naming_column_and_value(
    pg: Any, run: Any, column: str, select: str
) -> None:
    pg.execute("CREATE TABLE clock (id int, tm time)")
    pg.execute("INSERT INTO clock VALUES (1, '00:00'), (2, '23:59:59.999999'), (3, '24:00:00')")
    with pytest.raises(ConnectorError) as caught:
        run(
            {
                "name": "clock",
                "source": pg.source(query=f"SELECT id, {select} FROM clock"),
                "destination": pg.destination("clock_copy"),
            }
        )
    message = str(caught.value)
    assert f"'{column}'" in message and "24:00:00" in message
    assert "time64" in message and "query" in message


def test_times_up_to_the_last_microsecond_load(pg: Any, run: Any) -> None:
    pg.execute("CREATE TABLE clock (id int, tm time, tms time[])")
    pg.execute(
        "INSERT INTO clock VALUES (1, '00:00', '{00:00,NULL}'), "
        "(2, '23:59:59.999999', '{23:59:59.999999}'), (3, NULL, NULL), (4, '12:00:00.000001', '{}')"
    )
    run({"name": "clock", "source": pg.source(table="clock"), "destination": pg.destination("c2")})
    check = "SELECT id, tm::text, tms::text FROM {} ORDER BY id"
    assert pg.query(check.format("c2")) == pg.query(check.format("clock"))


# -- dates, timestamps, intervals and arrays at their edges, read by the CSV codec -----------
def csv_read(pg: Any, query: str, batch_size: int = 2) -> pa.Table:
    """`query` read by the CSV codec, with the connector's plans for its columns."""
    cursor = pg.connection.cursor()
    cursor.execute(f"SELECT * FROM ({query}) AS q LIMIT 0")
    plans: list[ColumnPlan] = []
    for column in cursor.description:
        type_name = pg.scalar("SELECT format_type(%s, NULL)", (column.type_code,))
        plans.append(
            plan_column(
                column.name,
                column.type_code,
                type_name,
                column.precision,
                column.scale,
                "decimal",
                column.internal_size,
            )
        )
    batches = list(CsvCopyCodec().read(pg.connection, query, plans, batch_size))
    return pa.Table.from_batches(batches, schema=pa.schema([plan.field for plan in plans]))


def micros_since_1970(column: str) -> str:
    since = f"({column} - '1970-01-01 00:00+00')"
    return (
        f"(extract(day FROM {since}) * 86400000000 + extract(hour FROM {since}) * 3600000000"
        f" + extract(minute FROM {since}) * 60000000 + extract(microseconds FROM {since}))::bigint"
    )


def test_bc_dates_and_years_past_9999_read_exactly(pg: Any) -> None:
    pg.execute("CREATE TABLE far (id int, d date, ts timestamp, tz timestamptz, ds date[])")
    pg.execute(
        "INSERT INTO far VALUES"
        " (1, '4713-11-24 BC', '4713-11-24 00:00 BC', '4713-11-24 00:00:00.000001+00 BC',"
        "  '{0001-01-01 BC,NULL}'),"
        " (2, '5874897-12-31', '294247-01-10 04:00:54.775807', '12345-01-01 00:00:00.5+00',"
        "  '{10000-02-29}'),"
        " (3, '2024-02-29', '1969-12-31 23:59:59.999999', '2000-01-01 00:00+00', '{}'),"
        " (4, NULL, NULL, NULL, NULL)"
    )
    table = csv_read(pg, "SELECT * FROM far ORDER BY id")
    assert table.schema.field("tz").type == pa.timestamp("us", "UTC")
    expected = pg.query(
        f"SELECT d - date '1970-01-01', {micros_since_1970('ts')}, {micros_since_1970('tz')}"
        " FROM far ORDER BY id"
    )
    days, stamps, zoned = (list(values) for values in zip(*expected, strict=True))
    assert table.column("d").combine_chunks().view(pa.int32()).to_pylist() == days
    assert table.column("ts").combine_chunks().view(pa.int64()).to_pylist() == stamps
    assert table.column("tz").combine_chunks().view(pa.int64()).to_pylist() == zoned
    assert stamps[1] == 2**63 - 1
    elements = table.column("ds").combine_chunks().values.view(pa.int32()).to_pylist()
    assert (
        elements
        == pg.query(
            "SELECT array_agg(e - date '1970-01-01' ORDER BY id, n) FROM far,"
            " unnest(ds) WITH ORDINALITY AS u(e, n)"
        )[0][0]
    )


@pytest.mark.parametrize(
    ("select", "column", "printed"),
    [
        ("'infinity'::date AS d", "d", "infinity"),
        ("'-infinity'::timestamp AS ts", "ts", "-infinity"),
        ("'294247-01-10 04:00:54.775808'::timestamp AS ts", "ts", "294247-01-10 04:00:54.775808"),
        ("'294276-12-31 23:59:59+00'::timestamptz AS tz", "tz", "294276-12-31 23:59:59+00"),
        ("'{2024-01-01,-infinity}'::date[] AS ds", "ds", "-infinity"),
    ],
)
def test_instants_arrow_cannot_hold_name_column_and_value(
    pg: Any, run: Any, select: str, column: str, printed: str
) -> None:
    with pytest.raises(ConnectorError) as caught:
        run(
            {
                "name": "edge",
                "source": pg.source(query=f"SELECT 1 AS id, {select}"),
                "destination": pg.destination("edge_copy"),
            }
        )
    message = str(caught.value)
    assert f"column '{column}' holds '{printed}'" in message
    assert "cannot hold" in message and "query" in message
    assert not pg.exists("edge_copy")


INTERVALS = [
    "00:00",
    "1 year 2 mons 3 days 04:05:06.000007",
    "-1 years -2 mons +3 days -04:05:06.5",
    "-1 days +02:00:00",
    "1 mon -00:00:00.000001",
    "2562047:47:16.854775",
    "-2562047:47:16.854775",
    "-178956970 years -8 mons -2147483648 days",
    "3 days 2562047788:00:54.775807",
    "-2562047788:00:54.775807",
    "1 day 3000000:00:00",
]


def test_intervals_are_exact_to_the_microsecond_or_refused_with_their_text(pg: Any) -> None:
    """A time part of up to 2^63 - 1 microseconds is exact (date_part's doubles are not);
    past int64 nanoseconds the interval is refused, printed as Postgres prints it."""
    pg.execute("CREATE TABLE spans (id int, iv interval)")
    pg.executemany("INSERT INTO spans VALUES (%s, %s::interval)", list(enumerate(INTERVALS)))
    fits = "abs(extract(epoch FROM iv - date_trunc('day', iv))) <= 9223372036.854775"
    table = csv_read(pg, f"SELECT * FROM spans WHERE {fits} ORDER BY id")
    expected = pg.query(
        "SELECT extract(year FROM iv) * 12 + extract(month FROM iv), extract(day FROM iv),"
        " (extract(hour FROM iv) * 3600000000 + extract(minute FROM iv) * 60000000"
        f" + extract(microseconds FROM iv)) * 1000 FROM spans WHERE {fits} ORDER BY id"
    )
    values = table.column("iv").to_pylist()
    assert [(v.months, v.days, v.nanoseconds) for v in values] == [
        tuple(int(part) for part in row) for row in expected
    ]
    assert len(values) == 8
    for ident, text in pg.query(f"SELECT id, iv::text FROM spans WHERE NOT {fits} ORDER BY id"):
        for select in ("iv", "ARRAY[NULL, iv] AS iv"):
            with pytest.raises(ConnectorError) as caught:
                csv_read(pg, f"SELECT {select} FROM spans WHERE id = {ident}")
            assert f"'iv' holds {text!r}, which month_day_nano_interval cannot hold" in str(
                caught.value
            )


def test_interval_text_is_postgres_text(pg: Any) -> None:
    for text in INTERVALS:
        months, days, micros, printed = pg.query(
            "SELECT (extract(year FROM v) * 12 + extract(month FROM v))::int,"
            " extract(day FROM v)::int, (extract(hour FROM v) * 3600000000"
            " + extract(minute FROM v) * 60000000 + extract(microseconds FROM v))::bigint,"
            " v::text FROM (SELECT %s::interval AS v) AS s",
            (text,),
        )[0]
        assert _interval_text(months, days, micros) == printed


@pytest.mark.parametrize("element", ["int", "text", "interval", "date"])
def test_multidimensional_arrays_are_refused_naming_column_and_row(pg: Any, element: str) -> None:
    value = {"int": "1", "text": "a", "interval": "1 day", "date": "2024-01-01"}[element]
    pg.execute(f"CREATE TABLE grids (id int, grid {element}[])")
    pg.execute(
        f"INSERT INTO grids VALUES (1, '{{\"{value}\"}}'), (2, NULL), (3, '{{}}'),"
        f" (4, '{{{{\"{value}\"}},{{NULL}}}}'), (5, '{{{{{{\"{value}\"}}}}}}')"
    )
    with pytest.raises(ConnectorError) as caught:
        csv_read(pg, "SELECT * FROM grids ORDER BY id")
    assert str(caught.value) == (
        'Postgres read: column "grid", row 4: a 2-dimensional array (only one-dimensional '
        "arrays are read as lists): cast the column in `query` (e.g. `col::text`)"
    )
    with pytest.raises(ConnectorError, match=r"row 4: a 3-dimensional array"):  # of the result
        csv_read(pg, "SELECT * FROM grids WHERE id <> 4 ORDER BY id")


def test_the_first_bad_value_in_row_order_is_reported(pg: Any) -> None:
    query = """SELECT * FROM (VALUES
        (1, '2024-01-01'::date, '{1}'::int[], '1 day'::interval),
        (2, '2024-01-01', '{1}', '3000000 hours'),
        (3, 'infinity', '{{1}}', '1 day')) AS v(id, d, grid, iv) ORDER BY id"""
    with pytest.raises(ConnectorError, match="'iv' holds '3000000:00:00'"):
        csv_read(pg, query)
    later = query.replace("'3000000 hours'", "'1 hour'")
    with pytest.raises(ConnectorError, match="'d' holds 'infinity'"):
        csv_read(pg, later)
