"""The recipe's `schema:` section: validated with file and key, inherited through `extends:`,
printed back under its own name, and a quarantine only where the destination keeps one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dataloader import RecipeError, from_yaml
from dataloader.recipe import RecipeLoader
from dataloader.registry import Registry

Write = Callable[[str, str], Path]

BASE = """
    name: orders
    source:
      type: sequence
      stop: 10
    destination:
      type: memory_sink
      table: orders
"""


def test_mistakes_in_the_section_name_their_file_and_key(write: Write, registry: Registry) -> None:
    path = write(
        "orders.yaml",
        BASE
        + """
    schema:
      mode: strictt
      columns:
        - {name: id, type: integr}
        - {name: id, type: int}
      evolution: {allow_floats: true}
    """,
    )
    with pytest.raises(RecipeError) as info:
        RecipeLoader(registry=registry).load(path)
    text = str(info.value)
    assert f"{path}:schema.mode" in text
    assert f"{path}:schema.columns[0].type" in text and "did you mean 'integer'" in text
    assert f"{path}:schema.evolution.allow_floats" in text


def test_a_strict_contract_needs_each_column_typed_once(write: Write, registry: Registry) -> None:
    path = write(
        "orders.yaml",
        BASE
        + """
    schema:
      mode: strict
      columns: [{name: id, type: int}, {name: id, type: int}]
    """,
    )
    with pytest.raises(RecipeError, match=r"'id' more than once"):
        RecipeLoader(registry=registry).load(path)


def test_a_child_inherits_the_section_and_overrides_its_keys(
    write: Write, registry: Registry
) -> None:
    write(
        "base.yaml",
        BASE
        + """
    schema:
      mode: lenient
      on_violation: drop
      columns: [{name: id, type: int, primary_key: true}]
    """,
    )
    child = write(
        "child.yaml",
        """
        extends: base.yaml
        name: orders_strict
        schema:
          mode: strict
        """,
    )
    recipe = RecipeLoader(registry=registry).load(child)
    assert recipe.table_schema.mode == "strict"
    assert recipe.table_schema.on_violation == "drop"
    assert [c.name for c in recipe.table_schema.columns] == ["id"]
    assert recipe.masked_dump()["schema"]["mode"] == "strict"
    assert recipe.origin_of("schema.on_violation") == str(child.parent / "base.yaml")


def test_without_the_section_the_table_follows_the_data(write: Write, registry: Registry) -> None:
    recipe = from_yaml(write("orders.yaml", BASE))
    assert recipe.table_schema.mode == "infer" and recipe.table_schema.rule_for("id") == "fail"
    assert recipe.table_schema.allows("type_changes")


def test_quarantine_needs_a_destination_that_keeps_one(write: Write, registry: Registry) -> None:
    path = write(
        "orders.yaml",
        BASE
        + """
    schema:
      columns: [{name: id, nullable: false, on_violation: quarantine}]
    """,
    )
    with pytest.raises(RecipeError) as info:
        RecipeLoader(registry=registry).load(path)
    assert "'memory_sink' cannot keep a quarantine" in str(info.value)
    assert f"{path}:schema.on_violation" in str(info.value)


def test_a_child_table_contract_is_checked_like_the_main_one(
    write: Write, registry: Registry
) -> None:
    path = write(
        "orders.yaml",
        BASE
        + """
    schema:
      mode: strict
      tables:
        orders__items:
          columns: [{name: sku, type: string}, {name: qty}]
    """,
    )
    with pytest.raises(RecipeError, match=r"needs a `type` for every column: 'qty'"):
        RecipeLoader(registry=registry).load(path)


def test_a_child_tables_contract_adds_the_implied_keys_to_its_columns(
    write: Write, registry: Registry
) -> None:
    from dataloader.schema.config import ColumnSpec

    path = write(
        "orders.yaml",
        BASE
        + """
    schema:
      tables:
        orders__items:
          columns: [{name: sku, type: string, nullable: false}, {name: _dl_id, type: text}]
    """,
    )
    schema = RecipeLoader(registry=registry).load(path).table_schema
    implied = [ColumnSpec(name="_dl_id", type="string"), ColumnSpec(name="_dl_list_idx")]
    child = schema.for_table("orders__items", implied)
    assert [(c.name, c.type) for c in child.columns] == [
        ("sku", "string"),
        ("_dl_id", "text"),
        ("_dl_list_idx", None),
    ]
    assert child.tables == {} and child.mode == schema.mode
    assert [c.name for c in schema.for_table("orders__other", implied).columns] == [
        "_dl_id",
        "_dl_list_idx",
    ]
