"""The normalizer on hand-built Arrow data and on JSON lines: exact tables in small cases, row
counts and parent links against plain Python over random nested records."""

from __future__ import annotations

import io
import json
import random
import uuid
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.json as pajson
import pytest

from dataloader.normalize.config import NormalizationConfig
from dataloader.normalize.key_text import key_text
from dataloader.normalize.keys import hash_rows, uuid_text
from dataloader.normalize.naming import NormalizationError, fit_identifier
from dataloader.normalize.normalizer import NormalizedBatch, Normalizer, TableSpec
from dataloader.schema.types import JSON_TAG, TYPE_TAG

CUSTOMERS = [
    {
        "id": 1,
        "name": "a",
        "address": {"city": "X", "zip": "1"},
        "orders": [
            {"sku": "s1", "qty": 2, "items": [{"n": 1}, {"n": 2}]},
            {"sku": "s2", "qty": 1, "items": []},
        ],
    },
    {"id": 2, "name": "b", "address": None, "orders": None},
    {"id": 3, "name": "c", "address": {"city": "Y", "zip": None}, "orders": []},
]


def normalize(
    records: list[dict[str, Any]] | pa.RecordBatch,
    keys: tuple[str, ...] = (),
    limit: int | None = None,
    **section: Any,
) -> NormalizedBatch:
    batch = records if isinstance(records, pa.RecordBatch) else pa.RecordBatch.from_pylist(records)
    config = NormalizationConfig.model_validate(section)
    return Normalizer(config, "t", key_columns=keys, max_identifier_length=limit).normalize(batch)


def table(result: NormalizedBatch, name: str) -> pa.RecordBatch:
    if name == "t":
        return result.root
    return next(child.data for child in result.children if child.spec.name == name)


def data(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """The rows without the row keys."""
    return [
        {key: value for key, value in row.items() if not key.startswith("_dl_")}
        for row in batch.to_pylist()
    ]


def ids_of(*columns: pa.Array, names: list[str] | None = None) -> list[str]:
    return uuid_text(hash_rows(list(columns), names)).to_pylist()


def test_auto_flattens_structs_and_makes_child_tables() -> None:
    result = normalize(CUSTOMERS, keys=("id",))
    root = result.root
    assert root.schema.names == ["id", "name", "address__city", "address__zip", "_dl_id"]
    assert data(root) == [
        {"id": 1, "name": "a", "address__city": "X", "address__zip": "1"},
        {"id": 2, "name": "b", "address__city": None, "address__zip": None},
        {"id": 3, "name": "c", "address__city": "Y", "address__zip": None},
    ]
    root_ids = root.column("_dl_id").to_pylist()
    assert root_ids == ids_of(key_text(pa.array([1, 2, 3])), names=["id"])
    assert [child.spec for child in result.children] == [
        TableSpec("t__orders", ("orders",), "t", 1),
        TableSpec("t__orders__items", ("orders", "items"), "t__orders", 2),
    ]
    orders = table(result, "t__orders").to_pylist()
    assert [(o["sku"], o["qty"], o["_dl_list_idx"]) for o in orders] == [
        ("s1", 2, 0),
        ("s2", 1, 1),
    ]
    assert {o["_dl_parent_id"] for o in orders} == {root_ids[0]}
    assert {o["_dl_root_id"] for o in orders} == {root_ids[0]}
    items = table(result, "t__orders__items").to_pylist()
    assert [(i["n"], i["_dl_list_idx"]) for i in items] == [(1, 0), (2, 1)]
    assert {i["_dl_parent_id"] for i in items} == {orders[0]["_dl_id"]}
    assert {i["_dl_root_id"] for i in items} == {root_ids[0]}
    every_id = root_ids + [o["_dl_id"] for o in orders] + [i["_dl_id"] for i in items]
    assert len(set(every_id)) == len(every_id)
    assert all(uuid.UUID(i).version == 8 and len(i) == 36 for i in every_id)


def test_without_keys_the_root_id_hashes_the_whole_original_row() -> None:
    batch = pa.RecordBatch.from_pylist(CUSTOMERS)
    result = normalize(batch)
    assert result.root.column("_dl_id").to_pylist() == ids_of(
        *batch.columns, names=batch.schema.names
    )


def test_ids_do_not_depend_on_batching_or_slicing() -> None:
    batch = pa.RecordBatch.from_pylist(CUSTOMERS)
    whole = normalize(batch)
    for start in range(3):
        part = normalize(batch.slice(start))
        assert part.root.to_pylist() == whole.root.to_pylist()[start:]
        for mine, theirs in zip(part.children, whole.children, strict=True):
            roots = set(part.root.column("_dl_id").to_pylist())
            expected = [row for row in theirs.data.to_pylist() if row["_dl_root_id"] in roots]
            assert mine.data.to_pylist() == expected


def test_list_offsets_not_starting_at_zero() -> None:
    values = pa.array([9, 9, 9, 1, 2, 3, 4])
    lists = pa.ListArray.from_arrays(pa.array([3, 5, 5, 7], pa.int32()), values)
    batch = pa.RecordBatch.from_arrays([pa.array([1, 2, 3]), lists], names=["id", "xs"])
    result = normalize(batch, keys=("id",))
    child = table(result, "t__xs")
    assert data(child) == [{"value": 1}, {"value": 2}, {"value": 3}, {"value": 4}]
    parents = result.root.column("_dl_id").to_pylist()
    assert child.column("_dl_parent_id").to_pylist() == [parents[0]] * 2 + [parents[2]] * 2
    assert child.column("_dl_list_idx").to_pylist() == [0, 1, 0, 1]


def test_a_null_list_with_a_non_empty_range_gives_no_children() -> None:
    lists = pa.ListArray.from_arrays(
        pa.array([0, 2, 4, 5], pa.int32()),
        pa.array([1, 2, 3, 4, 5]),
        mask=pa.array([False, True, False]),
    )
    batch = pa.RecordBatch.from_arrays([pa.array([1, 2, 3]), lists], names=["id", "xs"])
    child = table(normalize(batch, keys=("id",)), "t__xs")
    assert data(child) == [{"value": 1}, {"value": 2}, {"value": 5}]
    assert child.column("_dl_list_idx").to_pylist() == [0, 1, 0]


def test_null_structs_give_null_columns_at_every_level() -> None:
    records = [
        {"a": {"b": {"c": 1}, "d": "x"}},
        {"a": {"b": None, "d": "y"}},
        {"a": None},
    ]
    assert data(normalize(records).root) == [
        {"a__b__c": 1, "a__d": "x"},
        {"a__b__c": None, "a__d": "y"},
        {"a__b__c": None, "a__d": None},
    ]


def test_null_and_empty_lists_give_no_children_and_the_table_is_still_listed() -> None:
    result = normalize([{"id": 1, "xs": None}, {"id": 2, "xs": []}], keys=("id",))
    assert [child.spec.name for child in result.children] == ["t__xs"]
    assert table(result, "t__xs").num_rows == 0


def test_list_of_lists_is_a_child_table_of_the_child_table() -> None:
    result = normalize([{"id": 1, "m": [[1, 2], [], None, [3]]}], keys=("id",))
    assert [child.spec for child in result.children] == [
        TableSpec("t__m", ("m",), "t", 1),
        TableSpec("t__m__value", ("m", "value"), "t__m", 2),
    ]
    assert table(result, "t__m").schema.names == [
        "_dl_id",
        "_dl_parent_id",
        "_dl_root_id",
        "_dl_list_idx",
    ]
    assert table(result, "t__m").num_rows == 4
    inner = table(result, "t__m__value")
    assert data(inner) == [{"value": 1}, {"value": 2}, {"value": 3}]
    outer_ids = table(result, "t__m").column("_dl_id").to_pylist()
    assert inner.column("_dl_parent_id").to_pylist() == [outer_ids[0]] * 2 + [outer_ids[3]]


def test_map_large_list_and_fixed_size_list() -> None:
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array([1, 2]),
            pa.array([[("k", 1), ("j", None)], None], pa.map_(pa.string(), pa.int64())),
            pa.array([["a"], ["b", "c"]], pa.large_list(pa.string())),
            pa.array([[1, 2], None], pa.list_(pa.int64(), 2)),
        ],
        names=["id", "m", "big", "pair"],
    )
    result = normalize(batch, keys=("id",))
    assert data(table(result, "t__m")) == [{"key": "k", "value": 1}, {"key": "j", "value": None}]
    assert data(table(result, "t__big")) == [{"value": "a"}, {"value": "b"}, {"value": "c"}]
    assert table(result, "t__big").column("_dl_list_idx").to_pylist() == [0, 0, 1]
    assert data(table(result, "t__pair")) == [{"value": 1}, {"value": 2}]


def test_dictionary_and_null_columns() -> None:
    struct_dictionary = pa.DictionaryArray.from_arrays(
        pa.array([1, 0, None], pa.int32()), pa.array([{"x": 1}, {"x": 2}])
    )
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array(["a", "b", "a"]).dictionary_encode(),
            struct_dictionary,
            pa.array([None, None, None]),
        ],
        names=["tag", "s", "nothing"],
    )
    root = normalize(batch).root
    assert root.schema.field("tag").type == pa.dictionary(pa.int32(), pa.string())
    assert root.schema.field("nothing").type == pa.null()
    assert data(root) == [
        {"tag": "a", "s__x": 2, "nothing": None},
        {"tag": "b", "s__x": 1, "nothing": None},
        {"tag": "a", "s__x": None, "nothing": None},
    ]


def test_flatten_keeps_lists_as_json() -> None:
    result = normalize(CUSTOMERS, strategy="flatten")
    assert result.children == ()
    field = result.root.schema.field("orders")
    assert field.type == pa.string() and field.metadata == {TYPE_TAG: JSON_TAG}
    orders = result.root.column("orders").to_pylist()
    assert [None if text is None else json.loads(text) for text in orders] == [
        CUSTOMERS[0]["orders"],
        None,
        [],
    ]
    assert result.root.column("address__city").to_pylist() == ["X", None, "Y"]


def test_json_column_keeps_every_struct_and_list_as_json() -> None:
    result = normalize(CUSTOMERS, strategy="json_column")
    assert result.root.schema.names == ["id", "name", "address", "orders", "_dl_id"]
    assert json.loads(result.root.column("address")[0].as_py()) == {"city": "X", "zip": "1"}
    assert result.root.column("address")[1].as_py() is None


def test_explode_gives_one_row_per_element_and_keeps_rows_of_empty_lists() -> None:
    result = normalize(CUSTOMERS, strategy="explode")
    assert result.children == ()
    assert data(result.root) == [
        {"id": 1, "name": "a", "address__city": "X", "address__zip": "1", "orders__sku": "s1",
         "orders__qty": 2, "orders__items__n": 1, "orders__items__idx": 0, "orders__idx": 0},
        {"id": 1, "name": "a", "address__city": "X", "address__zip": "1", "orders__sku": "s1",
         "orders__qty": 2, "orders__items__n": 2, "orders__items__idx": 1, "orders__idx": 0},
        {"id": 1, "name": "a", "address__city": "X", "address__zip": "1", "orders__sku": "s2",
         "orders__qty": 1, "orders__items__n": None, "orders__items__idx": None, "orders__idx": 1},
        {"id": 2, "name": "b", "address__city": None, "address__zip": None, "orders__sku": None,
         "orders__qty": None, "orders__items__n": None, "orders__items__idx": None,
         "orders__idx": None},
        {"id": 3, "name": "c", "address__city": "Y", "address__zip": None, "orders__sku": None,
         "orders__qty": None, "orders__items__n": None, "orders__items__idx": None,
         "orders__idx": None},
    ]  # fmt: skip
    ids = result.root.column("_dl_id").to_pylist()
    assert len(set(ids)) == len(ids)


def test_explode_of_two_lists_is_their_cross_product_in_field_order() -> None:
    records = [{"id": 1, "a": [1, 2], "b": ["x", "y", "z"]}, {"id": 2, "a": [3], "b": None}]
    root = normalize(records, strategy="explode").root
    assert [(r["id"], r["a"], r["a__idx"], r["b"], r["b__idx"]) for r in data(root)] == [
        (1, 1, 0, "x", 0),
        (1, 1, 0, "y", 1),
        (1, 1, 0, "z", 2),
        (1, 2, 1, "x", 0),
        (1, 2, 1, "y", 1),
        (1, 2, 1, "z", 2),
        (2, 3, 0, None, None),
    ]


def test_an_explode_rule_inside_a_child_table() -> None:
    result = normalize(
        CUSTOMERS, keys=("id",), array_handling=[{"field": "orders.items", "action": "explode"}]
    )
    assert [child.spec.name for child in result.children] == ["t__orders"]
    orders = table(result, "t__orders")
    assert [(r["sku"], r["items__n"], r["items__idx"]) for r in data(orders)] == [
        ("s1", 1, 0),
        ("s1", 2, 1),
        ("s2", None, None),
    ]
    assert orders.column("_dl_list_idx").to_pylist() == [0, 0, 1]
    root_id = result.root.column("_dl_id")[0].as_py()
    assert set(orders.column("_dl_parent_id").to_pylist()) == {root_id}


def test_child_tables_of_exploded_rows_link_to_the_exploded_rows() -> None:
    records = [{"id": 1, "orders": [{"sku": "a", "items": [1, 2]}, {"sku": "b", "items": [3]}]}]
    result = normalize(
        records,
        strategy="explode",
        array_handling=[{"field": "orders.items", "action": "create_table"}],
    )
    root = result.root.to_pylist()
    assert [r["orders__sku"] for r in root] == ["a", "b"]
    items = table(result, "t__orders__items").to_pylist()
    assert [i["value"] for i in items] == [1, 2, 3]
    assert [i["_dl_parent_id"] for i in items] == [root[0]["_dl_id"]] * 2 + [root[1]["_dl_id"]]
    assert [i["_dl_root_id"] for i in items] == [i["_dl_parent_id"] for i in items]


def test_rules_json_column_and_table_name() -> None:
    result = normalize(
        CUSTOMERS,
        array_handling=[
            {"field": "orders", "action": "create_table", "table_name": "orders"},
            {"field": "orders.items", "action": "json_column"},
        ],
    )
    assert [child.spec for child in result.children] == [TableSpec("orders", ("orders",), "t", 1)]
    orders = table(result, "orders")
    assert orders.schema.field("items").metadata == {TYPE_TAG: JSON_TAG}
    assert [json.loads(text) for text in orders.column("items").to_pylist()] == [
        [{"n": 1}, {"n": 2}],
        [],
    ]


def test_a_named_table_starts_the_names_of_its_descendants() -> None:
    result = normalize(
        CUSTOMERS, array_handling=[{"field": "orders", "action": "create_table", "table_name": "o"}]
    )
    assert [child.spec.name for child in result.children] == ["o", "o__items"]


def test_json_fields_on_structs_and_lists() -> None:
    records = [{"p": {"q": 1}, "s": {"raw": {"k": [1]}, "x": 2}, "xs": [{"meta": {"a": 1}}]}]
    result = normalize(records, json_fields=["p", "s.raw", "xs.meta"])
    rows = data(result.root)
    assert [(json.loads(r["p"]), json.loads(r["s__raw"]), r["s__x"]) for r in rows] == [
        ({"q": 1}, {"k": [1]}, 2)
    ]
    for name in ("p", "s__raw"):
        assert result.root.schema.field(name).metadata == {TYPE_TAG: JSON_TAG}
    meta = table(result, "t__xs").column("meta").to_pylist()
    assert [json.loads(text) for text in meta] == [{"a": 1}]


@pytest.mark.parametrize(
    ("depth", "root_columns", "tables"),
    [
        (0, ["id", "address", "orders"], []),
        (1, ["id", "address__city", "address__geo"], ["t__orders"]),
        (2, ["id", "address__city", "address__geo__lat"], ["t__orders", "t__orders__items"]),
    ],
)
def test_max_depth(depth: int, root_columns: list[str], tables: list[str]) -> None:
    records = [
        {
            "id": 1,
            "address": {"city": "X", "geo": {"lat": 1.5}},
            "orders": [{"sku": "a", "items": [{"n": 1}]}],
        }
    ]
    result = normalize(records, max_depth=depth)
    assert result.root.schema.names == [*root_columns, "_dl_id"]
    assert [child.spec.name for child in result.children] == tables
    if depth == 1:
        orders = table(result, "t__orders")
        assert orders.schema.names[:2] == ["sku", "items"]
        assert json.loads(orders.column("items")[0].as_py()) == [{"n": 1}]
        assert json.loads(result.root.column("address__geo")[0].as_py()) == {"lat": 1.5}


def test_names_with_the_separator_dots_quotes_spaces_and_unicode() -> None:
    records = [{'we"ird. na me': {"ünï": 1, "a.b": 2}, "списки": [{"x y": 1}]}]
    result = normalize(records)
    assert data(result.root) == [{'we"ird. na me__ünï': 1, 'we"ird. na me__a.b': 2}]
    assert data(table(result, "t__списки")) == [{"x y": 1}]


def test_long_names_are_cut_on_a_character_boundary_with_a_hash() -> None:
    name = "é" * 40  # 80 bytes
    cut = fit_identifier(name, 63)
    assert len(cut.encode()) <= 63
    assert cut.startswith("é" * 27) and cut[27] == "_" and len(cut) == 27 + 9
    assert fit_identifier(name, 63) == cut
    assert fit_identifier("é" * 41, 63) != cut
    assert fit_identifier("short", 63) == "short"
    assert fit_identifier(name, None) == name

    records = [{"s": {name: 1}, name: [1]}]
    result = normalize(records, limit=63)
    column = result.root.schema.names[0]
    assert column == fit_identifier(f"s__{name}", 63)
    assert [child.spec.name for child in result.children] == [fit_identifier(f"t__{name}", 63)]
    shorter = normalize(records, limit=63, naming={"max_identifier_length": 20})
    assert all(len(n.encode()) <= 20 for n in shorter.root.schema.names)


def test_the_root_table_name_is_never_cut() -> None:
    name = "r" * 80
    config = NormalizationConfig()
    layouts = Normalizer(config, name, max_identifier_length=63).tables(
        pa.schema([("x", pa.list_(pa.int64()))])
    )
    assert layouts[0].spec.name == name
    assert len(layouts[1].spec.name.encode()) <= 63


COLLIDING = [{"a__b": 1, "a": {"b": 2}}]


def test_a_column_collision_fails_naming_both_paths_and_the_key() -> None:
    with pytest.raises(NormalizationError) as raised:
        normalize(COLLIDING)
    message = str(raised.value)
    assert "'a__b'" in message and "'a.b'" in message
    assert raised.value.context["key"] == "normalization.naming.on_collision"


def test_a_column_collision_suffixes_the_nested_path() -> None:
    root = normalize(COLLIDING, naming={"on_collision": "suffix"}).root
    names = root.schema.names
    assert names[0] == "a__b" and names[1].startswith("a__b_") and len(names[1]) == 4 + 9
    assert data(root) == [{"a__b": 1, names[1]: 2}]
    # the other order in the schema: still the nested path yields
    swapped = normalize([{"a": {"b": 2}, "a__b": 1}], naming={"on_collision": "suffix"}).root
    assert swapped.schema.names[:2] == [names[1], "a__b"]


def test_a_collision_tie_suffixes_the_later_path() -> None:
    records = [{"x": {"y__z": 1}, "x__y": {"z": 2}}]
    root = normalize(records, naming={"on_collision": "suffix"}).root
    assert root.schema.names[0] == "x__y__z" and root.schema.names[1].startswith("x__y__z_")


def test_a_table_name_collision_fails_or_suffixes() -> None:
    records = [{"a__b": [1], "a": {"b": [2]}}]
    with pytest.raises(NormalizationError, match="table name 't__a__b'"):
        normalize(records)
    result = normalize(records, naming={"on_collision": "suffix"})
    names = [child.spec.name for child in result.children]
    assert names[0] == "t__a__b" and names[1].startswith("t__a__b_")
    assert data(table(result, names[1])) == [{"value": 2}]


def test_a_table_name_rule_cannot_take_the_root_table_name() -> None:
    with pytest.raises(NormalizationError, match="'t'"):
        normalize(
            CUSTOMERS,
            array_handling=[{"field": "orders", "action": "create_table", "table_name": "t"}],
        )


def test_a_data_column_named_like_a_row_key_yields_to_it() -> None:
    with pytest.raises(NormalizationError, match="_dl_id"):
        normalize([{"_dl_id": "x"}])
    root = normalize([{"_dl_id": "x"}], naming={"on_collision": "suffix"}).root
    assert root.schema.names[0].startswith("_dl_id_") and root.schema.names[1] == "_dl_id"


@pytest.mark.parametrize(("key", "found"), [("missing", "not a field"), ("address", "nested")])
def test_key_columns_must_be_top_level_scalars(key: str, found: str) -> None:
    with pytest.raises(NormalizationError, match=f"'{key}'.*{found}"):
        normalize(CUSTOMERS, keys=(key,))


def test_tables_describes_what_normalize_gives() -> None:
    batch = pa.RecordBatch.from_pylist(CUSTOMERS)
    normalizer = Normalizer(NormalizationConfig(), "t", key_columns=["id"])
    layouts = normalizer.tables(batch.schema)
    result = normalizer.normalize(batch)
    assert [layout.spec for layout in layouts] == [
        TableSpec("t", (), None, 0),
        *(child.spec for child in result.children),
    ]
    assert layouts[0].schema == result.root.schema
    assert layouts[0].key_columns == ("_dl_id",)
    for layout, child in zip(layouts[1:], result.children, strict=True):
        assert layout.schema == child.data.schema
        assert layout.key_columns == ("_dl_id", "_dl_parent_id", "_dl_root_id", "_dl_list_idx")
    assert layouts[1].schema.field("qty").type == pa.int64()


JSONL = """\
{"id": 1, "info": {"tags": [{"k": "a", "v": {"w": 1}}, {"k": "b", "v": null}], "note": "x"}}
{"id": 2, "info": {"tags": [], "note": null}}
{"id": 3, "info": null}
{"id": 4, "info": {"tags": null}, "extra": true}
{"id": 5, "info": {"tags": [null, {"k": "c"}]}}
"""


def test_json_lines_with_nulls_at_every_level() -> None:
    batch = pajson.read_json(io.BytesIO(JSONL.encode())).to_batches()[0]
    result = normalize(batch, keys=("id",))
    assert data(result.root) == [
        {"id": 1, "info__note": "x", "extra": None},
        {"id": 2, "info__note": None, "extra": None},
        {"id": 3, "info__note": None, "extra": None},
        {"id": 4, "info__note": None, "extra": True},
        {"id": 5, "info__note": None, "extra": None},
    ]
    tags = table(result, "t__info__tags")
    assert data(tags) == [
        {"k": "a", "v__w": 1},
        {"k": "b", "v__w": None},
        {"k": None, "v__w": None},
        {"k": "c", "v__w": None},
    ]
    root_ids = result.root.column("_dl_id").to_pylist()
    assert tags.column("_dl_parent_id").to_pylist() == [root_ids[0]] * 2 + [root_ids[4]] * 2
    assert tags.column("_dl_list_idx").to_pylist() == [0, 1, 0, 1]


def _random_records(rng: random.Random, count: int) -> list[dict[str, Any]]:
    def maybe(value: Any) -> Any:
        return None if rng.random() < 0.15 else value

    def items() -> list[Any] | None:
        return maybe([maybe({"n": rng.randint(0, 9)}) for _ in range(rng.randint(0, 3))])

    return [
        {
            "id": i,
            "a": maybe({"x": maybe(rng.randint(0, 5))}),
            "orders": maybe(
                [
                    maybe({"sku": f"s{rng.randint(0, 99)}", "items": items()})
                    for _ in range(rng.randint(0, 4))
                ]
            ),
            "tags": maybe([maybe(rng.choice("abc")) for _ in range(rng.randint(0, 3))]),
        }
        for i in range(count)
    ]


def test_random_nested_records_against_plain_python() -> None:
    records = _random_records(random.Random(13), 600)
    batch = pajson.read_json(
        io.BytesIO("\n".join(json.dumps(r) for r in records).encode())
    ).to_batches()[0]
    result = normalize(batch.slice(100), keys=("id",))
    records = records[100:]

    root_ids = result.root.column("_dl_id").to_pylist()
    root_of = {value: index for index, value in enumerate(root_ids)}
    assert result.root.column("a__x").to_pylist() == [(r["a"] or {}).get("x") for r in records]

    expected_orders = [
        (ri, pos, order)
        for ri, r in enumerate(records)
        for pos, order in enumerate(r["orders"] or [])
    ]
    orders = table(result, "t__orders").to_pylist()
    assert [(root_of[o["_dl_parent_id"]], o["_dl_list_idx"], o["sku"]) for o in orders] == [
        (ri, pos, (order or {}).get("sku")) for ri, pos, order in expected_orders
    ]
    assert all(o["_dl_root_id"] == o["_dl_parent_id"] for o in orders)

    order_of = {o["_dl_id"]: index for index, o in enumerate(orders)}
    expected_items = [
        (oi, pos, (item or {}).get("n"), ri)
        for oi, (ri, _, order) in enumerate(expected_orders)
        for pos, item in enumerate((order or {}).get("items") or [])
    ]
    items = table(result, "t__orders__items").to_pylist()
    assert [
        (order_of[i["_dl_parent_id"]], i["_dl_list_idx"], i["n"], root_of[i["_dl_root_id"]])
        for i in items
    ] == expected_items

    tags = table(result, "t__tags").to_pylist()
    assert [(root_of[t["_dl_parent_id"]], t["_dl_list_idx"], t["value"]) for t in tags] == [
        (ri, pos, tag) for ri, r in enumerate(records) for pos, tag in enumerate(r["tags"] or [])
    ]
    every = root_ids + [row["_dl_id"] for rows in (orders, items, tags) for row in rows]
    assert len(set(every)) == len(every)

    exploded = normalize(batch.slice(100), strategy="explode").root
    expected_rows = sum(
        max(len(r["tags"] or []), 1)
        * sum(max(len((o or {}).get("items") or []), 1) for o in r["orders"] or [None])
        for r in records
    )
    assert exploded.num_rows == expected_rows


def test_explode_of_a_list_of_lists() -> None:
    root = normalize([{"id": 1, "m": [[1, 2], [], None, [3]]}], strategy="explode").root
    assert [(r["m__value"], r["m__value__idx"], r["m__idx"]) for r in data(root)] == [
        (1, 0, 0),
        (2, 1, 0),
        (None, None, 1),
        (None, None, 2),
        (3, 0, 3),
    ]


def test_an_empty_batch_still_lists_every_table() -> None:
    batch = pa.RecordBatch.from_pylist(CUSTOMERS).slice(0, 0)
    result = normalize(batch)
    assert result.root.num_rows == 0
    assert [(c.spec.name, c.data.num_rows) for c in result.children] == [
        ("t__orders", 0),
        ("t__orders__items", 0),
    ]


def test_a_list_named_like_the_quarantine_table_is_a_collision() -> None:
    batch = pa.RecordBatch.from_pylist([{"id": 1, "quarantine": [1, 2]}])
    with pytest.raises(NormalizationError, match="customers__quarantine"):
        Normalizer(NormalizationConfig(), "customers").normalize(batch)
    suffixed = NormalizationConfig.model_validate({"naming": {"on_collision": "suffix"}})
    names = [c.spec.name for c in Normalizer(suffixed, "customers").normalize(batch).children]
    assert len(names) == 1 and names[0].startswith("customers__quarantine_")


def test_names_that_differ_only_in_case_collide() -> None:
    batch = pa.RecordBatch.from_pylist(
        [{"id": 1, "Items": [{"x": 1}], "items": [{"x": 2}], "s": {"A": 1, "a": 2}}]
    )
    with pytest.raises(NormalizationError, match="differ only in case"):
        Normalizer(NormalizationConfig(), "t").normalize(batch)
    suffixed = NormalizationConfig.model_validate({"naming": {"on_collision": "suffix"}})
    normalized = Normalizer(suffixed, "t").normalize(batch)
    tables = [child.spec.name for child in normalized.children]
    assert tables[0] == "t__Items" and tables[1].startswith("t__items_")
    columns = normalized.root.schema.names
    assert "s__A" in columns and any(name.startswith("s__a_") for name in columns)
    accents = pa.RecordBatch.from_pylist([{"s": {"É": 1, "é": 2, "ß": 3, "ss": 4}}])
    kept = Normalizer(NormalizationConfig(), "t").normalize(accents).root.schema.names
    assert kept[:4] == ["s__É", "s__é", "s__ß", "s__ss"]  # DuckDB keeps these apart


def test_a_root_key_is_its_merge_key_as_sql_compares_it() -> None:
    """The attack's stale children: a key read as decimal(3,1), then decimal(4,2) (or int, then
    float) is one row to the merge, so it must keep one id for its children to be replaced."""
    config = NormalizationConfig()
    as_read = [
        pa.RecordBatch.from_pylist([{"id": Decimal("1.5"), "o": [1]}]),
        pa.RecordBatch.from_pydict(
            {"id": pa.array([Decimal("1.50")], pa.decimal128(4, 2)), "o": [[1]]}
        ),
        pa.RecordBatch.from_pylist([{"id": 1.5, "o": [1]}]),
    ]
    ids = {
        Normalizer(config, "t", key_columns=["id"]).normalize(batch).root.column("_dl_id")[0]
        for batch in as_read
    }
    assert len(ids) == 1
    one = pa.RecordBatch.from_pylist([{"a": 1, "b": "x"}])
    forward = Normalizer(config, "t", key_columns=["a", "b"]).normalize(one).root
    backward = Normalizer(config, "t", key_columns=["b", "a"]).normalize(one).root
    assert forward.column("_dl_id").equals(backward.column("_dl_id"))
