"""The native JSON records reader against `records_to_table(json.loads(...))`."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataloader_rest import records
from dataloader_rust.json_records import JsonRecords

READER = JsonRecords()
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# A generated JSON value: ("raw", text) for scalars written as they are, ("obj", members)
# with members a list of (key, value) that may repeat a key, ("arr", items).
Node = tuple[str, Any]


def expected_table(text: str) -> pa.Table:
    return records.records_to_table(json.loads(text, parse_float=Decimal))


def native_table(text: str | bytes) -> pa.Table | None:
    content = text.encode() if isinstance(text, str) else text
    out = READER.to_arrays(content)
    if out is None:
        return None
    names, arrays = out
    return pa.Table.from_arrays([records._instants(a) for a in arrays], names=names)


def assert_same(text: str) -> pa.Table:
    """The native table of `text`, which must exist and equal the Python path's."""
    got = native_table(text)
    assert got is not None, text
    want = expected_table(text)
    assert got.schema == want.schema, (got.schema, want.schema)
    assert got.equals(want), (got, want)
    return got


# --- generation ------------------------------------------------------------------------------

ints = st.one_of(
    st.integers(INT64_MIN, INT64_MAX),
    st.sampled_from([INT64_MIN, INT64_MAX, 0, -1, 1]),
).map(str)
wide_ints = st.one_of(ints, st.sampled_from([str(INT64_MAX + 1), str(INT64_MIN - 1)]))


@st.composite
def fractions(draw: st.DrawFn, max_whole: int = 15, max_scale: int = 15) -> str:
    whole = draw(st.integers(0, 10**max_whole - 1))
    scale = draw(st.integers(1, max_scale))
    digits = draw(st.text("0123456789", min_size=scale, max_size=scale))
    sign = draw(st.sampled_from(["", "-"]))
    return f"{sign}{whole}.{digits}"


texts = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12
) | st.sampled_from(['"', "\\", 'quote"d', "\n\t", "\u00e9", "\U0001f600", "\x00\x1f", "/"])


@st.composite
def strings(draw: st.DrawFn) -> str:
    return json.dumps(draw(texts), ensure_ascii=draw(st.booleans()))


scalars = st.one_of(
    st.just("null"),
    st.sampled_from(["true", "false"]),
    wide_ints,
    fractions(),
    strings(),
).map(lambda text: ("raw", text))
keys = st.sampled_from(["a", "b", "c", "d"])


def members(values: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.lists(st.tuples(keys, values), max_size=4).map(lambda m: ("obj", m))


nodes: st.SearchStrategy[Node] = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3).map(lambda i: ("arr", i)), members(inner)),
    max_leaves=12,
)


def write(node: Node, space: str = "") -> str:
    kind, body = node
    if kind == "raw":
        return body
    if kind == "arr":
        return "[" + f",{space}".join(write(item, space) for item in body) + "]"
    parts = (f"{json.dumps(k)}{space}:{space}{write(v, space)}" for k, v in body)
    return "{" + f",{space}".join(parts) + "}"


def document(rows: list[Node], space: str) -> str:
    return f"{space}[{space}" + f",{space}".join(write(r, space) for r in rows) + f"{space}]"


@st.composite
def shapes(draw: st.DrawFn, depth: int = 0) -> st.SearchStrategy[Node]:
    """A strategy of values of one type (nulls aside): what a homogeneous column holds."""
    choices = ["int", "frac", "str", "bool", "null"] + (["obj", "arr"] if depth < 2 else [])
    kind = draw(st.sampled_from(choices))
    if kind == "int":
        leaf: st.SearchStrategy[str] = ints
    elif kind == "frac":
        leaf = fractions()
    elif kind == "str":
        leaf = strings()
    elif kind == "bool":
        leaf = st.sampled_from(["true", "false"])
    elif kind == "null":
        return st.just(("raw", "null"))
    elif kind == "obj":
        fields = draw(st.lists(keys, min_size=1, max_size=3, unique=True))
        children = {name: draw(shapes(depth + 1)) for name in fields}
        return st.one_of(
            st.just(("raw", "null")),
            st.fixed_dictionaries(
                {}, optional={name: child for name, child in children.items()}
            ).map(lambda d: ("obj", list(d.items()))),
        ).filter(lambda n: n[0] != "obj" or n[1])  # at least one field in every object
    else:
        item = draw(shapes(depth + 1))
        return st.one_of(
            st.just(("raw", "null")), st.lists(item, max_size=3).map(lambda i: ("arr", i))
        )
    return st.one_of(st.just("null"), leaf).map(lambda text: ("raw", text))


@st.composite
def homogeneous(draw: st.DrawFn) -> str:
    fields = draw(st.lists(keys, min_size=1, max_size=4, unique=True))
    columns = {name: draw(shapes()) for name in fields}
    rows = draw(
        st.lists(
            st.fixed_dictionaries({}, optional=columns).map(lambda d: ("obj", list(d.items()))),
            min_size=1,
            max_size=6,
        )
    )
    return document(rows, draw(st.sampled_from(["", " ", "\n  "])))


# --- properties ------------------------------------------------------------------------------


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(members(nodes), max_size=6), space=st.sampled_from(["", " ", "\r\n\t"]))
def test_any_records_match_the_python_path_when_read(rows: list[Node], space: str) -> None:
    text = document(rows, space)
    got = native_table(text)
    if got is None:
        return
    want = expected_table(text)
    assert got.schema == want.schema
    assert got.equals(want)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=homogeneous())
def test_homogeneous_columns_are_read_natively(text: str) -> None:
    want = expected_table(text)
    if any(pa.types.is_struct(t) and t.num_fields == 0 for t in _types(want.schema)):
        assert native_table(text) is None
        return
    assert_same(text)


def _types(schema: pa.Schema) -> list[pa.DataType]:
    found: list[pa.DataType] = []

    def walk(t: pa.DataType) -> None:
        found.append(t)
        for i in range(t.num_fields):
            walk(t.field(i).type)

    for field in schema:
        walk(field.type)
    return found


# --- targeted cases --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '[{"a": 1e5}]',
        '[{"a": 1.5E3}]',
        '[{"a": [1E-2]}]',
        f'[{{"a": {INT64_MAX + 1}}}]',
        f'[{{"a": {INT64_MIN - 1}}}]',
        f'[{{"a": [{INT64_MAX + 1}]}}]',
        '[{"a": 1.' + "1" * 38 + "}]",
        '[{"a": ' + "1" * 30 + "}, " + '{"a": 0.' + "1" * 9 + "}]",
        '[{"a": {"b": 1}}, {"a": {"b": 1.5}}]',
        '[{"a": [1, 1.5]}]',
        '[{"a": 1}, {"a": "x"}]',
        '[{"a": true}, {"a": 1}]',
        '[{"a": [1]}, {"a": {"b": 1}}]',
        '[{"a": {}}]',
        '[{"a": {"b": {}}}]',
        '[{"a": [{}]}]',
        '[{"a": "\\ud800"}]',
        '[{"a": "\\udc00"}]',
        '[{"a": "\\ud800\\u0041"}]',
        '[{"\\ud800": 1}]',
        '[{"a": "x\ty"}]',
        '[{"a": NaN}]',
        '[{"a": Infinity}]',
        '[{"a": -Infinity}]',
        '{"a": 1}',
        "[1]",
        '[{"a": 1}, null]',
        '[{"a": 1}] x',
        '[{"a": 1},]',
        '[{"a": 01}]',
        '[{"a": 1.}]',
        '[{"a": "\\x41"}]',
        '\ufeff[{"a": 1}]',
        "",
        "[" * 300 + "]" * 300,
    ],
)
def test_outside_the_subset_is_none(text: str) -> None:
    assert READER.to_arrays(text.encode()) is None


def test_invalid_utf8_is_none() -> None:
    assert READER.to_arrays(b'[{"a": "\xff"}]') is None
    assert READER.to_arrays(b'[{"a": "\xed\xa0\x80"}]') is None  # an encoded surrogate


@pytest.mark.parametrize(
    "text",
    [
        '[{"a": 1, "b": "x", "a": 2}]',
        '[{"a": {"x": 1, "y": 2, "x": null}}, {"a": {"y": 3}}]',
        '[{"a": "\\ud83d\\ude00 \\"q\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u00e9"}]',
        '[{"a": null}, {"a": null}]',
        '[{"a": []}, {"a": [], "b": null}]',
        '[{"a": [[], null, [null]]}]',
        '[{"a": 1}, {"b": 2.50}, {"a": 0.000, "b": -0.5}]',
        '[{"a": 10}, {"a": 3.25}, {}]',
        '[{"a": 0.001}, {"a": 12.0}]',
        '[{"a": [0.001, 12.0, null]}]',
        '[{"a": {"b": [{"c": true}, null, {"d": "x"}]}}, {"a": null}]',
        '[{"t": "2024-01-02T03:04:05Z"}, {"t": "2024-01-02T03:04:05.123456789+01:00"}]',
        ' [ { "a" : 1 } ] \n',
        "[{}, {}]",
    ],
)
def test_native_result_equals_the_python_path(text: str) -> None:
    assert_same(text)


def test_duplicate_key_keeps_first_position_and_last_value() -> None:
    table = assert_same('[{"a": 1, "b": 2, "a": 3}]')
    assert table.column_names == ["a", "b"]
    assert table.to_pylist() == [{"a": 3, "b": 2}]


def test_escaped_key_is_the_same_key() -> None:
    table = assert_same('[{"a": 1, "\\u0061": 2, "b\\u00e9": "x"}, {"b\u00e9": "y"}]')
    assert table.column_names == ["a", "b\u00e9"]
    assert table.column("a").to_pylist() == [2, None]


@pytest.mark.parametrize("at", range(20))
def test_special_bytes_anywhere_in_long_strings(at: int) -> None:
    plain = "abcdefgh\u00e9\U0001f600ijklmnopqrstuvwxyz"
    for special in ('"', "\\", "\n", "\x1f", "\x7f", "/"):
        text = plain[:at] + special + plain[at:]
        assert_same(json.dumps([{"s": text}], ensure_ascii=False))
    raw = plain[:at] + "\x01" + plain[at:]
    assert READER.to_arrays(('[{"s": "' + raw + '"}]').encode()) is None


def test_accepts_any_bytes_like() -> None:
    content = b'[{"a": 1}]'
    for form in (bytearray(content), memoryview(content)):
        assert READER.to_arrays(form) == READER.to_arrays(content)
    assert READER.locate(bytearray(b'{"x": []}'), ["x"]) == (6, 8, 0)


def test_many_keys_in_one_object_with_a_repeat() -> None:
    members = ", ".join(f'"k{i}": {i}' for i in range(40))
    assert_same("[{" + members + ', "k3": 99, "k39": 0}]')


def test_types() -> None:
    names, arrays = READER.to_arrays(
        b'[{"i": 1, "d": 1.50, "s": "x", "b": true, "n": null, "l": [], "o": {"x": [1]}}]'
    ) or ([], [])
    assert names == ["i", "d", "s", "b", "n", "l", "o"]
    assert [a.type for a in arrays] == [
        pa.int64(),
        pa.decimal128(3, 2),
        pa.string(),
        pa.bool_(),
        pa.null(),
        pa.list_(pa.null()),
        pa.struct([("x", pa.list_(pa.int64()))]),
    ]


def test_empty_array() -> None:
    assert READER.to_arrays(b"[]") == ([], [])


# --- locate ----------------------------------------------------------------------------------


def test_locate_finds_the_span() -> None:
    body = b'{"meta": {"n": 2}, "data": {"items": [{"a": 1}, {"b": [1, {"c": 2}]}]}}'
    found = READER.locate(body, ["data", "items"])
    assert found is not None
    start, end, count = found
    assert body[start:end] == b'[{"a": 1}, {"b": [1, {"c": 2}]}]'
    assert count == 2


def test_locate_top_level_and_whitespace() -> None:
    body = b' \n\t[ {"a": 1} ,{ } ]\r\n '
    assert READER.locate(body, []) == (3, 20, 2)
    assert READER.locate(b" [ ] ", []) == (1, 4, 0)


def test_locate_last_duplicate_wins() -> None:
    body = b'{"items": [{"a": 1}], "items": [{"a": 2}, {"a": 3}]}'
    start, end, count = READER.locate(body, ["items"]) or (0, 0, 0)
    assert (body[start:end], count) == (b'[{"a": 2}, {"a": 3}]', 2)
    assert READER.locate(b'{"items": [{"a": 1}], "items": 5}', ["items"]) is None
    assert READER.locate(b'{"items": 5, "items": [{}]}', ["items"]) is not None


def test_locate_escaped_key() -> None:
    body = b'{"it\\u0065ms": [{"a": 1}]}'
    start = body.index(b"[")
    assert READER.locate(body, ["items"]) == (start, len(body) - 1, 1)


@pytest.mark.parametrize(
    ("body", "keys"),
    [
        (b'{"items": [{"a": 1}]} x', ["items"]),
        (b'{"items": [{"a": 1}], }', ["items"]),
        (b'{"items": [{"a": 1}], "n": NaN}', ["items"]),
        (b'{"items": [{"a": 1}], "n": "\\udc00"}', ["items"]),
        (b'{"items": [{"a": 1}, 2]}', ["items"]),
        (b'{"items": {"a": 1}}', ["items"]),
        (b'{"other": [{"a": 1}]}', ["items"]),
        (b'{"items": [{"a": 1}]}', ["items", "deeper"]),
        (b'[{"items": [{"a": 1}]}]', ["items"]),
        (b'{"items": [{"a": "\xff"}]}', ["items"]),
        (b"", []),
    ],
)
def test_locate_none(body: bytes, keys: list[str]) -> None:
    assert READER.locate(body, keys) is None


def test_locate_then_read() -> None:
    body = b'{"data": [{"a": 1, "b": "x"}, {"a": 2, "c": 1.5}], "next": null}'
    start, end, count = READER.locate(body, ["data"]) or (0, 0, 0)
    names, arrays = READER.to_arrays(body[start:end]) or ([], [])
    assert count == 2 and names == ["a", "b", "c"]
    assert pa.Table.from_arrays(arrays, names=names).to_pylist() == [
        {"a": 1, "b": "x", "c": None},
        {"a": 2, "b": None, "c": Decimal("1.5")},
    ]


def test_locate_rejects_one_string_as_keys() -> None:
    with pytest.raises(TypeError):
        READER.locate(b"[]", "items")
