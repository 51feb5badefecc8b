"""The file destination's quarantine: rows that break the schema contract go to part files of
`<path>__quarantine`, hidden until the commit that publishes the data, gone with an abort or a
kill before it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataloader import ArrowBatch, RunContext, RunResult, State
from dataloader.registry import get_registry
from dataloader_filestore import FileStoreConfig
from dataloader_filestore.connector import FileStoreConnector

Run = Callable[..., RunResult]
RUN_ID = "20240517T123000-0000abcd"


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def visible(directory: Path) -> list[str]:
    return [name for name in files(directory) if not name.startswith((".", "_"))]


def quarantine_rows(count: int, rule: str = "not_null") -> pa.Table:
    return pa.table(
        {
            "row": pa.array([json.dumps({"id": None, "n": i}) for i in range(count)]),
            "rule": pa.array([rule] * count),
            "column": pa.array(["id"] * count),
            "run_id": pa.array([RUN_ID] * count),
            "quarantined_at": pa.array(
                [datetime(2024, 5, 17, 12, 30, tzinfo=UTC)] * count, pa.timestamp("us", tz="UTC")
            ),
        }
    )


def opened(out: Path, file_format: str = "parquet", **changes: Any) -> FileStoreConnector:
    connector = FileStoreConnector(FileStoreConfig(path=str(out), format=file_format))
    connector.open(
        RunContext(
            recipe_name="export",
            run_id=RUN_ID,
            started_at=datetime(2024, 5, 17, 12, 30, tzinfo=UTC),
            role="destination",
            **changes,
        )
    )
    connector.begin(connector.load_state() or State())
    return connector


def stage(connector: FileStoreConnector) -> None:
    connector.write_batch(ArrowBatch(pa.record_batch({"id": [1, 2]}), {}), State())
    connector.write_quarantine(quarantine_rows(2))


def test_the_filestore_destination_declares_a_quarantine() -> None:
    assert FileStoreConnector.capabilities.quarantine
    assert get_registry().connector("filestore").capabilities.quarantine


@pytest.mark.parametrize("file_format", ["parquet", "csv", "jsonl"])
def test_quarantined_rows_are_published_by_the_commit_of_the_data(
    tmp_path: Path, file_format: str
) -> None:
    out, quarantine = tmp_path / "out", tmp_path / "out__quarantine"
    connector = opened(out, file_format)
    stage(connector)

    assert visible(quarantine) == [] and visible(out) == []  # hidden until the commit
    connector.commit(State())
    connector.close()

    (part,) = visible(quarantine)
    assert part.startswith(f"export-{RUN_ID}-") and part.endswith(f".{file_format}")
    assert len(visible(out)) == 1
    record = json.loads((out / "_dataloader" / "export.json").read_text())
    assert record["pending"] == {}  # the record that published the data published it too


def test_quarantine_parquet_keeps_the_columns_and_types(tmp_path: Path) -> None:
    connector = opened(tmp_path / "out")
    stage(connector)
    connector.write_quarantine(quarantine_rows(1, rule="unique"))
    connector.commit(State())
    connector.close()

    (part,) = visible(tmp_path / "out__quarantine")
    table = pq.read_table(tmp_path / "out__quarantine" / part)
    assert table.schema == quarantine_rows(1).schema
    assert table.column("rule").to_pylist() == ["not_null", "not_null", "unique"]


def test_abort_leaves_no_quarantine_file(tmp_path: Path) -> None:
    connector = opened(tmp_path / "out")
    stage(connector)

    connector.abort()
    connector.close()

    assert files(tmp_path / "out__quarantine") == []
    assert visible(tmp_path / "out") == []


def test_a_kill_before_the_commit_leaves_nothing_visible_and_the_next_run_clears_it(
    tmp_path: Path,
) -> None:
    killed = opened(tmp_path / "out")
    stage(killed)
    assert any(name.endswith(".tmp") for name in files(tmp_path / "out__quarantine"))
    del killed  # no commit, no abort, no close: the process died

    later = opened(tmp_path / "out")  # the next run begins
    later.close()

    assert files(tmp_path / "out__quarantine") == []
    assert visible(tmp_path / "out") == []


def test_a_commit_record_written_before_a_kill_is_rolled_forward_with_the_quarantine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector = opened(tmp_path / "out")
    stage(connector)

    def killed(self: FileStoreConnector, record: dict[str, Any]) -> None:
        raise KeyboardInterrupt("killed between the record and the renames")

    with monkeypatch.context() as patched:
        patched.setattr(FileStoreConnector, "_apply_pending", killed)
        with pytest.raises(KeyboardInterrupt):
            connector.commit(State())
    assert visible(tmp_path / "out__quarantine") == []

    opened(tmp_path / "out").close()  # the next run reads the record, finishes the commit

    assert len(visible(tmp_path / "out__quarantine")) == 1
    assert len(visible(tmp_path / "out")) == 1


def test_overwrite_replaces_the_quarantine_of_the_rows_it_replaces(tmp_path: Path) -> None:
    first = opened(tmp_path / "out")
    stage(first)
    first.commit(State())
    first.close()

    second = FileStoreConnector(FileStoreConfig(path=str(tmp_path / "out"), format="parquet"))
    second.open(
        RunContext(
            recipe_name="export",
            run_id="20240518T123000-0000abcd",
            started_at=datetime(2024, 5, 18, 12, 30, tzinfo=UTC),
            role="destination",
            write_mode="overwrite",
        )
    )
    second.begin(State())
    second.write_batch(ArrowBatch(pa.record_batch({"id": [3]}), {}), State())
    second.commit(State())
    second.close()

    assert visible(tmp_path / "out__quarantine") == []
    assert [name.split("-")[1] for name in visible(tmp_path / "out")] == ["20240518T123000"]


def test_a_run_quarantines_rows_that_break_the_contract(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "out"
    recipe = {
        "name": "export",
        "source": {
            "type": "dl_test_rows",
            "batches": [[{"id": 1, "n": "a"}, {"id": None, "n": "b"}], [{"id": 3, "n": "c"}]],
        },
        "destination": {"type": "filestore", "path": str(out), "format": "parquet"},
        "schema": {
            "columns": [{"name": "id", "type": "int", "nullable": False}],
            "on_violation": "quarantine",
        },
    }

    result = run(recipe)

    assert result.rows_quarantined == 1
    data = pq.ParquetDataset(str(out)).read().to_pylist()
    assert sorted(row["id"] for row in data) == [1, 3]
    (part,) = visible(tmp_path / "out__quarantine")
    quarantined = pq.read_table(tmp_path / "out__quarantine" / part).to_pylist()
    assert [json.loads(row["row"]) for row in quarantined] == [{"id": None, "n": "b"}]
    assert quarantined[0]["column"] == "id"
