"""Identifiers that need quoting, names that look like SQL, connection errors that never show the
password, and the Postgres state backend (state in a table, one run at a time)."""

from __future__ import annotations

import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dataloader import ConnectorError, RecipeError, RecipeLoader, StateError, run_recipe
from dataloader_postgres.state import PostgresStateBackend, PostgresStateConfig
from dataloader_postgres.testing import free_port

T0 = datetime(2024, 1, 1, tzinfo=UTC)
WRONG_PASSWORD = "Wr0ng-Pa55word-9f3c"


# -- identifiers ---------------------------------------------------------------------------
def test_reserved_words_quotes_and_spaces_in_identifiers(pg: Any, run: Any) -> None:
    pg.execute('CREATE TABLE "select" ("from" int, "Group By" timestamptz, "a""b c" text)')
    rows = [(i, T0 + timedelta(minutes=i // 2), f"v{i}") for i in range(1, 7)]
    pg.executemany('INSERT INTO "select" VALUES (%s, %s, %s)', rows)
    recipe = {
        "name": "quoted",
        "source": pg.source(table="select", incremental={"cursor_column": "Group By"}),
        "destination": pg.destination(
            '"Weird Schema"."My ""Table"""', "merge", merge_keys=["from"]
        ),
        "runtime": {"batch_size": 2},
    }
    run(recipe)
    pg.execute(
        "INSERT INTO \"select\" VALUES (2, %s, 'v2 new'), (7, %s, 'v7')",
        (T0 + timedelta(hours=1), T0 + timedelta(hours=1)),
    )
    run(recipe)  # with a stored cursor on "Group By"
    relation = pg.query(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relname LIKE 'My%' AND c.relkind = 'r'"
    )
    assert relation == [("Weird Schema", 'My "Table"')]
    target = '"Weird Schema"."My ""Table"""'
    assert list(pg.column_types(target)) == ["from", "Group By", 'a"b c']
    assert pg.query(f'SELECT "from", "a""b c" FROM {target} ORDER BY "from"') == [
        (1, "v1"),
        (2, "v2 new"),
        (3, "v3"),
        (4, "v4"),
        (5, "v5"),
        (6, "v6"),
        (7, "v7"),
    ]
    assert pg.exists('"Weird Schema"._dataloader_state')


@pytest.mark.parametrize("mode", ["append", "overwrite", "merge"])
def test_a_table_name_that_looks_like_sql_is_one_identifier(pg: Any, run: Any, mode: str) -> None:
    pg.execute("CREATE TABLE victim (id int)")
    pg.execute("INSERT INTO victim VALUES (1)")
    pg.execute("CREATE TABLE src (id int, note text)")
    pg.execute("INSERT INTO src VALUES (1, 'a'), (2, 'b')")
    extra = {"merge_keys": ["id"]} if mode == "merge" else {}
    name = "x; DROP TABLE victim"
    run(
        {
            "name": f"inject_{mode}",
            "source": pg.source(table="src"),
            "destination": pg.destination(name, mode, **extra),
        }
    )
    run(
        {
            "name": f"inject_back_{mode}",
            "source": pg.source(table=name),
            "destination": pg.destination("copy_back", mode, **extra),
        }
    )
    assert pg.query("SELECT id FROM victim") == [(1,)]
    assert name in pg.tables()
    assert pg.query('SELECT id, note FROM "x; DROP TABLE victim" ORDER BY id') == [
        (1, "a"),
        (2, "b"),
    ]
    assert pg.query("SELECT id, note FROM copy_back ORDER BY id") == [(1, "a"), (2, "b")]


def test_an_unbalanced_quote_in_a_table_name_is_a_recipe_error(pg: Any, write_recipe: Any) -> None:
    pg.execute("CREATE TABLE victim (id int)")
    path = write_recipe(
        {
            "name": "bad_name",
            "source": pg.source(table='victim"; DROP TABLE victim; --'),
            "destination": pg.destination("dst"),
        }
    )
    with pytest.raises(RecipeError, match="not a table name"):
        RecipeLoader().load(path)
    assert pg.exists("victim")


# -- errors never show the password ---------------------------------------------------------
def _all_text(exc: BaseException) -> str:
    parts = [str(exc), repr(exc.args), repr(getattr(exc, "context", {}))]
    parts += traceback.format_exception(exc)
    return "\n".join(parts)


def _failing_recipe(pg: Any, **connection: Any) -> dict[str, Any]:
    settings = {**pg.settings(), **connection}
    return {
        "name": "unreachable",
        "source": {"type": "postgres", **settings, "table": "src"},
        "destination": {"type": "postgres", **settings, "table": "dst"},
        "runtime": {"retries": 0},  # the message is under test, not the retry policy
    }


def test_wrong_password_names_the_server_and_hides_the_password(pg: Any, run: Any) -> None:
    with pytest.raises(ConnectorError) as caught:
        run(_failing_recipe(pg, password=WRONG_PASSWORD))
    message = str(caught.value)
    assert f"127.0.0.1:{pg.server.port}/{pg.database}" in message
    assert "password authentication failed" in message
    assert WRONG_PASSWORD not in _all_text(caught.value)
    assert pg.server.password not in _all_text(caught.value)


def test_wrong_password_in_a_url_is_hidden_too(pg: Any, run: Any) -> None:
    url = f"postgresql://postgres:{WRONG_PASSWORD}@127.0.0.1:{pg.server.port}/{pg.database}"
    recipe = {
        "name": "by_url",
        "source": {"type": "postgres", "url": url, "table": "src"},
        "destination": {"type": "postgres", "url": url, "table": "dst"},
        "runtime": {"retries": 0},
    }
    with pytest.raises(ConnectorError) as caught:
        run(recipe)
    assert f"127.0.0.1:{pg.server.port}/{pg.database}" in str(caught.value)
    assert WRONG_PASSWORD not in _all_text(caught.value)


def test_unreachable_port_is_a_connector_error(pg: Any, run: Any) -> None:
    port = free_port()
    with pytest.raises(ConnectorError) as caught:
        run(_failing_recipe(pg, port=port, connect_timeout=3))
    assert f"127.0.0.1:{port}/{pg.database}" in str(caught.value)
    assert pg.server.password not in _all_text(caught.value)


def test_a_failed_read_names_the_server_not_the_password(pg: Any, run: Any) -> None:
    with pytest.raises(ConnectorError) as caught:
        run(_failing_recipe(pg))  # connects fine; table `src` does not exist
    assert f"127.0.0.1:{pg.server.port}/{pg.database}" in str(caught.value)
    assert "src" in str(caught.value)
    assert pg.server.password not in _all_text(caught.value)


# -- state backend -------------------------------------------------------------------------
def test_postgres_state_backend_stores_state_in_a_table(
    pg: Any, write_recipe: Any, tmp_path: Path
) -> None:
    pg.execute("CREATE TABLE src (id int, at timestamptz)")
    pg.execute("INSERT INTO src SELECT i, %s FROM generate_series(1, 5) i", (T0,))
    path = write_recipe(
        {
            "name": "pg_state",
            "source": pg.source(table="src", incremental={"cursor_column": "id"}),
            "destination": {"type": "duckdb", "database": str(tmp_path / "w.duckdb"), "table": "t"},
            "state": {"backend": "postgres", **pg.settings(), "table": "ops.loader_state"},
        }
    )
    pg.execute("CREATE SCHEMA ops")
    result = run_recipe(RecipeLoader().load(path))  # no backend given: the recipe's `state:`
    assert result.rows_written == 5
    rows = pg.query("SELECT recipe, state FROM ops.loader_state")
    assert [name for name, _ in rows] == ["pg_state"]
    state = rows[0][1]
    assert state["cursor_values"] == {"id": 5}
    assert state["checkpoints"][-1]["status"] == "success"  # the run history
    assert not (tmp_path / ".state").exists()


def test_postgres_state_backend_lock_keeps_runs_apart(pg: Any, write_recipe: Any) -> None:
    first = PostgresStateBackend(PostgresStateConfig(**pg.settings()))
    second = PostgresStateBackend(PostgresStateConfig(**pg.settings()))
    with first.lock("orders"):
        with pytest.raises(StateError, match="already running") as caught, second.lock("orders"):
            pass
        assert pg.server.password not in str(caught.value)
        with second.lock("customers"):  # another recipe is not blocked
            pass
        pg.execute("CREATE TABLE src (id int)")
        path = write_recipe(
            {
                "name": "orders",
                "source": pg.source(table="src"),
                "destination": pg.destination("dst"),
                "state": {"backend": "postgres", **pg.settings()},
            }
        )
        with pytest.raises(StateError, match="already running"):
            run_recipe(RecipeLoader().load(path))
    with second.lock("orders"):  # released with its holder
        pass


@pytest.mark.parametrize("codec", ["csv", "auto"])
def test_a_value_the_table_refuses_is_named_by_column_and_line(
    pg: Any, run: Any, rows_source: str, codec: str
) -> None:
    pg.execute("CREATE TABLE typed (id int, code uuid)")
    recipe = {
        "name": "refused",
        "source": {
            "type": rows_source,
            "batches": [
                [
                    {"id": 1, "code": "0b4c5c3e-4a38-4f4e-9d2e-0a0c0e5f2b11"},
                    {"id": 2, "code": "nope"},
                ]
            ],
        },
        "destination": pg.destination("typed", codec=codec),
    }
    with pytest.raises(ConnectorError) as caught:
        run(recipe)
    message = str(caught.value)
    assert 'invalid input syntax for type uuid: "nope"' in message
    assert "column code" in message and "line 2" in message
    assert pg.scalar("SELECT count(*) FROM typed") == 0
