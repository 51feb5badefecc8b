"""Connecting to MySQL or MariaDB with PyMySQL, and SQL text helpers."""

from __future__ import annotations

from typing import Any

from dataloader.sql import TableName
from dataloader_mysql.config import MySQLConfig

# Client-side codes of a lost or unusable connection, and server codes worth a retry.
TRANSIENT_CODES = {
    1040,  # too many connections
    1205,  # lock wait timeout
    1213,  # deadlock
    2003,  # cannot connect
    2006,  # server has gone away
    2013,  # lost connection during query
}
STRICT_MODE = "STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"


def quote(name: str) -> str:
    """`name` as a backquoted MySQL identifier; an embedded backquote is doubled."""
    if "\x00" in name:
        raise ValueError("an identifier cannot contain a NUL character")
    return "`" + name.replace("`", "``") + "`"


def table_sql(table: TableName) -> str:
    """`database`.`table`, or `table` in the connection's database."""
    return f"{quote(table.schema)}.{quote(table.name)}" if table.schema else quote(table.name)


def connect(config: MySQLConfig, *, raw: bool = False) -> Any:
    """A PyMySQL connection in autocommit mode, with the session in UTC.

    `raw`: values arrive as the server's text (bytes for binary columns): readers let Arrow
    convert whole columns. Writers also get strict SQL mode (bad values fail, never warn), and
    `LOAD DATA LOCAL` of the files they allow (`GuardedConnection.allow_local_file`) only.
    """
    from pymysql.converters import conversions

    from dataloader_mysql.infile import GuardedConnection

    options: dict[str, Any] = {}
    if raw:  # no decoders (int keys); the encoders (type keys) still quote parameters
        options["conv"] = {k: v for k, v in conversions.items() if not isinstance(k, int)}
    if config.ssl_ca:
        options["ssl_ca"] = config.ssl_ca
        options["ssl_verify_cert"] = True
        options["ssl_verify_identity"] = config.ssl_verify_identity
    connection = GuardedConnection(
        host=config.host,
        port=config.port,
        user=config.user,
        password=config.password.get_secret_value() if config.password else "",
        database=config.database,
        charset="utf8mb4",
        autocommit=True,
        local_infile=not raw,  # reader connections never send a file
        connect_timeout=config.connect_timeout,
        **options,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION time_zone = '+00:00'")
            if not raw:
                cursor.execute(f"SET SESSION sql_mode = '{STRICT_MODE}'")
    except Exception:
        connection.close()
        raise
    return connection


def is_transient(error: BaseException) -> bool:
    """A lost connection, a deadlock or a lock timeout: worth a retry."""
    import pymysql

    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, pymysql.err.MySQLError) and cause.args:
            code = cause.args[0]
            if isinstance(code, int) and code in TRANSIENT_CODES:
                return True
        if isinstance(cause, pymysql.err.InterfaceError):
            return True
        cause = cause.__cause__
    return False
