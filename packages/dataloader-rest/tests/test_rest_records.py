"""A page's records as one Arrow table: exact numbers, instants as timestamps, and a field
whose values share no type kept as JSON text."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataloader import ConnectorError
from dataloader_rest.records import INSTANT_TYPE, records_to_table


def test_numbers_stay_exact() -> None:
    table = records_to_table(
        [{"id": 1, "amount": Decimal("10.5")}, {"id": 2**62, "amount": 3}, {"id": 3}]
    )
    assert table.schema.field("id").type == pa.int64()
    assert pa.types.is_decimal(table.schema.field("amount").type)
    assert table.column("amount").to_pylist() == [Decimal("10.5"), Decimal(3), None]
    assert table.column("id").to_pylist()[1] == 2**62


def test_rfc3339_instants_become_utc_timestamps() -> None:
    table = records_to_table(
        [
            {"at": "2024-01-01T00:00:00.000001Z", "day": "2024-01-01"},
            {"at": "2024-01-01T02:00:00+02:00", "day": None},
        ]
    )
    assert table.schema.field("at").type == INSTANT_TYPE
    assert table.column("at").to_pylist() == [
        datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(2024, 1, 1, tzinfo=UTC),
    ]
    assert table.schema.field("day").type == pa.string()  # a date is no instant


def test_text_that_is_not_an_instant_in_every_row_stays_text() -> None:
    table = records_to_table([{"at": "2024-01-01T00:00:00Z"}, {"at": "yesterday"}])
    assert table.column("at").to_pylist() == ["2024-01-01T00:00:00Z", "yesterday"]


def test_a_field_without_a_common_type_is_kept_as_text() -> None:
    table = records_to_table([{"id": 1, "v": 5}, {"id": 2, "v": "five"}, {"id": 3, "v": [1]}])
    assert table.column("id").to_pylist() == [1, 2, 3]
    assert table.column("v").to_pylist() == ["5", "five", "[1]"]


def test_an_empty_page_is_an_empty_table() -> None:
    assert records_to_table([]).num_rows == 0


def test_nanosecond_instants_keep_their_digits_and_compare_as_times() -> None:
    """Go's RFC3339Nano trims trailing zeros: `…:01Z` beside `…:01.123456789Z`."""
    table = records_to_table(
        [{"at": "2024-01-01T00:00:01Z"}, {"at": "2024-01-01T00:00:01.123456789Z"}]
    )
    assert table.schema.field("at").type == pa.timestamp("ns", "UTC")
    assert pa.compute.max(table.column("at")).value == 1_704_067_201_123_456_789


def test_instants_in_nested_fields_become_timestamps_too() -> None:
    table = records_to_table(
        [
            {"o": {"t": "2024-01-01T02:00:00+02:00", "n": 1}, "ts": ["2024-01-01T00:00:00Z"]},
            {"o": None, "ts": None},
        ]
    )
    struct = table.schema.field("o").type
    assert struct.field("t").type == INSTANT_TYPE and struct.field("n").type == pa.int64()
    assert table.schema.field("ts").type == pa.list_(INSTANT_TYPE)
    assert table.column("o").to_pylist() == [{"t": datetime(2024, 1, 1, tzinfo=UTC), "n": 1}, None]
    assert table.column("ts").to_pylist()[1] is None


def test_numbers_in_json_text_stay_numbers() -> None:
    table = records_to_table([{"v": {"amount": Decimal("12.50")}}, {"v": "text"}, {"v": 1}])
    assert table.column("v").to_pylist() == ['{"amount":12.50}', "text", "1"]


def test_a_lone_surrogate_is_a_clear_error_naming_the_field() -> None:
    with pytest.raises(ConnectorError, match=r"record 2 .* field 'name'"):
        records_to_table([{"name": "ok"}, {"name": "half \ud83d"}])


def test_a_field_the_first_record_lacks_is_kept() -> None:
    # Table.from_pylist names its columns after the first record only: `b` would be dropped.
    table = records_to_table([{"a": 1}, {"a": 2, "b": "x"}, {"c": Decimal("1.5"), "a": 3}])
    assert table.column_names == ["a", "b", "c"]
    assert table.to_pylist() == [
        {"a": 1, "b": None, "c": None},
        {"a": 2, "b": "x", "c": None},
        {"a": 3, "b": None, "c": Decimal("1.5")},
    ]


_EDGE_DECIMALS = ["0", "0.0", "-0.00", "1E+5", "1E-7", "0.50", "100.0", "1E-40", "1E+38"]


def _exact_column(values: list) -> pa.Array:
    """What a column of JSON numbers must become: int64 when every value fits, else the
    decimal that holds every value exactly, else (over 76 digits) their text."""
    if all(v is None or type(v) is int for v in values):
        try:
            return pa.array(values, pa.int64())
        except (pa.ArrowInvalid, OverflowError):
            pass
    try:
        return pa.array([None if v is None else Decimal(v) for v in values])
    except pa.ArrowInvalid:  # over 76 digits
        return pa.array([None if v is None else str(v) for v in values], pa.string())


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.none()
        | st.integers(min_value=-(10**40), max_value=10**40)
        | st.decimals(allow_nan=False, allow_infinity=False)
        | st.sampled_from([Decimal(text) for text in _EDGE_DECIMALS]),
        min_size=1,
        max_size=6,
    ).filter(lambda values: any(value is not None for value in values))
)
def test_a_number_column_is_exact_whatever_mix_of_integers_and_decimals(values: list) -> None:
    expected = _exact_column(values)
    for records in ([{"v": value} for value in values], [{"v": {"n": v}} for v in values]):
        column = records_to_table(records).column("v").combine_chunks()
        if pa.types.is_struct(column.type):
            column = column.field("n")
        assert column.type == expected.type
        assert column.equals(expected)
    listed = records_to_table([{"v": values}]).column("v").combine_chunks().values
    assert listed.type == expected.type
    assert listed.equals(expected)


def test_text_beside_other_values_stays_the_text_it_was() -> None:
    first = records_to_table([{"code": "a"}, {"code": "1"}]).column("code").to_pylist()
    second = records_to_table([{"code": "a"}, {"code": 1}, {"code": [1, Decimal("2.5")]}])
    assert first == ["a", "1"]
    assert second.column("code").to_pylist() == ["a", "1", "[1,2.5]"]
