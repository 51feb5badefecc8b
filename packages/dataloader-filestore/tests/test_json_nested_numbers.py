"""Numbers inside JSON and JSONL objects and lists are typed by the number rules of top-level
fields, path by path from the same sample, and read exactly: Arrow's JSON reader alone makes
every one a float64 (`18446744073709551615` → 1.8446744073709552e+19, and a `1` in the same
list → 1.0). Issue 13's nested-data normalization carries these values into every destination."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dataloader import Format, State
from dataloader.context import RunContext
from dataloader_filestore import FileStoreConnector
from dataloader_filestore.connector import FileStoreConfig
from dataloader_filestore.format_options import JsonlOptions
from dataloader_filestore.formats import JsonFormat, JsonlFormat
from dataloader_filestore.inference import TypeDrift

# The attack's row (issue 13): big integers, long decimals, a `1` among them, nested at depth.
ROWS = [
    '{"id": 1, "top": 18446744073709551615, "o": [18446744073709551615, 1], '
    '"s": {"name": "a", "big": 123456789012345678901234567890, '
    '"f": 0.1000000000000000055511151231257827}, '
    '"l": [{"d": 12345678901234567890.5}], "topd": 12345678901234567890.5}',
    # ints next to decimals in one list; structs in lists in structs; an empty list
    '{"id": 2, "o": [], "mix": [1, 2.25, -3], '
    '"deep": {"orders": [{"sku": "A", "qty": 2, "items": [{"n": 1.50}, {"n": 7}]}]}}',
    # null and missing nested fields, null lists and structs
    '{"id": 3, "o": null, "s": {"name": null, "big": null}, "l": [{}, {"d": null}, null], '
    '"deep": {"orders": [{"items": []}, {"qty": null, "items": null}]}}',
]


def read(file_format: Format, data: bytes, batch_size: int = 1000) -> pa.Table:
    return pa.Table.from_batches(list(file_format.read(io.BytesIO(data), batch_size=batch_size)))


def jsonl(rows: list[str]) -> bytes:
    return "".join(row + "\n" for row in rows).encode()


def json_array(rows: list[str]) -> bytes:
    return ("[" + ",\n".join(rows) + "]").encode()


def exact(value: Any) -> Any:
    """`value` with every float refused: an exact read gives ints and Decimals only."""
    assert not isinstance(value, float), f"{value!r} was read as a float"
    if isinstance(value, dict):
        return {key: exact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [exact(item) for item in value]
    return value


def as_written(rows: list[str]) -> list[dict[str, Any]]:
    """The rows' values as their JSON text says: ints and Decimals."""
    return [json.loads(row, parse_float=Decimal) for row in rows]


def without_nulls(value: Any) -> Any:
    """`value` without null struct fields (a struct column has every field in every row)."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


FORMATS = pytest.mark.parametrize(
    ("file_format", "encode"),
    [(JsonlFormat, jsonl), (JsonFormat, json_array)],
    ids=["jsonl", "json"],
)


@FORMATS
def test_nested_numbers_are_read_exactly_as_written(file_format: type[Format], encode: Any) -> None:
    table = read(file_format(JsonlOptions()), encode(ROWS))

    got = [without_nulls(exact(row)) for row in table.to_pylist()]
    assert got == without_nulls(as_written(ROWS))
    first = table.to_pylist()[0]
    assert first["o"] == [18446744073709551615, 1]
    assert first["s"]["big"] == 123456789012345678901234567890
    assert first["l"][0]["d"] == Decimal("12345678901234567890.5")
    assert first["s"]["f"] == Decimal("0.1000000000000000055511151231257827")


@FORMATS
def test_nested_numbers_take_the_top_level_number_rules(
    file_format: type[Format], encode: Any
) -> None:
    table = read(file_format(JsonlOptions()), encode(ROWS))
    types = dict(zip(table.schema.names, table.schema.types, strict=True))

    assert types["o"] == pa.list_(pa.decimal128(20, 0))
    assert types["mix"] == pa.list_(pa.decimal128(3, 2))
    assert types["s"] == pa.struct(
        [
            ("name", pa.string()),
            ("big", pa.decimal128(30, 0)),
            ("f", pa.decimal128(35, 34)),
        ]
    )
    assert types["l"] == pa.list_(pa.struct([("d", pa.decimal128(21, 1))]))
    order = pa.struct(
        [
            ("sku", pa.string()),
            ("qty", pa.int64()),
            ("items", pa.list_(pa.struct([("n", pa.decimal128(3, 2))]))),
        ]
    )
    assert types["deep"] == pa.struct([("orders", pa.list_(order))])
    assert table.column("mix").to_pylist()[1] == [
        Decimal("1.00"),
        Decimal("2.25"),
        Decimal("-3.00"),
    ]


@FORMATS
def test_an_empty_list_in_the_sample_types_its_elements_from_the_others(
    file_format: type[Format], encode: Any
) -> None:
    rows = ['{"v": []}', '{"v": [1, 2.5]}', '{"v": null}', "{}"]

    table = read(file_format(JsonlOptions()), encode(rows))

    assert table.schema.field("v").type == pa.list_(pa.decimal128(2, 1))
    assert table.column("v").to_pylist() == [[], [Decimal("1.0"), Decimal("2.5")], None, None]


@FORMATS
def test_numbers_beyond_76_digits_or_in_exponent_form_stay_float64(
    file_format: type[Format], encode: Any
) -> None:
    rows = ['{"v": {"e": 1e5, "h": ' + "1" * 80 + "}}"]

    table = read(file_format(JsonlOptions()), encode(rows))

    assert table.schema.field("v").type == pa.struct([("e", pa.float64()), ("h", pa.float64())])


@FORMATS
def test_nested_strings_and_booleans_are_left_to_the_reader(
    file_format: type[Format], encode: Any
) -> None:
    rows = ['{"v": {"ok": true, "tags": ["x"], "n": 1.5}}']

    table = read(file_format(JsonlOptions()), encode(rows))

    assert table.schema.field("v").type == pa.struct(
        [("ok", pa.bool_()), ("tags", pa.list_(pa.string())), ("n", pa.decimal128(2, 1))]
    )


def test_a_nested_timestamp_string_is_typed_by_arrow_as_before() -> None:
    rows = ['{"v": {"at": "2024-05-17T10:30:00", "n": 2.5}}']

    table = read(JsonlFormat(JsonlOptions()), jsonl(rows))

    assert table.column("v").to_pylist() == [
        {"at": datetime(2024, 5, 17, 10, 30), "n": Decimal("2.5")}
    ]


def test_jsonl_a_later_nested_number_outside_the_sample_type_fails_naming_the_path() -> None:
    rows = ['{"s": {"l": [{"d": 1.25}]}}', '{"s": {"l": [{"d": 1.255}]}}']

    with pytest.raises(TypeDrift, match=r"column 's\.l\.d': .*1\.255.*first 1 rows.*\{s: "):
        read(JsonlFormat(JsonlOptions(infer_rows=1)), jsonl(rows))


def test_jsonl_a_later_nested_integer_beyond_int64_fails_and_is_never_rounded() -> None:
    rows = ['{"o": [1, 2]}', '{"o": [18446744073709551615]}']

    with pytest.raises(TypeDrift, match=r"column 'o': .*18446744073709551615"):
        read(JsonlFormat(JsonlOptions(infer_rows=1)), jsonl(rows))


def test_a_json_array_widens_a_nested_number_after_the_sample() -> None:
    rows = ['{"s": {"n": 1}}', '{"s": {"n": 18446744073709551615}}', '{"s": {"n": 2.5}}']

    table = read(JsonFormat(JsonlOptions(infer_rows=1)), json_array(rows))

    assert table.schema.field("s").type == pa.struct([("n", pa.decimal128(21, 1))])
    assert [row["s"]["n"] for row in table.to_pylist()] == [
        1,
        18446744073709551615,
        Decimal("2.5"),
    ]


@pytest.mark.parametrize(
    ("later", "value"), [("1e400", "'1e400'"), ('"x"', "'x'")], ids=["float", "string"]
)
def test_a_json_array_nested_value_no_type_holds_with_the_sample_fails(
    later: str, value: str
) -> None:
    rows = ['{"l": [{"n": 1.5}]}', '{"l": [{"n": ' + later + "}]}"]

    with pytest.raises(TypeDrift, match=rf"column 'l\.n': value {value}.*first 1 rows"):
        read(JsonFormat(JsonlOptions(infer_rows=1)), json_array(rows))


@FORMATS
def test_column_types_win_over_nested_inference(file_format: type[Format], encode: Any) -> None:
    rows = ['{"s": {"n": 1.5}}']
    options = JsonlOptions(column_types={"s": "struct<n: decimal(10,3)>"})

    table = read(file_format(options), encode(rows))

    assert table.schema.field("s").type == pa.struct([("n", pa.decimal128(10, 3))])


def test_a_struct_keeps_the_order_of_its_fields_in_the_file() -> None:
    rows = ['{"s": {"a": "x", "n": 1.5}}', '{"s": {"n": 2.5, "a": "y"}}']

    table = read(JsonlFormat(JsonlOptions()), jsonl(rows))

    assert table.schema.field("s").type.field(0).name == "a"
    assert table.column("s").to_pylist()[-1] == {"a": "y", "n": Decimal("2.5")}


@FORMATS
def test_the_filestore_source_reads_nested_numbers_exactly(
    file_format: type[Format], encode: Any, tmp_path: Path
) -> None:
    path = tmp_path / f"rows.{file_format.name}"
    path.write_bytes(encode(ROWS))
    connector = FileStoreConnector(FileStoreConfig(path=str(path)))
    connector.open(RunContext(recipe_name="nested", run_id="r", started_at=datetime.now(UTC)))
    try:
        batches = [batch.to_arrow() for batch in connector.read_batches(State())]
    finally:
        connector.close()

    rows = pa.Table.from_batches(batches).to_pylist()
    got = [
        without_nulls(exact({key: row[key] for key in row if not key.startswith("_")}))
        for row in rows
    ]
    assert got == without_nulls(as_written(ROWS))


def test_normalized_into_duckdb_the_child_tables_hold_the_exact_numbers(
    run: Any, tmp_path: Path
) -> None:
    duckdb = pytest.importorskip("duckdb")
    pytest.importorskip("dataloader_duckdb")
    path = tmp_path / "rows.jsonl"
    path.write_bytes(jsonl(ROWS))
    database = tmp_path / "out.duckdb"
    run(
        {
            "name": "nested",
            "source": {"type": "filestore", "path": str(path)},
            "destination": {"type": "duckdb", "database": str(database), "table": "t"},
            "normalization": {"enabled": True},
        }
    )

    with duckdb.connect(str(database), read_only=True) as con:

        def values(sql: str) -> list[Any]:
            return [exact(row[0]) for row in con.execute(sql).fetchall()]

        assert values('select value from "t__o" order by _dl_list_idx') == [
            18446744073709551615,
            1,
        ]
        assert values('select d from "t__l" where d is not null') == [
            Decimal("12345678901234567890.5")
        ]
        assert values('select n from "t__deep__orders__items" order by n') == [
            Decimal("1.50"),
            Decimal("7.00"),
        ]
        assert values('select s__big from "t" where id = 1') == [123456789012345678901234567890]
        assert values('select value from "t__mix" order by _dl_list_idx') == [
            Decimal("1.00"),
            Decimal("2.25"),
            Decimal("-3.00"),
        ]


def test_struct_fields_are_rearranged_without_a_cast_and_keep_every_value() -> None:
    from dataloader_filestore.json_types import rearranged

    inner = pa.struct([("x", pa.int64()), ("y", pa.string())])
    rows = [
        {"a": {"x": 1, "y": "p"}, "l": [{"x": 1, "y": "a"}, None, {"x": None, "y": "b"}]},
        None,
        {"a": None, "l": None},
        {"a": {"x": 3, "y": None}, "l": []},
        {"a": {"x": 4, "y": "q"}, "l": [{"x": 9, "y": "z"}]},
    ]
    array = pa.array(rows, pa.struct([("a", inner), ("l", pa.list_(inner))]))
    flipped = pa.struct([("y", pa.string()), ("x", pa.int64())])
    wanted = pa.struct([("l", pa.list_(flipped)), ("a", flipped)])
    for start in range(len(rows)):
        for length in range(len(rows) - start + 1):
            part = array.slice(start, length)
            moved = rearranged(part, wanted)
            moved.validate(full=True)
            assert moved.type == wanted
            assert moved.to_pylist() == part.to_pylist()
