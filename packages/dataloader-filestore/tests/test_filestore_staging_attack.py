"""Attacks on the filestore destination's staging for a distributed run, driven through the
connector's methods (no cluster), each finding a test: what a single-process run of the same
recipe writes, a worker's staging must write too."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from dataloader import ArrowBatch, RunContext, State
from dataloader.partitions import Partition
from dataloader.recipe.models import Recipe
from dataloader_filestore import FileStoreConfig, FileStoreConnector

RUN = "20240517T123000-0000abcd"
# A legal recipe name (`[A-Za-z0-9][A-Za-z0-9_.-]*`, no length limit) whose single-process
# part names fit a 255-byte file name and whose staged part names do not.
LONG_NAME = "r" * 200


def _context(recipe: str) -> RunContext:
    return RunContext(
        recipe_name=recipe,
        run_id=RUN,
        started_at=datetime(2024, 5, 17, 12, 30, tzinfo=UTC),
        role="destination",
        write_mode="append",
    )


def _batch() -> ArrowBatch:
    return ArrowBatch.from_pylist([{"id": i, "name": f"row {i}"} for i in range(10)])


def _visible(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_file() and not p.name.startswith((".", "_")))


def test_a_long_recipe_name_single_process_writes_with_is_staged_too(tmp_path: Path) -> None:
    # Finding (a load single-process does, failed): a recipe named with 200 characters. A
    # single-process part is `.<recipe>-<run id>-00001.parquet.tmp` (244 bytes); a staged
    # one adds `-staged-<partition>-<12 hex>-0001` (269 bytes), over the 255-byte limit of a
    # file name: every task fails with "OSError: [Errno 36] File name too long", under the
    # key `destination.path`, which is not what is too long.
    Recipe.model_validate(
        {
            "name": LONG_NAME,
            "source": {"type": "filestore", "path": "in"},
            "destination": {"type": "filestore", "path": "out", "format": "parquet"},
        }
    )
    single = tmp_path / "single"
    destination = FileStoreConnector(FileStoreConfig(path=str(single), format="parquet"))
    destination.open(_context(LONG_NAME))
    destination.begin(State())
    destination.write_batch(_batch(), State())
    destination.commit(State())
    destination.close()
    assert [pq.read_table(p).num_rows for p in _visible(single)] == [10]

    staged = tmp_path / "staged"
    worker = FileStoreConnector(FileStoreConfig(path=str(staged), format="parquet"))
    try:
        report = worker.stage_partition(
            _context(LONG_NAME), Partition(index=0, label="p"), "00000-0123456789ab", [_batch()]
        )
    finally:
        worker.close()
    driver = FileStoreConnector(FileStoreConfig(path=str(staged), format="parquet"))
    driver.open(_context(LONG_NAME))
    driver.begin(State())
    driver.commit_staged([report], State(), None)
    driver.discard_staged()
    driver.close()
    assert [pq.read_table(p).num_rows for p in _visible(staged)] == [10]
