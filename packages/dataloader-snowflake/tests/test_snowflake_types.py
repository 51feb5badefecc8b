"""Every type round-trips Arrow -> Snowflake (fakesnow) -> Arrow: a checksum per column."""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from dataloader import ArrowBatch, State, register_connector
from dataloader.connectors import BaseConnector, Capabilities, ConnectorConfig
from dataloader.context import RunContext
from dataloader.registry import unregister
from dataloader_snowflake.config import SnowflakeConfig
from dataloader_snowflake.connector import SnowflakeConnector
from dataloader_snowflake.testing import FakeSnowflake
from dataloader_snowflake.types import snowflake_type

UTC = datetime.UTC
TABLE = pa.table(
    {
        "id": pa.array([1, 2, 3], pa.int64()),
        "big": pa.array([2**62, -(2**62), None], pa.int64()),
        "exact": pa.array(
            [Decimal("12345678901234567890123456789.123456789"), Decimal("-0.000000001"), None],
            pa.decimal128(38, 9),
        ),
        "ratio": pa.array([1.5, -2.25e300, None], pa.float64()),
        "text": pa.array(["plain", "emoji 😀 ünïcode", None], pa.string()),
        "flag": pa.array([True, False, None], pa.bool_()),
        "day": pa.array([datetime.date(2024, 2, 29), datetime.date(1, 1, 1), None], pa.date32()),
        "clock": pa.array(
            [datetime.time(23, 59, 59, 999999), datetime.time(0, 0), None], pa.time64("us")
        ),
        "naive": pa.array(
            [datetime.datetime(2024, 1, 2, 3, 4, 5, 678901), datetime.datetime(1999, 12, 31), None],
            pa.timestamp("us"),
        ),
        "instant": pa.array(
            [
                datetime.datetime(2024, 6, 1, 12, 0, 0, 1, tzinfo=UTC),
                datetime.datetime(2000, 1, 1, tzinfo=UTC),
                None,
            ],
            pa.timestamp("us", tz="UTC"),
        ),
        "raw": pa.array([b"\x00\xff\x10", b"", None], pa.binary()),
        "doc": pa.array(
            [{"a": 1, "b": "x"}, {"a": None, "b": "😀"}, None],
            pa.struct([("a", pa.int64()), ("b", pa.string())]),
        ),
    }
)
# fakesnow answers a NULL timestamp as 1970-01-01 over HTTP (its Arrow conversion); the stored
# value is checked to be NULL with IS NULL instead, and the read compared on non-null rows.
NULL_TIMESTAMPS = ("naive", "instant")


class TypedConfig(ConnectorConfig):
    pass


class TypedSource(BaseConnector):
    config_model = TypedConfig
    capabilities = Capabilities(read=True)

    def read_batches(self, state: State) -> Any:
        yield ArrowBatch(TABLE.to_batches()[0], {})


def checksum(values: list[Any]) -> str:
    return hashlib.sha256(json.dumps(values, default=str).encode()).hexdigest()


def read_back(db: FakeSnowflake, table: str) -> pa.Table:
    config = SnowflakeConfig.model_validate(
        {**db.settings(), "query": f'SELECT * FROM "{table}" ORDER BY "id"'}
    )
    connector = SnowflakeConnector(config)
    context = RunContext("read", "r1", datetime.datetime.now(UTC), role="source")
    connector.open(context)
    try:
        return pa.Table.from_batches([b.to_arrow() for b in connector.read_batches(State())])
    finally:
        connector.close()


def test_every_type_round_trips_with_equal_checksums(
    snowflake_db: FakeSnowflake, run: Callable[..., Any]
) -> None:
    register_connector("dl_sf_typed")(TypedSource)
    try:
        run(
            {
                "name": "sf_types",
                "source": {"type": "dl_sf_typed"},
                "destination": {"type": "snowflake", **snowflake_db.settings(), "table": "typed"},
            }
        )
    finally:
        unregister("connector", "dl_sf_typed")
    back = read_back(snowflake_db, "typed")
    assert back.num_rows == 3
    for name in TABLE.column_names:
        written = TABLE.column(name).to_pylist()
        read = back.column(name).to_pylist()
        if name == "doc":  # VARIANT: read as its JSON text
            read = [None if v is None else json.loads(v) for v in read]
        if name in NULL_TIMESTAMPS:
            [(nulls,)] = snowflake_db.query(f'SELECT COUNT(*) FROM "typed" WHERE "{name}" IS NULL')
            assert nulls == 1, name
            written, read = written[:2], read[:2]
        assert checksum(read) == checksum(written), name
    # Exact decimals come back as decimals of the same scale, not floats.
    assert back.schema.field("exact").type == pa.decimal128(38, 9)
    assert back.schema.field("instant").type == pa.timestamp("us", tz="UTC")


def test_column_types_in_snowflake() -> None:
    types = {field.name: snowflake_type(field) for field in TABLE.schema}
    assert types == {
        "id": "NUMBER(38,0)",
        "big": "NUMBER(38,0)",
        "exact": "NUMBER(38,9)",
        "ratio": "FLOAT",
        "text": "VARCHAR",
        "flag": "BOOLEAN",
        "day": "DATE",
        "clock": "TIME(6)",
        "naive": "TIMESTAMP_NTZ(6)",
        "instant": "TIMESTAMP_TZ(6)",
        "raw": "BINARY",
        "doc": "VARIANT",
    }


def test_a_decimal_wider_than_38_digits_is_refused() -> None:
    from dataloader import ConnectorError

    with pytest.raises(ConnectorError, match="38 digits"):
        snowflake_type(pa.field("wide", pa.decimal256(39, 0)))


def test_nested_values_are_staged_as_strict_json_text() -> None:
    from dataloader_snowflake.types import to_stageable

    def strict(text: str) -> Any:
        def refuse(name: str) -> Any:
            raise ValueError(f"{name} is not JSON")

        return json.loads(text, parse_constant=refuse)

    kind = pa.struct([("n", pa.decimal128(20, 2)), ("x", pa.float64())])
    column = pa.array([{"n": Decimal("12345678901234567.89"), "x": float("nan")}, None], type=kind)
    [texts] = to_stageable(pa.record_batch({"doc": column})).columns
    assert texts.type == pa.string()
    first, second = texts.to_pylist()
    assert second is None
    assert strict(first) == {"n": 12345678901234567.89, "x": None}
    assert '"n":12345678901234567.89' in first.replace(" ", "")  # the exact digits
