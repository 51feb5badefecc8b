"""The `normalization:` section's model: defaults, the checks it makes, the merge check."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dataloader.normalize.config import ArrayRule, NormalizationConfig


def test_defaults() -> None:
    config = NormalizationConfig()
    assert config.enabled is True
    assert config.max_depth == 3
    assert config.strategy == "auto"
    assert config.separator == "__"
    assert config.naming.max_identifier_length is None
    assert config.naming.on_collision == "fail"


def test_a_full_section_reads() -> None:
    config = NormalizationConfig.model_validate(
        {
            "max_depth": 0,
            "strategy": "flatten",
            "separator": "_",
            "array_handling": [
                {
                    "field": "orders",
                    "action": "create_table",
                    "table_name": "customer_orders",
                    "relationship": "one_to_many",
                },
                {"field": "orders.items", "action": "json_column"},
            ],
            "json_fields": ["payload", "meta.raw"],
            "naming": {"max_identifier_length": 63, "on_collision": "suffix"},
        }
    )
    assert config.rule_for("orders") == ArrayRule(
        field="orders",
        action="create_table",
        table_name="customer_orders",
        relationship="one_to_many",
    )
    assert config.rule_for("orders.items").action == "json_column"
    assert config.rule_for("nothing") is None


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"array_handling": [{"field": "a", "action": "json_column", "table_name": "t"}]},
            "table_name",
        ),
        (
            {"array_handling": [{"field": "a", "action": "explode", "table_name": "t"}]},
            "table_name",
        ),
        ({"separator": ""}, "separator"),
        ({"max_depth": -1}, "max_depth"),
        ({"strategy": "deep"}, "strategy"),
        ({"array_handling": [{"field": "", "action": "explode"}]}, "dot path"),
        ({"array_handling": [{"field": "a..b", "action": "explode"}]}, "dot path"),
        ({"array_handling": [{"field": ".a", "action": "explode"}]}, "dot path"),
        ({"json_fields": ["a."]}, "dot path"),
        ({"json_fields": [""]}, "dot path"),
        (
            {
                "array_handling": [
                    {"field": "a.b", "action": "explode"},
                    {"field": "a.b", "action": "json_column"},
                ]
            },
            "more than one rule for field 'a.b'",
        ),
        (
            {"array_handling": [{"field": "a", "action": "explode"}], "json_fields": ["a"]},
            "both in json_fields and in array_handling",
        ),
        ({"array_handling": [{"field": "a", "action": "split"}]}, "action"),
        (
            {
                "array_handling": [
                    {"field": "a", "action": "create_table", "relationship": "many_to_many"}
                ]
            },
            "relationship",
        ),
        ({"naming": {"on_collision": "rename"}}, "on_collision"),
        ({"naming": {"max_identifier_length": 5}}, "max_identifier_length"),
        ({"unknown": 1}, "unknown"),
        ({"naming": {"unknown": 1}}, "unknown"),
        ({"array_handling": [{"field": "a", "action": "explode", "extra": 1}]}, "extra"),
    ],
)
def test_invalid_sections_are_refused(section: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        NormalizationConfig.model_validate(section)


def test_the_model_is_frozen() -> None:
    config = NormalizationConfig()
    with pytest.raises(ValidationError):
        config.max_depth = 2  # type: ignore[misc]


@pytest.mark.parametrize("mode", ["append", "overwrite"])
def test_explode_is_fine_outside_merge(mode: str) -> None:
    assert NormalizationConfig(strategy="explode").check_write_mode(mode) is None


def test_explode_strategy_is_a_problem_under_merge() -> None:
    problem = NormalizationConfig(strategy="explode").check_write_mode("merge")
    assert problem is not None and "strategy `explode`" in problem and "merge" in problem


def test_an_explode_rule_is_a_problem_under_merge() -> None:
    config = NormalizationConfig.model_validate(
        {"array_handling": [{"field": "orders.items", "action": "explode"}]}
    )
    problem = config.check_write_mode("merge")
    assert problem is not None and "'orders.items'" in problem


def test_no_explode_or_disabled_is_fine_under_merge() -> None:
    assert NormalizationConfig().check_write_mode("merge") is None
    disabled = NormalizationConfig(enabled=False, strategy="explode")
    assert disabled.check_write_mode("merge") is None
