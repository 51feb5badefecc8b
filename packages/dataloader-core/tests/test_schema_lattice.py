"""The type lattice: the table in docs/schema.md, and the laws every pair of types keeps."""

from __future__ import annotations

import itertools
import re
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from dataloader.schema.lattice import Rules, supertype, widens
from dataloader.schema.types import parse_type, type_name

DOC = Path(__file__).parents[3] / "docs" / "schema.md"
ALL_RULES = Rules(allow_float=True, allow_text=True, naive_as_utc=True)
RULES_BY_NAME = {
    "allow_float": Rules(allow_float=True),
    "allow_text": Rules(allow_text=True),
    "naive_timestamps_as_utc": Rules(naive_as_utc=True),
}

# Types with sample values at their edges: a supertype must hold each of them exactly.
SAMPLES: dict[pa.DataType, list[object]] = {
    pa.int8(): [-128, 127],
    pa.int16(): [-32768, 32767],
    pa.int32(): [-(2**31), 2**31 - 1],
    pa.int64(): [-(2**63), 2**63 - 1],
    pa.uint8(): [255],
    pa.uint32(): [2**32 - 1],
    pa.uint64(): [2**64 - 1],
    pa.decimal128(10, 2): [Decimal("-99999999.99"), Decimal("0.01")],
    pa.decimal128(38, 0): [Decimal("9" * 38)],
    pa.decimal128(12, 4): [Decimal("-99999999.9999")],
    pa.float32(): [1.5, -2.25],
    pa.float64(): [0.1, 1e300],
    pa.bool_(): [True, False],
    pa.string(): ["a", "ü"],
    pa.binary(): [b"\x00\xff"],
    pa.date32(): [pa.scalar(19000, pa.date32()).as_py()],
    pa.timestamp("us"): [pa.scalar(1_700_000_000_123_456, pa.timestamp("us")).as_py()],
    pa.timestamp("us", tz="UTC"): [
        pa.scalar(1_700_000_000_123_456, pa.timestamp("us", tz="UTC")).as_py()
    ],
    pa.list_(pa.int32()): [[1, 2**31 - 1]],
    pa.list_(pa.int64()): [[2**63 - 1]],
    pa.struct([("a", pa.int32())]): [{"a": 7}],
    pa.struct([("b", pa.string())]): [{"b": "x"}],
    pa.null(): [None],
}
TYPES = list(SAMPLES)


def _doc_rows() -> list[tuple[str, str, str, str]]:
    text = DOC.read_text()
    table = text[text.index("| table has | rows carry | becomes | allowed by |") :]
    rows = []
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows.append((cells[0], cells[1], cells[2], cells[3].strip("`")))
    return rows


@pytest.mark.parametrize(("old", "new", "becomes", "rule"), _doc_rows())
def test_the_documented_table_is_what_the_lattice_does(
    old: str, new: str, becomes: str, rule: str
) -> None:
    rules = RULES_BY_NAME[rule] if rule else Rules()
    found = supertype(parse_type(old), parse_type(new), rules)
    if becomes.startswith("—"):
        assert found is None
    else:
        assert found is not None and type_name(found) == becomes


def test_the_documented_table_has_every_kind_of_step() -> None:
    rows = _doc_rows()
    assert len(rows) >= 15
    assert {rule for *_, rule in rows} == {"", *RULES_BY_NAME}


@pytest.mark.parametrize(("a", "b"), list(itertools.product(TYPES, TYPES)))
def test_a_supertype_holds_every_value_of_both_sides_exactly(
    a: pa.DataType, b: pa.DataType
) -> None:
    found = supertype(a, b, ALL_RULES)
    if found is None:
        return
    for kind in (a, b):
        if pa.types.is_null(kind):
            continue
        if pa.types.is_floating(found) and not pa.types.is_floating(kind):
            continue  # allow_float: documented as rounding
        values = pa.array(SAMPLES[kind], kind)
        cast = pc.cast(values, found, safe=True)
        if pa.types.is_string(found) and not pa.types.is_string(kind):
            continue  # allow_text: the text form, not the value
        if pa.types.is_timestamp(found) and pa.types.is_timestamp(kind) and kind.tz != found.tz:
            continue  # naive_as_utc: the same digits, read as UTC
        assert pc.cast(cast, kind, safe=True).equals(values), (a, b, found)


@pytest.mark.parametrize(("a", "b"), list(itertools.product(TYPES, TYPES)))
def test_the_supertype_does_not_depend_on_the_order_and_is_an_upper_bound(
    a: pa.DataType, b: pa.DataType
) -> None:
    for rules in (Rules(), ALL_RULES):
        ab, ba = supertype(a, b, rules), supertype(b, a, rules)
        if ab is None or ba is None:
            assert ab is None and ba is None, (a, b)
            continue
        if pa.types.is_struct(ab):  # fields in the order each side names them first
            assert set(ab) == set(ba), (a, b)
        else:
            assert ab == ba, (a, b)
        assert widens(a, ab, rules) or pa.types.is_struct(ab)  # struct fields may reorder
        assert supertype(ab, ab, rules) == ab


@pytest.mark.parametrize("t", TYPES)
def test_every_type_widens_to_itself_and_null_widens_to_every_type(t: pa.DataType) -> None:
    assert supertype(t, t) == t
    assert supertype(pa.null(), t) == t
    assert supertype(t, pa.null()) == t


def test_without_rules_no_step_loses_or_reinterprets_a_value() -> None:
    for a, b in itertools.product(TYPES, TYPES):
        found = supertype(a, b)
        if found is None or found in (a, b):
            continue
        assert not (pa.types.is_floating(found) and not pa.types.is_floating(a)), (a, b)
        assert not pa.types.is_string(found) or pa.types.is_string(a), (a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [(pa.int64(), pa.float64()), (pa.decimal128(12, 2), pa.float32()), (pa.int32(), pa.string())],
)
def test_float_and_text_need_their_rule(a: pa.DataType, b: pa.DataType) -> None:
    assert supertype(a, b) is None
    assert supertype(a, b, ALL_RULES) is not None


def test_decimals_wider_than_76_digits_have_no_supertype() -> None:
    assert supertype(pa.decimal256(76, 0), pa.decimal256(76, 76)) is None


def test_type_names_parse_back_to_their_type() -> None:
    for t in TYPES:
        if pa.types.is_null(t) or pa.types.is_unsigned_integer(t):
            continue
        assert parse_type(type_name(t)) == t, t


@pytest.mark.parametrize(
    "name", ["list<int", "struct<>", "struct<a int>", "struct<a: int, a: string>", "list<nope>"]
)
def test_malformed_nested_type_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        parse_type(name)


def test_nested_type_names_parse() -> None:
    assert parse_type("list<decimal(12,2)>") == pa.list_(pa.decimal128(12, 2))
    assert parse_type("struct<a: int, b: list<string>>") == pa.struct(
        [("a", pa.int64()), ("b", pa.list_(pa.string()))]
    )
    assert re.fullmatch(
        r"struct<a: int, b: list<string>>", type_name(parse_type("struct<a: int, b: list<string>>"))
    )
