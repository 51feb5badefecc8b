"""The S3 side of COPY and UNLOAD: Parquet files under a run's own prefix.

A destination uploads each batch as one Parquet object under
`<prefix>/<recipe>/<run id>/<commit>/`; COPY reads that folder at commit, and the objects are
deleted once the commit is done (or aborted). A source UNLOADs to `<prefix>/<recipe>/<run
id>/unload/` and reads the objects back.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dataloader_redshift.config import RedshiftStaging


class S3Staging:
    """One run's folder in the staging area."""

    def __init__(self, staging: RedshiftStaging, recipe: str, run_id: str) -> None:
        self.staging = staging
        parts = [staging.prefix, _safe(recipe), _safe(run_id)]
        self.folder = "/".join(part for part in parts if part)
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            secret = self.staging.secret_access_key
            token = self.staging.session_token
            self._client = boto3.client(
                "s3",
                region_name=self.staging.region,
                endpoint_url=self.staging.endpoint_url,
                aws_access_key_id=self.staging.access_key_id,
                aws_secret_access_key=secret.get_secret_value() if secret else None,
                aws_session_token=token.get_secret_value() if token else None,
            )
        return self._client

    def location(self, part: str) -> str:
        """`s3://bucket/<folder>/<part>/`: what COPY reads or UNLOAD writes."""
        return f"s3://{self.staging.bucket}/{self.folder}/{part}/"

    def upload(self, part: str, name: str, table: pa.Table) -> str:
        """Write `table` as the Parquet object `<part>/<name>.parquet`; its key."""
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="snappy")  # a codec COPY reads
        key = f"{self.folder}/{part}/{name}.parquet"
        self.client.put_object(Bucket=self.staging.bucket, Key=key, Body=sink.getvalue())
        return key

    def keys(self, part: str) -> list[str]:
        """The objects under `<part>/`, in name order."""
        found: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        prefix = f"{self.folder}/{part}/"
        for page in paginator.paginate(Bucket=self.staging.bucket, Prefix=prefix):
            found.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(found)

    def read(self, part: str) -> Iterator[pa.Table]:
        """Each Parquet object under `<part>/`, in name order."""
        for key in self.keys(part):
            body = self.client.get_object(Bucket=self.staging.bucket, Key=key)["Body"].read()
            yield pq.read_table(io.BytesIO(body))

    def remove(self, part: str) -> int:
        """Delete every object under `<part>/`; how many there were."""
        keys = self.keys(part)
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": key} for key in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.staging.bucket, Delete={"Objects": chunk})
        return len(keys)


def _safe(text: str) -> str:
    return "".join(char if char.isalnum() or char in "-_." else "_" for char in text)
