"""Attacks on distributed runs' file staging (issue 17, second slice): a filestore destination
(Parquet, CSV, JSON Lines) and DuckDB's Parquet staging, each finding a test. The reference is
the single-process run of the same recipe: exactly its files (rows and types) or table, or a
refusal naming the key before anything is committed. One local cluster (2 worker processes)
for the module; the runs reach it by `runtime.address`."""

from __future__ import annotations

import datetime as dt
import decimal
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import Client

from dataloader.engine.distributed import create_run
from dataloader.errors import DataLoaderError
from dataloader.recipe.binding import bind_recipe
from dataloader.recipe.models import Recipe
from dataloader.registry import Registry
from dataloader.state.local import LocalStateBackend

FILES = 8  # parallelism 2: 8 partitions, file i alone in one of them


def _run(
    tmp_path: Path,
    registry: Registry,
    address: str,
    executor: str,
    source: dict[str, Any],
    destination: dict[str, Any],
    name: str = "files_attack",
) -> Any:
    recipe = Recipe.model_validate(
        {
            "name": name,
            "source": source,
            "destination": destination,
            "runtime": {"executor": executor, "address": address, "parallelism": 2},
        }
    )
    run = create_run(
        bind_recipe(recipe, registry),
        LocalStateBackend(tmp_path / f"state-{executor}-{name}"),
        registry=registry,
    )
    return run.run()


def _parquet_files(tmp_path: Path, tables: list[pa.Table], name: str = "data") -> dict[str, Any]:
    data = tmp_path / name
    data.mkdir()
    for index, table in enumerate(tables):
        pq.write_table(table, data / f"f{index}.parquet")
    return {"type": "filestore", "path": str(data / "*.parquet")}


def _csv_files(tmp_path: Path, texts: list[str], name: str = "data") -> dict[str, Any]:
    data = tmp_path / name
    data.mkdir()
    for index, text in enumerate(texts):
        (data / f"f{index}.csv").write_text(text)
    return {"type": "filestore", "path": str(data / "*.csv")}


def _visible(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_file() and not p.name.startswith((".", "_")))


def _part_schemas(out: Path) -> set[str]:
    return {str(pq.read_schema(path).remove_metadata()) for path in _visible(out)}


def _parquet_rows(out: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in _visible(out):
        rows += pq.read_table(path).to_pylist()
    return sorted(rows, key=lambda row: row["id"])


def _files_both(
    tmp_path: Path, registry: Registry, address: str, source: dict[str, Any], **destination: Any
) -> dict[str, Path]:
    outs = {}
    for executor in ("local", "dask"):
        out = tmp_path / f"out-{executor}"
        _run(
            tmp_path,
            registry,
            address,
            executor,
            source,
            {"type": "filestore", "path": str(out), "format": "parquet", **destination},
        )
        outs[executor] = out
    return outs


def _duckdb_table(database: Path) -> tuple[list[Any], list[Any]]:
    """The table's columns and its rows, every value as text (exactly as stored)."""
    with duckdb.connect(str(database), read_only=True) as con:
        columns = [row[:2] for row in con.execute("DESCRIBE t").fetchall()]
        names = ", ".join(_quoted(name) + "::VARCHAR" for name, _ in columns)
        rows = con.execute(f"SELECT {names} FROM t ORDER BY ALL").fetchall()
    return columns, rows


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _duckdb_both(
    tmp_path: Path, registry: Registry, address: str, source: dict[str, Any]
) -> dict[str, Any]:
    loaded = {}
    for executor in ("local", "dask"):
        database = tmp_path / f"{executor}.duckdb"
        destination = {"type": "duckdb", "database": str(database), "table": "t"}
        _run(tmp_path, registry, address, executor, source, destination)
        loaded[executor] = _duckdb_table(database)
    return loaded


@pytest.mark.parametrize(
    ("column", "values"),
    [
        (pa.array([3] * FILES, pa.int64()), pa.array([i + 0.5 for i in range(FILES)])),
        (
            pa.array([decimal.Decimal("1.25")] * FILES, pa.decimal128(10, 2)),
            pa.array([1.005] * FILES),
        ),
        (
            pa.array([dt.datetime(2024, 1, 1)] * FILES, pa.timestamp("ms", "UTC")),
            pa.array([dt.datetime(2024, 1, 2, 0, 0, 0, 123456)] * FILES, pa.timestamp("us", "UTC")),
        ),
    ],
    ids=["bigint", "decimal", "timestamp_ms"],
)
def test_rows_appended_to_a_file_dataset_that_do_not_fit_it_are_refused_not_committed(
    tmp_path: Path, address: str, registry: Registry, column: pa.Array, values: pa.Array
) -> None:
    # Finding (silent corruption of the dataset's types): a Parquet directory loaded before
    # with `v` int64 (decimal(10,2), timestamp[ms]), then an append whose rows carry doubles
    # (0.5, 1.5, … or 1.005) or microseconds. Single-process checks each value against the
    # column the state recorded and refuses ("does not fit"); the distributed run committed
    # parts of `v: double` (timestamp[us]) beside the exact ones: the driver checks the
    # staged types against `describe()`, which a file destination does not give (None), and
    # never against the schema the state recorded.
    out = tmp_path / "out"
    destination = {"type": "filestore", "path": str(out), "format": "parquet"}
    before = _parquet_files(
        tmp_path,
        [pa.table({"id": [i], "v": column.slice(i, 1)}) for i in range(FILES)],
        "before",
    )
    _run(tmp_path, registry, address, "local", before, destination)
    source = _parquet_files(
        tmp_path, [pa.table({"id": [100 + i], "v": values.slice(i, 1)}) for i in range(FILES)]
    )
    with pytest.raises(DataLoaderError, match="does not fit"):
        _run(tmp_path, registry, address, "local", source, destination)
    with pytest.raises(DataLoaderError, match="cannot hold without loss"):
        _run(tmp_path, registry, address, "dask", source, destination)
    assert [row["id"] for row in _parquet_rows(out)] == list(range(FILES))
    assert _part_schemas(out) == {f"id: int64\nv: {column.type}"}


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_a_column_of_nulls_only_is_left_out_of_the_files_as_single_process(
    tmp_path: Path, address: str, registry: Registry, file_format: str
) -> None:
    # Finding (files differ from single-process): a column NULL in every row is left out of
    # a single-process run's parts (the schema manager gives it no type); the distributed
    # run's parts keep it, as `note: null` in Parquet and an empty `note` column in CSV. The
    # driver leaves it out of the planned schema, but the parts are committed as staged.
    tables = [pa.table({"id": [index], "note": pa.nulls(1)}) for index in range(FILES)]
    source = _parquet_files(tmp_path, tables)
    outs = _files_both(tmp_path, registry, address, source, format=file_format)
    if file_format == "parquet":
        assert _part_schemas(outs["local"]) == {"id: int64"}
        assert _part_schemas(outs["dask"]) == _part_schemas(outs["local"])
    else:
        headers = {
            executor: {path.read_text().splitlines()[0] for path in _visible(out)}
            for executor, out in outs.items()
        }
        assert headers["local"] == {'"id"'}
        assert headers["dask"] == headers["local"]


def test_parts_hold_the_types_a_single_process_run_casts_them_to(
    tmp_path: Path, address: str, registry: Registry
) -> None:
    # Finding (files differ from single-process; the committed directory cannot be read as
    # one dataset): CSV files whose `v` is 1.25 in the first and integers in the others.
    # Single-process widens `v` to a decimal at the first file and casts the integers of
    # the later ones to it: every part holds `v` as a decimal. The distributed run's parts
    # keep the types each partition inferred (the batches are never cast to the planned
    # table), so 7 parts hold `v: int64`, and pyarrow's dataset read of the directory fails
    # ("Precision is not great enough for the result").
    texts = [f"id,v\n{i},{i}\n" for i in range(FILES)]
    texts[0] = "id,v\n0,1.25\n"
    source = _csv_files(tmp_path, texts)
    outs = _files_both(tmp_path, registry, address, source)
    local_types = {pq.read_schema(path).field("v").type for path in _visible(outs["local"])}
    assert all(pa.types.is_decimal(kind) for kind in local_types), local_types
    dask_types = {pq.read_schema(path).field("v").type for path in _visible(outs["dask"])}
    assert all(pa.types.is_decimal(kind) for kind in dask_types), dask_types
    whole = pq.read_table(outs["dask"]).sort_by("id")
    assert [str(v) for v in whole.column("v").to_pylist()] == [
        str(row["v"]) for row in _parquet_rows(outs["local"])
    ]


@pytest.mark.parametrize(
    "column",
    [
        pa.array(["x"] * FILES).dictionary_encode(),
        pa.array(
            [dt.timedelta(seconds=i, microseconds=7) for i in range(FILES)], pa.duration("us")
        ),
        pa.array([b"ab"] * FILES, pa.binary(2)),
    ],
    ids=["dictionary", "duration", "fixed_size_binary"],
)
def test_parquet_types_single_process_loads_into_duckdb_are_not_refused(
    tmp_path: Path, address: str, registry: Registry, column: pa.Array
) -> None:
    # Finding (a load single-process does, refused): Parquet files with a dictionary-encoded
    # string column (pandas' categorical), a duration or a fixed-size binary. Single-process
    # loads VARCHAR, INTERVAL, BLOB; the distributed run refuses "the partitions staged
    # dictionary<values=string, …> (duration[us], fixed_size_binary[2]), which the table's
    # string (month_day_nano_interval, binary) cannot hold without loss": the driver compares
    # the staged Arrow type with the type DuckDB gives back, which is the same column.
    tables = [pa.table({"id": [i], "v": column.slice(i, 1)}) for i in range(FILES)]
    source = _parquet_files(tmp_path, tables)
    loaded = _duckdb_both(tmp_path, registry, address, source)
    assert len(loaded["local"][1]) == FILES
    assert loaded["dask"] == loaded["local"]


def test_a_postgres_interval_array_loads_into_duckdb_as_single_process(
    tmp_path: Path, address: str, registry: Registry, postgres_server: Any, postgres_database: str
) -> None:
    # Finding (a load single-process does, failed with an unclear error): an `interval[]`
    # column. Single-process loads INTERVAL[]; the staging turns top-level intervals into
    # structs only, so every task fails with "ArrowNotImplementedError: Unhandled type for
    # Arrow to Parquet schema conversion: month_day_nano_interval" (no key, no column).
    connection = postgres_server.connect(postgres_database)
    with connection, connection.cursor() as cursor:
        cursor.execute(
            'CREATE TABLE spans (id integer PRIMARY KEY, "Spans ü"".x" interval[]); '
            "INSERT INTO spans SELECT i, ARRAY[(i - 50) * interval '1 month 1 day 3.000007 "
            "seconds', NULL] FROM generate_series(1, 100) i"
        )
    connection.close()
    source = {
        "type": "postgres",
        **postgres_server.connection_settings(postgres_database),
        "table": "spans",
        "partition_column": "id",
    }
    loaded = _duckdb_both(tmp_path, registry, address, source)
    assert ('Spans ü".x', "INTERVAL[]") in loaded["local"][0]
    assert loaded["dask"] == loaded["local"]


def test_timestamps_of_two_units_end_as_the_single_process_run(
    tmp_path: Path, address: str, registry: Registry
) -> None:
    # Finding (a divergence, no loss): Parquet files whose `at` is timestamp[ms, UTC] in the
    # first and timestamp[ns, UTC] with sub-millisecond digits in another. Single-process
    # keeps the column's first unit (the schema manager's `_unit_only`: no widening by unit)
    # and refuses the nanoseconds ("does not fit timestamptz[ms]"); the driver's
    # `unite_parts` takes the finer unit and commits a TIMESTAMPTZ_NS table. The two
    # executors must agree (both refuse, or both load).
    tables = [
        pa.table({"id": [i], "at": pa.array([1_700_000_000_123 + i], pa.timestamp("ms", "UTC"))})
        for i in range(FILES)
    ]
    tables[3] = pa.table(
        {"id": [3], "at": pa.array([1_700_000_000_123_456_789], pa.timestamp("ns", "UTC"))}
    )
    source = _parquet_files(tmp_path, tables)
    outcome = {}
    for executor in ("local", "dask"):
        database = tmp_path / f"{executor}.duckdb"
        destination = {"type": "duckdb", "database": str(database), "table": "t"}
        try:
            _run(tmp_path, registry, address, executor, source, destination)
            outcome[executor] = _duckdb_table(database)
        except DataLoaderError as exc:
            outcome[executor] = f"refused: {exc.problem.key}"
    assert outcome["local"] == "refused: schema.on_violation"
    assert isinstance(outcome["dask"], str), outcome["dask"]  # refused too


@pytest.fixture
def elsewhere(tmp_path: Path, address: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The driver in `<tmp>/driver`, the cluster's workers in `<tmp>/worker` (as on an
    existing cluster whose workers were started in another directory); restored after."""
    (tmp_path / "driver").mkdir()
    (tmp_path / "worker").mkdir()
    monkeypatch.chdir(tmp_path / "driver")
    with Client(address) as client:
        before = client.run(os.getcwd)
        client.run(os.chdir, str(tmp_path / "worker"))
        try:
            yield tmp_path
        finally:
            for worker, cwd in before.items():
                client.run(os.chdir, cwd, workers=[worker])


def test_a_relative_destination_path_is_committed_where_the_driver_names_it(
    elsewhere: Path, address: str, registry: Registry
) -> None:
    # Finding (silent loss at the named destination): `path: out`, relative, run on a
    # cluster whose workers' working directory is not the driver's. Each worker resolves
    # `out` against its own directory and reports absolute part paths there; the driver
    # renames them in place, writes the commit record (state: 8 rows committed) into its own
    # `out`, and reports success: the driver's `out` holds no row, `<worker dir>/out` holds
    # them all (under overwrite, the driver's old parts are removed and the new ones land
    # elsewhere). Either the path is made absolute by the driver before the tasks leave, or
    # the run is refused naming `destination.path`.
    # Fixed: refused before the commit, naming the key, the worker's parts removed.
    source = _csv_files(elsewhere, [f"id,v\n{i},x\n" for i in range(FILES)])
    destination = {"type": "filestore", "path": "out", "format": "csv"}
    with pytest.raises(DataLoaderError, match="outside the directory the driver") as raised:
        _run(elsewhere, registry, address, "dask", source, destination)
    assert raised.value.problem.key == "destination.path"
    assert not _visible(elsewhere / "driver" / "out")
    assert not list((elsewhere / "worker" / "out").iterdir())


def test_a_relative_duckdb_database_is_staged_where_the_driver_reads_it(
    elsewhere: Path, address: str, registry: Registry
) -> None:
    # Finding (unclear error, staging left behind): `database: out.duckdb`, relative, on a
    # cluster whose workers' working directory is not the driver's. The workers stage under
    # `<worker dir>/.out.duckdb.staging/`, the driver looks under its own directory and fails
    # with "FileNotFoundError: … Failed to open local file '.out.duckdb.staging/…'" (no key);
    # the parts stay in the worker's directory, which no discard reaches. Expected: the rows
    # of the single-process run, or a refusal naming `destination.database`.
    source = _csv_files(elsewhere, [f"id,v\n{i},x\n" for i in range(FILES)])
    destination = {"type": "duckdb", "database": "out.duckdb", "table": "t"}
    try:
        _run(elsewhere, registry, address, "dask", source, destination)
    except DataLoaderError as exc:
        assert exc.problem.key == "destination.database", str(exc)
    else:
        assert len(_duckdb_table(elsewhere / "driver" / "out.duckdb")[1]) == FILES
    assert not (elsewhere / "worker" / ".out.duckdb.staging").exists()
