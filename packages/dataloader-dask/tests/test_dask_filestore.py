"""A filestore destination in a distributed run, on one local cluster (2 worker processes):
partitioned Postgres → Parquet and → CSV, and CSV files → Parquet, give the rows of the
single-process run; a worker killed mid-partition and the driver killed around its commit
lose and duplicate nothing; Postgres → Parquet on S3 (moto's server)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dask_gates import distributed_run, kill_driver_at

from dataloader.engine.distributed import create_run
from dataloader.recipe.binding import bind_recipe
from dataloader.recipe.models import Recipe
from dataloader.registry import Registry
from dataloader.state.local import LocalStateBackend

FILES = 40  # 8 partitions of 5 files (file i in partition i % 8)
IDS = list(range(1000, 1000 + FILES * 10))
ROWS = 5000


def _files(directory: Path) -> Path:
    directory.mkdir()
    for index in range(FILES):
        rows = "".join(f"{1000 + index * 10 + j},row {index:03d}-{j}\n" for j in range(10))
        (directory / f"f{index:03d}.csv").write_text("id,name\n" + rows)
    return directory


def _files_recipe(data: Path, out: Path, address: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "dask_files",
        "source": {
            "type": "filestore",
            "path": str(data / "*.csv"),
            "incremental": {"strategy": "modified_time"},
        },
        "destination": {"type": "filestore", "path": str(out), "format": "parquet"},
        "runtime": {"executor": "dask", "address": address, "parallelism": 2},
        **extra,
    }


def _names(out: Path) -> list[str]:
    return sorted(path.name for path in out.iterdir() if path.is_file()) if out.exists() else []


def _visible(out: Path) -> list[str]:
    return [name for name in _names(out) if not name.startswith((".", "_"))]


def _hidden(out: Path) -> list[str]:
    return [name for name in _names(out) if name.startswith(".")]


def _parquet(out: Path) -> pa.Table:
    tables = [pq.read_table(out / name) for name in _visible(out)]
    return pa.concat_tables(tables).sort_by("id")


def _csv_rows(out: Path) -> list[list[str]]:
    rows: list[list[str]] = []
    header: list[str] | None = None
    for name in _visible(out):
        reader = csv.reader(io.StringIO((out / name).read_text()))
        first = next(reader)
        assert header in (None, first)
        header = first
        rows += list(reader)
    return sorted(rows, key=lambda row: int(row[0]))


def _record(out: Path, recipe: str) -> dict[str, Any] | None:
    path = out / "_dataloader" / f"{recipe}.json"
    return json.loads(path.read_text()) if path.exists() else None


@pytest.fixture
def items(postgres_server: Any, postgres_database: str) -> dict[str, Any]:
    """A Postgres table of ROWS rows; the recipe keys of its connection."""
    connection = postgres_server.connect(postgres_database)
    with connection, connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE items (id integer PRIMARY KEY, name text, amount numeric(10, 2), "
            "at timestamptz)"
        )
        cursor.execute(
            "INSERT INTO items SELECT i, 'item ' || i, i * 1.25, "
            "timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute' "
            f"FROM generate_series(1, {ROWS}) AS i"
        )
    connection.close()
    return postgres_server.connection_settings(postgres_database)


def _postgres_run(
    settings: dict[str, Any],
    destination: dict[str, Any],
    executor: str,
    address: str,
    state: Path,
    registry: Registry,
) -> int:
    recipe = Recipe.model_validate(
        {
            "name": "dask_pg_files",
            "source": {"type": "postgres", **settings, "table": "items", "partition_column": "id"},
            "destination": {"type": "filestore", **destination},
            "runtime": {"executor": executor, "address": address, "batch_size": 700},
        }
    )
    run = create_run(bind_recipe(recipe, registry), LocalStateBackend(state), registry=registry)
    return run.run().rows_written


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_a_partitioned_postgres_table_writes_the_files_of_the_single_process_run(
    tmp_path: Path, address: str, registry: Registry, items: dict[str, Any], file_format: str
) -> None:
    loaded = {}
    for executor in ("local", "dask"):
        out = tmp_path / executor
        destination = {"path": str(out), "format": file_format}
        assert (
            _postgres_run(
                items, destination, executor, address, tmp_path / executor / "st", registry
            )
            == ROWS
        )
        loaded[executor] = _parquet(out) if file_format == "parquet" else _csv_rows(out)
        assert _hidden(out) == []
        record = _record(out, "dask_pg_files")
        assert record is not None and record["pending"] == {}
    if file_format == "parquet":
        assert loaded["dask"].schema == loaded["local"].schema
        assert loaded["dask"].to_pylist() == loaded["local"].to_pylist()
    else:
        assert loaded["dask"] == loaded["local"]
    assert len(_visible(tmp_path / "dask")) == 8  # one part per partition


def test_csv_files_to_parquet_append_then_overwrite(
    tmp_path: Path, address: str, registry: Registry
) -> None:
    data = _files(tmp_path / "data")
    out = tmp_path / "out"
    state = tmp_path / "state"
    append = _files_recipe(data, out, address)
    append["source"].pop("incremental")
    distributed_run(append, state, registry).run()
    distributed_run(append, state, registry).run()
    assert _parquet(out).column("id").to_pylist() == sorted(IDS * 2)
    overwrite = {**append, "destination": {**append["destination"], "write_mode": "overwrite"}}
    result = distributed_run(overwrite, state, registry).run()
    assert result.rows_written == FILES * 10
    table = _parquet(out)
    assert table.column("id").to_pylist() == IDS
    assert table.column("name").to_pylist()[:2] == ["row 000-0", "row 000-1"]
    assert _hidden(out) == []


def test_a_worker_killed_mid_partition_loses_and_duplicates_nothing(
    tmp_path: Path, address: str, registry: Registry
) -> None:
    data = _files(tmp_path / "data")
    out = tmp_path / "out"
    marker = tmp_path / "killed"
    # File 16 is the third file of partition 0: its first attempt wrote two files' rows.
    step = {"type": "dask_kill_once", "marker": str(marker), "at_id": 1160}
    recipe = _files_recipe(data, out, address, transform={"steps": [step]})
    seen: list[str] = []

    def on_stage(stage: str) -> None:
        if stage == "staged":
            seen.extend(_hidden(out))
            assert _visible(out) == []  # nothing visible before the commit

    result = distributed_run(recipe, tmp_path / "state", registry, on_stage).run()

    assert marker.exists()  # the worker died once
    assert result.rows_written == FILES * 10
    assert _parquet(out).column("id").to_pylist() == IDS
    first = [name for name in seen if "-staged-00000-" in name]
    dead = [name for name in first if name.endswith(".tmp")]
    done = [name for name in first if name.endswith(".parquet")]
    assert len(dead) == 1 and len(done) == 1, seen  # the dead attempt's part, never committed
    assert dead[0].split("-staged-")[1][:18] != done[0].split("-staged-")[1][:18]
    assert _hidden(out) == []  # discarded after the commit


@pytest.mark.parametrize("gate", ["staged", "committed"])
def test_the_driver_killed_around_its_commit(
    tmp_path: Path, address: str, registry: Registry, gate: str
) -> None:
    data = _files(tmp_path / "data")
    out = tmp_path / "out"
    recipe = _files_recipe(data, out, address)
    state = kill_driver_at(recipe, tmp_path, gate)
    record = _record(out, "dask_files")
    if gate == "staged":  # the old files and state: none, the staging left behind
        assert _visible(out) == []
        assert any("-staged-" in name for name in _hidden(out))
        assert record is None or "state" not in record
    else:  # the new ones
        assert _parquet(out).column("id").to_pylist() == IDS
        assert record is not None and record["pending"] == {}
        assert record["state"]["last_commit"]["counts"]["rows_written"] == FILES * 10
    rerun = distributed_run(recipe, state, registry).run()  # loads what is not loaded yet, once
    assert rerun.rows_written == (FILES * 10 if gate == "staged" else 0)
    assert _parquet(out).column("id").to_pylist() == IDS
    assert _hidden(out) == []


def test_a_partitioned_postgres_table_to_parquet_on_s3(
    tmp_path: Path,
    address: str,
    registry: Registry,
    items: dict[str, Any],
    moto_server: Any,
    s3_bucket: str,
) -> None:
    s3 = moto_server.client("s3")
    destination = {"path": f"s3://{s3_bucket}/items", "format": "parquet", **moto_server.settings()}
    loaded = {}
    for executor in ("local", "dask"):
        state = tmp_path / executor
        destination["path"] = f"s3://{s3_bucket}/{executor}"
        assert _postgres_run(items, destination, executor, address, state, registry) == ROWS
        listed = s3.list_objects_v2(Bucket=s3_bucket, Prefix=f"{executor}/")["Contents"]
        keys = sorted(item["Key"] for item in listed)
        names = [key.split("/", 1)[1] for key in keys]
        assert not [name for name in names if name.startswith(".")], names
        data = [key for key, name in zip(keys, names, strict=True) if not name.startswith("_")]
        tables = [
            pq.read_table(io.BytesIO(s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read()))
            for key in data
        ]
        loaded[executor] = pa.concat_tables(tables).sort_by("id")
    assert loaded["dask"].schema == loaded["local"].schema
    assert loaded["dask"].to_pylist() == loaded["local"].to_pylist()
    assert loaded["dask"].num_rows == ROWS
