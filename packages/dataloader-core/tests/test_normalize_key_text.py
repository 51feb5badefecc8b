"""Key values as SQL compares them: values a merge takes for one key give one text."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa

from dataloader.normalize.key_text import key_text


def test_numbers_equal_in_sql_give_one_text() -> None:
    one = [
        pa.array([1], pa.int8()),
        pa.array([1], pa.uint64()),
        pa.array([1.0], pa.float64()),
        pa.array([1.0], pa.float32()),
        pa.array([Decimal("1.0")], pa.decimal128(3, 1)),
        pa.array([Decimal("1.00")], pa.decimal128(4, 2)),
    ]
    assert {key_text(array)[0].as_py() for array in one} == {"1"}
    half = [pa.array([1.5]), pa.array([Decimal("1.50")], pa.decimal128(5, 2))]
    assert {key_text(array)[0].as_py() for array in half} == {"1.5"}
    zeros = [pa.array([0.0]), pa.array([-0.0]), pa.array([Decimal("-0.00")], pa.decimal128(3, 2))]
    assert {key_text(array)[0].as_py() for array in zeros} == {"0"}


def test_different_numbers_stay_apart_and_nulls_stay_null() -> None:
    values = key_text(pa.array([10.0, 100.0, 0.1, 1e20, float("nan"), None]))
    assert values.to_pylist() == ["10", "100", "0.1", "100000000000000000000", "nan", None]
    decimals = key_text(pa.array([Decimal("10.00"), Decimal("100.10")], pa.decimal128(6, 2)))
    assert decimals.to_pylist() == ["10", "100.1"]


def test_a_timestamp_is_its_instant_whatever_the_unit() -> None:
    seconds = key_text(pa.array([86_400], pa.timestamp("s", "UTC")))
    micros = key_text(pa.array([86_400_000_000], pa.timestamp("us", "UTC")))
    assert seconds.to_pylist() == micros.to_pylist()
    nanos = key_text(pa.array([1], pa.timestamp("ns")))  # below a microsecond: kept
    assert nanos[0].as_py().endswith(".000000001")


def test_text_and_chunks_and_dictionaries() -> None:
    assert key_text(pa.array(["a ", "A"])).to_pylist() == ["a ", "A"]
    chunked = pa.chunked_array([pa.array([1.0]), pa.array([2.5])])
    assert key_text(chunked).to_pylist() == ["1", "2.5"]
    coded = pa.array(["x", "y", "x"]).dictionary_encode()
    assert key_text(coded).to_pylist() == ["x", "y", "x"]


def test_exponents_zones_and_dates_are_written_as_sql_compares_them() -> None:
    """The second attack's stale children: 1e-7 against 0.0000001, 1e20 against
    100000000000000000000, an instant read in two zones, a date widened to a timestamp."""
    import datetime as dt

    small = [pa.array([1e-7]), pa.array([Decimal("0.0000001")], pa.decimal128(10, 7))]
    assert {key_text(array)[0].as_py() for array in small} == {"0.0000001"}
    big = [pa.array([1e20]), pa.array([10**20], pa.decimal128(38, 0))]
    assert {key_text(array)[0].as_py() for array in big} == {"100000000000000000000"}
    noon = dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)
    utc = pa.array([noon], pa.timestamp("us", "UTC"))
    paris = utc.cast(pa.timestamp("s", "Europe/Paris"))
    assert key_text(utc).to_pylist() == key_text(paris).to_pylist()
    day = key_text(pa.array([dt.date(2024, 1, 1)]))
    assert day.to_pylist() == key_text(pa.array([dt.datetime(2024, 1, 1)])).to_pylist()
