"""`dataloader.sql.database_error`: a driver's error as the `ConnectorError` SQL connectors raise."""

from __future__ import annotations

from dataloader.errors import ConnectorError
from dataloader.secrets import register_secret
from dataloader.sql import database_error


class DriverError(Exception):
    pass


def test_names_the_system_action_table_server_and_the_first_line_of_the_message() -> None:
    exc = DriverError("relation does not exist\nLINE 1: SELECT * FROM t\n        ^")
    error = database_error(
        "Postgres", "read", exc, role="source", table="public.t", server="pg at h:5432/db"
    )
    assert isinstance(error, ConnectorError)
    assert error.problem.message.splitlines()[0] == (
        "Postgres read failed on public.t at pg at h:5432/db: relation does not exist"
    )
    assert "LINE 1" not in str(error)
    assert error.context["key"] == "source.table"


def test_a_query_is_named_as_such_and_keyed_by_the_roles_query() -> None:
    error = database_error(
        "MySQL", "read", DriverError("boom"), role="source", table=None, server="s"
    )
    assert "MySQL read failed on query at s: boom" in str(error)
    assert error.context["key"] == "source.query"


def test_a_failed_connect_is_keyed_by_the_section() -> None:
    error = database_error(
        "Redshift", "connect", DriverError("refused"), role="destination", table="dw.t", server="s"
    )
    assert error.context["key"] == "destination"


def test_where_names_the_table_the_statement_was_on() -> None:
    error = database_error(
        "SQL",
        "state read",
        DriverError("no such table"),
        role="destination",
        table="t",
        server="s",
        where="_dataloader_state",
    )
    assert "SQL state read failed on _dataloader_state at s: no such table" in str(error)
    assert error.context["key"] == "destination.table"


def test_an_empty_message_gives_the_errors_type_name() -> None:
    error = database_error(
        "MySQL", "commit", DriverError("  "), role="source", table="t", server="s"
    )
    assert error.problem.message.startswith("MySQL commit failed on t at s: DriverError")


def test_message_replaces_the_errors_text() -> None:
    exc = DriverError("SQL compilation error (full text with the statement)")
    error = database_error(
        "Snowflake",
        "read",
        exc,
        role="source",
        table="t",
        server="s",
        message="Object 'T' does not exist\nmore",
    )
    assert error.problem.message.startswith(
        "Snowflake read failed on t at s: Object 'T' does not exist"
    )
    assert "compilation" not in str(error)
    assert "more" not in str(error)


def test_statement_is_shown_on_its_own_line() -> None:
    error = database_error(
        "Redshift",
        "statement",
        DriverError("syntax error"),
        role="destination",
        table="t",
        server="s",
        statement="DELETE FROM t",
    )
    assert error.problem.message.splitlines()[-1] == "while running: DELETE FROM t"


def test_a_known_secret_in_the_drivers_message_is_masked() -> None:
    register_secret("pw-database-error-9")
    exc = DriverError("authentication failed for password pw-database-error-9")
    error = database_error("MySQL", "connect", exc, role="source", table="t", server="s")
    assert "pw-database-error-9" not in str(error)
