"""Arrow values as strict JSON text (dataloader.normalize.json_text.to_json_text)."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math

import numpy as np
import pyarrow as pa
import pytest

from dataloader.normalize.json_text import to_json_text

UTC = dt.UTC
CONTROL = "".join(chr(c) for c in range(0x20))


def strict_loads(text: str) -> object:
    def refuse(name: str) -> object:
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_float=decimal.Decimal, parse_constant=refuse)


def check(expected: object, loaded: object) -> None:
    """`loaded` (strict JSON, floats as Decimal) is what `expected` (a to_pylist value) says."""
    if expected is None:
        assert loaded is None
    elif isinstance(expected, bool):
        assert loaded is expected
    elif isinstance(expected, int):
        assert type(loaded) is int and loaded == expected
    elif isinstance(expected, float):
        if math.isfinite(expected):
            assert decimal.Decimal(loaded) == decimal.Decimal(repr(expected))
        else:
            assert loaded is None
    elif isinstance(expected, decimal.Decimal):
        assert isinstance(loaded, decimal.Decimal | int) and loaded == expected
    elif isinstance(expected, str):
        assert loaded == expected
    elif isinstance(expected, bytes):
        assert base64.b64decode(loaded, validate=True) == expected
    elif isinstance(expected, dt.datetime):
        parsed = dt.datetime.fromisoformat(loaded)
        assert parsed == expected and (parsed.tzinfo is None) == (expected.tzinfo is None)
        assert expected.tzinfo is None or loaded.endswith("Z")
    elif isinstance(expected, dt.date):
        assert dt.date.fromisoformat(loaded) == expected
    elif isinstance(expected, dt.time):
        assert dt.time.fromisoformat(loaded) == expected
    elif isinstance(expected, dt.timedelta):
        assert loaded == expected // dt.timedelta(microseconds=1)
    elif isinstance(expected, dict):
        assert isinstance(loaded, dict) and list(loaded) == list(expected)
        for key, value in expected.items():
            check(value, loaded[key])
    elif (
        isinstance(expected, list)
        and all(isinstance(item, tuple) for item in expected)
        and (expected or isinstance(loaded, dict))
    ):  # a map (an empty one only where the text is an object)
        assert isinstance(loaded, dict) and len(loaded) == len(expected)
        for key, value in expected:
            check(value, loaded[key if isinstance(key, str) else json.dumps(key)])
    elif isinstance(expected, list):
        assert isinstance(loaded, list) and len(loaded) == len(expected)
        for item, got in zip(expected, loaded, strict=True):
            check(item, got)
    else:
        raise AssertionError(f"no check for {expected!r}")


def assert_json(array: pa.Array) -> None:
    text = to_json_text(array)
    assert text.type == pa.string() and len(text) == len(array)
    for expected, got in zip(array.to_pylist(), text.to_pylist(), strict=True):
        if expected is None:
            assert got is None, "a top-level null stays a SQL NULL"
        else:
            check(expected, strict_loads(got))


def deep(levels: int) -> pa.Array:
    value: object = {"leaf": ["x", None]}
    for level in range(levels):
        value = [value, None] if level % 2 else {"k": value, "n": None}
    return pa.array([value, None])


WIDE = {
    "int64": pa.array([0, -1, 2**63 - 1, -(2**63), None]),
    "int8": pa.array([-128, 127, None], pa.int8()),
    "uint64": pa.array([2**64 - 1, 0, None], pa.uint64()),
    "float64": pa.array(
        [
            0.1,
            -0.0,
            1e100,
            5e-324,
            1.7976931348623157e308,
            float("nan"),
            float("inf"),
            float("-inf"),
            None,
            1.0,
            123456789.123456789,
            -2.5e-7,
        ],
    ),
    "decimal": pa.array(
        [decimal.Decimal("1.500"), decimal.Decimal("-0.001"), None, decimal.Decimal("12345678.9")],
        pa.decimal128(12, 3),
    ),
    "decimal_negative_scale": pa.array([decimal.Decimal("1E+3"), None], pa.decimal128(5, -2)),
    "bool": pa.array([True, False, None]),
    "string": pa.array(
        [
            "",
            "plain",
            'quote " inside',
            "back\\slash",
            '\\"',
            CONTROL,
            "\x7f",
            "é日本🎉",
            "\u2028\u2029",
            "null",
            "a\x00b",
            None,
        ],
    ),
    "large_string": pa.array(['x"\n', None, "\x1f"], pa.large_string()),
    "string_view": pa.array(['x"\n', None, "y"], pa.string_view()),
    "binary": pa.array([b"", b"\x00\xff\x10", None, bytes(range(256))]),
    "fixed_binary": pa.array([b"ab", None], pa.binary(2)),
    "date32": pa.array([dt.date(2020, 2, 29), dt.date(1, 1, 1), None]),
    "date64": pa.array([dt.date(1969, 12, 31), None], pa.date64()),
    "time32": pa.array([dt.time(23, 59, 59), None], pa.time32("s")),
    "time64": pa.array([dt.time(1, 2, 3, 4), dt.time(0, 0), None], pa.time64("us")),
    "timestamp": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 6), dt.datetime(1900, 1, 1), None]),
    "timestamp_utc": pa.array(
        [dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), None], pa.timestamp("us", tz="UTC")
    ),
    "timestamp_zone": pa.array(
        [dt.datetime(2024, 7, 1, 12, 0, tzinfo=UTC)], pa.timestamp("us", tz="Europe/Paris")
    ),
    "duration": pa.array([dt.timedelta(seconds=1, microseconds=5), None], pa.duration("us")),
    "struct": pa.array(
        [
            {"a": 1, "b": "x", "c": [{"d": 1.5}, None, {"d": None}]},
            {"a": None, "b": None, "c": None},
            None,
            {"a": 2, "b": '"', "c": []},
        ]
    ),
    "struct_odd_names": pa.array([{'k"\\\n': 1, "é": 2, "": 3}]),
    "empty_struct": pa.array([{}, None, {}], pa.struct([])),
    "list": pa.array([[1, 2], [], None, [None], [None, 3]]),
    "list_of_lists": pa.array([[["a"], [], None, ["b", None]], None, [[]]]),
    "fixed_size_list": pa.array([[1, 2], None, [3, None]], pa.list_(pa.int64(), 2)),
    "large_list": pa.array([["x"], None, []], pa.large_list(pa.string())),
    "list_view": pa.array([[1], None, []], pa.list_view(pa.int64())),
    "map": pa.array([[("k", 1), ("\n", None)], None, []], pa.map_(pa.string(), pa.int64())),
    "map_int_keys": pa.array(
        [[(1, ["a"]), (-2, None)], None], pa.map_(pa.int64(), pa.list_(pa.string()))
    ),
    "dictionary": pa.array(["a", None, "b\n", "a"]).dictionary_encode(),
    "null": pa.nulls(3),
    "deep": deep(24),
}


@pytest.mark.parametrize("name", list(WIDE))
def test_every_value_is_strict_json_of_what_arrow_holds(name: str) -> None:
    assert_json(WIDE[name])


@pytest.mark.parametrize("name", list(WIDE))
def test_slices_and_chunks_give_the_same_text(name: str) -> None:
    array = WIDE[name]
    whole = to_json_text(array).to_pylist()
    for start in range(1, len(array)):
        assert to_json_text(array.slice(start)).to_pylist() == whole[start:]
        assert to_json_text(array.slice(0, start)).to_pylist() == whole[:start]
    chunked = pa.chunked_array([array.slice(0, 1), array.slice(1, 0), array.slice(1)])
    result = to_json_text(chunked)
    assert isinstance(result, pa.ChunkedArray) and result.type == pa.string()
    assert result.to_pylist() == whole


def test_exact_text_of_common_values() -> None:
    row = pa.array([{"a": [1, None], "b": 'x"\\\n\x01é\u2028', "c": float("nan"), "d": True}])
    assert to_json_text(row).to_pylist() == [
        '{"a":[1,null],"b":"x\\"\\\\\\n\\u0001é\u2028","c":null,"d":true}'
    ]
    assert to_json_text(pa.array([[], None, [None]], pa.list_(pa.int64()))).to_pylist() == [
        "[]",
        None,
        "[null]",
    ]


def test_float32_keeps_its_own_shortest_digits() -> None:
    values = [0.1, 3.4028235e38, 1e-45, None, float("nan")]
    text = to_json_text(pa.array(values, pa.float32())).to_pylist()
    assert text[3] is None and text[4] == "null"
    for value, got in zip(values[:3], text[:3], strict=True):
        assert np.float32(json.loads(got)) == np.float32(value)
        assert len(got) <= len(repr(np.float32(value).item()))


def test_timestamps_of_every_unit_and_zone() -> None:
    moment = dt.datetime(2024, 1, 2, 3, 4, 5, 123456)
    nanos = pa.array([1_704_164_645_123_456_789], pa.timestamp("ns", tz="UTC"))
    assert to_json_text(nanos).to_pylist() == ['"2024-01-02T03:04:05.123456789Z"']
    seconds = pa.array([moment.replace(microsecond=0)], pa.timestamp("s"))
    assert to_json_text(seconds).to_pylist() == ['"2024-01-02T03:04:05"']
    paris = pa.array([moment.replace(tzinfo=UTC)], pa.timestamp("ms", tz="Europe/Paris"))
    assert to_json_text(paris).to_pylist() == ['"2024-01-02T03:04:05.123Z"']


def test_unsupported_types_are_refused_by_name() -> None:
    union = pa.UnionArray.from_sparse(pa.array([0], pa.int8()), [pa.array([1])])
    with pytest.raises(TypeError, match="union"):
        to_json_text(union)
