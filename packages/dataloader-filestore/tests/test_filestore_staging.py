"""The filestore destination's staging for a distributed run, driven through the connector's
methods (no cluster): workers' hidden parts, the driver's commit of exactly the reported
parts with the state, discard of the rest, overwrite, a crash between the commit record and
the renames, and two recipes staging in one directory; on S3 (moto's server) and SFTP too."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import posixpath
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataloader import ArrowBatch, ConnectorError, RunContext, State
from dataloader.partitions import Partition
from dataloader_filestore import FileStoreConfig, FileStoreConnector

RUN = "20240517T123000-0000abcd"
LATER = "20240518T090000-1111beef"


def context(recipe: str = "export", run_id: str = RUN, write_mode: str = "append") -> RunContext:
    return RunContext(
        recipe_name=recipe,
        run_id=run_id,
        started_at=datetime(2024, 5, 17, 12, 30, tzinfo=UTC),
        role="destination",
        write_mode=write_mode,
    )


def connector(out: Path, **config: Any) -> FileStoreConnector:
    return FileStoreConnector(FileStoreConfig(path=str(out), **({"format": "parquet"} | config)))


def batches(ids: range, size: int = 10) -> Iterator[ArrowBatch]:
    for start in range(ids.start, ids.stop, size):
        chunk = range(start, min(start + size, ids.stop))
        yield ArrowBatch.from_pylist([{"id": i, "name": f"row {i}"} for i in chunk])


def stage(
    out: Path,
    index: int,
    ids: range,
    attempt: str | None = None,
    recipe: str = "export",
    run_id: str = RUN,
    **config: Any,
) -> dict[str, Any]:
    """What a worker does: a new, unopened destination stages one partition."""
    write_mode = config.pop("write_mode", "append")
    worker = connector(out, **config)
    try:
        partition = Partition(index=index, label=f"ids {ids.start}..{ids.stop}")
        return worker.stage_partition(
            context(recipe, run_id, write_mode),
            partition,
            attempt or f"{index:05d}-{index:012x}",
            batches(ids),
        )
    finally:
        worker.close()


def driver(out: Path, recipe: str = "export", run_id: str = RUN, **config: Any) -> Any:
    """What the driver does before its commit: open, read the state, begin."""
    write_mode = config.pop("write_mode", "append")
    destination = connector(out, **config)
    destination.open(context(recipe, run_id, write_mode))
    state = destination.load_state() or State()
    destination.begin(state)
    return destination


def names(out: Path) -> list[str]:
    return sorted(path.name for path in out.iterdir() if path.is_file())


def visible(out: Path) -> list[str]:
    return [name for name in names(out) if not name.startswith((".", "_"))]


def ids_in(out: Path) -> list[int]:
    rows: list[int] = []
    for name in visible(out):
        rows += pq.read_table(out / name).column("id").to_pylist()
    return sorted(rows)


def committed_state(out: Path, recipe: str = "export") -> State:
    record = json.loads((out / "_dataloader" / f"{recipe}.json").read_text())
    assert record["pending"] == {}
    return State.from_dict(record["state"])


def test_staged_parts_are_hidden_until_the_commit_makes_exactly_them_visible(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    first = stage(out, 0, range(0, 50), rows_per_file=20)
    second = stage(out, 1, range(50, 80), rows_per_file=20)
    assert visible(out) == []
    assert [len(report["parts"]) for report in (first, second)] == [3, 2]  # size-capped
    for report in (first, second):
        for part in report["parts"]:
            name = Path(part["path"]).name
            assert name.startswith(".export-staged-") and name.endswith(".parquet")
            assert (out / name).exists()  # under its staged name: whole
    assert not any(name.endswith(".tmp") for name in names(out))

    destination = driver(out)
    parts = destination.staged_schemas([first, second])
    assert [rows for rows in (p["rows"] for r in (first, second) for p in r["parts"])] == [
        20,
        20,
        10,
        20,
        10,
    ]
    assert len(parts) == 5
    assert all(schema.names == ["id", "name"] for _, schema in parts)
    assert parts[0][1].field("id").type == pa.int64()
    destination.commit_staged([first, second], State(cursor_values={"id": 79}), parts[0][1])
    destination.discard_staged()
    destination.close()

    assert visible(out) == [f"export-{RUN}-{number:05d}.parquet" for number in range(1, 6)]
    assert ids_in(out) == list(range(80))
    assert [n for n in names(out) if n.startswith(".")] == []
    assert committed_state(out).cursor_values == {"id": 79}


def test_a_part_is_written_under_a_temporary_name_first(tmp_path: Path) -> None:
    out = tmp_path / "out"
    seen: list[list[str]] = []

    def watched() -> Iterator[ArrowBatch]:
        for batch in batches(range(0, 30)):
            yield batch
            seen.append(names(out))  # the batch is in the part being written

    worker = connector(out)
    report = worker.stage_partition(
        context(), Partition(index=3, label="p"), "00003-00000000abcd", watched()
    )
    worker.close()
    assert seen[0] == [".export-staged-00003-00000000abcd-0001.parquet.tmp"]
    assert names(out) == [".export-staged-00003-00000000abcd-0001.parquet"]
    assert report["parts"][0]["rows"] == 30


def test_a_dead_attempt_is_never_visible_and_discard_removes_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    worker = connector(out)

    def dying() -> Iterator[ArrowBatch]:
        yield from batches(range(0, 20))
        raise KeyboardInterrupt  # the worker dies mid-partition

    with pytest.raises(KeyboardInterrupt):
        worker.stage_partition(context(), Partition(index=0, label="p"), "00000-dead", dying())
    # A worker killed outright leaves even its temporary part: stage one by hand.
    (out / ".export-staged-00000-dead0000-0002.parquet.tmp").write_bytes(b"PAR1")
    dead = stage(out, 0, range(0, 20), attempt="00000-deadbeef0001", rows_per_file=10)
    retried = stage(out, 0, range(0, 20), attempt="00000-aaaaaaaa0002")
    other = stage(out, 1, range(20, 30))

    destination = driver(out)
    destination.commit_staged([retried, other], State(), None)
    assert ids_in(out) == list(range(30))  # only the reported attempts
    dead_names = [Path(part["path"]).name for part in dead["parts"]]
    assert all(name in names(out) for name in dead_names)  # hidden, still there
    destination.discard_staged()
    destination.close()
    assert [n for n in names(out) if n.startswith(".")] == []
    assert ids_in(out) == list(range(30))


def test_discard_removes_a_dead_runs_staging_at_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    stage(out, 0, range(0, 10), run_id=RUN)  # a driver killed before its commit
    destination = driver(out, run_id=LATER)
    destination.discard_staged()
    assert names(out) == []
    report = stage(out, 0, range(0, 10), run_id=LATER)
    destination.commit_staged([report], State(), None)
    destination.close()
    assert visible(out) == [f"export-{LATER}-00001.parquet"]


def test_overwrite_replaces_the_recipes_parts_and_keeps_others(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = driver(out)
    first.commit_staged([stage(out, 0, range(0, 10))], State(), None)
    first.close()
    (out / "someone-else.parquet").write_bytes(b"not ours")

    report = stage(out, 0, range(100, 105), run_id=LATER, write_mode="overwrite")
    second = driver(out, run_id=LATER, write_mode="overwrite")
    assert f"export-{RUN}-00001.parquet" in visible(out)  # until the commit
    second.commit_staged([report], State(cursor_values={"id": 104}), None)
    second.close()
    assert visible(out) == [f"export-{LATER}-00001.parquet", "someone-else.parquet"]
    assert pq.read_table(out / f"export-{LATER}-00001.parquet").column("id").to_pylist() == list(
        range(100, 105)
    )
    assert committed_state(out).cursor_values == {"id": 104}


def test_append_numbers_the_parts_after_those_the_run_committed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = driver(out)
    first.commit_staged([stage(out, 0, range(0, 10))], State(), None)
    first.close()
    again = driver(out)  # a retry of the same run
    again.commit_staged([stage(out, 0, range(10, 20))], State(), None)
    again.close()
    assert visible(out) == [f"export-{RUN}-00001.parquet", f"export-{RUN}-00002.parquet"]
    assert ids_in(out) == list(range(20))


def test_a_crash_between_the_record_and_the_renames_is_rolled_forward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    old = driver(out)
    old.commit_staged([stage(out, 0, range(0, 10))], State(), None)
    old.close()
    reports = [
        stage(out, 0, range(0, 10), run_id=LATER),
        stage(out, 1, range(10, 25), run_id=LATER),
    ]
    destination = driver(out, run_id=LATER, write_mode="overwrite")

    def killed(record: dict[str, Any]) -> None:
        raise OSError("killed after the commit record")

    monkeypatch.setattr(destination, "_apply_pending", killed)
    with pytest.raises(ConnectorError, match="killed after the commit record"):
        destination.commit_staged(reports, State(cursor_values={"id": 24}), None)
    monkeypatch.undo()
    assert visible(out) == [f"export-{RUN}-00001.parquet"]  # the renames were not done

    rerun = connector(out)
    rerun.open(context(run_id="20240519T000000-2222cafe", write_mode="overwrite"))
    rerun.discard_staged()  # applies the record's renames first: removes none of them
    state = rerun.load_state()
    rerun.close()
    assert state is not None and state.cursor_values == {"id": 24}
    assert visible(out) == [f"export-{LATER}-{n:05d}.parquet" for n in (1, 2)]
    assert ids_in(out) == list(range(25))
    assert [n for n in names(out) if n.startswith(".")] == []


def test_a_crash_before_the_record_keeps_the_old_files_and_state(tmp_path: Path) -> None:
    out = tmp_path / "out"
    old = driver(out)
    old.commit_staged([stage(out, 0, range(0, 10))], State(cursor_values={"id": 9}), None)
    old.close()
    stage(out, 0, range(50, 60), run_id=LATER, write_mode="overwrite")  # never committed
    rerun = driver(out, run_id="20240519T000000-2222cafe", write_mode="overwrite")
    rerun.discard_staged()
    assert rerun.load_state().cursor_values == {"id": 9}  # type: ignore[union-attr]
    rerun.close()
    assert ids_in(out) == list(range(10))
    assert [n for n in names(out) if n.startswith(".")] == []


def test_two_recipes_in_one_directory_stage_and_discard_apart(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # `export-2` starts like `export-`: neither may take the other's parts for its own.
    mine = stage(out, 0, range(0, 10), recipe="export")
    theirs = stage(out, 0, range(100, 110), recipe="export-2")
    theirs_names = {Path(part["path"]).name for part in theirs["parts"]}

    destination = driver(out, recipe="export", write_mode="overwrite")
    destination.discard_staged()  # at the start of a run: the other recipe's stay
    assert theirs_names <= set(names(out))
    assert not any(Path(part["path"]).exists() for part in mine["parts"])
    mine = stage(out, 0, range(0, 10), recipe="export", write_mode="overwrite")
    destination.commit_staged([mine], State(), None)
    destination.discard_staged()
    destination.close()
    assert theirs_names <= set(names(out))

    other = driver(out, recipe="export-2")
    other.commit_staged([theirs], State(), None)
    other.discard_staged()
    other.close()
    assert visible(out) == [f"export-2-{RUN}-00001.parquet", f"export-{RUN}-00001.parquet"]
    assert ids_in(out) == list(range(10)) + list(range(100, 110))
    assert committed_state(out, "export") and committed_state(out, "export-2")


@pytest.mark.parametrize(
    ("file_format", "compression", "extension"),
    [("csv", "gzip", ".csv.gz"), ("jsonl", "none", ".jsonl"), ("parquet", "none", ".parquet")],
)
def test_every_format_stages_with_its_options_and_reports_its_schema(
    tmp_path: Path, file_format: str, compression: str, extension: str
) -> None:
    out = tmp_path / "out"
    options = {"csv": {"delimiter": ";"}, "parquet": {"compression": "gzip"}}.get(file_format, {})
    config = {"format": file_format, "compression": compression, "format_options": options}
    report = stage(out, 0, range(0, 25), rows_per_file=10, **config)
    destination = driver(out, **config)
    parts = destination.staged_schemas([report])
    assert [schema.names for _, schema in parts] == [["id", "name"]] * 3
    assert all(name.endswith(extension) for name, _ in parts)
    destination.commit_staged([report], State(), parts[0][1])
    destination.close()
    files = visible(out)
    assert files == [f"export-{RUN}-{n:05d}{extension}" for n in (1, 2, 3)]
    if file_format == "csv":
        with gzip.open(out / files[0], "rt") as handle:
            rows = list(csv.reader(io.StringIO(handle.read()), delimiter=";"))
        assert rows[:2] == [["id", "name"], ["0", "row 0"]]
    elif file_format == "jsonl":
        first = (out / files[0]).read_text().splitlines()[0]
        assert json.loads(first) == {"id": 0, "name": "row 0"}
    else:
        assert ids_in(out) == list(range(25))
        assert pq.ParquetFile(out / files[0]).metadata.row_group(0).column(0).compression == "GZIP"


def test_an_empty_partition_stages_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = stage(out, 0, range(0, 0))
    assert report == {"parts": []}
    destination = driver(out)
    assert destination.staged_schemas([report]) == []
    destination.commit_staged([report], State(), None)
    destination.close()
    assert visible(out) == []


@pytest.fixture(params=["s3", "sftp"])
def remote(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The config keys of an empty destination directory on S3 (moto) or SFTP (sshd)."""
    if request.param == "s3":
        server = request.getfixturevalue("moto_server")
        return {"path": f"s3://{server.create_bucket()}/out", **server.settings()}
    server = request.getfixturevalue("sftp_server")
    directory = server.data / uuid.uuid4().hex[:10]
    directory.mkdir()
    os.chmod(directory, 0o777)
    return {"path": str(directory), "backend": "sftp", **server.key_settings()}


def test_remote_destinations_stage_commit_and_discard(remote: dict[str, Any]) -> None:
    def opened(run_id: str = RUN, write_mode: str = "append") -> FileStoreConnector:
        destination = FileStoreConnector(FileStoreConfig(format="parquet", **remote))
        destination.open(context(run_id=run_id, write_mode=write_mode))
        return destination

    def staged(index: int, ids: range, attempt: str, run_id: str = RUN) -> dict[str, Any]:
        worker = FileStoreConnector(FileStoreConfig(format="parquet", **remote))
        try:
            return worker.stage_partition(
                context(run_id=run_id), Partition(index=index, label="p"), attempt, batches(ids)
            )
        finally:
            worker.close()

    def listing(destination: FileStoreConnector) -> list[str]:
        paths = destination.fs.ls(destination.root, detail=False, refresh=True)
        return sorted(posixpath.basename(path) for path in paths)

    def ids(destination: FileStoreConnector) -> list[int]:
        found: list[int] = []
        for name in listing(destination):
            if not name.startswith((".", "_")):
                with destination.fs.open(posixpath.join(destination.root, name), "rb") as file:
                    found += pq.read_table(file).column("id").to_pylist()
        return sorted(found)

    dead = staged(0, range(0, 10), "00000-00000000dead")
    reports = [staged(0, range(0, 10), "00000-00000000aaaa"), staged(1, range(10, 30), "00001-1")]
    destination = opened()
    assert all(name.startswith(".") for name in listing(destination))
    assert len(destination.staged_schemas(reports)) == 2
    destination.begin(State())
    destination.commit_staged(reports, State(cursor_values={"id": 29}), None)
    assert Path(dead["parts"][0]["path"]).name in listing(destination)  # hidden till discarded
    destination.discard_staged()
    assert [n for n in listing(destination) if not n.startswith("_")] == [
        f"export-{RUN}-00001.parquet",
        f"export-{RUN}-00002.parquet",
    ]
    assert ids(destination) == list(range(30))
    destination.close()

    replacing = staged(0, range(50, 55), "00000-0000000000bb", run_id=LATER)
    again = opened(LATER, "overwrite")
    assert again.load_state().cursor_values == {"id": 29}  # type: ignore[union-attr]
    again.begin(State())
    again.commit_staged([replacing], State(), None)
    again.discard_staged()
    assert [n for n in listing(again) if not n.startswith("_")] == [f"export-{LATER}-00001.parquet"]
    assert ids(again) == list(range(50, 55))
    again.close()
