"""Opening psycopg2 connections through SQLAlchemy, with errors that never show the password."""

from __future__ import annotations

from typing import Any

from dataloader import ConnectorError
from dataloader.secrets import register_secret
from dataloader_postgres.config import PostgresConnection

# Arrow strings are UTF-8, and so is every byte dataloader sends or parses over COPY: the
# server converts to and from the database's own encoding.
CLIENT_ENCODING = "UTF8"
_UTF8_NAMES = frozenset({"utf8", "utf-8", "unicode"})

SESSION_SETTINGS = (
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 3",
    "SET bytea_output = 'hex'",  # the CSV codec decodes bytea from hex, whatever the database says
)


def connect(settings: PostgresConnection, *, role: str) -> Any:
    """A DB-API connection (psycopg2) in a transaction, with session settings for COPY and the
    client encoding UTF8 whatever the database's encoding.

    :raises ConnectorError: naming host, port and database, never the password; or when the
        settings ask for a client encoding other than UTF8.
    """
    import psycopg2
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    if settings.password is not None:
        register_secret(settings.password.get_secret_value())
    url = settings.sqlalchemy_url()
    if url.password:
        register_secret(str(url.password))
    asked = url.query.get("client_encoding")
    if asked is not None and str(asked).lower() not in _UTF8_NAMES:
        raise ConnectorError(
            "dataloader reads and writes Postgres text as UTF-8; the server converts it to the "
            "database's encoding",
            key=f"{role}.options.client_encoding",
            value=asked,
            expected=CLIENT_ENCODING,
        )
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        connection = engine.raw_connection()
    except (sqlalchemy.exc.DBAPIError, psycopg2.Error) as exc:  # raw_connection() does not wrap
        reason = (
            str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            if str(getattr(exc, "orig", exc)).strip()
            else type(exc).__name__
        )
        raise ConnectorError(
            f"cannot connect to Postgres at {settings.describe()}: {reason}",
            key=f"{role}.host",
            context={"host": settings.describe()},
        ) from None
    connection.set_client_encoding(CLIENT_ENCODING)  # psycopg2 decodes with it too
    cursor = connection.cursor()
    for statement in SESSION_SETTINGS:
        cursor.execute(statement)
    connection.commit()
    return connection  # the pool's proxy: attributes reach the psycopg2 connection


_TRANSIENT_CODES = frozenset(
    {"40001", "40P01", "57P01", "57P02", "57P03", "08000", "08003", "08006", "08001", "53300"}
)
_TRANSIENT_MESSAGES = (
    "connection refused",
    "server closed the connection",
    "terminating connection",
    "could not receive data",
    "could not send data",
    "connection reset",
    "timeout expired",
    "ssl syscall",
    "the database system is starting up",
    "the database system is shutting down",
    "connection already closed",
)


def server_encoding(connection: Any) -> str:
    """The database's encoding (`LATIN1`, `UTF8`…), as the server reported it at connect."""
    return connection.get_parameter_status("server_encoding") or CLIENT_ENCODING


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: lost connections, shutdowns, serialization failures and
    deadlocks. Authentication and other permanent errors are not retried."""
    import psycopg2

    code = getattr(exc, "pgcode", None)
    if code:
        return code in _TRANSIENT_CODES
    if isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)):
        text = str(exc).lower()
        return any(marker in text for marker in _TRANSIENT_MESSAGES)
    return False
