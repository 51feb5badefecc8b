"""The generic `sql` connector on a dialect with named parameters and zoned timestamps
(`postgresql+psycopg2://`, the real Postgres server of the tests): types round-trip with the
SQLite checksums, instants keep their zone, and merge and overwrite run with transactional DDL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pytest
from sql_support import read_table
from test_sql_types import CASTS, ROWS, checksums


@pytest.fixture
def pg_url(postgres_server: Any, postgres_database: str) -> str:
    s = postgres_server.connection_settings(postgres_database)
    password = quote(s["password"], safe="")
    return f"postgresql+psycopg2://{s['user']}:{password}@{s['host']}:{s['port']}/{s['database']}"


def test_types_round_trip_through_postgres(
    run: Any, rows_source: str, pg_url: str, sqlite_db: Any
) -> None:
    for url in (pg_url, sqlite_db.url):
        recipe = {
            "name": "types",
            "source": {"type": rows_source, "batches": [ROWS[:1], ROWS[1:]]},
            "transform": {"steps": [{"type": "cast", "columns": CASTS}]},
            "destination": {"type": "sql", "url": url, "table": "typed"},
        }
        assert run(recipe).status == "success"
    loaded, expected = read_table(pg_url, "typed"), read_table(sqlite_db.url, "typed")
    assert loaded.schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert loaded.schema.types == expected.schema.types
    assert checksums(loaded) == checksums(expected)
    [row] = [r for r in loaded.to_pylist() if r["id"] == 2]
    assert row["at"] == datetime(2038, 1, 19, 1, 14, 8, tzinfo=UTC)


@pytest.mark.parametrize("mode", ["merge", "overwrite"])
def test_merge_and_overwrite_into_postgres(
    run: Any, rows_source: str, pg_url: str, mode: str
) -> None:
    destination: dict[str, Any] = {
        "type": "sql",
        "url": pg_url,
        "table": "public.t",
        "write_mode": mode,
    }
    if mode == "merge":
        destination["merge_keys"] = ["id"]
    for batches in (
        [[{"id": 0, "v": "a"}, {"id": 1, "v": "a"}]],
        [[{"id": 1, "v": "b"}, {"id": 2, "v": "b"}]],
    ):
        assert (
            run(
                {
                    "name": f"pg_{mode}",
                    "source": {"type": rows_source, "batches": batches},
                    "destination": destination,
                }
            ).status
            == "success"
        )
    rows = read_table(pg_url, "public.t").sort_by("id").to_pylist()
    expected = [(0, "a"), (1, "b"), (2, "b")] if mode == "merge" else [(1, "b"), (2, "b")]
    assert [(r["id"], r["v"]) for r in rows] == expected


def test_postgres_types_of_its_own_read_as_documented(
    postgres_server: Any, postgres_database: str, pg_url: str
) -> None:
    connection = postgres_server.connect(postgres_database)
    connection.autocommit = True
    connection.cursor().execute(
        "CREATE TABLE native (i interval, j jsonb, u uuid, n numeric, a text[], t timestamptz, b bytea);"
        "INSERT INTO native VALUES ('1 day 2 hours', '{\"k\": [1, 2]}', "
        "'12345678-1234-5678-1234-567812345678', 1.5, ARRAY['x', 'y'], "
        "'2024-01-01 12:00:00+02', '\\x00ff')"
    )
    connection.close()
    table = read_table(pg_url, "native")
    assert table.schema.types == [
        pa.duration("us"),
        pa.string(),
        pa.string(),
        pa.decimal128(38, 9),
        pa.string(),
        pa.timestamp("us", tz="UTC"),
        pa.binary(),
    ]
    [row] = table.to_pylist()
    assert row["i"] == timedelta(days=1, hours=2)
    assert json.loads(row["j"]) == {"k": [1, 2]}
    assert row["u"] == "12345678-1234-5678-1234-567812345678"
    assert row["n"] == Decimal("1.5")
    assert row["a"] == '["x", "y"]'  # an array: a type without an Arrow rule, as text
    assert row["t"] == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert row["b"] == b"\x00\xff"


def test_a_lost_connection_is_transient() -> None:
    import sqlalchemy as sa

    from dataloader.errors import ConnectorError
    from dataloader_sql import SqlConfig, SqlConnector

    connector = SqlConnector(SqlConfig(url="sqlite://", table="t"))
    lost = sa.exc.OperationalError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)
    failed = sa.exc.OperationalError("SELECT 1", {}, Exception("syntax"))
    wrapped = ConnectorError("SQL read failed")
    wrapped.__cause__ = lost
    assert connector.is_transient(lost) and connector.is_transient(wrapped)
    assert not connector.is_transient(failed)


def test_a_nan_cursor_is_seen_by_the_engine_also_under_an_end_value(
    run: Any, pg_url: str, sqlite_db: Any
) -> None:
    import sqlalchemy as sa

    from dataloader import EngineError

    engine = sa.create_engine(pg_url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE src (id int PRIMARY KEY, score float8)"))
        connection.execute(sa.text("INSERT INTO src VALUES (1, 1.0), (2, 2.0)"))
    recipe = {
        "name": "scores",
        "source": {
            "type": "sql",
            "url": pg_url,
            "table": "src",
            "incremental": {"cursor_column": "score", "end_value": 10.0},
        },
        "destination": sqlite_db.destination("dst"),
    }
    assert run(recipe).rows_written == 2
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO src VALUES (3, 'NaN'), (4, 4.0)"))
    engine.dispose()

    with pytest.raises(EngineError) as raised:
        run(recipe)
    assert "'score'" in str(raised.value) and "on_missing_cursor" in str(raised.value)
    assert sqlite_db.query("SELECT id FROM dst ORDER BY id") == [(1,), (2,)]
