"""Regressions of what an attacker proved: float cursors at infinity, an S3 stage with both a
storage integration and keys, narrower existing columns, concurrent commits of one recipe."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pydantic
import pytest
import snowflake.connector
import yaml

from dataloader import ArrowBatch, ConnectorError, State, register_connector
from dataloader.context import RunContext
from dataloader.registry import unregister
from dataloader.schema.types import JSON_TAG, TYPE_TAG
from dataloader.testing import RowsSource
from dataloader_snowflake.config import SnowflakeConfig
from dataloader_snowflake.connector import SnowflakeConnector, StateConflict
from dataloader_snowflake.testing import FakeSnowflake
from dataloader_snowflake.types import literal

ARROW_BATCHES: list[pa.RecordBatch] = []


class ArrowRows(RowsSource):
    """Yields `ARROW_BATCHES` as they are: typed Arrow batches (decimals of a given scale)."""

    def read_batches(self, state: State) -> Iterator[ArrowBatch]:
        for batch in ARROW_BATCHES:
            yield ArrowBatch(batch, {"source": "test"})


@pytest.fixture(autouse=True)
def arrow_rows() -> Iterator[None]:
    register_connector("dl_sf_arrow_rows")(ArrowRows)
    try:
        yield
    finally:
        unregister("connector", "dl_sf_arrow_rows")
        ARROW_BATCHES.clear()


def arrow_recipe(db: FakeSnowflake, batches: list[pa.RecordBatch], **dest: Any) -> dict:
    ARROW_BATCHES[:] = batches
    return {
        "name": "sf_arrow",
        "source": {"type": "dl_sf_arrow_rows", "batches": []},
        "destination": {"type": "snowflake", **db.settings(), **dest},
    }


def test_non_finite_floats_are_snowflake_float_literals() -> None:
    assert literal(float("inf")) == "'inf'::FLOAT"
    assert literal(float("-inf")) == "'-inf'::FLOAT"
    assert literal(float("nan")) == "'NaN'::FLOAT"
    assert literal(1.5) == "1.5"


def test_a_float_cursor_at_infinity_keeps_later_runs_working(
    snowflake_db: FakeSnowflake, run: Callable[..., Any]
) -> None:
    snowflake_db.execute("CREATE TABLE SRC (ID INT, C FLOAT)")
    snowflake_db.execute("INSERT INTO SRC VALUES (1, 1.5), (2, 'inf'::FLOAT)")
    recipe = {
        "name": "sf_inf",
        "source": {
            "type": "snowflake",
            **snowflake_db.settings(),
            "table": "SRC",
            "incremental": {"strategy": "cursor", "cursor_column": "C"},
        },
        "destination": {"type": "snowflake", **snowflake_db.settings(), "table": "DST"},
    }
    assert run(recipe).rows_written == 2
    snowflake_db.execute("INSERT INTO SRC VALUES (3, 'inf'::FLOAT)")
    run(recipe)  # failed with `inf` spliced as a bare word
    ids = [row[0] for row in snowflake_db.query('SELECT "ID" FROM "DST" ORDER BY "ID"')]
    assert ids == [1, 2, 3]


def test_an_s3_stage_with_an_integration_and_keys_is_refused_naming_both(tmp_path: Path) -> None:
    stage = {
        "type": "s3",
        "url": "s3://bucket/prefix",
        "storage_integration": "MY_INTEGRATION",
        "aws_access_key_id": "AKIAEXAMPLE",
        "aws_secret_access_key": "s3cr3t-never-shown",
    }
    settings = {"account": "acc", "user": "u", "password": "pw-never-shown", "database": "D"}
    with pytest.raises(pydantic.ValidationError, match=r"storage_integration.*aws_access_key_id"):
        SnowflakeConfig.model_validate({**settings, "table": "T", "stage": stage})
    recipe = {
        "name": "sf_bad_stage",
        "source": {"type": "snowflake", **settings, "table": "T"},
        "destination": {"type": "snowflake", **settings, "table": "T2", "stage": stage},
    }
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(recipe), "utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "dataloader", "validate", "bad.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "storage_integration" in output and "aws_access_key_id" in output
    assert "s3cr3t-never-shown" not in output and "pw-never-shown" not in output


def destination(db: FakeSnowflake, source: str, rows: list[dict[str, Any]], **dest: Any) -> dict:
    return {
        "name": "sf_narrow",
        "source": {"type": source, "batches": [rows]},
        "destination": {"type": "snowflake", **db.settings(), **dest},
    }


def test_values_that_do_not_fit_an_existing_column_are_refused_not_rounded(
    snowflake_db: FakeSnowflake, rows_source: str, run: Callable[..., Any]
) -> None:
    snowflake_db.execute("CREATE TABLE NARROW (ID INT, F INT)")
    with pytest.raises(Exception, match=r"'F'.*2\.7"):
        run(destination(snowflake_db, rows_source, [{"ID": 1, "F": 2.7}], table="NARROW"))
    assert snowflake_db.query("SELECT * FROM NARROW") == []


def test_a_decimal_of_another_scale_is_refused_naming_the_column(
    snowflake_db: FakeSnowflake, run: Callable[..., Any]
) -> None:
    snowflake_db.execute("CREATE TABLE AMOUNTS (ID INT, AMT NUMBER(10,2))")
    batch = pa.record_batch(
        {
            "ID": pa.array([1], pa.int64()),
            "AMT": pa.array([Decimal("1.2399")], pa.decimal128(10, 4)),
        }
    )
    with pytest.raises(ConnectorError, match=r"'AMT'.*NUMBER\(10,2\)"):
        run(arrow_recipe(snowflake_db, [batch], table="AMOUNTS"))
    assert snowflake_db.query("SELECT * FROM AMOUNTS") == []


def test_number_precision_and_varchar_length_are_widened(
    snowflake_db: FakeSnowflake, run: Callable[..., Any]
) -> None:
    snowflake_db.execute("CREATE TABLE WIDE (ID NUMBER(5,0), AMT NUMBER(6,2), S VARCHAR(3))")
    batch = pa.record_batch(
        {
            "ID": pa.array([1234567], pa.int64()),
            "AMT": pa.array([Decimal("123456789.25")], pa.decimal128(11, 2)),
            "S": ["abcdef"],
        }
    )
    run(arrow_recipe(snowflake_db, [batch], table="WIDE"))
    types = {row[0]: row[1] for row in snowflake_db.query("DESCRIBE TABLE WIDE")}
    assert types == {"ID": "NUMBER(19,0)", "AMT": "NUMBER(11,2)", "S": "VARCHAR(6)"}
    assert snowflake_db.query("SELECT * FROM WIDE") == [
        (1234567, Decimal("123456789.25"), "abcdef")
    ]


def test_describe_reads_the_table_types_nullability_and_json(
    snowflake_db: FakeSnowflake,
) -> None:
    snowflake_db.execute(
        "CREATE TABLE SHAPES (ID INT NOT NULL, AMT NUMBER(10,2), F FLOAT, S VARCHAR(3), "
        "B BOOLEAN, D DATE, N TIMESTAMP_NTZ, Z TIMESTAMP_TZ, BI BINARY, V VARIANT)"
    )
    connector = connector_for(snowflake_db, "SHAPES")
    try:
        schema = connector.describe()
    finally:
        connector.close()
    assert schema is not None
    assert [(f.name, f.type, f.nullable) for f in schema] == [
        ("ID", pa.int64(), False),
        ("AMT", pa.decimal128(10, 2), True),
        ("F", pa.float64(), True),
        ("S", pa.string(), True),
        ("B", pa.bool_(), True),
        ("D", pa.date32(), True),
        ("N", pa.timestamp("us"), True),
        ("Z", pa.timestamp("us", tz="UTC"), True),
        ("BI", pa.binary(), True),
        ("V", pa.string(), True),
    ]
    assert schema.field("V").metadata == {TYPE_TAG: JSON_TAG}


def connector_for(db: FakeSnowflake, table: str, run_id: str = "run-1") -> SnowflakeConnector:
    config = SnowflakeConfig.model_validate({**db.settings(), "table": table})
    connector = SnowflakeConnector(config)
    context = RunContext("sf_race", run_id, datetime.datetime.now(datetime.UTC), role="destination")
    connector.open(context)
    return connector


def load(connector: SnowflakeConnector, ids: list[int], position: int) -> State:
    """One staged batch and the state that would commit it."""
    connector.write_batch(ArrowBatch(pa.record_batch({"id": ids}), {}), State())
    return State(cursor_values={"id": position})


def test_two_runs_of_one_recipe_only_the_first_commit_wins(snowflake_db: FakeSnowflake) -> None:
    first, second = connector_for(snowflake_db, "items"), connector_for(snowflake_db, "items", "r2")
    try:
        for connector in (first, second):
            assert connector.load_state() is None
            connector.begin(State())
        first.commit(load(first, [1, 2], 2))
        with pytest.raises(StateConflict, match="another run of recipe 'sf_race'"):
            second.commit(load(second, [3], 3))
        assert snowflake_db.query('SELECT "id" FROM "items" ORDER BY 1') == [(1,), (2,)]
        # Both start again from the committed state; the second now commits, the first lost it.
        for connector in (first, second):
            assert connector.load_state() == State(cursor_values={"id": 2})  # type: ignore[union-attr]
        second.commit(load(second, [3], 3))
        with pytest.raises(StateConflict):
            first.commit(load(first, [4], 4))
    finally:
        first.close()
        second.close()
    assert snowflake_db.query('SELECT "id" FROM "items" ORDER BY 1') == [(1,), (2,), (3,)]
    [(text, version)] = snowflake_db.query("SELECT STATE, VERSION FROM _DATALOADER_STATE")
    assert json.loads(text)["cursor_values"] == {"id": 3} and version == 2
    tables = snowflake_db.query(
        "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = 'PUBLIC'"
    )
    assert sorted(name for (name,) in tables) == ["_DATALOADER_STATE", "items"]


def test_connection_errors_are_transient_and_sql_errors_are_not() -> None:
    connector = SnowflakeConnector(
        SnowflakeConfig.model_validate(
            {"account": "a", "user": "u", "database": "D", "table": "T", "password": "p"}
        )
    )
    errors = snowflake.connector.errors
    lost = errors.OperationalError(msg="lost", errno=250003)
    assert connector.is_transient(lost)
    assert connector.is_transient(errors.ServiceUnavailableError(msg="503"))
    assert connector.is_transient(ConnectionError("reset"))
    try:
        raise ConnectorError("commit failed", key="destination.table") from lost
    except ConnectorError as wrapped:
        assert connector.is_transient(wrapped)
    assert not connector.is_transient(errors.ProgrammingError(msg="syntax", errno=1003))
    assert not connector.is_transient(StateConflict("lost the race", key="destination.table"))


def test_a_commit_whose_answer_is_lost_is_retried_without_duplicates(
    snowflake_db: FakeSnowflake, run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    snowflake_db.execute("CREATE TABLE SRC (ID INT, UPD INT)")
    snowflake_db.execute("INSERT INTO SRC VALUES (1,1),(2,2),(3,2),(4,4),(5,5)")
    commit = SnowflakeConnector.commit
    lost = [True]

    def commit_then_lose_the_answer(self: SnowflakeConnector, state: State) -> None:
        commit(self, state)
        if lost[0]:
            lost[0] = False
            raise ConnectionError("connection reset after COMMIT")

    monkeypatch.setattr(SnowflakeConnector, "commit", commit_then_lose_the_answer)
    recipe = {
        "name": "sf_lost_ack",
        "source": {
            "type": "snowflake",
            **snowflake_db.settings(),
            "table": "SRC",
            "incremental": {"strategy": "cursor", "cursor_column": "UPD"},
        },
        "destination": {"type": "snowflake", **snowflake_db.settings(), "table": "DST"},
        "runtime": {"batch_size": 2, "retries": 3},
    }
    run(recipe)
    assert not lost[0]
    snowflake_db.execute("INSERT INTO SRC VALUES (6,5),(7,7)")
    run(recipe)
    got = [row[0] for row in snowflake_db.query('SELECT "ID" FROM "DST" ORDER BY 1')]
    assert got == [1, 2, 3, 4, 5, 6, 7]


def test_nested_values_into_an_existing_variant_column_are_parsed_json(
    snowflake_db: FakeSnowflake, rows_source: str, run: Callable[..., Any]
) -> None:
    snowflake_db.execute("CREATE TABLE DOCS (ID INT, DOC VARIANT)")
    rows = [{"ID": 1, "DOC": {"a": 1}}, {"ID": 2, "DOC": None}]
    run(destination(snowflake_db, rows_source, rows, table="DOCS"))
    got = snowflake_db.query("SELECT ID, DOC:a FROM DOCS ORDER BY ID")
    assert [(i, None if a is None else json.loads(a)) for i, a in got] == [(1, 1), (2, None)]
    with pytest.raises(Exception, match="DOC"):
        run(destination(snowflake_db, rows_source, [{"ID": 3, "DOC": "not json"}], table="DOCS"))
    assert snowflake_db.query("SELECT COUNT(*) FROM DOCS") == [(2,)]
