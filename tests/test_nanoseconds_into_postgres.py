"""Nanosecond timestamps into Postgres, which keeps microseconds: digits it would round are an
error naming the column, never a silent change (`.9999996` became the next year, and two keys
one); whole microseconds load as they are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from e2e_support import write_recipe

from dataloader import ConnectorError, LocalStateBackend, from_yaml, run_recipe
from dataloader_postgres.testing import PostgresServer


def load(tmp_path: Path, server: PostgresServer, database: str, stamps: list[str]) -> Any:
    source = tmp_path / "src.duckdb"
    with duckdb.connect(str(source)) as connection:
        connection.execute("CREATE OR REPLACE TABLE src (id INTEGER, ts TIMESTAMP_NS)")
        for number, stamp in enumerate(stamps):
            connection.execute("INSERT INTO src VALUES (?, ?::TIMESTAMP_NS)", [number, stamp])
    recipe = write_recipe(
        tmp_path / "ns.yaml",
        {
            "name": "ns",
            "source": {"type": "duckdb", "database": str(source), "table": "src"},
            "destination": {
                "type": "postgres",
                **server.connection_settings(database),
                "table": "dest",
                "write_mode": "merge",
                "merge_keys": ["ts"],
            },
        },
    )
    return run_recipe(from_yaml(recipe), LocalStateBackend(tmp_path / ".state"))


def stored(server: PostgresServer, database: str) -> list[tuple]:
    connection = server.connect(database)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('dest') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return []
        cursor.execute("SELECT id, ts::text FROM dest ORDER BY id")
        rows = cursor.fetchall()
    connection.close()
    return rows


def test_sub_microsecond_digits_fail_naming_the_column(
    tmp_path: Path, postgres_server: PostgresServer, postgres_database: str
) -> None:
    stamps = ["2024-12-31 23:59:59.9999996", "2024-01-01 00:00:00.123456789"]

    with pytest.raises(ConnectorError) as raised:
        load(tmp_path, postgres_server, postgres_database, stamps)

    assert raised.value.problem.value == "ts"
    assert "2024-12-31T23:59:59.999999600" in str(raised.value)
    assert stored(postgres_server, postgres_database) == []


def test_whole_microseconds_load_exactly(
    tmp_path: Path, postgres_server: PostgresServer, postgres_database: str
) -> None:
    result = load(
        tmp_path, postgres_server, postgres_database, ["2024-12-31 23:59:59.999999", "1969-07-20"]
    )

    assert result.rows_written == 2
    assert stored(postgres_server, postgres_database) == [
        (0, "2024-12-31 23:59:59.999999"),
        (1, "1969-07-20 00:00:00"),
    ]
