"""A read stopped before its end (the consumer closing the source's iterator) cancels its COPY
before ending its transaction: the server stops producing rows and the connection is usable
at once, rather than the rollback reading the whole rest of the stream first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from dataloader import State
from dataloader.context import RunContext
from dataloader_postgres import PostgresConfig
from dataloader_postgres.connector import PostgresConnector

ROWS = 500_000


@pytest.mark.parametrize("codec", ["csv", "auto"])  # auto: binary when the accelerator is in
def test_a_read_stopped_after_its_first_batch_cancels_the_copy(pg: Any, codec: str) -> None:
    pg.execute("CREATE SEQUENCE produced")
    # Every row the server produces draws from the sequence (not undone by a rollback): its
    # last value counts the rows the COPY produced before it stopped.
    # Rows of 200 bytes: the stream (100 MB) is far longer than the pipe, the sockets and the
    # CSV reader's read-ahead (a few 8 MiB blocks) hold.
    query = (
        "SELECT g AS id, nextval('produced') AS n, repeat('x', 200) AS pad"
        f" FROM generate_series(1, {ROWS}) AS g"
    )
    source = PostgresConnector(PostgresConfig(**pg.settings(), query=query, codec=codec))
    source.open(
        RunContext(
            recipe_name="stop", run_id="stop-1", started_at=datetime.now(UTC), batch_size=1000
        )
    )
    try:
        batches = source.read_batches(State())
        assert next(batches).to_arrow().num_rows == 1000
        batches.close()  # type: ignore[attr-defined]
        assert source.conn is not None
        cursor = source.conn.cursor()
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
        source.conn.rollback()
    finally:
        source.close()
    # Without the cancel the rollback would have read the stream to its end.
    assert 1000 <= pg.scalar("SELECT last_value FROM produced") < ROWS
