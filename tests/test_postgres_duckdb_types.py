"""Postgres `uuid`, `json` and `jsonb` keep their kind through DuckDB: they land as DuckDB's
`UUID` and `JSON` (not VARCHAR), and a DuckDB table of those types loads back into Postgres as
`uuid` and `json` columns, every value unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from dataloader.testing import local_runner
from dataloader_postgres.testing import PostgresServer

ROWS = [
    (
        1,
        "3b241101-e2bb-4255-8caf-4136c566a962",
        '{"b":  1, "a": [1, 2]}',  # json keeps its text: spaces, key order
        '{"z": {"y": null}, "a": "é"}',
        ["3b241101-e2bb-4255-8caf-4136c566a962", "00000000-0000-0000-0000-000000000000"],
        ['{"k": 1}', "[]"],
    ),
    (2, None, None, None, None, None),
    (3, "ffffffff-ffff-ffff-ffff-ffffffffffff", "[]", '"text"', [None], ["null"]),
]
DUCKDB_TYPES = {
    "id": "INTEGER",
    "u": "UUID",
    "j": "JSON",
    "jb": "JSON",
    "ua": "UUID[]",
    "ja": "JSON[]",
}


@pytest.fixture
def pg(postgres_server: PostgresServer, postgres_database: str) -> Any:
    connection = postgres_server.connect(postgres_database)
    connection.autocommit = True
    yield connection
    connection.close()


def execute(connection: Any, sql: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql)


def query(connection: Any, sql: str) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def as_text(connection: Any, table: str) -> list[tuple[Any, ...]]:
    """Every value as Postgres prints it (json and jsonb text, uuid text, arrays as text[])."""
    return query(
        connection,
        f"SELECT id, u::text, j::text, jb::text, ua::text[], ja::text[] FROM {table} ORDER BY id",
    )


def test_uuid_and_json_round_trip_postgres_duckdb_postgres(
    tmp_path: Path, postgres_server: PostgresServer, postgres_database: str, pg: Any
) -> None:
    settings = postgres_server.connection_settings(postgres_database)
    execute(pg, "CREATE TABLE src (id int, u uuid, j json, jb jsonb, ua uuid[], ja jsonb[])")
    with pg.cursor() as cursor:
        cursor.executemany("INSERT INTO src VALUES (%s, %s, %s, %s, %s::uuid[], %s::jsonb[])", ROWS)
    expected = as_text(pg, "src")
    warehouse = str(tmp_path / "warehouse.duckdb")
    run = local_runner(tmp_path / "state")

    run(
        {
            "name": "pg_to_duckdb",
            "source": {"type": "postgres", **settings, "table": "src"},
            "destination": {"type": "duckdb", "database": warehouse, "table": "copied"},
        }
    )
    with duckdb.connect(warehouse) as connection:
        types = dict(
            connection.execute("SELECT column_name, column_type FROM (DESCRIBE copied)").fetchall()
        )
        assert types == DUCKDB_TYPES
        values = connection.execute(
            "SELECT id, u::VARCHAR, j::VARCHAR, jb::VARCHAR, ua::VARCHAR[], ja::VARCHAR[] "
            "FROM copied ORDER BY id"
        ).fetchall()
    assert [tuple(row) for row in values] == expected

    run(
        {
            "name": "duckdb_to_pg",
            "source": {"type": "duckdb", "database": warehouse, "table": "copied"},
            "destination": {"type": "postgres", **settings, "table": "back"},
        }
    )
    back_types = dict(
        query(
            pg,
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'back'::regclass AND attnum > 0 ORDER BY attnum",
        )
    )
    assert back_types == {
        "id": "integer",
        "u": "uuid",
        "j": "json",
        "jb": "json",
        "ua": "uuid[]",
        "ja": "json[]",
    }
    assert as_text(pg, "back") == expected


def test_a_uuid_merge_key_matches_rows_already_in_duckdb(
    tmp_path: Path, postgres_server: PostgresServer, postgres_database: str, pg: Any
) -> None:
    settings = postgres_server.connection_settings(postgres_database)
    execute(pg, "CREATE TABLE src (u uuid, doc jsonb)")
    execute(
        pg,
        "INSERT INTO src VALUES ('3b241101-e2bb-4255-8caf-4136c566a962', '{\"v\": 1}'), "
        "('00000000-0000-0000-0000-000000000001', '{\"v\": 1}')",
    )
    warehouse = str(tmp_path / "warehouse.duckdb")
    recipe = {
        "name": "uuid_merge",
        "source": {"type": "postgres", **settings, "table": "src"},
        "destination": {
            "type": "duckdb",
            "database": warehouse,
            "table": "docs",
            "write_mode": "merge",
            "merge_keys": ["u"],
        },
    }
    run = local_runner(tmp_path / "state")
    run(recipe)
    execute(pg, "UPDATE src SET doc = '{\"v\": 2}'")
    run(recipe)
    with duckdb.connect(warehouse) as connection:
        assert connection.execute(
            "SELECT u::VARCHAR, doc::VARCHAR, typeof(u), typeof(doc) FROM docs ORDER BY u"
        ).fetchall() == [
            ("00000000-0000-0000-0000-000000000001", '{"v": 2}', "UUID", "JSON"),
            ("3b241101-e2bb-4255-8caf-4136c566a962", '{"v": 2}', "UUID", "JSON"),
        ]
