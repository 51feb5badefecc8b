"""Settings of the `mysql` connector (MySQL and MariaDB)."""

from __future__ import annotations

from pydantic import ConfigDict, Field, SecretStr

from dataloader.connectors import SOURCE_ONLY, TableOrQueryConfig


class MySQLConfig(TableOrQueryConfig):
    """The `mysql` connector: where the server is, and a `table` or (sources) a `query`.

    :param host: the server's host name or address.
    :param port: its TCP port.
    :param database: the database (schema) the table is in and the state table goes to.
    :param user: the user to log in as.
    :param password: that user's password (never logged or shown).
    :param ssl_ca: a CA certificate file: connect over TLS and verify the server against it.
    :param ssl_verify_identity: with `ssl_ca`, also check the server's host name.
    :param connect_timeout: seconds to wait for the connection.
    :param where: an extra SQL condition for reads, combined with the incremental window.
    :param partition_column: with `runtime.parallelism` > 1, read ranges of this numeric,
        date or time column on separate connections (the cursor column, if incremental).
    :param partitions: how many ranges (default: `runtime.parallelism`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str
    port: int = Field(default=3306, ge=1, le=65535)
    database: str
    user: str
    password: SecretStr | None = None
    ssl_ca: str | None = None
    ssl_verify_identity: bool = False
    connect_timeout: int = Field(default=10, ge=1)
    where: str | None = Field(default=None, json_schema_extra=SOURCE_ONLY)
    partition_column: str | None = Field(default=None, json_schema_extra=SOURCE_ONLY)
    partitions: int | None = Field(default=None, ge=1, le=256, json_schema_extra=SOURCE_ONLY)

    def describe(self) -> str:
        """host:port/database, for error messages: never the password."""
        return f"{self.host}:{self.port}/{self.database}"
