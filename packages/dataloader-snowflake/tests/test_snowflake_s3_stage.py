"""The external S3 stage: Parquet uploaded to S3 (moto), the COPY INTO statement, cleanup.

fakesnow cannot run `COPY INTO … FROM 's3://…'` (its DuckDB has no httpfs extension here, and
it refuses the CREDENTIALS clause): that one statement is recorded instead of run and compared
with a golden file reviewed against Snowflake's COPY INTO <table> reference. Everything else
(the upload, the staging table, the cleanup of the objects) runs for real.
"""

from __future__ import annotations

import datetime
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from snowflake.connector.errors import ProgrammingError

from dataloader import ArrowBatch, ConnectorError, State
from dataloader.context import RunContext
from dataloader_snowflake.config import SnowflakeConfig
from dataloader_snowflake.connector import SnowflakeConnector
from dataloader_snowflake.testing import FakeSnowflake

GOLDEN = Path(__file__).parent / "golden"


def s3_connector(
    db: FakeSnowflake, moto_server: Any, bucket: str, **stage: Any
) -> SnowflakeConnector:
    keys = {
        "type": "s3",
        "url": f"s3://{bucket}/loads",
        "endpoint_url": moto_server.endpoint_url,
        "region": moto_server.region,
        **stage,
    }
    config = SnowflakeConfig.model_validate({**db.settings(), "table": "items", "stage": keys})
    connector = SnowflakeConnector(config)
    context = RunContext("sf_s3", "run-1", datetime.datetime.now(datetime.UTC), role="destination")
    connector.open(context)
    return connector


def skip_s3_copies(
    connector: SnowflakeConnector, monkeypatch: pytest.MonkeyPatch, *, fail: bool = False
) -> None:
    """Let the connector's cursors skip each `COPY INTO … FROM 's3://…'` (fakesnow cannot run
    it), or fail it as Snowflake would (`fail`); the connector still sends it, and logs it."""
    connection = connector.conn
    cursor = connection.cursor

    class SkippingCursor:
        def __init__(self) -> None:
            self._cursor = cursor()

        def execute(self, sql: str, params: Any = None) -> Any:
            if sql.startswith("COPY INTO") and " FROM 's3://" in sql:
                if fail:
                    raise ProgrammingError(msg="Failure using stage area.", errno=91016)
                return self
            return self._cursor.execute(sql, params)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._cursor, name)

    monkeypatch.setattr(connection, "cursor", SkippingCursor)


def copies(statements: list[str]) -> list[str]:
    return [sql for sql in statements if sql.startswith("COPY INTO")]


def objects(moto_server: Any, bucket: str) -> list[str]:
    listing = moto_server.client("s3").list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_batches_go_to_s3_as_parquet_and_the_copy_matches_the_golden_file(
    snowflake_db: FakeSnowflake,
    moto_server: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    sf_statements: Callable[[], list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    connector = s3_connector(
        snowflake_db,
        moto_server,
        s3_bucket,
        aws_access_key_id=moto_server.access_key,
        aws_secret_access_key=moto_server.secret_key,
    )
    try:
        skip_s3_copies(connector, monkeypatch)
        connector.begin(State())
        batch = pa.record_batch({"id": [1, 2], "name": ["a", "😀"]})
        connector.write_batch(ArrowBatch(batch, {}), State())
        [key] = objects(moto_server, s3_bucket)
        assert key == "loads/run-1/part-000001.parquet"
        body = moto_server.client("s3").get_object(Bucket=s3_bucket, Key=key)["Body"].read()
        staged = pq.read_table(io.BytesIO(body))
        assert staged.select(["id", "name"]).to_pylist() == batch.to_pylist()
        assert connector._staging is not None
        expected = (
            (GOLDEN / "snowflake_copy_s3.sql")
            .read_text()
            .strip()
            .format(
                stage=connector._staging.name,
                bucket=s3_bucket,
                run_id="run-1",
                key_id=moto_server.access_key,
            )
        )
        assert copies(sf_statements()) == [expected]
        assert moto_server.secret_key not in caplog.text
        connector.abort()  # the staged objects and the staging table go
        assert objects(moto_server, s3_bucket) == []
        tables = snowflake_db.query(
            "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = 'PUBLIC'"
        )
        assert tables == []
    finally:
        connector.close()


def test_a_storage_integration_replaces_the_credentials(
    snowflake_db: FakeSnowflake,
    moto_server: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    sf_statements: Callable[[], list[str]],
) -> None:
    # The uploads still need keys here (moto); on AWS they come from boto3's usual chain.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_server.secret_key)
    connector = s3_connector(snowflake_db, moto_server, s3_bucket, storage_integration="LOADER_S3")
    try:
        skip_s3_copies(connector, monkeypatch)
        connector.begin(State())
        connector.write_batch(ArrowBatch(pa.record_batch({"id": [1]}), {}), State())
        assert connector._staging is not None
        expected = (
            (GOLDEN / "snowflake_copy_s3_integration.sql")
            .read_text()
            .strip()
            .format(stage=connector._staging.name, bucket=s3_bucket, run_id="run-1")
        )
        assert copies(sf_statements()) == [expected]
        connector.abort()
        assert objects(moto_server, s3_bucket) == []
    finally:
        connector.close()


def test_a_failed_copy_names_its_statement_without_the_secret(
    snowflake_db: FakeSnowflake, moto_server: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector = s3_connector(
        snowflake_db,
        moto_server,
        s3_bucket,
        aws_access_key_id=moto_server.access_key,
        aws_secret_access_key=moto_server.secret_key,
    )
    try:
        skip_s3_copies(connector, monkeypatch, fail=True)
        connector.begin(State())
        with pytest.raises(ConnectorError) as caught:
            connector.write_batch(ArrowBatch(pa.record_batch({"id": [1]}), {}), State())
        message = str(caught.value)
        assert "\nwhile running: COPY INTO " in message
        assert "AWS_SECRET_KEY = '***'" in message
        assert moto_server.secret_key not in message
        assert "Failure using stage area." in message
    finally:
        connector.close()
