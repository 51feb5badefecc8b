"""Row keys of normalized tables (dataloader.normalize.keys): stable, batching-independent and
distinct 128-bit hashes computed on whole Arrow columns."""

from __future__ import annotations

import datetime as dt
import decimal
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from dataloader.normalize.keys import (
    KEY_COLUMNS,
    child_lanes,
    hash_rows,
    python_hash_rows,
    short_hash,
    uuid_text,
    uuid_text_of,
    uuid_words,
)


def ids(*columns: pa.Array | pa.ChunkedArray, names: list[str] | None = None) -> list[str]:
    return uuid_text(hash_rows(list(columns), names)).to_pylist()


def one(value: object, type_: pa.DataType | None = None) -> str:
    return ids(pa.array([value], type_))[0]


def mixed_table(n: int, seed: int = 7) -> list[pa.Array]:
    """Columns of many types, with nulls, nesting and a dictionary, `n` rows."""
    rng = np.random.default_rng(seed)
    null = rng.random(n) < 0.1
    ints = pa.array(rng.integers(-50, 50, n), mask=null)
    words = np.array(["", "a", "ab", "é", "null", "x" * 40, "\x00", "b\nc"])
    strs = pa.array(words[rng.integers(0, len(words), n)], mask=rng.random(n) < 0.1)
    floats = pa.array(rng.choice([0.0, -0.0, 1.5, np.nan, np.inf], n), mask=null)
    lengths = rng.integers(0, 4, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    m = int(offsets[-1])
    inner = pa.StructArray.from_arrays(
        [pa.array(rng.integers(0, 3, m)), pa.array(words[rng.integers(0, len(words), m)])],
        ["i", "s"],
        mask=pa.array(rng.random(m) < 0.1),
    )
    lists = pa.ListArray.from_arrays(
        pa.array(offsets, mask=np.concatenate([rng.random(n) < 0.1, [False]])), inner
    )
    dictionary = pa.array(words[rng.integers(0, len(words), n)]).dictionary_encode()
    stamps = pa.array(rng.integers(0, 10**15, n), pa.timestamp("us", tz="UTC"))
    return [ints, strs, floats, lists, dictionary, stamps]


def test_key_column_names() -> None:
    assert KEY_COLUMNS == ("_dl_id", "_dl_parent_id", "_dl_root_id", "_dl_list_idx")


def as_uuid(high: int, low: int) -> str:
    """The reference: the two lanes as one 128-bit number, version 8 and RFC variant set."""
    number = (high << 64) | low
    number = number & ~(0xF << 76) | (0x8 << 76)
    number = number & ~(0x3 << 62) | (0x2 << 62)
    return str(uuid.UUID(int=number))


def test_ids_are_uuid_text_of_the_two_lanes() -> None:
    lanes = hash_rows(mixed_table(50))
    assert lanes.shape == (50, 2) and lanes.dtype == np.dtype("<u8")
    text = uuid_text(lanes)
    assert text.type == pa.string()
    for row, value in zip(lanes, text.to_pylist(), strict=True):
        assert re.fullmatch(
            r"[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", value
        )
        assert value == as_uuid(int(row[0]), int(row[1]))
        assert uuid.UUID(value).variant == uuid.RFC_4122
    assert uuid_text(np.empty((0, 2), np.uint64)).to_pylist() == []


def test_uuid_text_of_many_rows_and_extreme_lanes_matches_python_uuids() -> None:
    # more rows than uuid_words looks up per step, with every nibble value at every position
    rng = np.random.default_rng(3)
    extremes = np.array([0, 1, 0xF, 0x10, 0xFF00, (1 << 63), (1 << 64) - 1], np.uint64)
    n = 3 * (1 << 16) + 5
    lanes = rng.integers(0, 1 << 63, (n, 2), dtype=np.uint64) * np.uint64(3)
    lanes[: len(extremes), 0] = extremes
    lanes[-len(extremes) :, 1] = extremes[::-1]
    text = uuid_text(lanes).to_pylist()
    expected = [as_uuid(int(a), int(b)) for a, b in lanes.tolist()]
    assert text == expected
    rows = np.array([n - 1, 0, 70_000, 0])
    gathered = uuid_text_of(np.take(uuid_words(lanes), rows, axis=0)).to_pylist()
    assert gathered == [expected[row] for row in rows]


def golden_rows() -> list[pa.Array]:
    return [
        pa.array([1, None, -1]),
        pa.array(["ab", "", None]),
        pa.array([[{"a": 1, "b": "x"}], [], None]),
    ]


def test_ids_are_pinned_across_versions_and_platforms() -> None:
    # a change of these values changes every key ever loaded: a migration, not a refactor
    assert ids(*golden_rows(), names=["id", "name", "items"]) == PINNED


PINNED = [
    "8f7ebe45-f155-8908-afda-7e31793f339d",
    "33cc30ac-06f6-8355-8716-e28faf719942",
    "26ad542e-54bd-8ddc-a2c7-3e47f370d2b9",
]


def test_ids_are_the_same_in_another_process() -> None:
    here = str(Path(__file__).parent)
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {here!r})
        from test_normalize_keys import golden_rows, ids
        print(",".join(ids(*golden_rows(), names=["id", "name", "items"])))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out.split(",") == ids(*golden_rows(), names=["id", "name", "items"])


def test_a_slice_hashes_as_the_slice_of_the_hash() -> None:
    columns = mixed_table(600)
    whole = hash_rows(columns)
    for start, stop in [(0, 1), (1, 600), (7, 300), (299, 598), (600, 600)]:
        part = hash_rows([c.slice(start, stop - start) for c in columns])
        np.testing.assert_array_equal(part, whole[start:stop])


def test_a_chunked_column_hashes_as_its_concatenation() -> None:
    columns = mixed_table(300)
    chunked = [pa.chunked_array([c.slice(0, 100), c.slice(100, 1), c.slice(101)]) for c in columns]
    np.testing.assert_array_equal(hash_rows(chunked), hash_rows(columns))


def test_long_strings_across_hash_blocks() -> None:
    rng = np.random.default_rng(3)
    sizes = [0, 5, 300_000, 1, 70_000, 200_000, 3, 2_000_000, 9]
    values = ["".join(rng.choice(list("abc"), size)) for size in sizes]
    column = pa.array(values)
    whole = hash_rows([column])
    for i in range(len(values)):
        np.testing.assert_array_equal(hash_rows([column.slice(i, 1)]), whole[i : i + 1])
    np.testing.assert_array_equal(hash_rows([pa.array(values, pa.large_string())]), whole)
    changed = values[7][:-1] + ("a" if values[7][-1] != "a" else "b")
    assert ids(pa.array([changed]))[0] != ids(pa.array([values[7]]))[0]
    assert len(set(ids(column))) == len(values)


def test_a_million_distinct_rows_give_a_million_distinct_ids() -> None:
    # each column alone repeats a lot; only the combination is unique
    n = 1_000_000
    i = np.arange(n)
    a = pa.array(i % 101)
    b = pa.array(((i // 101) % 103).astype(str))
    c_value = (i // (101 * 103)) % 107
    c = pa.ListArray.from_arrays(
        pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)),
        pa.array(np.stack([c_value % 11, c_value // 11], axis=1).ravel()),
    )
    d = pa.array((i % 7) * 0.5)
    lanes = hash_rows([a, b, c, d])
    assert len(np.unique(lanes.view("V16"))) == n
    hexes = uuid_text(lanes)
    assert len(set(hexes.to_pylist())) == n


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ([pa.array(["ab"]), pa.array(["c"])], [pa.array(["a"]), pa.array(["bc"])]),
        ([pa.array([None], pa.string())], [pa.array([""])]),
        ([pa.array([None], pa.string())], [pa.array(["null"])]),
        ([pa.array([""])], [pa.array(["null"])]),
        ([pa.array([[]], pa.list_(pa.int64()))], [pa.array([None], pa.list_(pa.int64()))]),
        ([pa.array([[]], pa.list_(pa.int64()))], [pa.array([[None]], pa.list_(pa.int64()))]),
        ([pa.array([None], pa.list_(pa.int64()))], [pa.array([[None]], pa.list_(pa.int64()))]),
        ([pa.array([[1, 2]])], [pa.array([[2, 1]])]),
        ([pa.array([[1], [2]])], [pa.array([[1, 2], []])]),
        ([pa.array([[[1], []]])], [pa.array([[[], [1]]])]),
        ([pa.array([{"a": 1, "b": None}])], [pa.array([{"a": None, "b": 1}])]),
        (
            [pa.array([{"a": None}], pa.struct([("a", pa.int64())]))],
            [pa.array([None], pa.struct([("a", pa.int64())]))],
        ),
        ([pa.array([{"a": 1}])], [pa.array([{"b": 1}])]),
        ([pa.array([1])], [pa.array(["1"])]),
        ([pa.array([1])], [pa.array([1.0])]),
        ([pa.array([1])], [pa.array([True])]),
        ([pa.array([0])], [pa.array([None], pa.int64())]),
        ([pa.array([-1])], [pa.array([2**64 - 1], pa.uint64())]),
        ([pa.array(["a"])], [pa.array([b"a"])]),
        ([pa.array([b"\x00"])], [pa.array([b""])]),
        ([pa.array([1]), pa.array([2])], [pa.array([2]), pa.array([1])]),
        (
            [pa.array([{"k": 1}], pa.map_(pa.string(), pa.int64()))],
            [pa.array([{"k": 2}], pa.map_(pa.string(), pa.int64()))],
        ),
    ],
)
def test_adversarial_values_differ(left: list[pa.Array], right: list[pa.Array]) -> None:
    assert ids(*left) != ids(*right)


def test_thue_morse_strings_differ() -> None:
    # equal-length strings that collide under any polynomial hash mod 2**64
    bits = [bin(k).count("1") % 2 for k in range(4096)]
    first = "".join("ab"[b] for b in bits)
    second = "".join("ba"[b] for b in bits)
    assert ids(pa.array([first]))[0] != ids(pa.array([second]))[0]


def test_a_record_hashes_alike_with_its_nulls_absent_and_its_fields_in_any_order() -> None:
    """A file whose other records add a field, or that lists its fields in another order,
    must not change a record's content hash (the attack's neighbour-dependent ids)."""
    alone = pa.array([{"a": 1, "s": {"x": "v"}}])
    widened = pa.array([{"a": 1, "s": {"x": "v", "y": None}, "z": None}])
    reordered = pa.array([{"s": {"x": "v"}, "a": 1}])
    assert ids(alone) == ids(widened) == ids(reordered)
    rows = pa.RecordBatch.from_pylist([{"a": 1, "b": None}])
    assert ids(rows.column(0), names=["a"]) == ids(*rows.columns, names=["a", "b"])
    assert (
        ids(pa.array([{"a": None}]))[0] != ids(pa.array([None], pa.struct([("a", pa.int64())])))[0]
    )


def test_names_enter_the_hash() -> None:
    column = pa.array([1, 2])
    assert ids(column, names=["a"]) != ids(column, names=["b"])
    assert ids(column, names=["a"]) == ids(column, names=["a"])


def test_equal_values_hash_alike_whatever_their_width_or_unit() -> None:
    assert one(5, pa.int8()) == one(5, pa.int64()) == one(5, pa.uint16())
    assert one(-5, pa.int8()) == one(-5, pa.int64())
    assert one(1.5, pa.float32()) == one(1.5, pa.float64())
    moment = dt.datetime(2024, 5, 6, 7, 8, 9, 123000)
    assert len({one(moment, pa.timestamp(unit)) for unit in ("ms", "us", "ns")}) == 1
    assert one(dt.time(1, 2, 3), pa.time32("s")) == one(dt.time(1, 2, 3), pa.time64("ns"))
    assert one(dt.date(2020, 1, 2), pa.date32()) == one(dt.date(2020, 1, 2), pa.date64())
    assert one("x", pa.string()) == one("x", pa.large_string())
    assert one([1], pa.list_(pa.int64())) == one([1], pa.large_list(pa.int64()))
    assert one([1, 2], pa.list_(pa.int64(), 2)) == one([1, 2], pa.list_(pa.int64()))
    assert one(b"ab", pa.binary(2)) == one(b"ab", pa.binary())


def test_zero_and_negative_zero_hash_alike_and_every_nan_alike() -> None:
    assert one(0.0) == one(-0.0)
    payloads = np.array([0x7FF8000000000000, 0x7FF8000000000001, 0xFFF8000000000000], np.uint64)
    nans = pa.array(payloads.view(np.float64))
    assert len(set(ids(nans))) == 1
    assert ids(nans)[0] == one(float("nan")) != one(float("inf"))


def test_decimals_hash_by_value_and_scale() -> None:
    a = one(decimal.Decimal("1.50"), pa.decimal128(5, 2))
    assert a == one(decimal.Decimal("1.5"), pa.decimal128(5, 2))
    assert a != one(decimal.Decimal("1.51"), pa.decimal128(5, 2))


@pytest.mark.parametrize(
    "column",
    [
        pa.array([1, None, 3, 1], pa.int32()),
        pa.array([True, None, False, True]),
        pa.array([b"x", None, b"", b"x"], pa.large_binary()),
        pa.array(["x", None, "", "x"], pa.string_view()),
        pa.array([b"xy", None, b"zz", b"xy"], pa.binary(2)),
        pa.array([decimal.Decimal("1.1"), None, decimal.Decimal("-2"), decimal.Decimal("1.1")]),
        pa.array([1, None, 2, 1], pa.duration("ms")),
        pa.array([None, None, None, None], pa.null()),
        pa.array([[1, 2], None, [], [1, 2]], pa.list_(pa.int64())),
        pa.array([[1, 2], None, [3, None], [1, 2]], pa.list_(pa.int64(), 2)),
        pa.array([[1], None, [], [1]], pa.large_list(pa.int64())),
        pa.array([[1], None, [], [1]], pa.list_view(pa.int64())),
        pa.array([{"k": [1]}, None, {}, {"k": [1]}], pa.map_(pa.string(), pa.list_(pa.int64()))),
        pa.array([{"a": {"b": [1]}}, None, {"a": None}, {"a": {"b": [1]}}]),
        pa.array(["a", None, "b", "a"]).dictionary_encode(),
    ],
    ids=lambda column: str(column.type),
)
def test_every_nested_and_scalar_type_hashes_stably(column: pa.Array) -> None:
    lanes = hash_rows([column])
    got = uuid_text(lanes).to_pylist()
    assert got[0] == got[3]
    assert len(set(got[:3])) == 3 or pa.types.is_null(column.type)
    for start in range(4):
        np.testing.assert_array_equal(hash_rows([column.slice(start)]), lanes[start:])


def test_unhashable_types_are_refused_by_name() -> None:
    union = pa.UnionArray.from_sparse(pa.array([0], pa.int8()), [pa.array([1])])
    with pytest.raises(TypeError, match="union"):
        hash_rows([union])


def test_mismatched_lengths_and_names_are_refused() -> None:
    with pytest.raises(ValueError, match="names"):
        hash_rows([pa.array([1])], ["a", "b"])
    with pytest.raises(ValueError, match="rows"):
        hash_rows([pa.array([1]), pa.array([1, 2])])


def test_child_lanes_hash_the_parent_and_the_position() -> None:
    parents = hash_rows([pa.array([1, 2])])
    children = child_lanes(parents, np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))
    assert children.shape == (4, 2) and children.dtype == np.dtype("<u8")
    assert len(set(uuid_text(children).to_pylist()) | set(uuid_text(parents).to_pylist())) == 6
    again = child_lanes(parents[[1]], np.array([0]), np.array([1]))
    np.testing.assert_array_equal(again, children[3:])


def test_short_hash_is_eight_stable_hex_chars() -> None:
    assert short_hash("customers__orders") == short_hash("customers__orders")
    assert re.fullmatch(r"[0-9a-f]{8}", short_hash("é"))
    assert short_hash("a") != short_hash("b")
    assert short_hash("customers__orders") == PINNED_SHORT


PINNED_SHORT = "c11cb7be"


def test_a_null_list_spanning_elements_hashes_as_a_null_list() -> None:
    spanning = pa.ListArray.from_arrays(
        pa.array([0, 2, 4]), pa.array([1, 2, 3, 4]), mask=pa.array([False, True])
    )
    assert np.array_equal(
        python_hash_rows([spanning], ["x"]), python_hash_rows([pa.array([[1, 2], None])], ["x"])
    )


def test_a_null_dictionary_value_is_a_null_value() -> None:
    encoded = pa.DictionaryArray.from_arrays(pa.array([0, 1, 0]), pa.array(["a", None]))
    assert np.array_equal(
        python_hash_rows([encoded], ["x"]), python_hash_rows([pa.array(["a", None, "a"])], ["x"])
    )


def test_pyarrows_own_extension_types_hash_as_their_storage() -> None:
    storage = pa.array([b"0123456789abcdef", None], pa.binary(16))
    uuids = pa.ExtensionArray.from_storage(pa.uuid(), storage)
    assert np.array_equal(python_hash_rows([uuids], ["u"]), python_hash_rows([storage], ["u"]))
