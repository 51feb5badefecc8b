"""A JSON number a double cannot hold is refused, never loaded changed: `1e400` would load as
inf, `1e-400` as 0.0, and a subnormal keeps fewer digits than were written. Both JSON formats,
top-level and nested, in the sample and after it (attack finding: JSON arrays loaded inf)."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pytest

from dataloader import Format
from dataloader_filestore import formats
from dataloader_filestore.format_options import JsonlOptions
from dataloader_filestore.formats import JsonFormat, JsonlFormat
from dataloader_filestore.json_types import NumberOutOfRange


def read(file_format: Format, data: bytes) -> pa.Table:
    return pa.Table.from_batches(list(file_format.read(io.BytesIO(data), batch_size=1000)))


def jsonl(rows: list[str]) -> bytes:
    return "".join(row + "\n" for row in rows).encode()


def json_array(rows: list[str]) -> bytes:
    return ("[" + ",\n".join(rows) + "]").encode()


FORMATS = pytest.mark.parametrize(
    ("file_format", "encode"),
    [(JsonlFormat, jsonl), (JsonFormat, json_array)],
    ids=["jsonl", "json"],
)
OUT_OF_RANGE = [
    "1e400",
    "-1e400",
    "1e-400",
    "-1E-400",
    "1" + "0" * 400,  # positional, past the largest double
    "0." + "0" * 400 + "1",  # positional, below the smallest
    "1.2345678901234567e-310",  # a subnormal: the double keeps fewer digits
]
PLACES = [
    ('{"id": 1, "top": %s}', "top"),
    ('{"id": 1, "s": {"x": %s}}', "s.x"),
    ('{"id": 1, "l": [1.5e-7, %s]}', "l"),
    ('{"id": 1, "d": {"l": [{"y": %s}]}}', "d.l.y"),
]


@FORMATS
@pytest.mark.parametrize("value", OUT_OF_RANGE, ids=lambda v: v[:24])
@pytest.mark.parametrize(("row", "path"), PLACES, ids=[path for _, path in PLACES])
def test_a_number_a_double_cannot_hold_is_refused_naming_column_and_value(
    file_format: type[Format], encode: Any, value: str, row: str, path: str
) -> None:
    with pytest.raises(NumberOutOfRange) as raised:
        read(file_format(JsonlOptions()), encode([row % value]))

    message = str(raised.value)
    assert f"column {path!r}" in message
    assert value in message
    assert "double" in message


@FORMATS
@pytest.mark.parametrize(
    "value", ["0e-999", "-0.0", "0.000e-400", "1e-310", "1.7976931348623157e308", "2.5e-308"]
)
def test_zeros_and_numbers_a_double_holds_load_as_before(
    file_format: type[Format], encode: Any, value: str
) -> None:
    rows = [f'{{"top": {value}, "s": {{"x": {value}}}, "l": [{value}]}}']

    row = read(file_format(JsonlOptions()), encode(rows)).to_pylist()[0]

    assert [row["top"], row["s"]["x"], row["l"][0]] == [float(value)] * 3


@FORMATS
def test_a_later_row_out_of_range_is_refused_with_its_place(
    file_format: type[Format], encode: Any
) -> None:
    rows = ['{"v": 1.5e-7, "s": {"x": 2e5}}'] * 3 + ['{"v": 1e-7, "s": {"x": 1e-400}}']

    with pytest.raises(NumberOutOfRange, match=r"'s\.x'.*1e-400.*(line 4|item 3)"):
        read(file_format(JsonlOptions(infer_rows=1)), encode(rows))


@FORMATS
def test_a_field_first_seen_after_the_sample_is_checked_too(
    file_format: type[Format], encode: Any
) -> None:
    rows = ['{"id": 1}', '{"id": 2, "z": -1e400}']

    with pytest.raises(NumberOutOfRange, match="'z'"):
        read(file_format(JsonlOptions(infer_rows=1)), encode(rows))


@FORMATS
def test_such_text_inside_a_string_is_only_text(file_format: type[Format], encode: Any) -> None:
    rows = ['{"note": "x: 1e400, [1e-400", "n": "' + "9" * 300 + '"}']

    table = read(file_format(JsonlOptions()), encode(rows))

    assert table.column("note").to_pylist() == ["x: 1e400, [1e-400"]


def test_json_a_column_declared_string_keeps_the_text() -> None:
    rows = ['{"top": 1e400}', '{"top": 1e-400}']

    table = read(JsonFormat(JsonlOptions(column_types={"top": "string"})), json_array(rows))

    assert table.column("top").to_pylist() == ["1e400", "1e-400"]


def test_json_the_advice_names_a_string_column_type() -> None:
    with pytest.raises(NumberOutOfRange, match=r"column_types: \{top: string\}"):
        read(JsonFormat(JsonlOptions()), json_array(['{"top": 1e400}']))


def test_jsonl_a_number_on_a_line_cut_by_a_block_is_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(formats, "BLOCK_SIZE", 64)  # many blocks, lines cut between them
    rows = [f'{{"id": {i}, "v": 1.5e-7}}' for i in range(20)]
    rows[13] = '{"id": 13, "v": 1.5e-400}'

    with pytest.raises(NumberOutOfRange, match=r"'v'.*1\.5e-400.*line 14"):
        read(JsonlFormat(JsonlOptions(infer_rows=2)), jsonl(rows))


def test_jsonl_no_batch_with_the_changed_value_is_handed_on_first() -> None:
    rows = ['{"v": 1.5e-7}', '{"v": 1e-400}']
    batches = JsonlFormat(JsonlOptions(infer_rows=1)).read(io.BytesIO(jsonl(rows)), batch_size=1)

    with pytest.raises(NumberOutOfRange):
        for batch in batches:
            assert 0.0 not in batch.column(0).to_pylist()
