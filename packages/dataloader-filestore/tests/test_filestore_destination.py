"""The filestore destination's commit protocol: hidden temporary files, a commit record that is
rolled forward after a crash, orphan clean-up, and overwrite."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dataloader import ArrowBatch, EngineError, RunContext, RunResult, State
from dataloader_filestore import FileStoreConfig, FileStoreConnector

Run = Callable[..., RunResult]


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_file())


def visible(directory: Path) -> list[str]:
    return [name for name in names(directory) if not name.startswith((".", "_"))]


def context(run_id: str = "20240517T123000-0000abcd", **changes: Any) -> RunContext:
    return RunContext(
        recipe_name="export",
        run_id=run_id,
        started_at=datetime(2024, 5, 17, 12, 30, tzinfo=UTC),
        role="destination",
        **changes,
    )


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


@pytest.fixture
def destination(out: Path) -> Iterator[Callable[..., FileStoreConnector]]:
    """`destination(**config)`: an opened filestore destination writing JSONL into `out`."""
    opened: list[FileStoreConnector] = []

    def _open(run_id: str = "20240517T123000-0000abcd", **config: Any) -> FileStoreConnector:
        connector = FileStoreConnector(
            FileStoreConfig(path=str(out), **({"format": "jsonl"} | config))
        )
        connector.open(context(run_id, write_mode=config.pop("write_mode", "append")))
        opened.append(connector)
        return connector

    yield _open
    for connector in opened:
        connector.close()


def rows_recipe(
    out: Path,
    batches: list[list[dict[str, Any]]],
    *,
    name: str = "export",
    write_mode: str = "append",
    file_format: str = "jsonl",
) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"type": "dl_test_rows", "batches": batches},
        "destination": {
            "type": "filestore",
            "path": str(out),
            "format": file_format,
            "write_mode": write_mode,
        },
    }


def test_written_batch_is_hidden_until_commit_renames_it(
    destination: Callable[..., FileStoreConnector], out: Path
) -> None:
    connector = destination()
    connector.begin(State())

    connector.write_batch(ArrowBatch.from_pylist([{"id": 1}]), State())

    staged = names(out)
    assert len(staged) == 1
    assert staged[0].startswith(".export-20240517T123000-0000abcd-00001")
    assert staged[0].endswith(".jsonl.tmp")
    assert visible(out) == []

    connector.commit(State(cursor_values={"id": 1}))

    assert names(out) == ["export-20240517T123000-0000abcd-00001.jsonl"]
    assert (out / "export-20240517T123000-0000abcd-00001.jsonl").read_text() == '{"id": 1}\n'
    record = json.loads((out / "_dataloader" / "export.json").read_text())
    assert record["pending"] == {}
    assert State.from_dict(record["state"]).cursor_values == {"id": 1}


def test_abort_removes_staged_files(
    destination: Callable[..., FileStoreConnector], out: Path
) -> None:
    connector = destination()
    connector.begin(State())
    connector.write_batch(ArrowBatch.from_pylist([{"id": 1}]), State())

    connector.abort()

    assert names(out) == []


def test_pending_commit_record_is_rolled_forward_by_load_state(
    destination: Callable[..., FileStoreConnector], out: Path
) -> None:
    out.mkdir()
    (out / ".export-run2-00001.jsonl.tmp").write_text('{"id": 2}\n')
    (out / "export-run1-00001.jsonl").write_text('{"id": 1}\n')
    record_dir = out / "_dataloader"
    record_dir.mkdir()
    state = State(cursor_values={"id": 2}, watermarks={"files": {"x": {"rows": 3}}})
    (record_dir / "export.json").write_text(
        json.dumps(
            {
                "state": state.to_dict(),
                "pending": {
                    "renames": [
                        [
                            str(out / ".export-run2-00001.jsonl.tmp"),
                            str(out / "export-run2-00001.jsonl"),
                        ]
                    ],
                    "deletes": [str(out / "export-run1-00001.jsonl")],
                },
            }
        )
    )

    loaded = destination().load_state()

    assert loaded is not None
    assert loaded.cursor_values == {"id": 2}
    assert loaded.watermarks == {"files": {"x": {"rows": 3}}}
    assert names(out) == ["export-run2-00001.jsonl"]
    assert json.loads((record_dir / "export.json").read_text())["pending"] == {}


def test_load_state_without_a_record_is_none(
    destination: Callable[..., FileStoreConnector],
) -> None:
    assert destination().load_state() is None


def test_begin_removes_orphan_temporary_files_of_its_recipe_only(
    destination: Callable[..., FileStoreConnector], out: Path
) -> None:
    out.mkdir()
    (out / ".export-20240101T000000-deadbeef-00001.jsonl.tmp").write_text("{}\n")
    (out / ".other-20240101T000000-deadbeef-00001.jsonl.tmp").write_text("{}\n")
    (out / ".export-eu-20240101T000000-deadbeef-00001.jsonl.tmp").write_text("{}\n")
    (out / "export-20240101T000000-deadbeef-00001.jsonl").write_text("{}\n")

    destination().begin(State())

    assert names(out) == [
        ".export-eu-20240101T000000-deadbeef-00001.jsonl.tmp",  # recipe `export-eu`'s
        ".other-20240101T000000-deadbeef-00001.jsonl.tmp",
        "export-20240101T000000-deadbeef-00001.jsonl",
    ]


def test_crash_between_commit_record_and_renames_loses_and_duplicates_nothing(
    run: Run,
    read_back: Any,
    tmp_path: Path,
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for index in range(3):
        (data / f"part{index}.csv").write_text(f"id\n{index * 2}\n{index * 2 + 1}\n")
    recipe = {
        "name": "export",
        "source": {"type": "filestore", "path": str(data)},
        # A part per source file (2 rows): a commit each.
        "destination": {"type": "filestore", "path": str(out), "format": "csv", "rows_per_file": 2},
        "runtime": {"batch_size": 1},
    }
    original = FileStoreConnector._apply_pending
    calls = {"n": 0}

    def crash_on_third_commit(self: FileStoreConnector, record: dict[str, Any]) -> None:
        if record.get("pending", {}).get("renames"):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt("killed after the commit record was written")
            if calls["n"] > 3:  # a killed process renames nothing more: not even when the
                # interrupted run reads its last commit back before it stops
                raise OSError("the process is gone")
        original(self, record)

    monkeypatch.setattr(FileStoreConnector, "_apply_pending", crash_on_third_commit)
    with pytest.raises(KeyboardInterrupt):
        run(recipe)
    assert len(visible(out)) == 2
    assert len([name for name in names(out) if name.endswith(".tmp")]) == 1

    monkeypatch.undo()
    run(recipe)

    assert sorted(row["id"] for row in read_back(str(out))) == [0, 1, 2, 3, 4, 5]
    assert not [name for name in names(out) if name.endswith(".tmp")]


def test_killed_write_resumes_and_every_row_is_written_once(
    run: Run,
    read_back: Any,
    tmp_path: Path,
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("id\n" + "".join(f"{i}\n" for i in range(7)))
    recipe = {
        "name": "export",
        "source": {"type": "filestore", "path": str(data)},
        "destination": {
            "type": "filestore",
            "path": str(out),
            "format": "parquet",
            "rows_per_file": 2,  # a part, and a commit, per batch
        },
        "runtime": {"batch_size": 2},
    }
    original = FileStoreConnector.write_batch
    calls = {"n": 0}

    def die_on_third(self: FileStoreConnector, batch: Any, state: State) -> None:
        calls["n"] += 1
        original(self, batch, state)  # the file is staged, then the process dies
        if calls["n"] == 3:
            raise RuntimeError("killed")

    monkeypatch.setattr(FileStoreConnector, "write_batch", die_on_third)
    with pytest.raises(EngineError, match="killed"):
        run(recipe)
    assert len(visible(out)) == 2
    assert not [name for name in names(out) if name.endswith(".tmp")]  # abort cleaned up

    monkeypatch.undo()
    resumed = run(recipe)

    assert resumed.rows_read == 3
    assert sorted(row["id"] for row in read_back(str(out))) == list(range(7))


def test_append_keeps_the_files_of_earlier_runs(run: Run, out: Path) -> None:
    run(rows_recipe(out, [[{"id": 1}]]))
    run(rows_recipe(out, [[{"id": 2}]]))

    assert len(visible(out)) == 2


def test_overwrite_deletes_the_previous_runs_files(run: Run, read_back: Any, out: Path) -> None:
    run(rows_recipe(out, [[{"id": 1}], [{"id": 2}]]))
    first = visible(out)

    run(rows_recipe(out, [[{"id": 3}], [{"id": 4}]], write_mode="overwrite"))

    assert len(visible(out)) == 1  # one part holds both batches
    assert not set(first) & set(visible(out))
    assert sorted(row["id"] for row in read_back(str(out))) == [3, 4]


def test_overwrite_keeps_files_that_are_not_its_own(run: Run, read_back: Any, out: Path) -> None:
    out.mkdir()
    (out / "manual.jsonl").write_text('{"id": 100}\n')
    run(rows_recipe(out, [[{"id": 200}]], name="export-eu"))
    run(rows_recipe(out, [[{"id": 1}]], name="export"))

    run(rows_recipe(out, [[{"id": 2}]], name="export", write_mode="overwrite"))

    assert sorted(row["id"] for row in read_back(str(out))) == [2, 100, 200]


def test_overwrite_deletes_its_parts_numbered_beyond_five_digits(
    run: Run, read_back: Any, out: Path
) -> None:
    out.mkdir()
    for name in ["export-20240101T000000-0000abcd-100000.jsonl", "export-eu-1.jsonl"]:
        (out / name).write_text('{"id": 100}\n')
    (out / "export-20240101T000000-0000abcd-1234567.jsonl").write_text('{"id": 101}\n')

    run(rows_recipe(out, [[{"id": 1}]], write_mode="overwrite"))

    assert sorted(row["id"] for row in read_back(str(out))) == [1, 100]
    assert "export-eu-1.jsonl" in visible(out)


def test_overwrite_with_no_rows_deletes_the_previous_files(run: Run, out: Path) -> None:
    run(rows_recipe(out, [[{"id": 1}]]))

    run(rows_recipe(out, [], write_mode="overwrite"))

    assert visible(out) == []


def test_failed_overwrite_keeps_the_previous_files(
    run: Run, read_back: Any, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(rows_recipe(out, [[{"id": 1}]], write_mode="overwrite"))

    def fail(self: FileStoreConnector, state: State) -> None:
        raise RuntimeError("commit failed")

    monkeypatch.setattr(FileStoreConnector, "commit", fail)
    with pytest.raises(EngineError, match="commit failed"):
        run(rows_recipe(out, [[{"id": 2}], [{"id": 3}]], write_mode="overwrite"))

    assert [row["id"] for row in read_back(str(out))] == [1]
    assert not [name for name in names(out) if name.endswith(".tmp")]


def test_destination_needs_a_format(run: Run, out: Path) -> None:
    recipe = rows_recipe(out, [[{"id": 1}]])
    del recipe["destination"]["format"]

    with pytest.raises(Exception, match="format"):
        run(recipe)


def test_a_retry_after_a_commit_keeps_the_parts_it_committed(
    run: Callable[..., RunResult], out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry is the same run (same run id): its parts must not replace committed ones."""
    batches = [[{"id": n, "u": n}] for n in range(1, 6)]
    recipe = rows_recipe(out, batches)
    recipe["source"]["incremental"] = {"cursor_column": "u"}
    recipe["destination"]["rows_per_file"] = 1  # a part, and a commit, per batch
    recipe["runtime"] = {"batch_size": 1, "retries": {"attempts": 2, "initial_backoff": 0}}
    real = FileStoreConnector.write_batch
    writes: list[int] = []

    def write_batch(self: FileStoreConnector, batch: Any, state: State) -> None:
        writes.append(1)
        if len(writes) == 3:  # after two commits
            raise ConnectionResetError("connection reset by peer")
        real(self, batch, state)

    monkeypatch.setattr(FileStoreConnector, "write_batch", write_batch)

    result = run(recipe)

    assert sum(stage.retries for stage in result.stages.values()) == 1
    rows = [
        json.loads(line) for name in visible(out) for line in (out / name).read_text().splitlines()
    ]
    assert sorted(row["id"] for row in rows) == [1, 2, 3, 4, 5]
    assert result.rows_written == 5
