"""Distributed runs into Postgres on one local cluster (2 worker processes) this module starts:
the workers stage into unlogged tables of their own, the driver commits them with the state.

A partitioned Postgres table and a directory of Parquet files load exactly as the
single-process run loads them; a worker killed mid-partition, the driver killed after the
staging and after the commit, lose and duplicate nothing (the rerun gives the same rows); a
second concurrent run of the recipe is refused by the recipe's lock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dask_gates import kill_driver_at

from dataloader import ConnectorError, RunContext
from dataloader.engine.distributed import DistributedRun, create_run
from dataloader.errors import StateError
from dataloader.recipe.binding import bind_recipe
from dataloader.recipe.models import Recipe
from dataloader.registry import Registry
from dataloader.state.local import LocalStateBackend
from dataloader_postgres import PostgresConnector
from dataloader_postgres.config import PostgresConfig

HERE = Path(__file__).resolve().parent
ROWS = 4000
FILES = 40
ROWS_PER_FILE = 25


class Db:
    """The test database, on an autocommit connection of its own."""

    def __init__(self, server: Any, database: str) -> None:
        self.server = server
        self.database = database
        self.settings = server.connection_settings(database)
        self.connection = server.connect(database)
        self.connection.autocommit = True

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        cursor = self.connection.cursor()
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []

    def table(self, name: str) -> tuple[list[Any], list[Any]]:
        """The table's rows as Postgres prints them, by id, and its columns' types."""
        rows = self.query(f'SELECT "{name}"::text FROM "{name}" ORDER BY id')
        types = self.query(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attnum",
            (f'"{name}"',),
        )
        return rows, types

    def exists(self, name: str) -> bool:
        return self.query("SELECT to_regclass(%s) IS NOT NULL", (f'"{name}"',))[0][0]

    def part_tables(self) -> list[str]:
        rows = self.query("SELECT relname FROM pg_class WHERE starts_with(relname, '_dl_part_')")
        return sorted(name for (name,) in rows)

    def state(self, recipe: str) -> dict[str, Any] | None:
        if not self.exists("_dataloader_state"):
            return None
        rows = self.query("SELECT state FROM _dataloader_state WHERE recipe = %s", (recipe,))
        return rows[0][0] if rows else None

    def wait_for_locks_released(self) -> None:
        """Until the server has ended a killed driver's session (its advisory lock goes with
        it): the server notices a closed connection on its own time."""
        for _ in range(3000):
            if not self.query("SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"):
                return
            self.query("SELECT pg_sleep(0.01)")
        raise AssertionError("the killed driver's session still holds its lock")


@pytest.fixture
def db(postgres_server: Any, postgres_database: str) -> Iterator[Db]:
    helper = Db(postgres_server, postgres_database)
    helper.query(
        "CREATE TABLE items (id integer PRIMARY KEY, name text, amount numeric(14, 4), "
        "at timestamptz, ratio float8, raw bytea, doc jsonb)"
    )
    helper.query(
        "INSERT INTO items SELECT i, CASE WHEN i % 7 = 0 THEN NULL ELSE 'ítem ✓ ' || i END, "
        "i * 1.0625, timestamptz '2024-01-01 00:00:00+00' + i * interval '1.5 second', "
        "CASE WHEN i % 11 = 0 THEN 'NaN'::float8 ELSE i / 3.0 END, "
        "decode(lpad(to_hex(i), 8, '0'), 'hex'), "
        "CASE WHEN i % 5 = 0 THEN NULL ELSE jsonb_build_object('i', i, 'l', array[i, 2]) END "
        f"FROM generate_series(1, {ROWS}) AS i"
    )
    try:
        yield helper
    finally:
        helper.connection.close()


def _pg_recipe(db: Db, name: str, table: str, address: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"type": "postgres", **db.settings, "table": "items", "partition_column": "id"},
        "destination": {"type": "postgres", **db.settings, "table": table},
        "runtime": {"executor": "dask", "address": address, "parallelism": 2, "batch_size": 200},
        **extra,
    }


def _run(recipe: dict[str, Any], state: Path, registry: Registry) -> Any:
    model = Recipe.model_validate(recipe)
    return create_run(bind_recipe(model, registry), LocalStateBackend(state), registry=registry)


def test_a_partitioned_postgres_table_loads_as_the_single_process_run(
    tmp_path: Path, address: str, registry: Registry, db: Db
) -> None:
    for executor in ("local", "dask"):
        recipe = _pg_recipe(db, f"pg_{executor}", f"copy_{executor}", address)
        recipe["runtime"]["executor"] = executor
        run = _run(recipe, tmp_path / f"state-{executor}", registry)
        assert isinstance(run, DistributedRun) == (executor == "dask")
        assert run.run().rows_written == ROWS
    assert db.table("copy_dask") == db.table("copy_local")
    assert len(db.table("copy_dask")[0]) == ROWS
    assert db.state("pg_dask")["last_commit"]["counts"]["partitions"] == 8  # type: ignore[index]
    assert db.part_tables() == []


def test_parquet_files_load_as_the_single_process_run(
    tmp_path: Path, address: str, registry: Registry, db: Db
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for index in range(FILES):
        first = index * ROWS_PER_FILE
        numbers = range(first, first + ROWS_PER_FILE)
        columns: dict[str, pa.Array] = {
            "id": pa.array(numbers, pa.int64()),
            "name": pa.array([None if n % 9 == 0 else f"námé {n}" for n in numbers]),
            "price": pa.array([Decimal(n) / 8 for n in numbers], pa.decimal128(12, 3)),
            "at": pa.array(
                [start + timedelta(seconds=n) for n in numbers], pa.timestamp("us", "UTC")
            ),
        }
        if index % 2:  # half the files carry one more column: the partitions' schemas differ
            columns["score"] = pa.array([n / 4 for n in numbers], pa.float64())
        pq.write_table(pa.table(columns), data / f"part-{index:03d}.parquet")
    for executor in ("local", "dask"):
        recipe = {
            "name": f"files_{executor}",
            "source": {"type": "filestore", "path": str(data / "*.parquet")},
            "destination": {"type": "postgres", **db.settings, "table": f"files_{executor}"},
            "runtime": {"executor": executor, "address": address, "parallelism": 2},
        }
        assert _run(recipe, tmp_path / f"state-{executor}", registry).run().rows_written == (
            FILES * ROWS_PER_FILE
        )
    assert db.table("files_dask") == db.table("files_local")
    assert len(db.table("files_dask")[0]) == FILES * ROWS_PER_FILE
    assert db.part_tables() == []


def test_a_worker_killed_mid_partition_loses_and_duplicates_nothing(
    tmp_path: Path, address: str, registry: Registry, db: Db
) -> None:
    marker = tmp_path / "killed"
    # Partition 0 holds ids 1 to 500 in batches of 200: its first attempt has copied one
    # batch into its staging table, uncommitted, when it dies at id 300.
    step = {"type": "dask_kill_once", "marker": str(marker), "at_id": 300}
    recipe = _pg_recipe(db, "pg_killed", "killed", address, transform={"steps": [step]})
    result = _run(recipe, tmp_path / "state", registry).run()
    assert marker.exists()  # the worker died once
    assert result.rows_written == ROWS
    rows, _ = db.table("killed")
    assert rows == db.table("items")[0]
    assert db.part_tables() == []


def _expected(db: Db) -> list[Any]:
    return db.table("items")[0]


@pytest.mark.parametrize("gate", ["staged", "committed"])
def test_the_driver_killed_around_its_commit(
    tmp_path: Path, address: str, registry: Registry, db: Db, gate: str
) -> None:
    recipe = _pg_recipe(db, "pg_driver", "driven", address)
    recipe["source"]["incremental"] = {"cursor_column": "id"}
    state = kill_driver_at(recipe, tmp_path, gate)
    assert len(db.part_tables()) == 8  # committed by the workers, left by the dead driver
    if gate == "staged":  # the old table and state: none
        assert not db.exists("driven")
        assert db.state("pg_driver") is None
    else:  # the new ones
        assert db.table("driven")[0] == _expected(db)
        assert db.state("pg_driver")["cursor_values"] == {"id": ROWS}  # type: ignore[index]
    db.wait_for_locks_released()
    rerun = _run(recipe, state, registry).run()
    assert rerun.rows_written == (ROWS if gate == "staged" else 0)
    assert db.table("driven")[0] == _expected(db)  # once, either way
    assert db.state("pg_driver")["cursor_values"] == {"id": ROWS}  # type: ignore[index]
    assert db.part_tables() == []


def test_a_second_concurrent_run_is_refused_by_the_locks(
    tmp_path: Path, address: str, registry: Registry, db: Db
) -> None:
    recipe = _pg_recipe(db, "pg_locked", "locked", address)
    state = tmp_path / "state"
    with (
        LocalStateBackend(state).lock("pg_locked"),  # a first run holds the state backend's
        pytest.raises(StateError, match="already running"),
    ):
        _run(recipe, state, registry).run()
    # A first run elsewhere (another state backend) holds the recipe's lock in the database.
    first = PostgresConnector(PostgresConfig(**db.settings, table="locked"))
    first.open(
        RunContext(
            recipe_name="pg_locked",
            run_id="elsewhere",
            started_at=datetime.now(UTC),
            role="destination",
        )
    )
    try:
        with pytest.raises(ConnectorError, match="another run of recipe 'pg_locked'"):
            _run(recipe, tmp_path / "other-state", registry).run()
    finally:
        first.close()
    assert not db.exists("locked")
    assert db.part_tables() == []


def test_overwrite_replaces_the_rows(
    tmp_path: Path, address: str, registry: Registry, db: Db
) -> None:
    recipe = _pg_recipe(db, "pg_over", "over", address)
    state = tmp_path / "state"
    _run(recipe, state, registry).run()
    _run(recipe, state, registry).run()
    assert len(db.table("over")[0]) == 2 * ROWS
    recipe["destination"]["write_mode"] = "overwrite"
    _run(recipe, state, registry).run()
    assert db.table("over")[0] == _expected(db)
    assert db.part_tables() == []
    assert [n for (n,) in db.query("SELECT relname FROM pg_class WHERE relname LIKE '_dl%'")] == []


def test_postgres_is_listed_as_a_destination_that_stages(registry: Registry) -> None:
    capabilities = registry.connector("postgres").capabilities
    assert capabilities is not None and capabilities.can_stage
