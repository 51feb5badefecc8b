"""The S3 side of the COPY path, on moto: each batch is uploaded as one Parquet object that
holds exactly its rows (every column of the stage, in its order, and the read ordinal), and
the run's objects are gone once its transaction ends.

PostgreSQL cannot run COPY FROM S3: on the stand-in, the commit fails at the COPY the Redshift
dialect compiled (shown in the error with its secret masked) and the abort removes the staged
objects. The COPY itself is checked against the golden files (test_redshift_golden_sql.py);
the removal after a *successful* commit runs the same `_remove_staged` and has not run here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest

from dataloader import RunResult, register_connector
from dataloader.errors import DataLoaderError
from dataloader_filestore.testing import MotoServer
from dataloader_redshift.config import RedshiftStaging
from dataloader_redshift.s3 import S3Staging

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def staging(moto: MotoServer, bucket: str) -> dict[str, Any]:
    return {
        "s3": f"s3://{bucket}/dl/stage",
        "access_key_id": KEY_ID,
        "secret_access_key": SECRET,
        "region": moto.region,
        "endpoint_url": moto.endpoint_url,
    }


def objects(moto: MotoServer, bucket: str) -> list[str]:
    listing = moto.client("s3").list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_staging_uploads_reads_and_removes_parquet_objects(
    moto_server: MotoServer, s3_bucket: str
) -> None:
    config = RedshiftStaging.model_validate(staging(moto_server, s3_bucket))
    stage = S3Staging(config, "my recipe", "run-1")
    table = pa.table({"id": [1, 2], "name": ["a", None]})
    key = stage.upload("load-000000", "000000", table)
    assert key == "dl/stage/my_recipe/run-1/load-000000/000000.parquet"
    assert (
        stage.location("load-000000") == f"s3://{s3_bucket}/dl/stage/my_recipe/run-1/load-000000/"
    )
    assert [t.to_pylist() for t in stage.read("load-000000")] == [table.to_pylist()]
    assert stage.remove("load-000000") == 1
    assert objects(moto_server, s3_bucket) == []


def test_the_copy_path_uploads_the_rows_then_removes_them_when_copy_fails_on_postgres(
    warehouse: Any,
    rows_source: str,
    run: Callable[..., RunResult],
    moto_server: MotoServer,
    s3_bucket: str,
    stand_in: type[Any],
) -> None:
    seen: list[tuple[list[str], list[dict[str, Any]]]] = []

    class Observed(stand_in):  # type: ignore[misc,valid-type]
        def commit(self, state: Any) -> None:  # look at S3 just before the COPY
            assert self._s3 is not None
            part = self._part()
            rows = [row for table in self._s3.read(part) for row in table.to_pylist()]
            seen.append((self._s3.keys(part), rows))
            super().commit(state)

    register_connector("redshift")(Observed)
    batches = [[{"id": 1, "name": "ada"}, {"id": 2, "name": None}], [{"id": 3, "name": "cy"}]]
    recipe = {
        "name": "rs_staged",
        "source": {"type": rows_source, "batches": batches},
        "destination": {
            "type": "redshift",
            **warehouse.settings(),
            "table": "dw.staged",
            "write_mode": "merge",
            "merge_keys": ["id"],
            "staging": staging(moto_server, s3_bucket),
        },
    }
    with pytest.raises(DataLoaderError) as failure:
        run(recipe)
    message = str(failure.value)
    assert "COPY" in message and "FORMAT AS PARQUET" in message
    assert f"aws_access_key_id={KEY_ID};aws_secret_access_key=***" in message
    assert SECRET not in message
    [(keys, rows)] = seen
    assert [key.rsplit("/", 2)[-2:] for key in keys] == [
        ["load-000000", "000000.parquet"],
        ["load-000000", "000001.parquet"],
    ]
    assert rows == [
        {"id": 1, "name": "ada", "_dl_ordinal": 0},
        {"id": 2, "name": None, "_dl_ordinal": 1},
        {"id": 3, "name": "cy", "_dl_ordinal": 2},
    ]
    assert objects(moto_server, s3_bucket) == []
    # nothing of the failed transaction stayed: no table, no state
    assert warehouse.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'dw'"
    ) == [(0,)]
