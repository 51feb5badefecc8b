"""Types of CSV, TSV, JSON and JSONL columns, inferred from a sample (docs/files.md, "Types of
CSV, TSV, JSON and JSONL columns"): exact values stay exact, a later value widens its column
along the lattice or fails the read naming it."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataloader import ConnectorError, Format, RunResult
from dataloader_filestore import formats
from dataloader_filestore.format_options import CsvOptions, JsonlOptions
from dataloader_filestore.formats import CsvFormat, JsonFormat, JsonlFormat, TsvFormat
from dataloader_filestore.inference import TypeDrift


def read_csv(text: str, **options: Any) -> pa.Table:
    return read(CsvFormat(CsvOptions(**options)), text.encode())


def read(file_format: Format, data: bytes, batch_size: int = 1000) -> pa.Table:
    batches = list(file_format.read(io.BytesIO(data), batch_size=batch_size))
    return pa.Table.from_batches(batches)


def column_of(values: list[str], **options: Any) -> pa.ChunkedArray:
    table = read_csv("v\n" + "".join(value + "\n" for value in values), **options)
    return table.column("v")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["42", "-7", "0"], pa.int64()),
        (["9223372036854775807", "1"], pa.int64()),
        (["9223372036854775808", "1"], pa.decimal128(19, 0)),
        (["123456789012345678901234567890"], pa.decimal128(30, 0)),
        (["3.50", "12.1", "7"], pa.decimal128(4, 2)),
        (["-0.25", ".5"], pa.decimal128(3, 2)),
        (["1e5", "2.5"], pa.float64()),
        (["2.5", "inf", "nan"], pa.float64()),
        (["1234567890" * 4, "1"], pa.decimal256(40, 0)),
        (["1." + "1" * 40], pa.decimal256(41, 40)),
        (["1" * 76], pa.decimal256(76, 0)),
        (["1" * 77], pa.float64()),
        (["1." + "1" * 76], pa.float64()),
        (["+5", "12"], pa.int64()),
        (["+5", "+12"], pa.int64()),
        (["+0.5", "-1"], pa.decimal128(2, 1)),
        (["0", "-0", "10"], pa.int64()),
        (["0", "0.5", "-0.25"], pa.decimal128(3, 2)),
        (["007", "12"], pa.string()),
        (["00123", "12"], pa.string()),
        (["-01", "5"], pa.string()),
        (["007.50"], pa.string()),
        (["1", "0"], pa.int64()),
        (["true", "FALSE"], pa.bool_()),
        (["2024-05-17", "2024-05-18"], pa.date32()),
        (["2024-05-17T12:30:00+02:00", "2024-05-17 10:00:00Z"], pa.timestamp("us", tz="UTC")),
        (["2024-05-17 12:30:00", "2024-05-17T12:30:00.5"], pa.timestamp("us")),
        (["2024-05-17 12:30:00.123456789"], pa.timestamp("ns")),
        (["2024-05-17 12:30:00", "2024-05-17 12:30:00Z"], pa.string()),
        (["007x", "1"], pa.string()),
    ],
)
def test_a_csv_column_takes_the_first_type_its_sample_fits(
    values: list[str], expected: pa.DataType
) -> None:
    assert column_of(values).type == expected


def test_exact_values_are_read_exactly() -> None:
    table = read_csv(
        "qty,big,at\n"
        "3.50,123456789012345678901234567890,2024-05-17T12:30:00+02:00\n"
        "12.1,1,2024-05-17T12:30:00.25Z\n"
    )

    assert table.to_pylist() == [
        {
            "qty": Decimal("3.50"),
            "big": Decimal("123456789012345678901234567890"),
            "at": datetime(2024, 5, 17, 10, 30, tzinfo=UTC),
        },
        {
            "qty": Decimal("12.10"),
            "big": Decimal(1),
            "at": datetime(2024, 5, 17, 12, 30, 0, 250000, tzinfo=UTC),
        },
    ]


def test_a_later_value_widens_the_column_along_the_lattice() -> None:
    values = ["1", "2", "3", "3.5"]

    widened = column_of(values, infer_rows=3)

    assert widened.type == pa.decimal128(20, 1)
    assert widened.to_pylist() == [Decimal("1"), Decimal("2"), Decimal("3"), Decimal("3.5")]


def test_a_later_decimal_with_more_digits_widens_precision_and_scale() -> None:
    widened = column_of(["3.50", "1.25", "123.456"], infer_rows=2)

    assert widened.type == pa.decimal128(6, 3)
    assert widened.to_pylist()[2] == Decimal("123.456")


def test_a_later_batch_widens_the_batches_after_it() -> None:
    text = "v\n" + "".join(f"{i}\n" for i in range(10)) + "3.5\n"

    table = read(CsvFormat(CsvOptions(infer_rows=4)), text.encode(), batch_size=4)

    assert table.column("v").to_pylist()[-1] == Decimal("3.5")
    assert pa.types.is_decimal(table.column("v").type)


@pytest.mark.parametrize(
    ("value", "last", "first_type", "last_type", "expected"),
    [
        (str, "0.5", pa.int64(), pa.decimal128(20, 1), Decimal("0.5")),
        # a date is converted by Arrow as it reads: the file is read again as text
        (
            lambda i: f"2024-01-{i % 28 + 1:02d}",
            "2024-02-01 10:30:00",
            pa.date32(),
            pa.timestamp("us"),
            datetime(2024, 2, 1, 10, 30),
        ),
    ],
    ids=["number", "date"],
)
def test_a_misfit_in_a_later_block_widens_the_column_from_that_row(
    monkeypatch: pytest.MonkeyPatch,
    value: Any,
    last: str,
    first_type: pa.DataType,
    last_type: pa.DataType,
    expected: Any,
) -> None:
    monkeypatch.setattr(formats, "BLOCK_SIZE", 1 << 12)  # blocks of about 300 rows
    text = "id,v\n" + "".join(f"{i},{value(i)}\n" for i in range(4999)) + f"4999,{last}\n"

    batches = list(
        CsvFormat(CsvOptions(infer_rows=100)).read(io.BytesIO(text.encode()), batch_size=1000)
    )

    ids = [i for batch in batches for i in batch.column("id").to_pylist()]
    assert ids == list(range(5000))  # every row once, in order
    assert batches[0].schema.field("v").type == first_type
    assert batches[-1].schema.field("v").type == last_type
    assert batches[-1].column("v").to_pylist()[-1] == expected


@pytest.mark.parametrize("later", ["abc", "1e5"])
def test_a_later_value_no_type_holds_with_the_sample_fails_naming_column_value_and_row(
    later: str,
) -> None:
    values = ["1", "2", "3", later]

    with pytest.raises(
        TypeDrift, match=rf"column 'v': value '{later}' \(data row 4\) does not fit int64"
    ):
        column_of(values, infer_rows=3)


def test_column_types_win_over_inference() -> None:
    table = read_csv(
        "zip,amount\n00123,3.5\n00456,4\n", column_types={"zip": "string", "amount": "float64"}
    )

    assert table.schema.field("zip").type == pa.string()
    assert table.schema.field("amount").type == pa.float64()
    assert table.column("zip").to_pylist() == ["00123", "00456"]


def test_tsv_is_typed_like_csv() -> None:
    table = read(TsvFormat(CsvOptions(delimiter="\t")), b"qty\tname\n3.5\ta\n4\tb\n")

    assert table.schema.field("qty").type == pa.decimal128(2, 1)


def test_a_compressed_stream_that_cannot_seek_is_read_whole() -> None:
    class Forward(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            chunk = self._data.read(min(len(buffer), 1000))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    text = "id,qty\n" + "".join(f"{i},{i}.25\n" for i in range(200_000))
    batches = CsvFormat(CsvOptions()).read(
        io.BufferedReader(Forward(text.encode())), batch_size=50_000
    )
    table = pa.Table.from_batches(list(batches))

    assert table.num_rows == 200_000
    assert table.column("qty").type == pa.decimal128(8, 2)
    assert table.column("qty")[-1].as_py() == Decimal("199999.25")


def test_a_header_longer_than_the_first_look_is_read_whole() -> None:
    names = [f"column_with_a_long_name_{i:05d}" for i in range(4000)]  # about 130 KiB
    text = ",".join(names) + "\n" + ",".join("1.5" for _ in names) + "\n"

    table = read_csv(text)

    assert table.schema.names == names
    assert table.column(names[-1]).to_pylist() == [Decimal("1.5")]


def test_text_that_is_not_utf8_fails_naming_the_column() -> None:
    with pytest.raises(pa.ArrowInvalid, match=r"column 'name' holds text that is not utf8"):
        read(CsvFormat(CsvOptions()), "id,name\n1,caf\xe9\n".encode("latin-1"))


# -- JSON and JSONL ----------------------------------------------------------------------------
JSON_ROWS = [
    '{"qty": 3.50, "big": 12345678901234567890123, "at": "2024-05-17T12:30:00+02:00", '
    '"day": "2024-05-17", "code": "007", "f": 1e5, "n": 1, "ok": true, "tags": {"x": 1.5}}',
    '{"qty": 12, "big": 2, "at": "2024-05-17T10:00:00Z", "day": null, "code": "8", '
    '"f": 2.5, "n": 2, "ok": false, "tags": {"x": 2}}',
]
JSON_TYPES = {
    "qty": pa.decimal128(4, 2),
    "big": pa.decimal128(23, 0),
    "at": pa.timestamp("us", tz="UTC"),
    "day": pa.date32(),
    "code": pa.string(),
    "f": pa.float64(),
    "n": pa.int64(),
    "ok": pa.bool_(),
    "tags": pa.struct([("x", pa.decimal128(2, 1))]),
}


@pytest.mark.parametrize(
    ("file_format", "data"),
    [
        (JsonlFormat, "\n".join(JSON_ROWS) + "\n"),
        (JsonFormat, "[" + ",\n".join(JSON_ROWS) + "]"),
    ],
    ids=["jsonl", "json"],
)
def test_json_numbers_are_typed_from_their_text_and_strings_find_timestamps(
    file_format: type[Format], data: str
) -> None:
    table = read(file_format(JsonlOptions()), data.encode())

    assert dict(zip(table.schema.names, table.schema.types, strict=True)) == JSON_TYPES
    first = table.to_pylist()[0]
    assert first["qty"] == Decimal("3.50")
    assert first["big"] == Decimal("12345678901234567890123")
    assert first["at"] == datetime(2024, 5, 17, 10, 30, tzinfo=UTC)
    assert first["day"] == date(2024, 5, 17)


def test_a_json_array_widens_a_column_after_the_sample() -> None:
    data = json.dumps([{"qty": 1}, {"qty": 2}, {"qty": 3.5}]).encode()

    table = read(JsonFormat(JsonlOptions(infer_rows=2)), data)

    assert table.column("qty").type == pa.decimal128(20, 1)
    assert table.column("qty").to_pylist() == [1, 2, Decimal("3.5")]


def test_a_jsonl_value_outside_the_sample_type_fails_naming_the_column() -> None:
    data = b'{"qty": 1}\n{"qty": 2}\n{"qty": 3.5}\n'

    with pytest.raises(TypeDrift, match=r"column 'qty': .*3\.5.*first 2 rows"):
        read(JsonlFormat(JsonlOptions(infer_rows=2)), data)


def test_jsonl_column_types_win_over_inference() -> None:
    data = b'{"qty": 1}\n{"qty": 2}\n{"qty": 3.5}\n'

    table = read(
        JsonlFormat(JsonlOptions(infer_rows=2, column_types={"qty": "decimal(5,1)"})), data
    )

    assert table.column("qty").to_pylist() == [Decimal("1.0"), Decimal("2.0"), Decimal("3.5")]


# -- the case: integers on day 1, `3.5` on day 2 ----------------------------------------
def test_day_two_fractional_quantities_arrive_as_decimal_not_float_nor_int(
    run: Any, tmp_path: Path
) -> None:
    landing, out = tmp_path / "landing", tmp_path / "out"
    landing.mkdir()
    recipe = {
        "name": "daily",
        "source": {
            "type": "filestore",
            "path": str(landing),
            "incremental": {"strategy": "modified_time"},
        },
        "destination": {"type": "filestore", "path": str(out), "format": "parquet"},
    }
    (landing / "day1.csv").write_text("id,qty\n1,3\n2,4\n")
    first: RunResult = run(recipe)
    (landing / "day2.csv").write_text("id,qty\n3,3.5\n4,1.25\n")
    second: RunResult = run(recipe)

    assert (first.rows_written, second.rows_written) == (2, 2)
    parts = sorted(out.glob("daily-*.parquet"), key=lambda p: p.stat().st_mtime_ns)
    day1, day2 = (pq.read_table(part) for part in parts)
    assert day1.schema.field("qty").type == pa.int64()
    assert pa.types.is_decimal(day2.schema.field("qty").type)
    assert day2.column("qty").to_pylist() == [Decimal("3.5"), Decimal("1.25")]
    total = sum(day1.column("qty").to_pylist()) + sum(day2.column("qty").to_pylist())
    assert total == Decimal("11.75")


def test_a_drift_no_type_holds_fails_the_run_naming_the_file(run: Any, tmp_path: Path) -> None:
    path = tmp_path / "day.csv"
    path.write_text("id,qty\n1,3\n2,abc\n")
    recipe = {
        "name": "drift",
        "source": {"type": "filestore", "path": str(path), "format_options": {"infer_rows": 1}},
        "destination": {"type": "dl_test_collect", "into": "drift"},
    }

    with pytest.raises(ConnectorError, match=r"day\.csv.*column 'qty': value 'abc'"):
        run(recipe)


@pytest.mark.parametrize("text", ["id,name\n", "id,name\r\n", "id,name", '"i\nd",name\n'])
def test_a_file_of_a_header_only_has_no_rows(text: str) -> None:
    batches = list(CsvFormat(CsvOptions()).read(io.BytesIO(text.encode()), batch_size=10))
    assert sum(batch.num_rows for batch in batches) == 0


# -- identifiers, signs and long numbers (attack on issue 12) -----------------------------------
def test_a_value_with_leading_zeros_past_the_first_values_keeps_the_column_text() -> None:
    values = [str(i) for i in range(1, 400)] + ["00123"]

    column = column_of(values)

    assert column.type == pa.string()
    assert column.to_pylist()[-1] == "00123"


def test_a_hexadecimal_value_past_the_first_values_is_no_integer() -> None:
    values = [str(i) for i in range(1, 400)] + ["0x10"]

    assert column_of(values).type == pa.string()


def test_signed_integers_keep_their_value() -> None:
    assert column_of(["+5", "+12", "-3"]).to_pylist() == [5, 12, -3]


def test_numbers_of_39_to_76_digits_are_read_exactly() -> None:
    huge = "1234567890" * 4
    table = read_csv(f"i,d\n{huge},1.{'2' * 38}\n1,3\n")

    assert table.to_pylist() == [
        {"i": Decimal(huge), "d": Decimal("1." + "2" * 38)},
        {"i": Decimal(1), "d": Decimal(3)},
    ]


@pytest.mark.parametrize(
    ("later", "expected", "value"),
    [
        ("+12", pa.int64(), 12),
        ("1234567890" * 4, pa.decimal256(40, 0), Decimal("1234567890" * 4)),
    ],
)
def test_a_later_integer_keeps_or_widens_the_integer_column(
    later: str, expected: pa.DataType, value: Any
) -> None:
    column = column_of(["1", "2", later], infer_rows=2)

    assert column.type == expected
    assert column.to_pylist()[-1] == value


@pytest.mark.parametrize(
    ("sample", "later", "kind"),
    [
        (["true", "false"], "1", "bool"),
        (["true", "false"], "0", "bool"),
        (["TRUE", "False"], "yes", "bool"),
    ],
)
def test_a_later_value_the_sample_rule_would_not_read_as_a_bool_fails(
    sample: list[str], later: str, kind: str
) -> None:
    with pytest.raises(
        TypeDrift, match=rf"column 'v': value '{later}' \(data row 3\) does not fit {kind}"
    ):
        column_of([*sample, later], infer_rows=2)


@pytest.mark.parametrize(
    ("sample", "later", "value"),
    [
        (["1", "2"], "007", 7),
        (["1", "2"], " 12", 12),
        (["1", "2"], "0x10", 16),
        (["1.5", "2.5"], "007.5", Decimal("7.5")),
    ],
)
def test_past_the_sample_numbers_are_read_as_arrow_reads_them(
    sample: list[str], later: str, value: Any
) -> None:
    """The documented trade: a column the sample typed as numbers is converted by Arrow's
    reader at its speed, which also reads these forms (declare `column_types` to keep text)."""
    assert column_of([*sample, later], infer_rows=2).to_pylist()[-1] == value


def test_a_later_bool_of_any_case_stays_bool() -> None:
    column = column_of(["true", "false", "FaLsE", "TRUE"], infer_rows=2)

    assert column.type == pa.bool_()
    assert column.to_pylist() == [True, False, False, True]


# -- a column with no value -------------------------------------------------------------------
def test_a_csv_column_empty_throughout_is_null_typed_in_every_batch() -> None:
    text = "id,empty\n" + "".join(f"{i},\n" for i in range(10))

    batches = list(
        CsvFormat(CsvOptions(infer_rows=3)).read(io.BytesIO(text.encode()), batch_size=4)
    )

    assert len(batches) == 3
    assert {str(batch.schema.field("empty").type) for batch in batches} == {"null"}
    assert {batch.schema.field("id").type for batch in batches} == {pa.int64()}


def test_a_csv_column_empty_in_its_sample_takes_the_type_of_its_first_value() -> None:
    text = "id,late\n" + "".join(f"{i},\n" for i in range(4)) + "4,2.5\n"

    batches = list(
        CsvFormat(CsvOptions(infer_rows=2)).read(io.BytesIO(text.encode()), batch_size=2)
    )

    types = {batch.schema.field("late").type for batch in batches}
    assert types <= {pa.null(), pa.decimal128(2, 1)}
    assert batches[-1].column("late").to_pylist()[-1] == Decimal("2.5")


@pytest.mark.parametrize(
    ("file_format", "data"),
    [
        (JsonlFormat, b'{"id": 1, "empty": null}\n{"id": 2}\n'),
        (JsonFormat, b'[{"id": 1, "empty": null}, {"id": 2}]'),
    ],
    ids=["jsonl", "json"],
)
def test_a_json_field_null_throughout_is_null_typed(file_format: type[Format], data: bytes) -> None:
    table = read(file_format(JsonlOptions()), data)

    assert table.schema.field("empty").type == pa.null()


@pytest.mark.parametrize(
    ("file_format", "data"),
    [
        (JsonlFormat, '{"big": %s}\n{"big": 1.5}\n' % ("1234567890" * 4)),
        (JsonFormat, '[{"big": %s}, {"big": 1.5}]' % ("1234567890" * 4)),
    ],
    ids=["jsonl", "json"],
)
def test_json_numbers_of_39_to_76_digits_are_read_exactly(
    file_format: type[Format], data: str
) -> None:
    table = read(file_format(JsonlOptions()), data.encode())

    assert table.schema.field("big").type == pa.decimal256(41, 1)
    assert table.column("big").to_pylist() == [Decimal("1234567890" * 4), Decimal("1.5")]
