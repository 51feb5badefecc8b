"""2,000 small CSV files into DuckDB on a local cluster the run starts (2 worker processes):
exactly the rows and the table of the single-process run, every partition committed once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
from dask_gates import dask_registry

from dataloader.engine.distributed import DistributedRun, create_run
from dataloader.recipe.binding import bind_recipe
from dataloader.recipe.models import Recipe
from dataloader.state.local import LocalStateBackend

FILES = 2_000
ROWS_PER_FILE = 3


def _recipe(data: Path, database: Path, executor: str) -> Recipe:
    return Recipe.model_validate(
        {
            "name": "dask_files",
            "source": {"type": "filestore", "path": str(data / "*.csv")},
            "destination": {"type": "duckdb", "database": str(database), "table": "events"},
            "runtime": {"executor": executor, "parallelism": 2},
        }
    )


def _table(database: Path) -> tuple[list[Any], list[Any]]:
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.sql("SELECT * FROM events ORDER BY id").fetchall()
        columns = con.sql("DESCRIBE events").fetchall()
    return rows, columns


def test_two_thousand_files_load_as_the_single_process_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for index in range(FILES):
        lines = "".join(
            f"{index * ROWS_PER_FILE + j},name {index}-{j},{(index * 7 + j) % 100 / 4}\n"
            for j in range(ROWS_PER_FILE)
        )
        (data / f"part-{index:05d}.csv").write_text("id,name,score\n" + lines)
    registry = dask_registry()
    local_db, dask_db = tmp_path / "local.duckdb", tmp_path / "dask.duckdb"

    local = create_run(
        bind_recipe(_recipe(data, local_db, "local"), registry),
        LocalStateBackend(tmp_path / "state-local"),
        registry=registry,
    )
    expected = local.run()
    run = create_run(
        bind_recipe(_recipe(data, dask_db, "dask"), registry),
        LocalStateBackend(tmp_path / "state-dask"),
        registry=registry,
    )
    assert isinstance(run, DistributedRun)
    result = run.run()

    assert result.status == "success"
    assert result.rows_written == expected.rows_written == FILES * ROWS_PER_FILE
    assert _table(dask_db) == _table(local_db)
    with duckdb.connect(str(dask_db), read_only=True) as con:
        (state,) = con.execute("SELECT state FROM _dataloader_state").fetchall()[0]
    assert '"partitions": 8' in state  # parallelism 2: 8 partitions planned, all committed
    assert not any((tmp_path / ".dask.duckdb.staging").rglob("*.parquet"))
