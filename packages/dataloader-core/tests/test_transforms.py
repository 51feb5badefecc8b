"""The built-in transforms and the pipeline that runs them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pydantic import ValidationError

from dataloader import ArrowBatch, RunContext, Transform, TransformError
from dataloader.registry import get_registry
from dataloader.schema.types import parse_type
from dataloader.transforms import BUILTIN_TRANSFORMS, TransformPipeline

MakeBatch = Callable[..., ArrowBatch]


def step(type_: str, **options: Any) -> Transform:
    """A built-in transform built the way the engine builds it: validated options, then class."""
    registration = get_registry().transform(type_)
    return registration.create(registration.config_model.model_validate(options))


def columns(batch: ArrowBatch) -> dict[str, list[Any]]:
    return batch.to_arrow().to_pydict()


def test_every_builtin_is_registered() -> None:
    names = {transform.name for transform in BUILTIN_TRANSFORMS}
    assert names == {
        "rename_columns",
        "cast",
        "add_column",
        "select_columns",
        "drop_columns",
        "filter",
        "fill_null",
    }
    assert names <= set(get_registry().names("transform"))


def test_transforms_keep_batch_metadata(make_batch: MakeBatch, context: RunContext) -> None:
    batch = ArrowBatch(pa.RecordBatch.from_pydict({"a": [1]}), {"source_file": "f.csv"})
    out = step("rename_columns", mapping={"a": "b"}).apply(batch, context)
    assert out.metadata == {"source_file": "f.csv"}


# -- rename / select / drop -------------------------------------------------------------------
def test_rename_columns(make_batch: MakeBatch, context: RunContext) -> None:
    out = step("rename_columns", mapping={"a": "x", "c": "z"}).apply(
        make_batch(a=[1], b=[2], c=[3]), context
    )
    assert out.columns == ["x", "b", "z"]
    assert columns(out) == {"x": [1], "b": [2], "z": [3]}


def test_rename_missing_column(make_batch: MakeBatch, context: RunContext) -> None:
    with pytest.raises(TransformError, match="column 'nope' is not in the batch") as info:
        step("rename_columns", mapping={"nope": "x"}).apply(make_batch(a=[1]), context)
    assert info.value.context["column"] == "nope"


def test_rename_to_an_existing_name(make_batch: MakeBatch, context: RunContext) -> None:
    with pytest.raises(TransformError, match="two columns named 'b'"):
        step("rename_columns", mapping={"a": "b"}).apply(make_batch(a=[1], b=[2]), context)


def test_select_columns_keeps_the_given_order(make_batch: MakeBatch, context: RunContext) -> None:
    out = step("select_columns", columns=["c", "a"]).apply(make_batch(a=[1], b=[2], c=[3]), context)
    assert out.columns == ["c", "a"]
    with pytest.raises(TransformError, match="'d'"):
        step("select_columns", columns=["a", "d"]).apply(make_batch(a=[1]), context)


def test_drop_columns(make_batch: MakeBatch, context: RunContext) -> None:
    batch = make_batch(a=[1], b=[2], c=[3])
    assert step("drop_columns", columns=["b"]).apply(batch, context).columns == ["a", "c"]
    with pytest.raises(TransformError, match="'zz'"):
        step("drop_columns", columns=["b", "zz"]).apply(batch, context)
    out = step("drop_columns", columns=["b", "zz"], ignore_missing=True).apply(batch, context)
    assert out.columns == ["a", "c"]


@pytest.mark.parametrize(
    ("type_", "options"),
    [
        ("rename_columns", {"mapping": {}}),
        ("select_columns", {"columns": []}),
        ("drop_columns", {}),
        ("cast", {"columns": {"a": "integerish"}}),
        ("cast", {"columns": {"a": "decimal(3,5)"}}),
        ("add_column", {"name": "x", "value": 1, "from": "run_id"}),
        ("add_column", {"name": "x", "from": "yesterday"}),
        ("filter", {"expression": "a +"}),
        ("filter", {"expression": "a + 1 > 2"}),
        ("filter", {"expression": "__import__('os').system('true')"}),
        ("filter", {"expression": "a is 3"}),
        ("fill_null", {"values": {}}),
    ],
)
def test_invalid_options_are_rejected_when_validated(type_: str, options: dict) -> None:
    with pytest.raises(ValidationError):
        get_registry().transform(type_).config_model.model_validate(options)


# -- cast ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "values", "arrow_type", "expected"),
    [
        ("int", [" 1", "2", None], pa.int64(), [1, 2, None]),
        ("int32", ["7"], pa.int32(), [7]),
        ("float", ["1.5", "2", None], pa.float64(), [1.5, 2.0, None]),
        ("bool", ["yes", "F", "1", "no", None], pa.bool_(), [True, False, True, False, None]),
        ("str", [1, 2, None], pa.string(), ["1", "2", None]),
        (
            "decimal(10,2)",
            ["12.30", "4", None],
            pa.decimal128(10, 2),
            [Decimal("12.30"), Decimal("4.00"), None],
        ),
        ("decimal(40,3)", ["1.5"], pa.decimal256(40, 3), [Decimal("1.500")]),
        ("date", ["2024-05-17", None], pa.date32(), [date(2024, 5, 17), None]),
        (
            {"type": "date", "format": "%d/%m/%Y"},
            ["17/05/2024"],
            pa.date32(),
            [date(2024, 5, 17)],
        ),
        (
            "datetime",
            ["2024-05-17T14:30:00", None],
            pa.timestamp("us"),
            [datetime(2024, 5, 17, 14, 30), None],
        ),
        (
            {"type": "datetime", "format": "%d/%m/%Y %H:%M"},
            ["17/05/2024 14:30"],
            pa.timestamp("us"),
            [datetime(2024, 5, 17, 14, 30)],
        ),
    ],
)
def test_cast(
    make_batch: MakeBatch,
    context: RunContext,
    spec: Any,
    values: list,
    arrow_type: pa.DataType,
    expected: list,
) -> None:
    out = step("cast", columns={"v": spec}).apply(
        make_batch(v=values, other=[0] * len(values)), context
    )
    assert out.schema.field("v").type == arrow_type
    assert columns(out)["v"] == expected
    assert columns(out)["other"] == [0] * len(values)  # untouched


def test_cast_datetime_with_format_and_timezone(make_batch: MakeBatch, context: RunContext) -> None:
    out = step(
        "cast",
        columns={
            "at": {"type": "datetime", "format": "%d/%m/%Y %H:%M", "timezone": "Europe/Paris"}
        },
    ).apply(make_batch(at=["17/05/2024 14:30", "01/01/2024 00:00"]), context)
    assert out.schema.field("at").type == pa.timestamp("us", tz="Europe/Paris")
    # wall-clock times in Paris: +02:00 in May (summer time), +01:00 in January
    utc = [value.astimezone(UTC) for value in columns(out)["at"]]
    assert utc == [
        datetime(2024, 5, 17, 12, 30, tzinfo=UTC),
        datetime(2023, 12, 31, 23, 0, tzinfo=UTC),
    ]


def test_cast_iso_strings_with_offsets_to_another_timezone(
    make_batch: MakeBatch, context: RunContext
) -> None:
    out = step("cast", columns={"at": {"type": "datetime", "timezone": "America/New_York"}}).apply(
        make_batch(at=["2024-05-17T10:00:00+02:00", "2024-01-01T00:00:00Z"]), context
    )
    assert out.schema.field("at").type == pa.timestamp("us", tz="America/New_York")
    values = columns(out)["at"]
    assert values[0].astimezone(UTC) == datetime(2024, 5, 17, 8, 0, tzinfo=UTC)
    assert values[0].utcoffset() == timedelta(hours=-4)
    assert values[1].astimezone(UTC) == datetime(2024, 1, 1, tzinfo=UTC)


def test_cast_several_columns_at_once(make_batch: MakeBatch, context: RunContext) -> None:
    out = step("cast", columns={"a": "int", "b": "float"}).apply(
        make_batch(a=["1"], b=["2.5"], c=["x"]), context
    )
    assert columns(out) == {"a": [1], "b": [2.5], "c": ["x"]}


@pytest.mark.parametrize(
    ("spec", "values", "bad"),
    [
        ("int", ["1", "x", "3", "n/a", None], ["x", "n/a"]),
        ("int", [1.5, 2.0], [1.5]),
        ("bool", ["yes", "maybe"], ["maybe"]),
        ("decimal(5,2)", ["1.00", "1.234"], ["1.234"]),
        ({"type": "datetime", "format": "%Y-%m-%d"}, ["2024-01-01", "17/05/2024"], ["17/05/2024"]),
        ("date", ["2024-02-30"], ["2024-02-30"]),
    ],
)
def test_failing_cast_names_the_column_and_offending_values(
    make_batch: MakeBatch, context: RunContext, spec: Any, values: list, bad: list
) -> None:
    with pytest.raises(TransformError) as info:
        step("cast", columns={"amount": spec}).apply(make_batch(amount=values), context)
    message = str(info.value)
    assert "column 'amount'" in message
    for value in bad:
        assert repr(value) in message
    assert info.value.context["column"] == "amount"
    assert info.value.context["offending_values"] == bad


def test_offending_values_are_a_sample(make_batch: MakeBatch, context: RunContext) -> None:
    values = [f"bad{i}" for i in range(20)]
    with pytest.raises(TransformError) as info:
        step("cast", columns={"n": "int"}).apply(make_batch(n=values), context)
    assert len(info.value.context["offending_values"]) == 5


def test_cast_missing_column(make_batch: MakeBatch, context: RunContext) -> None:
    with pytest.raises(TransformError, match="column 'nope' is not in the batch"):
        step("cast", columns={"nope": "int"}).apply(make_batch(a=[1]), context)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("int", pa.int64()),
        ("INTEGER", pa.int64()),
        ("string", pa.string()),
        ("double", pa.float64()),
        ("boolean", pa.bool_()),
        ("timestamp", pa.timestamp("us")),
        ("decimal( 12 , 2 )", pa.decimal128(12, 2)),
        ("decimal(38,0)", pa.decimal128(38, 0)),
        ("decimal(39,0)", pa.decimal256(39, 0)),
    ],
)
def test_parse_type(name: str, expected: pa.DataType) -> None:
    assert parse_type(name) == expected


@pytest.mark.parametrize("name", ["varchar", "decimal(0,0)", "decimal(77,2)", "decimal(5,6)"])
def test_parse_type_rejects(name: str) -> None:
    with pytest.raises(ValueError):
        parse_type(name)


# -- add_column -------------------------------------------------------------------------------
def test_add_column_constant(make_batch: MakeBatch, context: RunContext) -> None:
    out = step("add_column", name="source", value="crm").apply(make_batch(a=[1, 2]), context)
    assert out.columns == ["a", "source"]
    assert columns(out)["source"] == ["crm", "crm"]
    assert out.schema.field("source").type == pa.string()


def test_add_column_constant_with_type(make_batch: MakeBatch, context: RunContext) -> None:
    out = step("add_column", name="rate", value="1.25", type="decimal(6,2)").apply(
        make_batch(a=[1]), context
    )
    assert out.schema.field("rate").type == pa.decimal128(6, 2)
    assert columns(out)["rate"] == [Decimal("1.25")]
    # templated values render to strings; `type` gives them their type
    for value, type_, expected in [
        ("5", "int", 5),
        (1.5, "decimal(4,1)", Decimal("1.5")),
        ("true", "bool", True),
        ("2024-05-17", "date", date(2024, 5, 17)),
        (7, "str", "7"),
    ]:
        out = step("add_column", name="c", value=value, type=type_).apply(
            make_batch(a=[1]), context
        )
        assert out.schema.field("c").type == parse_type(type_)
        assert columns(out)["c"] == [expected]
    with pytest.raises(TransformError, match="add_column"):
        step("add_column", name="n", value="abc", type="int").apply(make_batch(a=[1]), context)


@pytest.mark.parametrize(
    ("source", "arrow_type", "expected"),
    [
        ("run_id", pa.string(), "run-0001"),
        ("recipe_name", pa.string(), "orders"),
        ("load_time", pa.timestamp("us", tz="UTC"), datetime(2024, 5, 17, 12, 30, tzinfo=UTC)),
    ],
)
def test_add_column_from_run_metadata(
    make_batch: MakeBatch, context: RunContext, source: str, arrow_type: pa.DataType, expected: Any
) -> None:
    out = step("add_column", **{"name": "meta", "from": source}).apply(
        make_batch(a=[1, 2, 3]), context
    )
    assert out.schema.field("meta").type == arrow_type
    assert columns(out)["meta"] == [expected] * 3


def test_add_column_from_source_file(context: RunContext) -> None:
    batch = ArrowBatch(pa.RecordBatch.from_pydict({"a": [1]}), {"source_file": "in/part-1.csv"})
    out = step("add_column", **{"name": "file", "from": "source_file"}).apply(batch, context)
    assert columns(out)["file"] == ["in/part-1.csv"]


def test_add_column_on_an_empty_batch(context: RunContext) -> None:
    batch = ArrowBatch(pa.RecordBatch.from_pydict({"a": pa.array([], pa.int64())}))
    out = step("add_column", **{"name": "run", "from": "run_id"}).apply(batch, context)
    assert out.row_count == 0
    assert out.schema.field("run").type == pa.string()


def test_add_column_that_exists_is_an_error(make_batch: MakeBatch, context: RunContext) -> None:
    batch = make_batch(a=[1], source=["old"])
    with pytest.raises(TransformError, match="column 'source' already exists") as info:
        step("add_column", name="source", value="new").apply(batch, context)
    assert info.value.context["column"] == "source"
    out = step("add_column", name="source", value="new", overwrite=True).apply(batch, context)
    assert out.columns == ["a", "source"]
    assert columns(out)["source"] == ["new"]


# -- filter ------------------------------------------------------------------------------------
FILTER_ROWS = [
    {"id": 1, "status": "active", "amount": 10.0, "country": "FR", "note": None, "vip": True},
    {"id": 2, "status": "inactive", "amount": 50.0, "country": "DE", "note": "x", "vip": False},
    {"id": 3, "status": "active", "amount": 99.5, "country": "US", "note": None, "vip": False},
    {"id": 4, "status": "active", "amount": None, "country": "FR", "note": "y", "vip": True},
    {"id": 5, "status": None, "amount": -3.0, "country": "IT", "note": None, "vip": None},
]


@pytest.mark.parametrize(
    ("expression", "ids"),
    [
        ("status == 'active'", [1, 3, 4]),
        ("status != 'active'", [2]),  # null is neither equal nor unequal: dropped
        ("amount > 10", [2, 3]),
        ("amount >= 10", [1, 2, 3]),
        ("amount < 10", [5]),
        ("amount <= 10", [1, 5]),
        ("amount < -1", [5]),
        ("10 < amount", [2, 3]),
        ("10 <= amount < 60", [1, 2]),
        ("status == 'active' and amount > 20", [3]),
        ("country == 'IT' or vip", [1, 4, 5]),
        ("not vip", [2, 3]),
        # Kleene logic: null and False is False, so row 5 (status null, country IT) is kept
        ("not (status == 'active' and country == 'FR')", [2, 3, 5]),
        ("country in ['FR', 'DE']", [1, 2, 4]),
        ("country not in ('FR', 'DE')", [3, 5]),
        ("id in [2, 4]", [2, 4]),
        ("note is None", [1, 3, 5]),
        ("note is not None", [2, 4]),
        ("amount is None or amount > 90", [3, 4]),
        ("vip == True", [1, 4]),
        ("(status == 'inactive' or country == 'US') and note is None", [3]),
    ],
)
def test_filter(
    make_batch: MakeBatch, context: RunContext, expression: str, ids: list[int]
) -> None:
    out = step("filter", expression=expression).apply(make_batch(rows=FILTER_ROWS), context)
    assert columns(out)["id"] == ids
    assert out.columns == list(FILTER_ROWS[0])


def test_filter_on_an_unknown_column_is_a_transform_error(
    make_batch: MakeBatch, context: RunContext
) -> None:
    with pytest.raises(
        TransformError, match=r"filter: cannot evaluate .colour == 'red'. on columns"
    ):
        step("filter", expression="colour == 'red'").apply(make_batch(rows=FILTER_ROWS), context)


def test_filter_can_remove_every_row(make_batch: MakeBatch, context: RunContext) -> None:
    out = step("filter", expression="id > 100").apply(make_batch(rows=FILTER_ROWS), context)
    assert out.row_count == 0
    assert out.columns == list(FILTER_ROWS[0])


# -- fill_null ---------------------------------------------------------------------------------
def test_fill_null(make_batch: MakeBatch, context: RunContext) -> None:
    out = step("fill_null", values={"country": "unknown", "amount": 0}).apply(
        make_batch(country=["FR", None], amount=[None, 2.5], other=[None, 1]), context
    )
    assert columns(out) == {"country": ["FR", "unknown"], "amount": [0.0, 2.5], "other": [None, 1]}
    assert out.schema.field("amount").type == pa.float64()


def test_fill_null_with_a_value_of_the_wrong_type(
    make_batch: MakeBatch, context: RunContext
) -> None:
    with pytest.raises(TransformError, match="column 'amount'") as info:
        step("fill_null", values={"amount": "lots"}).apply(make_batch(amount=[1, None]), context)
    assert info.value.context["column"] == "amount"


def test_fill_null_missing_column(make_batch: MakeBatch, context: RunContext) -> None:
    with pytest.raises(TransformError, match="'nope'"):
        step("fill_null", values={"nope": 1}).apply(make_batch(a=[1]), context)


# -- pipeline ----------------------------------------------------------------------------------
def test_pipeline_applies_steps_in_order(make_batch: MakeBatch, context: RunContext) -> None:
    pipeline = TransformPipeline(
        [
            step("rename_columns", mapping={"n": "amount"}),
            step("cast", columns={"amount": "int"}),
            step("filter", expression="amount > 1"),
            step("add_column", **{"name": "run", "from": "run_id"}),
            step("select_columns", columns=["run", "amount"]),
        ]
    )
    out = pipeline.apply(make_batch(n=["1", "2", "3"]), context)
    assert columns(out) == {"run": ["run-0001", "run-0001"], "amount": [2, 3]}


def test_pipeline_error_names_step_index_and_type(
    make_batch: MakeBatch, context: RunContext, tmp_path: Path
) -> None:
    recipe_file = tmp_path / "orders.yaml"
    context = RunContext(
        recipe_name="orders",
        run_id="r",
        started_at=datetime.now(UTC),
        recipe_file=recipe_file,
    )
    pipeline = TransformPipeline(
        [step("rename_columns", mapping={"n": "age"}), step("cast", columns={"age": "int"})]
    )
    with pytest.raises(TransformError) as info:
        pipeline.apply(make_batch(n=["1", "old"]), context)
    error = info.value
    message = str(error)
    assert "step 1 (cast) failed" in message
    assert "column 'age'" in message
    assert "'old'" in message
    assert error.problem.key == "transform.steps[1].columns.age"
    assert error.problem.file == str(recipe_file)
    assert str(recipe_file) in message
    assert error.context["step"] == 1
    assert error.context["type"] == "cast"
    assert error.context["column"] == "age"
    assert error.context["offending_values"] == ["old"]
    assert isinstance(error.__cause__, TransformError)


def test_pipeline_wraps_unexpected_exceptions(make_batch: MakeBatch, context: RunContext) -> None:
    class Explodes(Transform):
        name = "explodes"

        def apply(self, batch: ArrowBatch, context: RunContext) -> ArrowBatch:
            raise ZeroDivisionError("division by zero")

    pipeline = TransformPipeline([step("select_columns", columns=["a"]), Explodes(None)])
    with pytest.raises(TransformError) as info:
        pipeline.apply(make_batch(a=[1]), context)
    assert "step 1 (explodes) failed: ZeroDivisionError: division by zero" in str(info.value)
    assert info.value.problem.key == "transform.steps[1]"
    assert info.value.context == {"step": 1, "type": "explodes", "key": "transform.steps[1]"}


def test_empty_pipeline_is_identity(make_batch: MakeBatch, context: RunContext) -> None:
    batch = make_batch(a=[1])
    assert TransformPipeline([]).apply(batch, context) is batch
