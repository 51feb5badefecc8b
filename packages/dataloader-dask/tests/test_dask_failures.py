"""Failures of a distributed run on one local cluster (2 worker processes) this module starts
and the runs reach by `runtime.address`: a worker killed mid-partition, the driver killed
before and after its commit, a second run refused by the lock, and the runs this slice
refuses; and a partitioned Postgres read equal to the single-process run."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner
from dask_gates import dask_registry, distributed_run, kill_driver_at

from dataloader.cli.app import _register_commands, cli
from dataloader.connectors import Capabilities
from dataloader.engine.distributed import create_run
from dataloader.errors import DataLoaderError, EngineError, PluginError, StateError
from dataloader.recipe.binding import bind_recipe
from dataloader.recipe.models import Recipe
from dataloader.registry import Registry, register_connector, unregister
from dataloader.state.local import LocalStateBackend
from dataloader.testing import RowsSource

FILES = 40  # 8 partitions of 5 files (file i in partition i % 8)
IDS = list(range(1000, 1000 + FILES * 10))


def _files(directory: Path) -> Path:
    directory.mkdir()
    for index in range(FILES):
        # One size for all: the plan deals them out in turn (file i into partition i % 8).
        rows = "".join(f"{1000 + index * 10 + j},row {index:03d}-{j}\n" for j in range(10))
        (directory / f"f{index:03d}.csv").write_text("id,name\n" + rows)
    return directory


def _recipe(data: Path, database: Path, address: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "dask_failures",
        "source": {"type": "filestore", "path": str(data / "*.csv")},
        "destination": {"type": "duckdb", "database": str(database), "table": "t"},
        "runtime": {"executor": "dask", "address": address, "parallelism": 2},
        **extra,
    }


def _ids(database: Path) -> list[int]:
    with duckdb.connect(str(database), read_only=True) as con:
        return [row[0] for row in con.execute("SELECT id FROM t ORDER BY id").fetchall()]


def _committed(database: Path) -> dict[str, Any] | None:
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute("SELECT state FROM _dataloader_state").fetchall()
    return json.loads(rows[0][0]) if rows else None


def test_a_worker_killed_mid_partition_loses_and_duplicates_nothing(
    tmp_path: Path, address: str, registry: Registry
) -> None:
    data = _files(tmp_path / "data")
    database = tmp_path / "out.duckdb"
    marker = tmp_path / "killed"
    # File 16 is the third file of partition 0: its first attempt staged two batches and dies.
    recipe = _recipe(
        data,
        database,
        address,
        transform={"steps": [{"type": "dask_kill_once", "marker": str(marker), "at_id": 1160}]},
    )
    seen: list[str] = []

    def on_stage(stage: str) -> None:
        if stage == "staged":
            staging = tmp_path / ".out.duckdb.staging"
            seen.extend(sorted(path.name for path in staging.rglob("*part-00000-*")))

    result = distributed_run(recipe, tmp_path / "state", registry, on_stage).run()

    assert marker.exists()  # the worker died once
    assert result.rows_written == FILES * 10
    assert _ids(database) == IDS
    dead = [name for name in seen if name.endswith(".partial")]
    done = [name for name in seen if name.endswith(".parquet")]
    assert len(dead) == 1 and len(done) == 1, seen  # the dead attempt's part, never committed
    assert dead[0].split("-")[3] != done[0].split("-")[3]  # another attempt's
    assert not (tmp_path / ".out.duckdb.staging" / "dask_failures").exists()


@pytest.mark.parametrize("gate", ["staged", "committed"])
def test_the_driver_killed_around_its_commit(
    tmp_path: Path, address: str, registry: Registry, gate: str
) -> None:
    data = _files(tmp_path / "data")
    database = tmp_path / "out.duckdb"
    recipe = _recipe(data, database, address)
    state = kill_driver_at(recipe, tmp_path, gate)
    staging = tmp_path / ".out.duckdb.staging" / "dask_failures"
    assert any(staging.rglob("*.parquet"))  # the dead driver's staging is left behind
    if gate == "staged":  # the old table and state: none
        with duckdb.connect(str(database), read_only=True) as con:
            tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
        assert "t" not in tables
        committed = _committed(database)
        assert committed is None or not committed.get("last_commit")
        distributed_run(recipe, state, registry).run()  # the rerun loads everything once
        assert _ids(database) == IDS
    else:  # the new ones
        assert _ids(database) == IDS
        committed = _committed(database)
        assert committed is not None and committed["last_commit"]["final"] is True
        assert committed["last_commit"]["counts"]["rows_written"] == FILES * 10
    assert not any(staging.rglob("*.parquet")) or gate == "committed"


def test_a_second_concurrent_run_is_refused_by_the_state_lock(
    tmp_path: Path, address: str, registry: Registry
) -> None:
    data = _files(tmp_path / "data")
    recipe = _recipe(data, tmp_path / "out.duckdb", address)
    state = tmp_path / "state"
    with (
        LocalStateBackend(state).lock("dask_failures"),  # a first run holds it
        pytest.raises(StateError, match="already running"),
    ):
        distributed_run(recipe, state, registry).run()
    assert not (tmp_path / "out.duckdb").exists()


def test_a_partitioned_postgres_table_loads_as_the_single_process_run(
    tmp_path: Path,
    address: str,
    registry: Registry,
    postgres_server: Any,
    postgres_database: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    connection = postgres_server.connect(postgres_database)
    with connection, connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE items (id integer PRIMARY KEY, name text, amount numeric(10, 2), "
            "at timestamptz)"
        )
        cursor.execute(
            "INSERT INTO items SELECT i, 'item ' || i, i * 1.25, "
            "timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute' "
            "FROM generate_series(1, 5000) AS i"
        )
    connection.close()
    settings = postgres_server.connection_settings(postgres_database)
    results = {}
    for executor in ("local", "dask"):
        database = tmp_path / f"{executor}.duckdb"
        recipe = Recipe.model_validate(
            {
                "name": "dask_postgres",
                "source": {
                    "type": "postgres",
                    **settings,
                    "table": "items",
                    "partition_column": "id",
                },
                "destination": {"type": "duckdb", "database": str(database), "table": "t"},
                "runtime": {"executor": executor, "address": address, "batch_size": 700},
            }
        )
        run = create_run(
            bind_recipe(recipe, registry),
            LocalStateBackend(tmp_path / f"state-{executor}"),
            registry=registry,
        )
        assert run.run().rows_written == 5000
        with duckdb.connect(str(database), read_only=True) as con:
            results[executor] = (
                con.execute("SELECT * FROM t ORDER BY id").fetchall(),
                con.execute("DESCRIBE t").fetchall(),
            )
    assert results["dask"] == results["local"]
    assert settings["password"] not in caplog.text  # the recipe travels, never into logs


def test_the_cli_runs_a_recipe_on_the_executor_it_is_given(
    tmp_path: Path, address: str, registry: Registry
) -> None:
    data = _files(tmp_path / "data")
    database = tmp_path / "out.duckdb"
    recipe = _recipe(data, database, address)
    recipe["runtime"]["executor"] = "local"  # the flag overrides it
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(json.dumps(recipe))  # JSON is YAML
    _register_commands()
    listed = CliRunner().invoke(cli, ["list-connectors"])
    assert any(line.split()[:2] == ["executor", "dask"] for line in listed.output.splitlines()), (
        listed.output
    )
    state = str(tmp_path / "state")
    logs = ["--log-format", "json", "--log-level", "info"]
    result = CliRunner().invoke(
        cli, [*logs, "run", str(recipe_file), "--state-dir", state, "--executor", "dask"]
    )
    assert result.exit_code == 0, result.output
    assert _ids(database) == IDS
    assert _committed(database)["last_commit"]["counts"]["partitions"] == 8  # type: ignore[index]
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    staged = [r for r in records if r.get("partition") is not None]
    assert sorted(r["partition"] for r in staged) == list(range(8))  # one record each
    assert sum(r["rows"] for r in staged) == len(IDS)
    assert all(r["rows_per_second"] > 0 and r["partitions"] == 8 for r in staged)
    assert sorted(r["staged"] for r in staged) == list(range(1, 9))  # progress: k of 8
    assert {r["run_id"] for r in records if "run_id" in r} == {staged[0]["run_id"]}


def test_an_unknown_executor_names_the_key_and_the_installed_ones(
    tmp_path: Path, registry: Registry
) -> None:
    recipe = Recipe.model_validate(_recipe(tmp_path, tmp_path / "out.duckdb", "tcp://x:1"))
    with pytest.raises(PluginError) as raised:
        create_run(
            bind_recipe(recipe, registry), LocalStateBackend(tmp_path), None, "rey", registry
        )
    assert raised.value.problem.key == "runtime.executor"
    assert "local, dask" in str(raised.value)


def test_a_source_that_cannot_split_is_refused(tmp_path: Path, registry: Registry) -> None:
    # A subclass: registering sets the class's name and capabilities, which other tests'
    # sources built on RowsSource must not inherit.
    unsplittable = type("UnsplittableRows", (RowsSource,), {})
    register_connector("dask_rows", unsplittable, capabilities=Capabilities(read=True))
    try:
        recipe = _recipe(tmp_path, tmp_path / "out.duckdb", "tcp://127.0.0.1:1")
        recipe["source"] = {"type": "dask_rows", "batches": [[{"id": 1}]]}
        with pytest.raises(EngineError, match="cannot split") as raised:
            distributed_run(recipe, tmp_path / "state", dask_registry()).run()
        assert raised.value.problem.key == "source.type"
    finally:
        unregister("connector", "dask_rows")


def test_a_destination_that_cannot_stage_is_refused(tmp_path: Path, registry: Registry) -> None:
    unstaged = type("UnstagedRows", (RowsSource,), {})  # a subclass, as above
    register_connector(
        "dask_sink", unstaged, capabilities=Capabilities(write=True, write_modes=("append",))
    )
    try:
        recipe = _recipe(tmp_path, tmp_path / "out.duckdb", "tcp://127.0.0.1:1")
        recipe["destination"] = {"type": "dask_sink", "batches": []}
        with pytest.raises(EngineError, match="'dask_sink' cannot stage") as raised:
            distributed_run(recipe, tmp_path / "state", dask_registry()).run()
        assert raised.value.problem.key == "destination.type"
    finally:
        unregister("connector", "dask_sink")


def test_overwrite_replaces_the_rows_and_append_adds_them(
    tmp_path: Path, address: str, registry: Registry
) -> None:
    data = _files(tmp_path / "data")
    database = tmp_path / "out.duckdb"
    state = tmp_path / "state"
    append = _recipe(data, database, address)
    overwrite = {**append, "destination": {**append["destination"], "write_mode": "overwrite"}}
    distributed_run(append, state, registry).run()
    distributed_run(append, state, registry).run()
    assert _ids(database) == sorted(IDS * 2)
    distributed_run(overwrite, state, registry).run()
    assert _ids(database) == IDS
    merge = {**append, "destination": {**append["destination"], "write_mode": "merge"}}
    merge["destination"]["merge_keys"] = ["id"]
    with pytest.raises(EngineError, match="merge") as raised:
        distributed_run(merge, state, registry).run()
    assert raised.value.problem.key == "destination.write_mode"


def test_an_incremental_postgres_read_moves_the_cursor_as_the_single_process_run(
    tmp_path: Path, address: str, registry: Registry, postgres_server: Any, postgres_database: str
) -> None:
    connection = postgres_server.connect(postgres_database)
    connection.autocommit = True
    cursor = connection.cursor()
    cursor.execute("CREATE TABLE events (id integer PRIMARY KEY, at timestamptz, note text)")
    second = "timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second'"
    cursor.execute(
        f"INSERT INTO events SELECT i, {second}, 'first' FROM generate_series(1, 3000) i"
    )
    settings = postgres_server.connection_settings(postgres_database)

    def run(executor: str) -> int:
        recipe = Recipe.model_validate(
            {
                "name": "dask_incremental",
                "source": {
                    "type": "postgres",
                    **settings,
                    "table": "events",
                    "incremental": {"cursor_column": "at"},
                },
                "destination": {
                    "type": "duckdb",
                    "database": str(tmp_path / f"{executor}.duckdb"),
                    "table": "t",
                },
                "runtime": {"executor": executor, "address": address, "parallelism": 2},
            }
        )
        bound = bind_recipe(recipe, registry)
        state = LocalStateBackend(tmp_path / f"state-{executor}")
        return create_run(bound, state, registry=registry).run().rows_written

    assert run("local") == run("dask") == 3000
    cursor.execute(
        f"INSERT INTO events SELECT i, {second}, 'new' FROM generate_series(3001, 3500) i"
    )
    # A row at the committed cursor value, not loaded yet: the boundary keeps it.
    cursor.execute(f"INSERT INTO events SELECT 9999, {second.replace('i *', '3000 *')}, 'tie'")
    connection.close()
    assert run("local") == run("dask") == 501
    loaded = {}
    for executor in ("local", "dask"):
        with duckdb.connect(str(tmp_path / f"{executor}.duckdb"), read_only=True) as con:
            rows = con.execute("SELECT * FROM t ORDER BY id").fetchall()
            (state,) = con.execute("SELECT state FROM _dataloader_state").fetchall()[0]
        progress = json.loads(state)
        loaded[executor] = (rows, progress["cursor_values"], progress["cursor_boundaries"])
    assert loaded["dask"] == loaded["local"]
    assert len(loaded["dask"][0]) == 3501


@pytest.mark.parametrize("once", [True, False])
def test_only_a_transient_task_error_is_tried_again(
    tmp_path: Path, address: str, registry: Registry, once: bool, caplog: pytest.LogCaptureFixture
) -> None:
    data = _files(tmp_path / "data")
    database = tmp_path / "out.duckdb"
    tries = tmp_path / "tries"
    step = {"type": "dask_fail", "tries": str(tries), "at_id": 1160, "once": once}
    recipe = _recipe(data, database, address, transform={"steps": [step]})
    run = distributed_run(recipe, tmp_path / "state", registry)
    if once:  # a connection reset (transient for the files source): tried again, loaded once
        with caplog.at_level(logging.WARNING, logger="dataloader.engine"):
            result = run.run()
        assert result.rows_written == FILES * 10
        assert _ids(database) == IDS
        assert tries.read_text().count("\n") == 2
        assert result.stages["write"].retries == 1  # counted in the summary and metrics
        (logged,) = [r.getMessage() for r in caplog.records if "transient" in r.getMessage()]
        assert logged.startswith("partition ") and "try 2 of 4" in logged
        assert "connection reset while reading" in logged
    else:  # a refused row: the run fails at its first try, nothing committed
        with pytest.raises(DataLoaderError, match="row 1160 is refused") as raised:
            run.run()
        assert "got <object" not in str(raised.value)  # no sentinel shown as a value
        assert tries.read_text().count("\n") == 1
        assert _committed(database) is None


@pytest.mark.parametrize(
    ("address", "cause"),
    [
        ("http://127.0.0.1:8786", "unknown address scheme 'http'"),
        ("tls://127.0.0.1:8786", "TLS expects"),
        ("tcp://scheduler-without-port", "missing port number"),
    ],
)
def test_an_address_dask_cannot_use_names_the_key_and_the_run_is_recorded(
    tmp_path: Path, registry: Registry, address: str, cause: str
) -> None:
    recipe = _recipe(_files(tmp_path / "data"), tmp_path / "out.duckdb", address)
    with pytest.raises(DataLoaderError, match=cause) as raised:
        distributed_run(recipe, tmp_path / "state", registry).run()
    assert raised.value.problem.key == "runtime.address"
    assert raised.value.problem.value == address
    stored = LocalStateBackend(tmp_path / "state").load("dask_failures")
    (history,) = stored["checkpoints"]
    assert history["status"] == "failed" and cause in history["error"]


def test_the_python_api_runs_a_recipe_on_its_executor(
    tmp_path: Path, address: str, registry: Registry
) -> None:
    # Found: `run_recipe` ran every recipe single-process, whatever `runtime.executor` said.
    from dataloader.engine import run_recipe

    recipe = Recipe.model_validate(
        _recipe(_files(tmp_path / "data"), tmp_path / "o.duckdb", address)
    )
    result = run_recipe(recipe, LocalStateBackend(tmp_path / "state"), registry=registry)
    assert result.rows_written == FILES * 10
    assert _ids(tmp_path / "o.duckdb") == IDS
    committed = _committed(tmp_path / "o.duckdb")
    assert committed is not None and committed["last_commit"]["counts"]["partitions"] == 8
