"""The engine's side of nested-data normalization: validate refuses what cannot work, a merge
keeps one row per key before the split, child tables are driven through the table-aware
destination API in the right order, and rows whose parent the contract took out follow it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dataloader import (
    BaseConnector,
    Capabilities,
    EngineError,
    LocalStateBackend,
    RecipeError,
    from_yaml,
    register_connector,
    run_recipe,
)
from dataloader.engine.nested import keep_children_of, one_row_per_key
from dataloader.normalize.naming import NormalizationError
from dataloader.recipe import RecipeLoader
from dataloader.registry import Registry, unregister

Write = Callable[[str, str], Path]
CALLS: list[tuple[Any, ...]] = []
ROWS: list[dict[str, Any]] = []

NESTED = [
    {"id": 1, "v": 1, "orders": [{"sku": "a", "items": [1, 2]}, {"sku": "b", "items": []}]},
    {"id": 2, "v": 1, "orders": []},
    {"id": 1, "v": 2, "orders": [{"sku": "c", "items": [3]}]},
]


class ChildSink(BaseConnector):
    """A destination that records the table-aware calls it receives, in order."""

    capabilities = Capabilities(
        write=True, write_modes=("append", "overwrite", "merge"), child_tables=True
    )

    def table_name(self) -> str | None:
        return "t"

    def apply_schema(self, plan: Any) -> None:
        CALLS.append(("apply_schema", None))

    def write_batch(self, batch: Any, state: Any) -> None:
        CALLS.append(("write_batch", batch.to_arrow().num_rows))

    def describe_child(self, table: str) -> pa.Schema | None:
        CALLS.append(("describe_child", table))
        return None

    def apply_child_schema(self, table: str, plan: Any) -> None:
        CALLS.append(("apply_child_schema", table))

    def write_child_batch(self, table: str, batch: Any, state: Any) -> None:
        CALLS.append(("write_child_batch", table, batch.to_arrow().to_pylist()))

    def delete_children(self, table: str, root_ids: pa.Array | None) -> None:
        CALLS.append(("delete_children", table, None if root_ids is None else len(root_ids)))

    def commit(self, state: Any) -> None:
        CALLS.append(("commit",))


class NestedSource(BaseConnector):
    """Yields `ROWS` as one batch."""

    capabilities = Capabilities(read=True)

    def read_batches(self, state: Any) -> Iterator[Any]:
        yield pa.RecordBatch.from_pylist(ROWS)


@pytest.fixture
def child_sink(registry: Registry) -> Iterator[str]:
    register_connector("child_sink")(ChildSink)
    register_connector("nested_source")(NestedSource)
    CALLS.clear()
    ROWS[:] = NESTED
    try:
        yield "child_sink"
    finally:
        unregister("connector", "child_sink")
        unregister("connector", "nested_source")


def recipe(write: Write, body: str) -> Path:
    return write("r.yaml", "name: r\nsource: {type: nested_source}\n" + body)


def test_child_tables_need_a_destination_that_writes_them(write: Write, registry: Registry) -> None:
    path = write(
        "r.yaml",
        """
    name: r
    source: {type: sequence, stop: 3}
    destination: {type: memory_sink, table: t}
    normalization: {enabled: true}
    """,
    )
    with pytest.raises(RecipeError) as info:
        RecipeLoader(registry=registry).load(path)
    assert f"{path}:normalization.strategy" in str(info.value)
    assert "cannot write child tables" in str(info.value)
    flat = path.read_text().replace("{enabled: true}", "{strategy: flatten}")
    path.write_text(flat)
    RecipeLoader(registry=registry).load(path)  # lists as JSON columns: no child table


def test_explode_and_dedup_sort_do_not_mix_with_merge(write: Write, child_sink: str) -> None:
    merge = "destination: {type: child_sink, write_mode: merge, merge_keys: [id]%s}\n"
    path = recipe(write, merge % "" + "normalization: {strategy: explode}\n")
    with pytest.raises(RecipeError, match="several rows"):
        from_yaml(path)
    path = recipe(
        write,
        merge % ", dedup_sort: {column: v}" + "normalization: {enabled: true}\n",
    )
    with pytest.raises(RecipeError) as info:
        from_yaml(path)
    assert f"{path}:destination.dedup_sort" in str(info.value)


def test_one_row_per_key_keeps_the_highest_cursor_then_the_last_read() -> None:
    data = pa.RecordBatch.from_pylist(
        [
            {"k": 1, "c": 5, "n": "a"},
            {"k": 2, "c": None, "n": "b"},
            {"k": 1, "c": 7, "n": "c"},
            {"k": 1, "c": 7, "n": "d"},
            {"k": 2, "c": None, "n": "e"},
            {"k": 1, "c": 6, "n": "f"},
        ]
    )
    assert one_row_per_key(data, ["k"], "c").column("n").to_pylist() == ["d", "e"]
    assert one_row_per_key(data, ["k"], None).column("n").to_pylist() == ["e", "f"]
    unique = data.slice(0, 2)
    assert one_row_per_key(unique, ["k"], "c") is unique
    sql_equal = pa.RecordBatch.from_pylist([{"k": 0.0, "n": "a"}, {"k": -0.0, "n": "b"}])
    assert one_row_per_key(sql_equal, ["k"], None).column("n").to_pylist() == ["b"]


def test_children_follow_their_parents_ids() -> None:
    data = pa.RecordBatch.from_pylist(
        [{"_dl_parent_id": "p1", "x": 1}, {"_dl_parent_id": "p2", "x": 2}]
    )
    kept = keep_children_of(data, pa.array(["p2", "p3"]))
    assert kept.column("x").to_pylist() == [2]


def test_a_merge_deletes_every_known_childs_rows_before_writing_the_batch(
    write: Write, child_sink: str, tmp_path: Path
) -> None:
    path = recipe(
        write,
        "destination: {type: child_sink, write_mode: merge, merge_keys: [id]}\n"
        "normalization: {enabled: true}\n",
    )
    result = run_recipe(from_yaml(path), LocalStateBackend(tmp_path / "state"))

    assert result.rows_written == 2  # id 1 once: the row read last
    assert result.child_rows == 2  # its one order, that order's one item
    writes = [call for call in CALLS if call[0] in ("delete_children", "write_child_batch")]
    assert [call[:2] for call in writes] == [
        ("delete_children", "t__orders"),
        ("delete_children", "t__orders__items"),
        ("write_child_batch", "t__orders"),
        ("write_child_batch", "t__orders__items"),
    ]
    orders = writes[2][2]
    assert [row["sku"] for row in orders] == ["c"]
    assert writes[3][2][0]["value"] == 3

    CALLS.clear()
    run_recipe(from_yaml(path), LocalStateBackend(tmp_path / "state"))
    first_write = next(i for i, call in enumerate(CALLS) if call[0] == "write_child_batch")
    deletes = [call for call in CALLS[:first_write] if call[0] == "delete_children"]
    assert deletes == [
        ("delete_children", "t__orders", 2),
        ("delete_children", "t__orders__items", 2),
    ]


def test_overwrite_empties_a_known_child_table_the_run_has_no_rows_for(
    write: Write, child_sink: str, tmp_path: Path
) -> None:
    path = recipe(
        write, "destination: {type: child_sink, write_mode: overwrite}\nnormalization: {}\n"
    )
    backend = LocalStateBackend(tmp_path / "state")
    run_recipe(from_yaml(path), backend)
    ROWS[:] = [{"id": 1, "v": 1, "orders": [{"sku": "a", "items": []}]}]
    CALLS.clear()

    run_recipe(from_yaml(path), backend)

    assert ("delete_children", "t__orders__items", None) in CALLS
    assert ("delete_children", "t__orders", None) not in CALLS
    assert CALLS.index(("delete_children", "t__orders__items", None)) < CALLS.index(("commit",))


def test_children_of_a_dropped_parent_are_not_written(
    write: Write, child_sink: str, tmp_path: Path
) -> None:
    ROWS[:] = [
        {"id": 1, "name": "a", "orders": [{"sku": "a", "items": [1]}]},
        {"id": 2, "name": None, "orders": [{"sku": "b", "items": [2, 3]}]},
    ]
    path = recipe(
        write,
        "destination: {type: child_sink}\nnormalization: {}\n"
        "schema: {on_violation: drop, columns: [{name: name, nullable: false}]}\n",
    )
    result = run_recipe(from_yaml(path), LocalStateBackend(tmp_path / "state"))

    assert result.rows_dropped == 1
    written = {call[1]: call[2] for call in CALLS if call[0] == "write_child_batch"}
    assert [row["sku"] for row in written["t__orders"]] == ["a"]
    assert [row["value"] for row in written["t__orders__items"]] == [1]


def test_a_strict_child_contract_refuses_an_undeclared_column(
    write: Write, child_sink: str, tmp_path: Path
) -> None:
    path = recipe(
        write,
        "destination: {type: child_sink}\nnormalization: {max_depth: 1}\n"
        "schema:\n  mode: strict\n  columns: [{name: id, type: int}, {name: v, type: int}]\n"
        "  tables:\n    t__orders: {columns: [{name: sku, type: string}]}\n",
    )
    with pytest.raises(EngineError) as info:
        run_recipe(from_yaml(path), LocalStateBackend(tmp_path / "state"))
    assert "'items'" in str(info.value)
    assert not [call for call in CALLS if call[0] == "write_child_batch"]


def test_a_merge_deletes_from_a_child_table_the_state_forgot_but_the_destination_has(
    write: Write, child_sink: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After `reset-state` the state knows no child table; the destination still has them."""
    existing = pa.schema([("sku", pa.string()), ("_dl_id", pa.string())])
    monkeypatch.setattr(ChildSink, "describe_child", lambda self, table: existing)
    path = recipe(
        write,
        "destination: {type: child_sink, write_mode: merge, merge_keys: [id]}\n"
        "normalization: {enabled: true}\n",
    )
    run_recipe(from_yaml(path), LocalStateBackend(tmp_path / "state"))

    first_write = next(i for i, call in enumerate(CALLS) if call[0] == "write_child_batch")
    deleted = {call[1] for call in CALLS[:first_write] if call[0] == "delete_children"}
    assert deleted == {"t__orders", "t__orders__items"}


def test_a_merge_key_the_records_lack_is_named_whatever_the_batch_size(
    write: Write, child_sink: str, tmp_path: Path
) -> None:
    path = recipe(
        write,
        "destination: {type: child_sink, write_mode: merge, merge_keys: [nope]}\n"
        "normalization: {enabled: true}\n",
    )
    with pytest.raises(NormalizationError, match="key column 'nope' is not a field"):
        run_recipe(from_yaml(path), LocalStateBackend(tmp_path / "state"))


def test_keys_are_hashed_as_the_table_stores_them() -> None:
    from dataloader.engine.nested import keys_as_stored

    data = pa.RecordBatch.from_pylist([{"k": "01", "x": 1}, {"k": "7", "x": 2}])
    stored = pa.schema([("k", pa.int64())])
    assert keys_as_stored(data, ["k"], stored).column("k").to_pylist() == [1, 7]
    words = pa.RecordBatch.from_pylist([{"k": "a"}])
    assert keys_as_stored(words, ["k"], stored).column("k").to_pylist() == ["a"]  # not exact
    assert keys_as_stored(data, ["k"], None) is data
