"""Attacks on the first slice of distributed runs (issue 17), each a finding (named in its
comment) kept as a test. The reference is the single-process run of the same recipe: exactly
its rows and table, or, where the driver cannot check values as it does, a refusal before
anything is committed. One local cluster (2 worker processes) for the module; the runs reach
it by `runtime.address`."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

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
    database: Path,
) -> None:
    recipe = Recipe.model_validate(
        {
            "name": "dask_attack",
            "source": source,
            "destination": {"type": "duckdb", "database": str(database), "table": "t"},
            "runtime": {"executor": executor, "address": address, "parallelism": 2},
        }
    )
    run = create_run(
        bind_recipe(recipe, registry),
        LocalStateBackend(tmp_path / f"state-{executor}"),
        registry=registry,
    )
    run.run()


def _loaded(database: Path) -> tuple[list[Any], list[Any]]:
    """The table's columns and its rows, every value as text (exactly as stored)."""
    with duckdb.connect(str(database), read_only=True) as con:
        columns = [row[:2] for row in con.execute("DESCRIBE t").fetchall()]
        names = ", ".join(f'"{name}"::VARCHAR' for name, _ in columns)
        rows = con.execute(f"SELECT {names} FROM t ORDER BY ALL").fetchall()
    return columns, rows


def _parquet_files(tmp_path: Path, tables: list[pa.Table]) -> dict[str, Any]:
    data = tmp_path / "data"
    data.mkdir()
    for index, table in enumerate(tables):
        pq.write_table(table, data / f"f{index}.parquet")
    return {"type": "filestore", "path": str(data / "*.parquet")}


def _csv_files(tmp_path: Path, texts: list[str]) -> dict[str, Any]:
    data = tmp_path / "data"
    data.mkdir()
    for index, text in enumerate(texts):
        (data / f"f{index}.csv").write_text(text)
    return {"type": "filestore", "path": str(data / "*.csv")}


def _tables(database: Path) -> list[Any]:
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute("SELECT table_name FROM information_schema.tables").fetchall()


def _local(tmp_path: Path, registry: Registry, address: str, source: dict[str, Any]) -> Any:
    database = tmp_path / "local.duckdb"
    _run(tmp_path, registry, address, "local", source, database)
    return _loaded(database)


def _dask(tmp_path: Path, registry: Registry, address: str, source: dict[str, Any]) -> Any:
    database = tmp_path / "dask.duckdb"
    _run(tmp_path, registry, address, "dask", source, database)
    return _loaded(database)


def test_decimals_beside_a_double_are_refused_not_rounded(
    tmp_path: Path, address: str, registry: Registry
) -> None:
    # Found by attack (silent corruption): the driver united the staged parts' schemas with
    # Arrow's permissive promotion: decimal(38,10) in 7 partitions and a double in one made a
    # DOUBLE column, every decimal rounded. The engine's lattice has no exact type for both
    # (without `allow_float`), so the run is refused and nothing is committed.
    exact = decimal.Decimal("12345678901234567890.1234567891")
    tables = [
        pa.table({"id": [i], "v": pa.array([exact], pa.decimal128(38, 10))})
        for i in range(FILES - 1)
    ]
    tables.append(pa.table({"id": [FILES - 1], "v": pa.array([1.5], pa.float64())}))
    source = _parquet_files(tmp_path, tables)
    local = _local(tmp_path, registry, address, source)
    assert ("v", "DECIMAL(38,10)") in local[0]
    assert (str(0), str(exact)) in local[1]
    with pytest.raises(DataLoaderError, match="no type holds both exactly") as refused:
        _dask(tmp_path, registry, address, source)
    assert "'v' is decimal128(38, 10) in staged part part-00000" in str(refused.value)
    assert ("t",) not in _tables(tmp_path / "dask.duckdb")


def test_a_big_integer_beside_a_double_is_refused_not_rounded(
    tmp_path: Path, address: str, registry: Registry
) -> None:
    # Found by attack (silent corruption): bigint 9007199254740993 in 7 partitions and 1.5 in
    # one were stored as DOUBLE (9007199254740992 in every row). Single-process refuses the
    # 1.5 (it does not fit int); the distributed run refuses the types, which share none.
    tables = [pa.table({"id": [i], "v": [9007199254740993]}) for i in range(FILES - 1)]
    tables.append(pa.table({"id": [FILES - 1], "v": [1.5]}))
    source = _parquet_files(tmp_path, tables)
    with pytest.raises(DataLoaderError, match="does not fit int"):
        _local(tmp_path, registry, address, source)
    with pytest.raises(DataLoaderError, match=r"'v' is int64 in staged part .* and double"):
        _dask(tmp_path, registry, address, source)


def test_an_integer_column_widened_by_a_decimal_keeps_room_for_bigints(
    tmp_path: Path, address: str, registry: Registry
) -> None:
    # Finding (a load the single-process run does, refused): CSV files with integers and one
    # with 1.5. Single-process widens the column to DECIMAL(20,1) (a bigint's 19 digits and
    # one decimal); Arrow's promotion gives DECIMAL(19,1), so the partition holding
    # 9223372036854775807 fails the driver's INSERT ("out of range").
    texts = [f"id,v\n{i},{i}\n" for i in range(FILES)]
    texts[2] = "id,v\n2,9223372036854775807\n"
    texts[6] = "id,v\n6,1.5\n"
    source = _csv_files(tmp_path, texts)
    local = _local(tmp_path, registry, address, source)
    assert ("v", "DECIMAL(20,1)") in local[0]
    assert _dask(tmp_path, registry, address, source) == local


def test_timestamps_of_two_zones_load_as_single_process(
    tmp_path: Path, address: str, registry: Registry
) -> None:
    # Finding (a load the single-process run does, refused with an unclear error): Parquet
    # files whose timestamps carry different zones (UTC, Europe/Paris). Single-process loads
    # one timestamptz column; the distributed run fails with "ArrowTypeError: Unable to merge
    # ... Cannot merge timestamps with differing timezones".
    tables = [
        pa.table(
            {
                "id": [i],
                "at": pa.array(
                    [dt.datetime(2024, 1, 1, i)],
                    pa.timestamp("us", "UTC" if i % 2 else "Europe/Paris"),
                ),
            }
        )
        for i in range(FILES)
    ]
    source = _parquet_files(tmp_path, tables)
    local = _local(tmp_path, registry, address, source)
    assert _dask(tmp_path, registry, address, source) == local


def test_types_that_cannot_be_united_get_an_error_naming_the_column_and_parts(
    tmp_path: Path, address: str, registry: Registry
) -> None:
    # Found by attack (unclear error): a column that is an integer in some files and text in
    # another gave "ArrowTypeError: Unable to merge", no key, no part. Now the error names the
    # key, the column, both types and the staged parts (the driver sees parts, not files).
    texts = [f"id,code\n{i},{'A' if i == 5 else ''}{i}\n" for i in range(FILES)]
    source = _csv_files(tmp_path, texts)
    with pytest.raises(DataLoaderError) as local:
        _local(tmp_path, registry, address, source)
    assert local.value.problem.key == "schema.on_violation"
    with pytest.raises(DataLoaderError) as distributed:
        _dask(tmp_path, registry, address, source)
    assert distributed.value.problem.key == "schema.evolution", str(distributed.value)
    message = str(distributed.value)
    assert "column 'code' is" in message and "staged part part-" in message
    assert "string" in message and "int64" in message


@pytest.mark.parametrize(
    ("column", "values"),
    [
        (pa.array([3] * FILES, pa.int64()), [i + 0.5 for i in range(FILES)]),
        (pa.array([decimal.Decimal("1.25")] * FILES, pa.decimal128(10, 2)), [1.005] * FILES),
    ],
    ids=["bigint", "decimal"],
)
def test_values_that_do_not_fit_the_table_are_refused_not_rounded(
    tmp_path: Path, address: str, registry: Registry, column: pa.Array, values: list[float]
) -> None:
    # Found by attack (silent corruption, the worst): a table loaded before (v BIGINT, or v
    # DECIMAL(10,2)), then a distributed append of doubles (0.5, 1.5, ... or 1.005): the
    # driver's INSERT cast them (0.5 -> 0, 1.005 -> 1.00) and committed. Single-process checks
    # each value; the driver sees types only, so it refuses a type the column cannot hold,
    # before anything is committed.
    database = tmp_path / "out.duckdb"
    data = tmp_path / "before"
    data.mkdir()
    for index in range(FILES):
        pq.write_table(pa.table({"id": [index], "v": column.slice(index, 1)}), data / f"{index}.pq")
    before = {"type": "filestore", "path": str(data / "*.pq"), "format": "parquet"}
    _run(tmp_path, registry, address, "local", before, database)
    source = _parquet_files(
        tmp_path, [pa.table({"id": [100 + i], "v": [value]}) for i, value in enumerate(values)]
    )
    with pytest.raises(DataLoaderError, match="does not fit"):
        _run(tmp_path, registry, address, "local", source, database)
    with pytest.raises(DataLoaderError, match="cannot hold without loss") as refused:
        _run(tmp_path, registry, address, "dask", source, database)
    assert refused.value.problem.key == "runtime.executor"
    with duckdb.connect(str(database), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM t WHERE id >= 100").fetchone() == (0,)


def test_a_column_of_nulls_only_is_left_out_as_single_process(
    tmp_path: Path, registry: Registry, address: str
) -> None:
    # Found: the NULL-typed column was created with DuckDB's type NULL.
    tables = [pa.table({"id": [index], "note": pa.nulls(1)}) for index in range(FILES)]
    source = _parquet_files(tmp_path, tables)
    local = _local(tmp_path, registry, address, source)
    assert local[0] == [("id", "BIGINT")]
    assert _dask(tmp_path, registry, address, source) == local


def test_a_column_of_nulls_beside_values_in_other_parts_keeps_their_type(
    tmp_path: Path, registry: Registry, address: str
) -> None:
    tables = [pa.table({"id": [index], "note": pa.nulls(1)}) for index in range(FILES - 1)]
    tables.append(pa.table({"id": [FILES - 1], "note": ["seen"]}))
    source = _parquet_files(tmp_path, tables)
    local = _local(tmp_path, registry, address, source)
    assert ("note", "VARCHAR") in local[0]
    assert _dask(tmp_path, registry, address, source) == local


def test_a_duckdb_source_is_read_by_the_workers_when_opened_read_only(
    tmp_path: Path, registry: Registry, address: str
) -> None:
    # Found: the driver held the source file open read-write and every worker failed on the
    # file's lock with DuckDB's error only; the error now names `source.read_only`.
    data = tmp_path / "source.duckdb"
    with duckdb.connect(str(data)) as con:
        con.execute("CREATE TABLE s AS SELECT range AS id, range % 7 AS k FROM range(1000)")
    source: dict[str, Any] = {"type": "duckdb", "database": str(data), "table": "s"}
    with pytest.raises(DataLoaderError, match="only read-only connections share it") as raised:
        _dask(tmp_path, registry, address, source)
    assert raised.value.problem.key == "source.read_only"
    source["read_only"] = True
    local = _local(tmp_path, registry, address, source)
    assert len(local[1]) == 1000
    assert _dask(tmp_path, registry, address, source) == local


def test_timestamps_in_seconds_load_as_single_process(
    tmp_path: Path, registry: Registry, address: str
) -> None:
    # Found: Parquet has no seconds unit; the parts held milliseconds and so did the table.
    start = dt.datetime(2024, 1, 1, 12, 30, 15)
    tables = [
        pa.table(
            {
                "id": [index],
                "at": pa.array([start + dt.timedelta(seconds=index)], pa.timestamp("s")),
            }
        )
        for index in range(FILES)
    ]
    source = _parquet_files(tmp_path, tables)
    local = _local(tmp_path, registry, address, source)
    assert _dask(tmp_path, registry, address, source) == local


def test_a_postgres_interval_column_loads_as_single_process(
    tmp_path: Path, address: str, registry: Registry, postgres_server: Any, postgres_database: str
) -> None:
    # Found: Parquet parts cannot hold an Arrow month_day_nano_interval; every task failed.
    connection = postgres_server.connect(postgres_database)
    with connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE spans (id integer PRIMARY KEY, span interval)")
        cursor.execute(
            "INSERT INTO spans SELECT i, CASE WHEN i % 10 = 0 THEN NULL ELSE "
            "(i - 50) * interval '1 month 1 day 2 hours 3.000007 seconds' END "
            "FROM generate_series(1, 100) i"
        )
    connection.close()
    source = {
        "type": "postgres",
        **postgres_server.connection_settings(postgres_database),
        "table": "spans",
        "partition_column": "id",
    }
    local = _local(tmp_path, registry, address, source)
    assert ("span", "INTERVAL") in local[0] and len(local[1]) == 100
    assert _dask(tmp_path, registry, address, source) == local
