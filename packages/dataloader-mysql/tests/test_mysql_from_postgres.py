"""PostgreSQL → MariaDB: Postgres types land in MariaDB with their values (exact decimals,
instants in UTC, JSON, utf8mb4 text, bytes), then read back from MariaDB equal."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from dataloader_postgres.testing import PostgresServer

ROWS = [
    (
        1,
        Decimal("12345678901234567890.123456789"),
        datetime(2024, 3, 1, 12, 30, 0, 654321, tzinfo=UTC),
        '{"k": [1, "two", null]}',
        "Grüße 😀",
        b"\x00\xff\t\n",
        True,
    ),
    (2, None, None, None, None, None, None),
]


def test_postgres_rows_land_in_mariadb_exactly(
    my: Any, run: Any, postgres_server: PostgresServer, postgres_database: str
) -> None:
    pg = postgres_server.connect(postgres_database)
    pg.autocommit = True
    cursor = pg.cursor()
    cursor.execute(
        "CREATE TABLE src (id int PRIMARY KEY, amount numeric(29,9), at timestamptz, "
        "doc jsonb, name text, raw bytea, flag boolean)"
    )
    cursor.executemany("INSERT INTO src VALUES (%s, %s, %s, %s, %s, %s, %s)", ROWS)
    pg.close()
    source = {"type": "postgres", **postgres_server.connection_settings(postgres_database)}
    run(
        {
            "name": "pg_to_mysql",
            "source": {**source, "table": "src"},
            "destination": my.destination("dst", "merge", merge_keys=["id"]),
        }
    )
    types = my.column_types("dst")
    assert types["amount"] == "decimal(29,9)" and types["at"] == "datetime(6)"
    assert types["doc"] == "longtext"  # MariaDB's JSON: LONGTEXT with a json_valid check
    rows = my.query(
        "SELECT id, amount, at, JSON_EXTRACT(doc, '$.k[1]'), name, raw, flag FROM dst ORDER BY id"
    )
    assert rows == [
        (
            1,
            ROWS[0][1],
            datetime(2024, 3, 1, 12, 30, 0, 654321),
            '"two"',
            "Grüße 😀",
            b"\x00\xff\t\n",
            1,
        ),
        (2, None, None, None, None, None, None),
    ]
    # And back out of MariaDB: the instants are UTC again, the JSON tagged.
    run(
        {
            "name": "mysql_to_mysql",
            "source": my.source(table="dst"),
            "destination": my.destination("again", "append"),
        }
    )
    assert my.query("SELECT * FROM again ORDER BY id") == my.query("SELECT * FROM dst ORDER BY id")
    assert my.column_types("again") == types
