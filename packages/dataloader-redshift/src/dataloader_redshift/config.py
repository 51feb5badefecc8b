"""The `redshift` connector's keys: a connection (password or IAM), a table or query, and an
optional S3 `staging` area for COPY (writes) and UNLOAD (reads). Imports pydantic only."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from dataloader.connectors import DESTINATION_ONLY, SOURCE_ONLY, TableOrQueryConfig

IAM_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")


class RedshiftStaging(BaseModel):
    """Where Parquet files are staged for COPY and UNLOAD, and how Redshift reads them.

    :param s3: `s3://bucket/prefix`: each run writes under `<prefix>/<recipe>/<run id>/`.
    :param iam_role: the ARN of a role attached to the cluster that may read and write there.
    :param access_key_id: with `secret_access_key`, keys instead of `iam_role` (used by
        Redshift in COPY/UNLOAD and by this process to upload).
    :param region: the bucket's region.
    :param endpoint_url: the URL of an S3-compatible service this process uploads to and
        cleans up in, instead of AWS's own S3 endpoint for the region.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    s3: str
    iam_role: str | None = None
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    region: str | None = None
    endpoint_url: str | None = None

    @model_validator(mode="after")
    def _check(self) -> RedshiftStaging:
        if not self.s3.startswith("s3://") or not self.s3[5:].split("/", 1)[0]:
            raise ValueError(f"`staging.s3` must look like s3://bucket/prefix, not {self.s3!r}")
        keys = self.access_key_id is not None or self.secret_access_key is not None
        if keys and (self.access_key_id is None or self.secret_access_key is None):
            raise ValueError("`staging.access_key_id` and `staging.secret_access_key` go together")
        if (self.iam_role is None) == (not keys):
            raise ValueError(
                "`staging` needs exactly one of `iam_role` (an IAM role ARN) or "
                "`access_key_id` + `secret_access_key`"
            )
        if self.iam_role is not None and not IAM_ROLE_ARN.match(self.iam_role):
            raise ValueError(
                f"`staging.iam_role` must be an IAM role ARN "
                f"(arn:aws:iam::123456789012:role/name), not {self.iam_role!r}"
            )
        return self

    @property
    def bucket(self) -> str:
        return self.s3[5:].split("/", 1)[0]

    @property
    def prefix(self) -> str:
        rest = self.s3[5:].split("/", 1)
        return rest[1].strip("/") if len(rest) > 1 else ""


class RedshiftConfig(TableOrQueryConfig):
    """The `redshift` connector (experimental).

    Authenticate with `user` + `password`, or with IAM (`iam: true`, `cluster_identifier`,
    `region`, and an AWS profile or keys from the environment), as `redshift_connector` does.

    :param staging: an S3 area: writes upload Parquet and `COPY` it; reads `UNLOAD` to it
        when `unload: true`. Without it, writes use multi-row INSERT statements (slow).
    :param unload: read through `UNLOAD … FORMAT AS PARQUET` into `staging` instead of a cursor.
    """

    host: str | None = None
    port: int = 5439
    database: str
    user: str | None = None
    password: SecretStr | None = None
    iam: bool = False
    cluster_identifier: str | None = None
    region: str | None = None
    profile: str | None = None
    ssl: bool = True
    timeout: int | None = 30
    staging: RedshiftStaging | None = None
    unload: bool = Field(default=False, json_schema_extra=SOURCE_ONLY)
    insert_rows: int = Field(default=1000, ge=1, le=100_000, json_schema_extra=DESTINATION_ONLY)

    @model_validator(mode="after")
    def _check_auth(self) -> RedshiftConfig:
        if self.iam:
            if not (self.cluster_identifier and self.region) and not self.host:
                raise ValueError("`iam: true` needs `cluster_identifier` and `region` (or `host`)")
            if self.password is not None:
                raise ValueError("give `password` or `iam: true`, not both")
        else:
            if not self.host:
                raise ValueError("give `host` (the cluster endpoint), or `iam: true`")
            if self.user is None or self.password is None:
                raise ValueError("give `user` and `password`, or `iam: true`")
        if self.unload and self.staging is None:
            raise ValueError("`unload: true` needs `staging` (the S3 area UNLOAD writes to)")
        if self.unload and self.query is None and self.table is None:
            raise ValueError("`unload: true` needs `table` or `query`")
        return self

    def describe(self) -> str:
        """host:port/database (or the cluster), for messages: never a secret."""
        where = self.host or f"cluster {self.cluster_identifier} in {self.region}"
        return f"{where}:{self.port}/{self.database}"
