"""Values Postgres holds that the CSV read path once failed on with Arrow's words: numeric wider
than 38 digits (decimal256), unconstrained numeric values that decimal128(38,9) cannot hold, and
`time '24:00:00'`. Each either loads exactly or fails naming the column, the value and the way out."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from dataloader import ConnectorError


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
