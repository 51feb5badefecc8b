"""Attacks on distributed runs into Postgres (issue 17, second slice), each a finding named in
its comment, on one local cluster (2 worker processes) for the module. The reference is the
single-process run of the same recipe into an identical table: a distributed run gives
exactly its rows, types and table, or refuses before anything is committed with an error
naming the key."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataloader.engine.distributed import create_run
from dataloader.errors import DataLoaderError
from dataloader.recipe.binding import bind_recipe
from dataloader.recipe.models import Recipe
from dataloader.registry import Registry
from dataloader.state.local import LocalStateBackend

EXECUTORS = ("local", "dask")


class Db:
    """The test database, on an autocommit connection of its own."""

    def __init__(self, server: Any, database: str) -> None:
        self.settings = server.connection_settings(database)
        self.connection = server.connect(database)
        self.connection.autocommit = True

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        cursor = self.connection.cursor()
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []

    def exists(self, table: str) -> bool:
        return self.query("SELECT to_regclass(%s) IS NOT NULL", (f'"{table}"',))[0][0]

    def rows(self, table: str) -> list[Any]:
        """The table's rows as Postgres prints them, sorted."""
        return self.query(f'SELECT t::text FROM "{table}" AS t ORDER BY 1')

    def columns(self, table: str) -> list[Any]:
        return self.query(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (f'"{table}"',),
        )


@pytest.fixture
def db(postgres_server: Any, postgres_database: str) -> Iterator[Db]:
    helper = Db(postgres_server, postgres_database)
    try:
        yield helper
    finally:
        helper.connection.close()


Outcome = tuple[str | None, list[Any] | None, list[Any]]


def run_both(
    tmp_path: Path,
    registry: Registry,
    address: str,
    db: Db,
    source: dict[str, Any],
    *,
    create: str | None = None,
) -> dict[str, Outcome]:
    """The recipe run single-process into `t_local` and on the cluster into `t_dask` (each
    created first with `create`'s columns when given): per executor, the error's message (or
    None), the rows (None without a table) and the table's columns."""
    outcomes: dict[str, Outcome] = {}
    for executor in EXECUTORS:
        table = f"t_{executor}"
        if create is not None:
            db.query(f'CREATE TABLE "{table}" ({create})')
        recipe = {
            "name": f"attack_{executor}",
            "source": source,
            "destination": {"type": "postgres", **db.settings, "table": table},
            "runtime": {"executor": executor, "address": address, "parallelism": 2},
        }
        run = create_run(
            bind_recipe(Recipe.model_validate(recipe), registry),
            LocalStateBackend(tmp_path / f"state-{executor}"),
            registry=registry,
        )
        error = None
        try:
            run.run()
        except DataLoaderError as exc:
            error = str(exc)
        rows = db.rows(table) if db.exists(table) else None
        outcomes[executor] = (error, rows, db.columns(table))
    return outcomes


def parquet_files(tmp_path: Path, tables: list[pa.Table]) -> dict[str, Any]:
    data = tmp_path / "data"
    data.mkdir()
    for index, table in enumerate(tables):
        pq.write_table(table, data / f"f{index}.parquet")
    return {"type": "filestore", "path": str(data / "*.parquet")}


def test_an_inet_column_into_an_existing_cidr_table_is_refused_as_single_process(
    tmp_path: Path, address: str, registry: Registry, db: Db
) -> None:
    # Found by attack (silent corruption): the workers stage the source's inet column as inet
    # (its type tag) and the driver's INSERT … SELECT CAST(ip AS cidr) zeroes the host bits:
    # 10.0.0.1/8 is committed as 10.0.0.0/8 (with the state), where the single-process COPY
    # refuses the value ("invalid cidr value") and commits nothing.
    db.query("CREATE TABLE src (id bigint, ip inet)")
    db.query(
        "INSERT INTO src SELECT i, ('10.0.0.' || i || '/8')::inet FROM generate_series(1, 16) i"
    )
    source = {"type": "postgres", **db.settings, "table": "src", "partition_column": "id"}
    outcomes = run_both(tmp_path, registry, address, db, source, create="id bigint, ip cidr")
    error, rows, _ = outcomes["local"]
    assert error is not None and "invalid cidr value" in error and rows == []
    assert outcomes["dask"][1] == []  # nothing committed, as single-process
    assert outcomes["dask"][0] is not None


def test_a_column_of_nulls_only_loads_as_single_process(
    tmp_path: Path, address: str, registry: Registry, db: Db
) -> None:
    # Found by attack (fails where single-process loads, with an error naming nothing):
    # Parquet files whose column `n` is of type null in every file. Single-process leaves the
    # column out; the driver leaves it out of the planned table too, but `_insert_part`
    # inserts every column of the staging table (where `n` is text) and looks up the table's
    # type of `n`: the run fails with "KeyError: 'n'".
    tables = [
        pa.table({"id": pa.array([i], pa.int64()), "n": pa.array([None], pa.null())})
        for i in range(4)
    ]
    outcomes = run_both(tmp_path, registry, address, db, parquet_files(tmp_path, tables))
    assert outcomes["local"] == (None, [("(0)",), ("(1)",), ("(2)",), ("(3)",)], [("id", "bigint")])
    assert outcomes["dask"] == outcomes["local"]


def test_a_struct_column_is_stored_as_jsonb_as_single_process(
    tmp_path: Path, address: str, registry: Registry, db: Db
) -> None:
    # Found by attack (fails where single-process loads): a struct column (no normalization)
    # becomes a jsonb column single-process. The driver creates that jsonb column, then
    # checks the staged struct type against the table's described type (a string tagged
    # jsonb) and refuses: "the partitions staged struct<…>, which the table's string cannot
    # hold without loss". No struct or map column ever loads into Postgres distributed.
    tables = [
        pa.table({"id": pa.array([i], pa.int64()), "v": pa.array([{"a": i, "b": "x"}])})
        for i in range(4)
    ]
    outcomes = run_both(tmp_path, registry, address, db, parquet_files(tmp_path, tables))
    assert outcomes["local"][0] is None
    assert outcomes["local"][2] == [("id", "bigint"), ("v", "jsonb")]
    assert outcomes["dask"] == outcomes["local"]


def test_integers_into_a_numeric_column_are_stored_with_another_scale(
    tmp_path: Path, address: str, registry: Registry, db: Db
) -> None:
    # Found by attack (differs from single-process): integers into an existing unconstrained
    # numeric / numeric[] column. Single-process casts them to the column's Arrow type
    # (decimal(38,9)) and stores 1.000000000; the driver's CAST(bigint AS numeric) stores 1.
    # Equal numbers, other values as stored (scale, text, what `::text` readers see).
    db.query("CREATE TABLE src (id bigint, v bigint, w int[])")
    db.query("INSERT INTO src SELECT i, i, ARRAY[i] FROM generate_series(1, 8) i")
    source = {"type": "postgres", **db.settings, "table": "src", "partition_column": "id"}
    outcomes = run_both(
        tmp_path, registry, address, db, source, create="id bigint, v numeric, w numeric[]"
    )
    assert ("(1,1.000000000,{1.000000000})",) in (outcomes["local"][1] or [])
    # Left as it is (docs/distributed.md): equal numbers, stored without the scale.
    equal = "SELECT count(*) FROM t_local l JOIN t_dask d USING (id) WHERE l.v = d.v AND l.w = d.w"
    assert db.query(equal) == [(8,)]


def test_durations_of_several_units_are_refused_naming_the_column(
    tmp_path: Path, address: str, registry: Registry, db: Db
) -> None:
    # Found by attack (error quality): files whose duration column has another unit in each.
    # Single-process refuses naming the column and the schema contract; the distributed run
    # fails with Arrow's own "ArrowInvalid: Casting from duration[ns] to duration[us] would
    # lose data: 1234567", naming neither the column nor a key.
    units = ["s", "ms", "us", "ns"]
    tables = [
        pa.table({"id": pa.array([i], pa.int64()), "v": pa.array([1234567], pa.duration(unit))})
        for i, unit in enumerate(units)
    ]
    outcomes = run_both(tmp_path, registry, address, db, parquet_files(tmp_path, tables))
    assert outcomes["local"][0] is not None and "column 'v'" in outcomes["local"][0]
    error = outcomes["dask"][0]
    assert error is not None
    assert "ArrowInvalid" not in error and "'v'" in error


def test_the_table_takes_the_column_order_of_the_largest_file(
    tmp_path: Path, address: str, registry: Registry, db: Db
) -> None:
    # Found by attack (differs from single-process): files with their columns in different
    # orders. Single-process creates the table in the order of the first file it reads (path
    # order); the driver unites the parts in partition order, and partition 0 holds the
    # largest file (balanced by size), so the table's columns come in that file's order.
    tables = [
        pa.table({"id": pa.array([1], pa.int64()), "a": ["x"], "b": ["y"]}),
        pa.table(
            {
                "b": ["y"] * 500,
                "id": pa.array(range(2, 502), pa.int64()),
                "c": ["z" * 30] * 500,
                "a": ["x"] * 500,
            }
        ),
    ]
    outcomes = run_both(tmp_path, registry, address, db, parquet_files(tmp_path, tables))
    assert [name for name, _ in outcomes["local"][2]] == ["id", "a", "b", "c"]
    # Left as it is (docs/distributed.md): the same columns and types, in another order.
    assert sorted(outcomes["dask"][2]) == sorted(outcomes["local"][2])
    assert outcomes["dask"][0] is None and len(outcomes["dask"][1]) == 501


def test_an_empty_source_empties_the_table_under_overwrite_as_single_process(
    tmp_path: Path, address: str, registry: Registry, db: Db
) -> None:
    # Tried, holds: an overwrite from an empty Postgres table (one "all rows" partition that
    # stages nothing) empties the existing table, as single-process does.
    db.query("CREATE TABLE src (id bigint, at timestamptz)")
    source = {"type": "postgres", **db.settings, "table": "src", "partition_column": "id"}
    for executor in EXECUTORS:
        db.query(f"CREATE TABLE t_{executor} (id bigint, at timestamptz)")
        db.query(f"INSERT INTO t_{executor} VALUES (1, now())")
        recipe = {
            "name": f"empty_{executor}",
            "source": source,
            "destination": {
                "type": "postgres",
                **db.settings,
                "table": f"t_{executor}",
                "write_mode": "overwrite",
            },
            "runtime": {"executor": executor, "address": address, "parallelism": 2},
        }
        create_run(
            bind_recipe(Recipe.model_validate(recipe), registry),
            LocalStateBackend(tmp_path / f"state-{executor}"),
            registry=registry,
        ).run()
        assert db.rows(f"t_{executor}") == []


def test_timestamps_of_several_zones_and_far_dates_load_as_single_process(
    tmp_path: Path, address: str, registry: Registry, db: Db
) -> None:
    # Tried, holds: timestamptz in four zones, dates before 1 AD and after 9999, -0.0, NaN,
    # infinity and subnormal doubles, one per file (so one per partition).
    zones = ["UTC", "Europe/Paris", "+05:30", "America/New_York"]
    days = [-800000, 3000000, 0, -1]
    floats = [-0.0, float("nan"), float("inf"), 1e-320]
    tables = [
        pa.table(
            {
                "id": pa.array([i], pa.int64()),
                "at": pa.array(
                    [dt.datetime(2024, 3, 10, 7, 30, tzinfo=dt.UTC)], pa.timestamp("us", zones[i])
                ),
                "day": pa.array([days[i]], pa.date32()),
                "f": pa.array([floats[i]], pa.float64()),
            }
        )
        for i in range(4)
    ]
    outcomes = run_both(tmp_path, registry, address, db, parquet_files(tmp_path, tables))
    assert outcomes["local"][0] is None
    assert outcomes["dask"] == outcomes["local"]


def test_an_overwrite_of_the_table_it_reads_ends_as_single_process(
    tmp_path: Path, address: str, registry: Registry, db: Db
) -> None:
    # Found by attack (hang): a recipe that reads a table and overwrites it (a rewrite through
    # transform steps, or a query that reads the destination). Single-process ends its read
    # before its commit swaps the table in. The driver keeps its source open until after the
    # commit (the plan's exported snapshot, whose REPEATABLE READ transaction holds an ACCESS
    # SHARE lock on the table since the plan's min/max query), so the commit's DROP TABLE
    # waits for the driver's own source session for ever, holding the recipe's lock. Here a
    # database-wide lock_timeout turns the wait into an error.
    db.query(f"ALTER DATABASE \"{db.settings['database']}\" SET lock_timeout = '3s'")
    for executor in EXECUTORS:
        table = f"self_{executor}"
        db.query(f"CREATE TABLE {table} AS SELECT i AS id FROM generate_series(1, 100) AS i")
        recipe = {
            "name": f"self_{executor}",
            "source": {"type": "postgres", **db.settings, "table": table, "partition_column": "id"},
            "destination": {
                "type": "postgres",
                **db.settings,
                "table": table,
                "write_mode": "overwrite",
            },
            "runtime": {"executor": executor, "address": address, "parallelism": 2},
        }
        run = create_run(
            bind_recipe(Recipe.model_validate(recipe), registry),
            LocalStateBackend(tmp_path / f"state-{executor}"),
            registry=registry,
        )
        run.run()  # dask: "Postgres commit failed … canceling statement due to lock timeout"
        assert db.query(f"SELECT count(*) FROM {table}") == [(100,)]


def test_parts_disagreeing_on_a_type_tag_are_refused_before_the_commit(
    tmp_path: Path, address: str, registry: Registry, db: Db
) -> None:
    # Found by attack (silent corruption): Parquet files whose `doc` column is a plain string
    # in the first file (path order) and tagged `pg_type: jsonb` (as a dataloader export
    # from Postgres writes it) in a larger one. Single-process creates `doc` as text from the
    # first file and stores every string as given. The driver unites the parts keeping the
    # first part's field metadata, and partition 0 holds the largest file: `doc` becomes
    # jsonb, and the first file's JSON text is rewritten (a duplicate key dropped, keys
    # reordered, spaces changed) with the state committed.
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(
        pa.table({"id": pa.array([1], pa.int64()), "doc": ['{"b":1,  "a":2, "a": 3}']}),
        data / "a.parquet",
    )
    tagged = pa.schema(
        [
            pa.field("id", pa.int64()),
            pa.field("doc", pa.string(), metadata={b"pg_type": b"jsonb"}),
        ]
    )
    ids = list(range(2, 600))
    pq.write_table(
        pa.Table.from_pydict({"id": ids, "doc": [f'{{"x": {i}}}' for i in ids]}, schema=tagged),
        data / "b.parquet",
    )
    source = {"type": "filestore", "path": str(data / "*.parquet")}
    outcomes = run_both(tmp_path, registry, address, db, source)
    assert ('(1,"{""b"":1,  ""a"":2, ""a"": 3}")',) in (outcomes["local"][1] or [])
    assert outcomes["local"][2] == [("id", "bigint"), ("doc", "text")]
    # Fixed: refused before anything is committed, naming the column's two tags.
    assert outcomes["dask"][0] is not None and "tagged jsonb" in outcomes["dask"][0]
    assert outcomes["dask"][1] is None or outcomes["dask"][1] == []


def test_two_runs_in_one_process_both_finish(
    tmp_path: Path, address: str, registry: Registry, db: Db
) -> None:
    # Found by attack (hang, intermittent: about one try in three here): two recipes run at
    # once from one Python process (`run_recipe` in two threads, as an orchestrator's worker
    # does) on one cluster. Now and then one run never ends: the scheduler holds its tasks
    # finished ('memory', wanted by its client), but the driver's `as_completed` never
    # yields them, so it waits for ever with the recipe's lock held. Up to 6 tries here; a
    # run that has not ended 30 s after the other is the hang.
    import threading

    db.query("CREATE TABLE src AS SELECT i::bigint AS id FROM generate_series(1, 400) AS i")
    for attempt in range(6):
        ended: dict[str, str] = {}

        def load(name: str, attempt: int = attempt, ended: dict[str, str] = ended) -> None:
            recipe = {
                "name": f"{name}_{attempt}",
                "source": {
                    "type": "postgres",
                    **db.settings,
                    "table": "src",
                    "partition_column": "id",
                },
                "destination": {"type": "postgres", **db.settings, "table": f"{name}_{attempt}"},
                "runtime": {"executor": "dask", "address": address, "parallelism": 2},
            }
            run = create_run(
                bind_recipe(Recipe.model_validate(recipe), registry),
                LocalStateBackend(tmp_path / f"state-{name}-{attempt}"),
                registry=registry,
            )
            ended[name] = str(run.run().rows_written)

        threads = [threading.Thread(target=load, args=(name,), daemon=True) for name in "xy"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert ended == {"x": "400", "y": "400"}, f"try {attempt}: ended {ended}"
