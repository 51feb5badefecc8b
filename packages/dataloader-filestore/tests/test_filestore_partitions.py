"""A filestore source's plan: the files `read_batches` would read, in lists balanced by size;
the partitions read apart give exactly its rows, with its incremental selection."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dataloader import RunContext, State
from dataloader.recipe.models import IncrementalConfig
from dataloader_filestore.config import FileStoreConfig
from dataloader_filestore.connector import FileStoreConnector


def opened(path: Path | str, incremental: bool = False, **keys: Any) -> FileStoreConnector:
    connector = FileStoreConnector(FileStoreConfig(path=str(path), **keys))
    connector.open(
        RunContext(
            recipe_name="plan",
            run_id="r",
            started_at=datetime.now(UTC),
            batch_size=7,
            incremental=IncrementalConfig(strategy="modified_time") if incremental else None,
        )
    )
    return connector


def rows_of(batches: Any) -> list[tuple[Any, ...]]:
    rows = []
    for batch in batches:
        rows += [tuple(row.values()) for row in batch.to_arrow().to_pylist()]
    return rows


def write_csvs(directory: Path, lines: dict[str, int]) -> None:
    directory.mkdir(exist_ok=True)
    start = 0
    for name, count in lines.items():
        body = "".join(f"{i},{name}-{i}\n" for i in range(start, start + count))
        (directory / name).write_text("id,name\n" + body)
        start += count


def test_files_are_balanced_by_size_never_more_partitions_than_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_csvs(data, {"a.csv": 400, "b.csv": 100, "c.csv": 300, "d.csv": 200, "e.csv": 10})
    sizes = {path.name: path.stat().st_size for path in data.iterdir()}
    source = opened(data)
    plan = source.plan_partitions(State(), 2)
    assert plan is not None
    assert [p.index for p in plan] == [0, 1]
    names = [[Path(f["path"]).name for f in p.spec["files"]] for p in plan]
    assert names == [["a.csv", "b.csv", "e.csv"], ["c.csv", "d.csv"]]  # 400+100+10 | 300+200
    assert [p.estimated_bytes for p in plan] == [sum(sizes[n] for n in group) for group in names]
    assert [p.estimated_rows for p in plan] == [None, None]  # CSV: not cheaply known
    assert plan[0].label == "3 files, a.csv … e.csv"
    assert plan[1].label == "2 files, c.csv, d.csv"
    assert len(source.plan_partitions(State(), 16) or []) == 5
    whole = source.plan_partitions(State(), 1)
    assert whole is not None and len(whole) == 1 and whole[0].label.startswith("5 files")


def test_the_union_of_the_partitions_is_exactly_what_read_batches_reads(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_csvs(data, {f"f{i:02d}.csv": 5 + 13 * i for i in range(9)})
    (data / "nested").mkdir()
    write_csvs(data / "nested", {"z.csv": 30})
    (data / "_hidden.csv").write_text("id,name\n999,hidden\n")
    expected = rows_of(opened(data).read_batches(State()))
    source = opened(data)
    plan = source.plan_partitions(State(), 4)
    assert plan is not None and len(plan) == 4
    read = [row for p in plan for row in rows_of(source.read_partition(p, State()))]
    assert sorted(read) == sorted(expected)
    assert len(read) == len(set(read)) == sum(5 + 13 * i for i in range(9)) + 30


def test_parquet_rows_come_from_the_footers(tmp_path: Path) -> None:
    data = tmp_path / "pq"
    data.mkdir()
    for index, count in enumerate([50, 20, 35]):
        table = pa.table({"id": list(range(count)), "part": [index] * count})
        pq.write_table(table, data / f"p{index}.parquet")
    source = opened(data)
    plan = source.plan_partitions(State(), 2)
    assert plan is not None
    assert sorted(p.estimated_rows for p in plan) == [50, 55]  # type: ignore[type-var]
    read = [row for p in plan for row in rows_of(source.read_partition(p, State()))]
    assert len(read) == 105


def test_the_incremental_selection_is_the_plans_too(tmp_path: Path) -> None:
    """Files read to their end and unchanged are left out; a file read in part is read on
    after its committed rows; a changed one from its start. As `read_batches` does."""
    data = tmp_path / "data"
    write_csvs(data, {"a.csv": 20, "b.csv": 20, "c.csv": 20, "d.csv": 20})
    first = opened(data, incremental=True)
    files: dict[str, Any] = {}
    for batch in first.read_batches(State()):
        for path, entry in batch.metadata["checkpoint"]["files"].items():
            files[path] = entry
    paths = {Path(path).name: path for path in files}
    files[paths["b.csv"]] = {**files[paths["b.csv"]], "rows": 14, "complete": False}
    files[paths["c.csv"]] = {**files[paths["c.csv"]], "size": 1}  # changed since
    state = State(watermarks={"files": files})
    (data / "e.csv").write_text("id,name\n100,new\n101,new\n")

    expected = rows_of(opened(data, incremental=True).read_batches(state))
    assert len(expected) == 6 + 20 + 2
    source = opened(data, incremental=True)
    plan = source.plan_partitions(state, 3)
    assert plan is not None
    planned = sorted(Path(f["path"]).name for p in plan for f in p.spec["files"])
    assert planned == ["b.csv", "c.csv", "e.csv"]
    skips = {Path(f["path"]).name: f["skip"] for p in plan for f in p.spec["files"]}
    assert skips == {"b.csv": 14, "c.csv": 0, "e.csv": 0}
    read = [row for p in plan for row in rows_of(source.read_partition(p, state))]
    assert sorted(read) == sorted(expected)

    # Checkpoints as read_batches sets them: a run committing them reads nothing more.
    for p in plan:
        for batch in source.read_partition(p, state):
            files.update(batch.metadata["checkpoint"]["files"])
    assert (
        opened(data, incremental=True).plan_partitions(State(watermarks={"files": files}), 3) == []
    )
