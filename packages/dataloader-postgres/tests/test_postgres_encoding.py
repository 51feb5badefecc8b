"""A database whose encoding is not UTF-8 (LATIN1): text is converted by the server both ways,
never stored as mojibake, and a character the database cannot hold is an error naming the
table and column, never a silent replacement."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from dataloader import ConnectorError
from dataloader_postgres import PostgresConfig, PostgresConnector
from dataloader_postgres.connection import connect
from dataloader_postgres.state import PostgresStateBackend, PostgresStateConfig
from dataloader_postgres.testing import PostgresServer

LATIN1_WORDS = ["Zürich", "Ørsted", "façade «déjà» ½ ÿ", "plain"]


@pytest.fixture
def latin1(postgres_server: PostgresServer, pg: Any) -> Iterator[Any]:
    """A new LATIN1 database on the test server, with the helpers `pg` has for its own."""
    name = postgres_server.create_database(encoding="LATIN1")
    helper = type(pg)(postgres_server, name)
    try:
        yield helper
    finally:
        helper.close()


def _latin1_bytes(db: Any, sql: str) -> list[bytes]:
    """The values of `sql` (text) as the bytes the database stores, whatever the client encoding."""
    return [
        bytes(value)
        for (value,) in db.query(f"SELECT convert_to(v, 'LATIN1') FROM ({sql}) AS q(v)")
    ]


def test_text_written_into_a_latin1_database_is_stored_as_latin1(
    latin1: Any, run: Any, rows_source: str
) -> None:
    rows = [
        {"id": i, "name": word, "tags": [word, None], "doc": {"city": word}}
        for i, word in enumerate(LATIN1_WORDS)
    ]
    for mode, extra in (("append", {}), ("merge", {"merge_keys": ["id"]}), ("overwrite", {})):
        run(
            {
                "name": f"latin1_write_{mode}",
                "source": {"type": rows_source, "batches": [rows]},
                "destination": latin1.destination(f"dst_{mode}", mode, **extra),
            }
        )
        table = f"dst_{mode}"
        expected = [word.encode("latin-1") for word in LATIN1_WORDS]
        assert _latin1_bytes(latin1, f"SELECT name FROM {table} ORDER BY id") == expected
        assert _latin1_bytes(latin1, f"SELECT tags[1] FROM {table} ORDER BY id") == expected
        assert _latin1_bytes(latin1, f"SELECT doc->>'city' FROM {table} ORDER BY id") == expected


def test_a_latin1_database_is_read_into_arrow_as_unicode(latin1: Any, pg: Any, run: Any) -> None:
    latin1.execute("CREATE TABLE src (id int, name text, tags text[], label varchar(40))")
    for i, word in enumerate(LATIN1_WORDS):
        # Written as LATIN1 bytes, not through any client encoding.
        latin1.execute(
            "INSERT INTO src VALUES (%s, convert_from(%s, 'LATIN1'), "
            "ARRAY[convert_from(%s, 'LATIN1')], convert_from(%s, 'LATIN1'))",
            (i, *[word.encode("latin-1")] * 3),
        )
    config = PostgresConfig(**latin1.settings(), table="src")
    connector = PostgresConnector(config)
    connector.conn = connect(config, role="source")
    try:
        query = "SELECT * FROM src ORDER BY id"
        table = pa.Table.from_batches(
            list(connector.codec.read(connector.conn, query, connector.plan_columns(query), 100))
        )
    finally:
        connector.conn.close()
    assert table.column("name").to_pylist() == LATIN1_WORDS
    assert table.column("label").to_pylist() == LATIN1_WORDS
    assert table.column("tags").to_pylist() == [[word] for word in LATIN1_WORDS]

    # And through a run into a UTF-8 database.
    run(
        {
            "name": "latin1_read",
            "source": latin1.source(table="src"),
            "destination": pg.destination("copy"),
        }
    )
    assert pg.query("SELECT name, label, tags FROM copy ORDER BY id") == [
        (word, word, [word]) for word in LATIN1_WORDS
    ]


@pytest.mark.parametrize("mode", ["append", "merge", "overwrite"])
def test_a_character_latin1_cannot_hold_is_an_error_naming_the_column(
    latin1: Any, run: Any, rows_source: str, mode: str
) -> None:
    extra = {"merge_keys": ["id"]} if mode == "merge" else {}
    rows = [
        {"id": 1, "city": "Zürich", "price": "12 EUR"},
        {"id": 2, "city": "Köln", "price": "12 €"},
    ]
    with pytest.raises(ConnectorError) as caught:
        run(
            {
                "name": f"latin1_euro_{mode}",
                "source": {"type": rows_source, "batches": [rows]},
                "destination": latin1.destination("prices", mode, **extra),
            }
        )
    message = str(caught.value)
    assert "prices" in message
    assert "'price'" in message
    assert "€" in message
    assert "LATIN1" in message
    assert "row 1" in message
    assert not latin1.exists("prices")  # created in the transaction that was rolled back


def test_the_state_backend_keeps_text_cursors_in_a_latin1_database(latin1: Any) -> None:
    """The state backend's connection goes through the same `connect`: non-ASCII recipe names
    and cursor values are stored as LATIN1 text, and read back unchanged."""
    backend = PostgresStateBackend(PostgresStateConfig(**latin1.settings()))
    state = {"cursor_values": {"city": "Zürich"}, "watermarks": {}}
    backend.save("städte", state)
    assert backend.load("städte") == state
    stored = latin1.query(
        "SELECT convert_to(recipe, 'LATIN1'), convert_to(state->'cursor_values'->>'city', 'LATIN1') "
        "FROM _dataloader_recipe_state"
    )
    assert [(bytes(a), bytes(b)) for a, b in stored] == [("städte".encode("latin-1"), b"Z\xfcrich")]


def test_a_client_encoding_other_than_utf8_is_rejected(pg: Any, run: Any) -> None:
    pg.execute("CREATE TABLE src (id int)")
    with pytest.raises(ConnectorError) as caught:
        run(
            {
                "name": "latin1_client",
                "source": pg.source(table="src", options={"client_encoding": "LATIN1"}),
                "destination": pg.destination("dst"),
            }
        )
    message = str(caught.value)
    assert "source.options.client_encoding" in message
    assert "'LATIN1'" in message
    assert "expected UTF8" in message
    assert pg.server.password not in message
