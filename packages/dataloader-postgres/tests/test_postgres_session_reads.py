"""Reads that depend on what the database or the data is like: a database's own
`bytea_output`, numerics with a negative scale (Postgres 15), a row larger than the CSV
codec's block."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from dataloader import ConnectorError
from dataloader_postgres import PostgresConfig, PostgresConnector
from dataloader_postgres.codec import CSV_BLOCK, CsvCopyCodec
from dataloader_postgres.connection import connect


def read_all(pg: Any, query: str) -> pa.Table:
    config = PostgresConfig(**pg.settings(), query=query)
    connector = PostgresConnector(config)
    connector.conn = connect(config, role="source")
    try:
        plans = connector.plan_columns(query)
        batches = list(CsvCopyCodec().read(connector.conn, query, plans, 1000))
        return pa.Table.from_batches(batches, schema=pa.schema([p.field for p in plans]))
    finally:
        connector.conn.close()


def test_bytea_reads_the_same_when_the_database_prints_it_escaped(pg: Any) -> None:
    pg.execute(f"ALTER DATABASE \"{pg.database}\" SET bytea_output = 'escape'")
    table = read_all(pg, r"SELECT '\x00ff41'::bytea AS b, ARRAY['\x00ff'::bytea, '\x5c'] AS a")
    assert table.to_pylist() == [{"b": b"\x00\xffA", "a": [b"\x00\xff", b"\\"]}]


def test_a_negative_scale_numeric_is_read_as_whole_numbers(pg: Any) -> None:
    pg.execute("CREATE TABLE rounded (n numeric(5,-2), ns numeric(5,-2)[])")
    pg.execute("INSERT INTO rounded VALUES (12345, ARRAY[99999, NULL]), (NULL, '{}')")
    table = read_all(pg, "SELECT * FROM rounded")
    assert table.schema.field("n").type == pa.decimal128(7, 0)
    assert table.schema.field("ns").type == pa.list_(pa.decimal128(7, 0))
    assert table.to_pylist() == [
        {"n": Decimal(12300), "ns": [Decimal(100000), None]},
        {"n": None, "ns": []},
    ]


def test_a_row_larger_than_the_csv_block_is_a_clear_error(pg: Any) -> None:
    query = f"SELECT g AS id, repeat('x', {2 * CSV_BLOCK}) AS big FROM generate_series(1, 3) g"
    with pytest.raises(ConnectorError) as caught:
        read_all(pg, query)
    message = str(caught.value)
    assert "larger than the CSV codec's" in message and "codec: binary" in message
