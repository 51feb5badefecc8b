"""The schema manager: each batch planned against the table and the contract, never truncated."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from dataloader.errors import EngineError
from dataloader.schema.config import SchemaConfig
from dataloader.schema.history import current_schema, record
from dataloader.schema.manager import SchemaManager
from dataloader.schema.plan import SchemaPlan, key_of
from dataloader.schema.quarantine import QUARANTINE_SCHEMA, json_rows, quarantine_rows


def config(**keys: Any) -> SchemaConfig:
    return SchemaConfig.model_validate(keys)


def rows(**columns: Any) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(columns)


def typed(**columns: tuple[list[Any], pa.DataType]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {name: pa.array(values, kind) for name, (values, kind) in columns.items()}
    )


def table(**types: pa.DataType) -> pa.Schema:
    return pa.schema([pa.field(name, kind) for name, kind in types.items()])


def test_a_new_table_is_created_from_the_first_batch_with_declared_types_and_keys() -> None:
    manager = SchemaManager(
        config(
            columns=[
                {"name": "id", "type": "int32", "primary_key": True},
                {"name": "doc", "type": "json"},
            ]
        ),
        None,
    )
    prepared = manager.prepare(rows(id=[1, 2], doc=['{"a": 1}', None], note=["x", None]))
    plan = prepared.plan
    assert plan is not None and plan.create
    assert [(c.kind, c.column) for c in plan.changes] == [
        ("create", "id"),
        ("create", "doc"),
        ("create", "note"),
    ]
    assert plan.target.field("id").type == pa.int32()
    assert not plan.target.field("id").nullable and key_of(plan.target.field("id")) == "primary"
    assert plan.target.field("doc").metadata == {b"pg_type": b"json"}
    assert prepared.batch.schema.field("id").type == pa.int32()
    assert manager.prepare(rows(id=[3], doc=[None], note=["y"])).plan is None


def test_a_new_column_is_added_at_the_end_and_refused_when_new_columns_are_not_allowed() -> None:
    current = table(id=pa.int64())
    plan = SchemaManager(config(), current).prepare(rows(extra=["e"], id=[1])).plan
    assert plan is not None and not plan.create
    assert plan.target.names == ["id", "extra"]
    assert [(c.kind, c.column, c.sample) for c in plan.changes] == [("add_column", "extra", "e")]

    frozen = SchemaManager(config(evolution={"allow_new_columns": False}), current)
    with pytest.raises(EngineError, match=r"'extra'.*allow_new_columns"):
        frozen.prepare(rows(id=[1], extra=["e"]))


def test_types_widen_along_the_lattice_and_the_change_names_a_value_that_needed_it() -> None:
    manager = SchemaManager(config(), table(qty=pa.int32()))
    plan = manager.prepare(typed(qty=([1, 3_000_000_000], pa.int64()))).plan
    assert plan is not None and plan.widened() == [pa.field("qty", pa.int64())]
    assert plan.changes[0].sample == "3000000000"

    prepared = manager.prepare(typed(qty=([Decimal("3.5"), None], pa.decimal128(2, 1))))
    assert prepared.plan is not None
    assert prepared.plan.target.field("qty").type == pa.decimal128(20, 1)
    assert prepared.plan.changes[0].sample == "3.5"
    assert prepared.batch.column(0).to_pylist() == [Decimal("3.5"), None]

    narrower = manager.prepare(typed(qty=([7], pa.int16())))
    assert narrower.plan is None
    assert narrower.batch.column(0).type == pa.decimal128(20, 1)
    assert narrower.batch.column(0).to_pylist() == [Decimal("7.0")]


def test_a_float_into_an_int_column_is_never_rounded() -> None:
    manager = SchemaManager(config(), table(qty=pa.int64()))
    with pytest.raises(EngineError) as error:
        manager.prepare(rows(qty=[1.0, 3.5, 2.0]))
    message = str(error.value)
    assert "'qty'" in message and "int" in message and "3.5" in message

    assert SchemaManager(config(), table(qty=pa.int64())).prepare(
        rows(qty=[1.0, 2.0])
    ).batch.column(0).to_pylist() == [1, 2]

    loose = SchemaManager(config(evolution={"allow_float": True}), table(qty=pa.int64()))
    assert loose.prepare(rows(qty=[3.5])).plan.widened() == [pa.field("qty", pa.float64())]


def test_a_float_fits_a_decimal_column_only_when_it_is_the_same_number() -> None:
    manager = SchemaManager(config(on_violation="quarantine"), table(price=pa.decimal128(12, 2)))
    prepared = manager.prepare(rows(price=[0.5, 0.125, 12.25, None]))
    assert prepared.batch.column(0).to_pylist() == [Decimal("0.50"), Decimal("12.25"), None]
    [(rejected, rule, column)] = prepared.rejected
    assert (rejected.column("price").to_pylist(), rule, column) == ([0.125], "type", "price")


def test_lenient_keeps_types_and_sends_what_does_not_fit_to_its_rule() -> None:
    manager = SchemaManager(config(mode="lenient", on_violation="drop"), table(n=pa.int32()))
    prepared = manager.prepare(rows(n=["1", "x", "3000000000", None]))
    assert prepared.plan is None
    assert prepared.batch.to_pydict() == {"n": [1, None]}
    assert prepared.dropped == 2 and prepared.rejected == []


@pytest.mark.parametrize(
    ("column", "values", "kind", "hint"),
    [
        ("s", [1, 2], pa.string(), "allow_text"),
        ("flag", [2, 0], pa.bool_(), "expected bool"),
        ("at", [5], pa.timestamp("us"), "expected timestamp"),
        ("n", [True], pa.int64(), "expected int"),
        ("day", [[1]], pa.date32(), "expected date"),
    ],
)
def test_values_of_another_kind_are_refused_not_rewritten(
    column: str, values: list[Any], kind: pa.DataType, hint: str
) -> None:
    for mode in ("infer", "lenient"):
        manager = SchemaManager(config(mode=mode, on_violation="drop"), table(**{column: kind}))
        with pytest.raises(EngineError, match=hint):
            manager.prepare(rows(**{column: values}))


def test_numbers_and_times_are_cast_only_when_each_value_comes_back_as_itself() -> None:
    manager = SchemaManager(
        config(mode="lenient", on_violation="drop"),
        table(f=pa.float32(), d=pa.date32(), x=pa.float64()),
    )
    prepared = manager.prepare(
        typed(
            f=([0.5, 0.1, 1e300, float("nan"), 16777217.0], pa.float64()),
            d=([0, 86_400_000_000, 1, 0, 0], pa.timestamp("us")),
            x=(
                [
                    Decimal("1.5"),
                    Decimal("2.5"),
                    Decimal("3.5"),
                    Decimal("4.5"),
                    Decimal("12345678901234567.89"),
                ],
                pa.decimal128(19, 2),
            ),
        )
    )
    assert prepared.dropped == 3  # 0.1, 1e300 and 16777217 as float32; a time of day as a date
    assert str(prepared.batch.column("f").to_pylist()) == "[0.5, nan]"
    assert prepared.batch.column("x").to_pylist() == [1.5, 4.5]


def test_strict_refuses_what_the_columns_do_not_declare_before_any_write() -> None:
    strict = config(
        mode="strict",
        columns=[{"name": "id", "type": "int"}, {"name": "amount", "type": "decimal(12,2)"}],
    )
    with pytest.raises(EngineError, match=r"'surprise'.*strict"):
        SchemaManager(strict, None).prepare(rows(id=[1], amount=[Decimal("1.5")], surprise=["!"]))
    with pytest.raises(EngineError, match=r"'amount'.*found string.*expected decimal\(12,2\)"):
        SchemaManager(strict, None).prepare(rows(id=[1], amount=["1.50"]))
    ok = SchemaManager(strict, None).prepare(
        typed(id=([1], pa.int32()), amount=([Decimal("1.5")], pa.decimal128(3, 1)))
    )
    assert ok.batch.schema == pa.schema([("id", pa.int64()), ("amount", pa.decimal128(12, 2))])
    with pytest.raises(EngineError, match=r"'amount'.*allow_column_deletion"):
        SchemaManager(strict, ok.plan.target).prepare(rows(id=[2]))


def test_strict_needs_a_type_for_every_declared_column() -> None:
    with pytest.raises(ValueError, match=r"type"):
        config(mode="strict", columns=[{"name": "id"}])


def test_nulls_in_not_null_columns_are_quarantined_with_their_rule() -> None:
    manager = SchemaManager(
        config(
            on_violation="quarantine",
            columns=[{"name": "email", "nullable": False}, {"name": "id", "primary_key": True}],
        ),
        None,
    )
    prepared = manager.prepare(rows(id=[1, 2, 2, None, 1], email=["a", None, "c", "d", "e"]))
    assert prepared.batch.to_pydict() == {"id": [1, 2], "email": ["a", "c"]}
    found = {
        (rule, column, tuple(t.column("email").to_pylist()))
        for t, rule, column in prepared.rejected
    }
    assert found == {
        ("not_null", "email", (None,)),
        ("not_null", "id", ("d",)),
        ("unique", "id", ("e",)),
    }


def test_a_row_breaking_two_rules_is_quarantined_once_for_the_first() -> None:
    manager = SchemaManager(
        config(
            on_violation="quarantine",
            columns=[
                {"name": "n", "type": "int", "nullable": False},
                {"name": "m", "unique": True},
            ],
        ),
        None,
    )
    prepared = manager.prepare(rows(n=[1.0, 3.5, None], m=["a", "a", "b"]))
    assert prepared.batch.to_pydict() == {"n": [1], "m": ["a"]}
    found = sorted((rule, t.num_rows) for t, rule, _ in prepared.rejected)
    assert found == [("not_null", 1), ("type", 1)]


def test_a_declared_not_null_column_added_later_is_nullable_in_the_table_not_in_the_rows() -> None:
    manager = SchemaManager(
        config(on_violation="drop", columns=[{"name": "v", "nullable": False}]),
        table(id=pa.int64()),
    )
    prepared = manager.prepare(rows(id=[1, 2], v=["x", None]))
    assert prepared.plan.target.field("v").nullable
    assert prepared.batch.to_pydict() == {"id": [1], "v": ["x"]} and prepared.dropped == 1


def test_a_merge_settles_repeated_keys_itself() -> None:
    spec = config(columns=[{"name": "id", "primary_key": True}])
    repeated = rows(id=[1, 1], v=["a", "b"])
    with pytest.raises(EngineError, match=r"unique"):
        SchemaManager(spec, None).prepare(repeated)
    assert SchemaManager(spec, None, merge_keys=["id"]).prepare(repeated).batch.num_rows == 2


def test_a_column_missing_from_the_rows_is_null_unless_not_null() -> None:
    current = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.string())])
    prepared = SchemaManager(config(), current).prepare(rows(id=[1]))
    assert prepared.plan is None and prepared.batch.num_rows == 1
    with pytest.raises(EngineError, match=r"'id'.*NOT NULL"):
        SchemaManager(config(), current).prepare(rows(v=["x"]))


def test_a_naive_timestamp_becomes_an_instant_only_by_the_rule() -> None:
    current = table(at=pa.timestamp("us", tz="UTC"))
    naive = typed(at=([1], pa.timestamp("us")))
    with pytest.raises(EngineError, match=r"naive_timestamps_as_utc"):
        SchemaManager(config(), current).prepare(naive)
    utc = SchemaManager(config(evolution={"naive_timestamps_as_utc": True}), current)
    assert utc.prepare(naive).batch.column(0).type == pa.timestamp("us", tz="UTC")


def test_nanoseconds_keep_the_table_unit_and_sub_microsecond_digits_break_the_contract() -> None:
    current = table(at=pa.timestamp("us"))
    whole = typed(at=([1_000, 2_000], pa.timestamp("ns")))
    prepared = SchemaManager(config(), current).prepare(whole)
    assert prepared.plan is None
    assert prepared.batch.column(0).cast(pa.int64()).to_pylist() == [1, 2]
    with pytest.raises(EngineError, match=r"2024-01-01 00:00:00.000000001"):
        SchemaManager(config(), current).prepare(
            typed(at=([1_704_067_200_000_000_001], pa.timestamp("ns")))
        )


def test_lenient_quarantines_by_default_where_the_destination_can() -> None:
    lenient = config(mode="lenient")
    odd = rows(n=["1", "x"])
    current = table(n=pa.int64())
    assert len(SchemaManager(lenient, current, can_quarantine=True).prepare(odd).rejected) == 1
    with pytest.raises(EngineError, match=r"'x'"):
        SchemaManager(lenient, current).prepare(odd)
    with pytest.raises(EngineError, match=r"'x'"):
        SchemaManager(config(), current, can_quarantine=True).prepare(odd)


def test_an_instant_in_another_zone_is_cast_not_a_change_of_the_table() -> None:
    current = table(at=pa.timestamp("us", tz="Etc/UTC"))
    paris = typed(at=([1_000_000], pa.timestamp("us", tz="Europe/Paris")))
    prepared = SchemaManager(config(), current).prepare(paris)
    assert prepared.plan is None
    assert prepared.batch.column(0).type == pa.timestamp("us", tz="Etc/UTC")
    assert prepared.batch.column(0).cast(pa.int64()).to_pylist() == [1_000_000]


def test_a_per_column_rule_overrides_the_recipes() -> None:
    manager = SchemaManager(
        config(
            on_violation="fail",
            columns=[{"name": "n", "type": "int", "on_violation": "drop"}],
        ),
        None,
    )
    prepared = manager.prepare(rows(n=["1", "two"]))
    assert prepared.batch.column(0).to_pylist() == [1] and prepared.dropped == 1


def test_the_history_keeps_each_version_and_the_exact_current_schema() -> None:
    history: dict[str, Any] = {}
    manager = SchemaManager(config(columns=[{"name": "id", "type": "int"}]), None)
    first = manager.prepare(rows(id=[1]))
    record(history, first.plan, "run-1", "2026-11-28T00:00:00+00:00", {"id"})
    second = manager.prepare(
        typed(id=([1], pa.int64()), price=([Decimal("1.5")], pa.decimal128(3, 1)))
    )
    version = record(history, second.plan, "run-2", "2026-11-28T00:00:01+00:00", {"id"})
    assert version["version"] == 2
    assert version["changes"] == [
        {
            "kind": "add_column",
            "column": "price",
            "before": None,
            "after": "decimal(3,1)",
            "reason": "new column in the rows",
            "sample": "1.5",
        }
    ]
    assert [(c["name"], c["origin"]) for c in history["columns"]] == [
        ("id", "declared"),
        ("price", "inferred in version 2"),
    ]
    assert current_schema(history) == second.plan.target
    again = SchemaManager(config(), None).prepare(second.batch).plan  # an overwrite's new table
    assert record(history, again, "run-3", "t", {"id"}) is None
    narrower = SchemaManager(config(), None).prepare(rows(id=[1], extra=["x"])).plan
    third = record(history, narrower, "run-4", "t", {"id"})
    assert [(c["kind"], c["column"]) for c in third["changes"]] == [
        ("add_column", "extra"),
        ("drop_column", "price"),
    ]


def test_a_table_found_in_the_destination_is_the_first_version() -> None:
    found = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    history: dict[str, Any] = {}
    version = record(history, SchemaPlan(create=False, target=found, changes=()), "r", "t", set())
    assert version["changes"][0]["kind"] == "create"
    assert history["columns"] == [
        {
            "name": "id",
            "type": "int",
            "nullable": False,
            "key": None,
            "origin": "found in the destination",
        }
    ]


def test_quarantined_rows_keep_every_value_as_json() -> None:
    table = pa.table(
        {
            "price": pa.array([Decimal("12.3400")], pa.decimal128(10, 4)),
            "ratio": [float("nan")],
            "raw": [b"\x00\xff"],
            "at": pa.array([1_704_067_200_000_000_001], pa.timestamp("ns")),
            "tags": [[1.5, float("inf")]],
            "text": ['ü\n"q"'],
        }
    )
    [row] = json_rows(table)
    assert json.loads(row) == {
        "price": "12.3400",
        "ratio": "nan",
        "raw": "00ff",
        "at": "2024-01-01 00:00:00.000000001",
        "tags": [1.5, "inf"],
        "text": 'ü\n"q"',
    }
    rows = quarantine_rows([(table, "type", "price")], "run-1")
    assert rows.schema == QUARANTINE_SCHEMA
    assert rows.column("rule").to_pylist() == ["type"]


def test_a_column_of_nulls_only_waits_for_a_value_to_give_it_a_type() -> None:
    manager = SchemaManager(config(), None)
    first = manager.prepare(typed(id=([1], pa.int64()), x=([None], pa.null())))
    assert first.plan.target.names == ["id"] and first.batch.schema.names == ["id"]
    later = manager.prepare(typed(id=([2], pa.int64()), x=([5], pa.int64())))
    assert [(c.kind, c.column, c.after) for c in later.plan.changes] == [
        ("add_column", "x", pa.int64())
    ]
    assert manager.prepare(typed(id=([3], pa.int64()), x=([None], pa.null()))).plan is None


def test_declared_columns_are_in_the_table_from_the_start_or_refused_when_missing() -> None:
    declared = [{"name": "id", "type": "int"}, {"name": "qty", "type": "decimal(12,2)"}]
    plan = SchemaManager(config(columns=declared), None).prepare(rows(id=[1])).plan
    assert plan.target.names == ["id", "qty"]
    assert plan.target.field("qty").type == pa.decimal128(12, 2)
    with pytest.raises(EngineError, match=r"'qty'.*allow_column_deletion"):
        SchemaManager(config(mode="strict", columns=declared), None).prepare(rows(id=[1]))
    required = [{"name": "id", "type": "int"}, {"name": "qty", "type": "int", "nullable": False}]
    with pytest.raises(EngineError, match=r"'qty'.*NOT NULL"):
        SchemaManager(config(columns=required), None).prepare(rows(id=[1]))


def test_a_row_breaking_a_drop_and_a_quarantine_rule_is_quarantined_whatever_the_order() -> None:
    for order in (("a", "b"), ("b", "a")):
        manager = SchemaManager(
            config(
                columns=[
                    {"name": "a", "nullable": False, "on_violation": "drop"},
                    {"name": "b", "nullable": False, "on_violation": "quarantine"},
                ]
            ),
            None,
        )
        prepared = manager.prepare(rows(**{name: [None] for name in order}))
        assert prepared.dropped == 0 and len(prepared.rejected) == 1


def test_contract_errors_name_the_file_the_rows_came_from() -> None:
    manager = SchemaManager(config(), table(n=pa.int64()), file="r.yaml")
    with pytest.raises(EngineError, match=r"in data/day2\.csv"):
        manager.prepare(rows(n=[1.5]), source="data/day2.csv")


def test_strict_takes_dictionary_encoded_text_for_a_string_column() -> None:
    strict = config(mode="strict", columns=[{"name": "s", "type": "string"}])
    text = pa.array(["a", "b", "a"]).dictionary_encode()
    prepared = SchemaManager(strict, None).prepare(pa.RecordBatch.from_arrays([text], ["s"]))
    assert prepared.batch.column(0).type == pa.string()
    assert prepared.batch.column(0).to_pylist() == ["a", "b", "a"]


def test_text_that_is_not_json_breaks_a_json_column() -> None:
    manager = SchemaManager(
        config(on_violation="quarantine", columns=[{"name": "doc", "type": "json"}]), None
    )
    prepared = manager.prepare(rows(doc=['{"a": 1}', "{oops", None, "[1, 2]"]))
    assert prepared.batch.column(0).to_pylist() == ['{"a": 1}', None, "[1, 2]"]
    [(rejected, rule, column)] = prepared.rejected
    assert (rejected.column("doc").to_pylist(), rule, column) == (["{oops"], "json", "doc")


def test_a_widening_to_an_instant_keeps_the_columns_unit() -> None:
    manager = SchemaManager(
        config(evolution={"naive_timestamps_as_utc": True}), table(at=pa.timestamp("us"))
    )
    plan = manager.prepare(typed(at=([1_000], pa.timestamp("ns", tz="UTC")))).plan
    assert plan.widened() == [pa.field("at", pa.timestamp("us", tz="UTC"))]
    with pytest.raises(EngineError, match=r"does not fit timestamptz"):
        manager.prepare(typed(at=([1_001], pa.timestamp("ns", tz="UTC"))))


@pytest.mark.parametrize(
    ("table_type", "rows_type", "value"),
    [(pa.string(), pa.large_string(), "a"), (pa.binary(), pa.large_binary(), b"a")],
)
def test_large_text_and_bytes_go_into_their_plain_columns(
    table_type: pa.DataType, rows_type: pa.DataType, value: Any
) -> None:
    for mode in ("infer", "lenient", "strict"):
        columns = [{"name": "s", "type": "string" if table_type == pa.string() else "binary"}]
        manager = SchemaManager(config(mode=mode, columns=columns), table(s=table_type))
        prepared = manager.prepare(typed(s=([value], rows_type)))
        assert prepared.plan is None
        assert prepared.batch.column(0).type == table_type
        assert prepared.batch.column(0).to_pylist() == [value]


def test_text_into_a_float_column_must_not_overflow_or_round() -> None:
    manager = SchemaManager(
        config(mode="lenient", on_violation="drop"), table(x=pa.float64(), y=pa.float32())
    )
    prepared = manager.prepare(
        rows(
            x=["1.5", "1e400", "-Infinity", "2", "3"],
            y=["0.5", "1", "2", "16777217", "1e39"],
        )
    )
    assert prepared.batch.to_pydict() == {"x": [1.5, float("-inf")], "y": [0.5, 2.0]}
    assert prepared.dropped == 3


def test_json_is_strict_json() -> None:
    manager = SchemaManager(
        config(on_violation="drop", columns=[{"name": "doc", "type": "json"}]), None
    )
    prepared = manager.prepare(rows(doc=['{"a": NaN}', "Infinity", '"\\ud800"', "[1]"]))
    assert prepared.batch.column(0).to_pylist() == ["[1]"]
    assert prepared.dropped == 3


def test_the_history_calls_a_json_column_json() -> None:
    manager = SchemaManager(config(columns=[{"name": "doc", "type": "json"}]), None)
    history: dict[str, Any] = {}
    version = record(history, manager.prepare(rows(doc=["[1]"])).plan, "r", "t", {"doc"})
    assert version["changes"][0]["after"] == "json"
    assert history["columns"][0]["type"] == "json"
