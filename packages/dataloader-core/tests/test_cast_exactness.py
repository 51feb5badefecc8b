"""`cast` never loses digits silently: a lossy cast fails naming the column, a value and the
target type, unless the step asks for rounding with `round:`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dataloader import ArrowBatch, RecipeError, RunContext, TransformError
from dataloader.recipe import RecipeLoader
from dataloader.registry import Registry, get_registry

MakeBatch = Callable[..., ArrowBatch]


def cast(values: pa.Array, spec: Any, context: RunContext) -> pa.Array:
    registration = get_registry().transform("cast")
    step = registration.create(registration.config_model.model_validate({"columns": {"v": spec}}))
    batch = ArrowBatch(pa.RecordBatch.from_arrays([values], names=["v"]))
    return step.apply(batch, context).to_arrow().column(0)


LOSSY = [
    pytest.param(pa.array([1.5, 123.456]), "decimal(12,2)", 123.456, id="double-to-decimal"),
    pytest.param(pa.array([1.0, 1e-30]), "decimal(12,2)", 1e-30, id="tiny-double-to-decimal"),
    pytest.param(
        pa.array([0.25, 0.125], pa.float32()), "decimal(12,2)", 0.125, id="float32-to-decimal"
    ),
    pytest.param(pa.array(["1.5", "123.456"]), "decimal(12,2)", "123.456", id="string-to-decimal"),
    pytest.param(pa.array([1, 10**11]), "decimal(12,2)", 10**11, id="int-beyond-precision"),
    pytest.param(
        pa.array([Decimal("1.230"), Decimal("1.234")], pa.decimal128(10, 3)),
        "decimal(12,2)",
        Decimal("1.234"),
        id="decimal-with-larger-scale",
    ),
    pytest.param(
        pa.array([Decimal("2.0"), Decimal("3.5")], pa.decimal128(10, 1)),
        "int",
        Decimal("3.5"),
        id="decimal-to-int",
    ),
    pytest.param(pa.array([2.0, 3.5]), "int", 3.5, id="double-to-int"),
    pytest.param(pa.array(["2", "3.5"]), "int", "3.5", id="string-to-int"),
    pytest.param(pa.array([1, 70000]), "int16", 70000, id="int-to-narrower-int"),
    pytest.param(
        pa.array([1000, 1001], pa.timestamp("ns")),
        "datetime",
        "1970-01-01 00:00:00.000001001",  # shown as text: Python's datetime has no nanoseconds
        id="nanoseconds-to-microseconds",
    ),
]


@pytest.mark.parametrize(("values", "target", "bad"), LOSSY)
def test_a_cast_that_loses_digits_fails_naming_column_value_and_type(
    context: RunContext, values: pa.Array, target: str, bad: Any
) -> None:
    with pytest.raises(TransformError) as info:
        cast(values, target, context)

    message = str(info.value)
    assert "column 'v'" in message
    assert target in message
    assert info.value.context["offending_values"] == [bad]
    assert repr(bad) in message


EXACT = [
    pytest.param(
        pa.array([0.1, 123.45, -2.0, None]),
        "decimal(12,2)",
        pa.decimal128(12, 2),
        [Decimal("0.10"), Decimal("123.45"), Decimal("-2.00"), None],
        id="double-to-decimal",
    ),
    pytest.param(
        pa.array([0.1, 16777216.0], pa.float32()),
        "decimal(12,2)",
        pa.decimal128(12, 2),
        [Decimal("0.10"), Decimal("16777216.00")],
        id="float32-to-decimal",
    ),
    pytest.param(
        pa.array([1e16]),
        "decimal(38,2)",
        pa.decimal128(38, 2),
        [Decimal("10000000000000000.00")],
        id="large-double-to-decimal",
    ),
    pytest.param(
        pa.array([5, -(10**9), None]),
        "decimal(12,2)",
        pa.decimal128(12, 2),
        [Decimal("5.00"), Decimal("-1000000000.00"), None],
        id="int64-to-decimal",
    ),
    pytest.param(
        pa.array([5]),
        "decimal(38,20)",
        pa.decimal128(38, 20),
        [Decimal("5.00000000000000000000")],
        id="int64-to-decimal-with-large-scale",
    ),
    pytest.param(
        pa.array([Decimal("1.230")], pa.decimal128(10, 3)),
        "decimal(12,2)",
        pa.decimal128(12, 2),
        [Decimal("1.23")],
        id="decimal-with-trailing-zero",
    ),
    pytest.param(
        pa.array([Decimal("3.0")], pa.decimal128(10, 1)),
        "int",
        pa.int64(),
        [3],
        id="integral-decimal-to-int",
    ),
    pytest.param(pa.array([3.0, 1e15]), "int", pa.int64(), [3, 10**15], id="integral-double"),
    pytest.param(
        pa.array([1000, 2000], pa.timestamp("ns")),
        "datetime",
        pa.timestamp("us"),
        [datetime(1970, 1, 1, 0, 0, 0, 1), datetime(1970, 1, 1, 0, 0, 0, 2)],
        id="whole-microseconds",
    ),
]


@pytest.mark.parametrize(("values", "target", "arrow_type", "expected"), EXACT)
def test_an_exact_cast_keeps_every_value(
    context: RunContext,
    values: pa.Array,
    target: str,
    arrow_type: pa.DataType,
    expected: list[Any],
) -> None:
    out = cast(values, target, context)
    assert out.type == arrow_type
    assert out.to_pylist() == expected


ROUNDED = [
    pytest.param(
        pa.array([123.456, 0.125, 0.135, -0.125, None]),
        "half_even",
        "decimal(12,2)",
        [Decimal("123.46"), Decimal("0.12"), Decimal("0.14"), Decimal("-0.12"), None],
        id="double-half-even",
    ),
    pytest.param(
        pa.array([0.125, -0.125]),
        "half_away_from_zero",
        "decimal(12,2)",
        [Decimal("0.13"), Decimal("-0.13")],
        id="double-half-away-from-zero",
    ),
    pytest.param(
        pa.array([1.005, 1e-30]),
        "half_away_from_zero",
        "decimal(12,2)",
        [Decimal("1.01"), Decimal("0.00")],  # the digits the float shows are rounded
        id="double-digits-as-shown",
    ),
    pytest.param(
        pa.array(["1.239", "-1.239"]),
        "towards_zero",
        "decimal(12,2)",
        [Decimal("1.23"), Decimal("-1.23")],
        id="string-towards-zero",
    ),
    pytest.param(
        pa.array([Decimal("1.235"), Decimal("1.245")], pa.decimal128(10, 3)),
        "half_even",
        "decimal(12,2)",
        [Decimal("1.24"), Decimal("1.24")],
        id="decimal-half-even",
    ),
    pytest.param(
        pa.array([2.5, 3.5, -2.5]), "half_even", "int", [2, 4, -2], id="double-to-int-half-even"
    ),
    pytest.param(
        pa.array(["2.5", "3.5"]),
        "half_away_from_zero",
        "int",
        [3, 4],
        id="string-to-int-half-away",
    ),
    pytest.param(
        pa.array([Decimal("2.5")], pa.decimal128(10, 1)),
        "towards_zero",
        "int",
        [2],
        id="decimal-to-int-towards-zero",
    ),
]


@pytest.mark.parametrize(("values", "mode", "target", "expected"), ROUNDED)
def test_round_option_rounds_as_asked(
    context: RunContext, values: pa.Array, mode: str, target: str, expected: list[Any]
) -> None:
    out = cast(values, {"type": target, "round": mode}, context)
    assert out.to_pylist() == expected


def test_round_cannot_hide_an_overflow(context: RunContext) -> None:
    with pytest.raises(TransformError, match="column 'v'"):
        cast(pa.array([10.0**11]), {"type": "decimal(12,2)", "round": "half_even"}, context)


def test_round_on_a_type_without_digits_to_round_is_a_recipe_error(
    write: Callable[[str, str], Path], registry: Registry
) -> None:
    path = write(
        "orders.yaml",
        """
        name: orders
        source: {type: sequence, stop: 1}
        destination: {type: memory_sink, table: t}
        transform:
          steps:
            - {type: cast, columns: {amount: {type: float, round: half_even}}}
        """,
    )
    with pytest.raises(RecipeError) as info:
        RecipeLoader(registry=registry).load(path)
    message = str(info.value)
    assert f"{path}:transform.steps[0].columns.amount" in message
    assert "round" in message and "decimal" in message


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "timestamp", "timezone": "Europe/Paris"},
        {"type": "timestamp", "format": "%Y-%m-%d", "timezone": "UTC"},
        "timestamp",
    ],
)
def test_a_column_of_nulls_casts_to_a_timestamp(context: RunContext, spec: Any) -> None:
    out = cast(pa.nulls(3), spec, context)
    assert pa.types.is_timestamp(out.type)
    assert out.null_count == 3
