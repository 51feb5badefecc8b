"""Part files of a useful size: a part holds many batches, up to `rows_per_file` rows or about
`target_file_size` bytes; a part is complete at every commit, and hidden until it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from dataloader import ArrowBatch, ConnectorError, EngineError, RunContext, RunResult, State
from dataloader_filestore import FileStoreConfig, FileStoreConnector

Run = Callable[..., RunResult]


def visible(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.iterdir() if p.is_file() and not p.name.startswith((".", "_"))
    )


def hidden(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def jsonl_ids(path: Path) -> list[int]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def batches_of(count: int, size: int) -> list[list[dict[str, Any]]]:
    return [
        [{"id": b * size + i, "name": f"name {b * size + i:05d}"} for i in range(size)]
        for b in range(count)
    ]


def recipe(out: Path, batches: list[list[dict[str, Any]]], **destination: Any) -> dict[str, Any]:
    return {
        "name": "export",
        "source": {"type": "dl_test_rows", "batches": batches},
        "destination": {"type": "filestore", "path": str(out), "format": "jsonl", **destination},
    }


def test_a_part_holds_many_batches_up_to_rows_per_file(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "out"

    run(recipe(out, batches_of(10, 100), rows_per_file=250))

    files = visible(out)  # closed at 200: a third batch of 100 would not fit
    assert [len(jsonl_ids(path)) for path in files] == [200] * 5
    assert [i for path in files for i in jsonl_ids(path)] == list(range(1000))


def test_parts_committed_one_by_one_come_out_even(run: Run, tmp_path: Path) -> None:
    """Every commit closes the open part: filling a part exactly and starting the next with the
    rest of the batch would leave a part of 333 rows and one of 167 at every commit."""
    out = tmp_path / "out"
    batches = [[{**row, "u": row["id"]} for row in rows] for rows in batches_of(12, 250)]
    plan = recipe(out, batches, rows_per_file=333)
    plan["source"]["incremental"] = {"cursor_column": "u"}

    result = run(plan)

    files = visible(out)
    sizes = [len(jsonl_ids(path)) for path in files]  # batches of 249/250: a cursor tie is
    assert max(sizes) <= 333 and min(sizes[:-1]) >= 249  # held back to the next batch
    assert result.commits == len(files)
    assert [i for path in files for i in jsonl_ids(path)] == list(range(3000))


def test_by_default_many_batches_make_one_file_with_one_row_group(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "out"

    run(recipe(out, batches_of(20, 50), format="parquet"))

    (path,) = visible(out)
    metadata = pq.ParquetFile(path).metadata
    assert (metadata.num_rows, metadata.num_row_groups) == (1000, 1)
    assert pq.read_table(path).column("id").to_pylist() == list(range(1000))


def test_row_group_size_cuts_row_groups_across_batches(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "out"

    run(
        recipe(
            out,
            batches_of(10, 30),
            format="parquet",
            format_options={"row_group_size": 70},
        )
    )

    (path,) = visible(out)
    parquet = pq.ParquetFile(path)
    sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)]
    assert sizes == [70, 70, 70, 70, 20]


@pytest.mark.parametrize("file_format", ["csv", "tsv", "json", "jsonl", "parquet"])
def test_target_file_size_closes_a_part_once_it_is_reached(
    run: Run, read_back: Any, tmp_path: Path, file_format: str
) -> None:
    out = tmp_path / "out"
    target = 8 * 1024

    run(recipe(out, batches_of(20, 100), format=file_format, target_file_size="8KiB"))

    files = visible(out)
    assert 1 < len(files) < 20
    # Every part but the last reached the target (its bytes, or for Parquet its bytes plus the
    # rows held for its next row group), and parts are cut between batches.
    sizes = [path.stat().st_size for path in files]
    if file_format != "parquet":
        assert all(size >= target for size in sizes[:-1]), sizes
    assert all(size < 4 * target for size in sizes), sizes
    rows = read_back(str(out))
    assert sorted(row["id"] for row in rows) == list(range(2000))


def test_compressed_parts_are_measured_by_their_compressed_size(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "out"

    run(recipe(out, batches_of(50, 100), compression="gzip", target_file_size="4KiB"))

    sizes = [path.stat().st_size for path in visible(out)]
    assert len(sizes) > 1
    assert all(size >= 4 * 1024 for size in sizes[:-1]), sizes


# -- the commit protocol with parts of several batches ------------------------------------
def context(write_mode: str = "append") -> RunContext:
    return RunContext(
        recipe_name="export",
        run_id="20240517T123000-0000abcd",
        started_at=datetime(2024, 5, 17, 12, 30, tzinfo=UTC),
        role="destination",
        write_mode=write_mode,  # type: ignore[arg-type]
    )


@pytest.fixture
def destination(tmp_path: Path) -> Iterator[Callable[..., FileStoreConnector]]:
    opened: list[FileStoreConnector] = []

    def _open(**config: Any) -> FileStoreConnector:
        connector = FileStoreConnector(
            FileStoreConfig(path=str(tmp_path / "out"), **({"format": "jsonl"} | config))
        )
        connector.open(context())
        opened.append(connector)
        return connector

    yield _open
    for connector in opened:
        connector.close()


def test_a_full_part_asks_for_a_commit_and_stays_hidden_until_it(
    destination: Callable[..., FileStoreConnector], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    connector = destination(rows_per_file=2)
    connector.begin(State())

    connector.write_batch(ArrowBatch.from_pylist([{"id": 1}]), State())
    assert len(hidden(out)) == 1
    assert connector.commit_due(1) is False

    connector.write_batch(ArrowBatch.from_pylist([{"id": 2}, {"id": 3}]), State())
    assert connector.commit_due(3) is True  # part 1 is full (ids 1, 2); part 2 holds id 3
    assert len(hidden(out)) == 2
    assert visible(out) == []

    connector.commit(State())

    assert hidden(out) == []
    assert [jsonl_ids(path) for path in visible(out)] == [[1, 2], [3]]
    assert connector.commit_due(0) is False


def test_abort_discards_the_open_part(
    destination: Callable[..., FileStoreConnector], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    connector = destination(rows_per_file=10)
    connector.begin(State())
    connector.write_batch(ArrowBatch.from_pylist([{"id": 1}]), State())

    connector.abort()

    assert list(out.iterdir()) == []


def test_a_killed_run_keeps_only_committed_parts_and_the_rerun_completes(
    run: Run,
    read_back: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("id\n" + "".join(f"{i}\n" for i in range(1000)))
    out = tmp_path / "out"
    export = {
        "name": "export",
        "source": {"type": "filestore", "path": str(data)},
        "destination": {
            "type": "filestore",
            "path": str(out),
            "format": "parquet",
            "rows_per_file": 300,
        },
        "runtime": {"batch_size": 100},
    }
    original = FileStoreConnector.write_batch
    calls = {"n": 0}

    def die_on_fifth(self: FileStoreConnector, batch: Any, state: State) -> None:
        calls["n"] += 1
        original(self, batch, state)
        if calls["n"] == 5:
            raise RuntimeError("killed")

    monkeypatch.setattr(FileStoreConnector, "write_batch", die_on_fifth)
    with pytest.raises(EngineError, match="killed"):
        run(export)
    # The first part (3 batches) was committed when it was full; batches 4 and 5 were not.
    assert [pq.read_metadata(path).num_rows for path in visible(out)] == [300]
    assert hidden(out) == []

    monkeypatch.undo()
    resumed = run(export)

    assert resumed.rows_read == 700
    sizes = sorted(pq.read_metadata(path).num_rows for path in visible(out))
    assert sizes == [100, 300, 300, 300]  # the killed run's part, then the re-run's three
    assert sorted(row["id"] for row in read_back(str(out))) == list(range(1000))


@pytest.mark.parametrize(("key", "value"), [("rows_per_file", 10), ("target_file_size", "1MiB")])
def test_part_size_keys_apply_to_a_destination_only(
    run: Run, tmp_path: Path, key: str, value: Any
) -> None:
    (tmp_path / "a.csv").write_text("id\n1\n")
    export = {
        "name": "export",
        "source": {"type": "filestore", "path": str(tmp_path / "a.csv"), key: value},
        "destination": {"type": "dl_test_collect"},
    }

    with pytest.raises(ConnectorError, match=rf"source\.{key}.*destination"):
        run(export)
