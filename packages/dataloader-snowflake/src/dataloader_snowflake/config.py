"""The `snowflake` connector's settings: account, authentication, location, stage."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from dataloader.connectors import DESTINATION_ONLY, SOURCE_ONLY, TableOrQueryConfig


class InternalStage(BaseModel):
    """A temporary internal stage of the session: files go up with `PUT`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["internal"] = "internal"


class S3Stage(BaseModel):
    """An external S3 location: files are uploaded with boto3, then `COPY INTO … FROM 's3://…'`
    with `storage_integration` or with key credentials.

    :param url: `s3://bucket/prefix`.
    :param endpoint_url: the URL of an S3-compatible service this process uploads to and
        cleans up in, instead of AWS's own S3 endpoint for the region.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["s3"] = "s3"
    url: str
    storage_integration: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    region: str | None = None
    endpoint_url: str | None = None

    @model_validator(mode="after")
    def _check(self) -> S3Stage:
        if not self.url.startswith("s3://") or len(self.url) <= len("s3://"):
            raise ValueError(f"`url` must be s3://bucket/prefix, got {self.url!r}")
        if self.storage_integration is not None and not re.fullmatch(
            r"[A-Za-z_][A-Za-z0-9_$]*", self.storage_integration
        ):
            raise ValueError(
                f"`storage_integration` must be an unquoted Snowflake identifier, got "
                f"{self.storage_integration!r}"
            )
        if self.storage_integration is not None and (
            self.aws_access_key_id is not None
            or self.aws_secret_access_key is not None
            or self.aws_session_token is not None
        ):
            raise ValueError(
                "give `storage_integration` or the keys (`aws_access_key_id`, "
                "`aws_secret_access_key`), not both"
            )
        if (self.aws_access_key_id is None) != (self.aws_secret_access_key is None):
            raise ValueError(
                "give both `aws_access_key_id` and `aws_secret_access_key`, or neither"
            )
        return self

    def bucket_and_prefix(self) -> tuple[str, str]:
        bucket, _, prefix = self.url[len("s3://") :].partition("/")
        return bucket, prefix.strip("/")


class SnowflakeConfig(TableOrQueryConfig):
    """The `snowflake` connector: an account, password or key-pair authentication, a location
    (`database`, `schema`), and a `table` or (sources) a `query`.

    :param private_key: an unencrypted or encrypted PEM private key (key-pair authentication).
    :param private_key_file: a PEM file holding the private key, instead of `private_key`.
    :param private_key_passphrase: the passphrase of an encrypted private key.
    :param stage: where batches are staged before `COPY INTO`: internal (default) or S3.
    :param where: an extra SQL condition for reads.
    :param host, port, protocol: where the account is served, when not at its usual address
        (an emulator in tests).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    account: str
    user: str
    password: SecretStr | None = None
    private_key: SecretStr | None = None
    private_key_file: Path | None = None
    private_key_passphrase: SecretStr | None = None
    role: str | None = None
    warehouse: str | None = None
    database: str
    schema_: str = Field(default="PUBLIC", alias="schema")
    stage: InternalStage | S3Stage = Field(
        default_factory=InternalStage, discriminator="type", json_schema_extra=DESTINATION_ONLY
    )
    where: str | None = Field(default=None, json_schema_extra=SOURCE_ONLY)
    host: str | None = None
    port: int | None = None
    protocol: Literal["https", "http"] = "https"
    login_timeout: int = 60

    @field_validator("role", "warehouse", "host", "port", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        """An empty value (an unset environment variable in a template) means the default."""
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _one_authentication(self) -> SnowflakeConfig:
        keys = [self.private_key is not None, self.private_key_file is not None]
        if sum(keys) > 1:
            raise ValueError("give `private_key` or `private_key_file`, not both")
        if self.password is None and not any(keys):
            raise ValueError(
                "give `password`, or key-pair authentication: `private_key` (PEM) or "
                "`private_key_file`"
            )
        if self.password is not None and any(keys):
            raise ValueError("give `password` or a private key, not both")
        if self.private_key_passphrase is not None and not any(keys):
            raise ValueError("`private_key_passphrase` needs `private_key` or `private_key_file`")
        return self

    def describe(self) -> str:
        """account/database.schema, for error messages: never a secret."""
        return f"{self.account}/{self.database}.{self.schema_}"

    def connect_arguments(self) -> dict[str, Any]:
        """Keyword arguments of `snowflake.connector.connect`, secrets included."""
        arguments: dict[str, Any] = {
            "account": self.account,
            "user": self.user,
            "database": self.database,
            "schema": self.schema_,
            "login_timeout": self.login_timeout,
            "application": "dataloader",
            "paramstyle": "qmark",
            "session_parameters": {
                "TIMEZONE": "UTC",
                "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False,
            },
        }
        for key in ("role", "warehouse", "host", "port"):
            if getattr(self, key) is not None:
                arguments[key] = getattr(self, key)
        if self.protocol != "https":
            arguments["protocol"] = self.protocol
        if self.password is not None:
            arguments["password"] = self.password.get_secret_value()
        else:
            arguments["authenticator"] = "SNOWFLAKE_JWT"
            arguments["private_key"] = self._private_key_der()
        return arguments

    def _private_key_der(self) -> bytes:
        """The private key as unencrypted DER bytes, as the Snowflake connector takes it."""
        from cryptography.hazmat.primitives import serialization

        if self.private_key is not None:
            pem = self.private_key.get_secret_value().encode()
            where = "`private_key`"
        else:
            assert self.private_key_file is not None
            try:
                pem = self.private_key_file.read_bytes()
            except OSError as exc:
                raise ValueError(
                    f"`private_key_file` {str(self.private_key_file)!r} cannot be read: {exc.strerror}"
                ) from None
            where = f"`private_key_file` {str(self.private_key_file)!r}"
        passphrase = self.private_key_passphrase
        try:
            key = serialization.load_pem_private_key(
                pem, password=passphrase.get_secret_value().encode() if passphrase else None
            )
        except (ValueError, TypeError) as exc:
            # The library's messages never quote the key; keep only the first line anyway.
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(
                f"{where} is not a usable PEM private key (with `private_key_passphrase` "
                f"if it is encrypted): {reason}"
            ) from None
        return key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
