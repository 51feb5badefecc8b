"""Connection settings shared by the Postgres connector and state backend."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from dataloader.connectors import SOURCE_ONLY, TableOrQueryConfig


class PostgresConnection(BaseModel):
    """Where the server is: `url`, or `host`/`port`/`database`/`user`/`password`, plus options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: SecretStr | None = None
    host: str | None = None
    port: int = 5432
    database: str | None = None
    user: str | None = None
    password: SecretStr | None = None
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = (
        None
    )
    connect_timeout: int = 10
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _url_or_host(self) -> PostgresConnection:
        if self.url is None and not self.host:
            raise ValueError("give `url` or `host` (with `database`, `user`, `password`)")
        return self

    def describe(self) -> str:
        """host:port/database, for error messages: never the password."""
        if self.url is not None:
            from sqlalchemy.engine import make_url

            url = make_url(self.url.get_secret_value())
            return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"
        return f"{self.host}:{self.port}/{self.database or ''}"

    def sqlalchemy_url(self) -> Any:
        from sqlalchemy.engine import URL, make_url

        if self.url is not None:
            url = make_url(self.url.get_secret_value())
            if url.drivername in ("postgres", "postgresql"):
                url = url.set(drivername="postgresql+psycopg2")
        else:
            url = URL.create(
                "postgresql+psycopg2",
                username=self.user,
                password=self.password.get_secret_value() if self.password else None,
                host=self.host,
                port=self.port,
                database=self.database,
            )
        query = {key: str(value) for key, value in self.options.items()}
        if self.sslmode:
            query["sslmode"] = self.sslmode
        query.setdefault("connect_timeout", str(self.connect_timeout))
        query.setdefault("application_name", "dataloader")
        return url.update_query_dict(query)


class PostgresConfig(PostgresConnection, TableOrQueryConfig):
    """The `postgres` connector: a connection, and a `table` or (sources) a `query`.

    :param where: an extra SQL condition for reads, combined with the incremental window.
    :param partition_column: with `runtime.parallelism` > 1, read ranges of this numeric or
        time column on separate connections (the cursor column, if the read is incremental).
        Without it, a table is split by physical pages (`ctid` ranges).
    :param partitions: how many ranges (default: `runtime.parallelism`).
    :param unconstrained_numeric: how `numeric` without precision is read: `decimal`
        (decimal128(38, 9); values needing more digits fail loudly), `string` or `float`.
    :param codec: how rows cross COPY: `binary` (the `dataloader-rust` accelerator), `csv`
        (pure Python), or `auto` (binary when the accelerator is installed).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    where: str | None = Field(default=None, json_schema_extra=SOURCE_ONLY)
    partition_column: str | None = Field(default=None, json_schema_extra=SOURCE_ONLY)
    partitions: int | None = Field(default=None, ge=1, le=256, json_schema_extra=SOURCE_ONLY)
    unconstrained_numeric: Literal["decimal", "string", "float"] = Field(
        default="decimal", json_schema_extra=SOURCE_ONLY
    )
    codec: Literal["auto", "binary", "csv"] = "auto"
