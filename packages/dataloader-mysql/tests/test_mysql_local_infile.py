"""`LOAD DATA LOCAL` on the connector's connection sends only the batch file the connector
asked to load: a server (or a man in the middle) that asks for any other file gets nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pymysql
import pytest

from dataloader import ArrowBatch, State
from dataloader.testing import begun_destination, create_plan
from dataloader_mysql import MySQLConfig, MySQLConnector


def test_a_load_naming_another_file_is_refused_and_sends_nothing(my: Any, tmp_path: Path) -> None:
    secret = tmp_path / "credentials"
    secret.write_text("aws_secret_access_key = not-for-the-server\n")
    my.execute("CREATE TABLE loot (line TEXT)")
    dest = begun_destination(MySQLConnector(MySQLConfig(**my.settings(), table="dst")), "append")
    try:
        cursor = dest.conn.cursor()
        with pytest.raises(pymysql.err.OperationalError, match="refused") as caught:
            cursor.execute(f"LOAD DATA LOCAL INFILE '{secret}' INTO TABLE loot", None)
        assert "not-for-the-server" not in str(caught.value)
        cursor.execute("SELECT 1")  # the connection is still in step with the server
        assert cursor.fetchall() == ((1,),)
    finally:
        dest.close()
    assert my.query("SELECT line FROM loot") == []


def test_the_connectors_own_batch_files_still_load(my: Any) -> None:
    dest = begun_destination(MySQLConnector(MySQLConfig(**my.settings(), table="dst")), "append")
    try:
        batch = pa.record_batch({"id": pa.array([1, 2], pa.int64())})
        dest.apply_schema(create_plan(batch.schema))
        dest.write_batch(ArrowBatch(batch), State())
        dest.commit(State())
    finally:
        dest.close()
    assert sorted(my.query("SELECT id FROM dst")) == [(1,), (2,)]
