"""Listing a source path: an S3 prefix a page at a time, a directory tree one directory at a
time, files yielded in path order as they are listed, so reading starts before the listing
ends and a large prefix is never held whole."""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataloader import ArrowBatch, State
from dataloader.context import RunContext
from dataloader_filestore import FileStoreConnector, listing
from dataloader_filestore.connector import FileStoreConfig
from dataloader_filestore.testing import MotoServer, SftpServer

PAGE = 10


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing, "S3_PAGE_SIZE", PAGE)


@pytest.fixture
def open_source() -> Iterator[Callable[..., FileStoreConnector]]:
    opened: list[FileStoreConnector] = []

    def _open(path: str, **options: Any) -> FileStoreConnector:
        connector = FileStoreConnector(FileStoreConfig(path=path, **options))
        connector.open(RunContext(recipe_name="listing", run_id="r", started_at=datetime.now(UTC)))
        opened.append(connector)
        return connector

    yield _open
    for connector in opened:
        connector.close()


def source_file(batch: ArrowBatch) -> str:
    return batch.metadata["source_file"]


# -- S3 --------------------------------------------------------------------------------------
@pytest.fixture
def big_prefix(moto_server: MotoServer) -> tuple[str, list[str], int]:
    """A bucket whose `big/` prefix holds 25 one-row CSVs, a nested one and two to skip.
    Returns the bucket, the data keys in key order and how many keys the prefix holds."""
    bucket = moto_server.create_bucket()
    s3 = moto_server.client("s3")
    data = [f"big/f{i:03d}.csv" for i in range(25)] + ["big/sub/g.csv"]
    skipped = ["big/.f999.csv.tmp", "big/_dataloader/listing.json"]
    for number, key in enumerate(data + skipped):
        s3.put_object(Bucket=bucket, Key=key, Body=f"id\n{number}\n".encode())
    return bucket, sorted(data), len(data) + len(skipped)


def record_calls(
    target: Any, method: str, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[tuple, dict]]:
    """The `(args, kwargs)` of each call of `target.method` from now on."""
    calls: list[tuple[tuple, dict]] = []
    original = getattr(target, method)

    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(target, method, recording)
    return calls


def listings(calls: list[tuple[tuple, dict]]) -> list[dict]:
    """The ListObjectsV2 requests among recorded `call_s3` calls."""
    return [kwargs for args, kwargs in calls if args[0] == "list_objects_v2"]


@pytest.fixture
def big_source(
    moto_server: MotoServer,
    big_prefix: tuple[str, list[str], int],
    small_pages: None,
    open_source: Callable[..., FileStoreConnector],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[FileStoreConnector, list[tuple[tuple, dict]]]:
    """A source of `s3://<bucket>/big/` listed in pages of 10, and its recorded S3 calls."""
    connector = open_source(f"s3://{big_prefix[0]}/big/", **moto_server.settings())
    return connector, record_calls(connector.fs, "call_s3", monkeypatch)


def test_s3_prefix_is_read_while_it_is_listed_a_page_at_a_time(
    big_prefix: tuple[str, list[str], int],
    big_source: tuple[FileStoreConnector, list[tuple[tuple, dict]]],
) -> None:
    bucket, data, keys = big_prefix
    connector, calls = big_source

    batches = connector.read_batches(State())
    first = next(batches)
    assert source_file(first) == f"{bucket}/{data[0]}"
    assert len(listings(calls)) == 1  # the first file is read after one page
    read = [source_file(first)] + [source_file(batch) for batch in batches]

    assert read == [f"{bucket}/{key}" for key in data]
    requests = listings(calls)
    assert len(requests) == math.ceil(keys / PAGE)
    assert all(request["MaxKeys"] == PAGE for request in requests)
    tokens = [request.get("ContinuationToken") for request in requests]
    assert tokens[0] is None and all(tokens[1:]) and len(set(tokens[1:])) == len(tokens) - 1


def test_s3_glob_lists_from_its_literal_prefix_one_level_deep(
    moto_server: MotoServer,
    big_prefix: tuple[str, list[str], int],
    small_pages: None,
    open_source: Callable[..., FileStoreConnector],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = big_prefix[0]
    connector = open_source(f"s3://{bucket}/big/f01*.csv", **moto_server.settings())
    calls = record_calls(connector.fs, "call_s3", monkeypatch)

    read = [source_file(batch) for batch in connector.read_batches(State())]

    assert read == [f"{bucket}/big/f{i:03d}.csv" for i in range(10, 20)]
    requests = listings(calls)
    assert {request["Delimiter"] for request in requests} == {"/"}
    assert {request["Prefix"] for request in requests} == {"big/f01"}
    assert len(requests) == 1  # 10 keys start with `big/f01`


def test_s3_recursive_glob_reaches_nested_keys(
    moto_server: MotoServer,
    big_prefix: tuple[str, list[str], int],
    open_source: Callable[..., FileStoreConnector],
) -> None:
    bucket = big_prefix[0]
    connector = open_source(f"s3://{bucket}/big/**/g*.csv", **moto_server.settings())

    assert [source_file(batch) for batch in connector.read_batches(State())] == [
        f"{bucket}/big/sub/g.csv"
    ]


def test_progress_estimate_stops_after_one_page_and_the_read_goes_on_from_it(
    big_prefix: tuple[str, list[str], int],
    big_source: tuple[FileStoreConnector, list[tuple[tuple, dict]]],
) -> None:
    bucket, data, keys = big_prefix
    connector, calls = big_source

    assert connector.estimate_rows() is None  # more files than one page: total unknown
    assert len(listings(calls)) <= 2  # a page of files may end in the next page's first keys
    read = [source_file(batch) for batch in connector.read_batches(State())]

    assert read == [f"{bucket}/{key}" for key in data]
    assert len(listings(calls)) == math.ceil(keys / PAGE)  # one listing for estimate and read


def test_progress_estimate_of_a_prefix_within_one_page(
    moto_server: MotoServer, open_source: Callable[..., FileStoreConnector]
) -> None:
    bucket = moto_server.create_bucket()
    s3 = moto_server.client("s3")
    for number, rows in enumerate([2, 3, 4]):
        sink = io.BytesIO()
        pq.write_table(pa.table({"id": list(range(rows))}), sink)
        s3.put_object(Bucket=bucket, Key=f"pq/{number}.parquet", Body=sink.getvalue())
    connector = open_source(f"s3://{bucket}/pq/", **moto_server.settings())

    assert connector.estimate_rows() == 9  # from the Parquet footers
    assert sum(batch.to_arrow().num_rows for batch in connector.read_batches(State())) == 9


# -- local disk (and SFTP, which lists the same way) -----------------------------------------
def test_directory_tree_is_listed_one_directory_at_a_time(
    tmp_path: Path,
    open_source: Callable[..., FileStoreConnector],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "tree"
    for day in range(5):
        for hour in range(3):
            path = root / f"day={day}" / f"{hour:02d}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"id\n{day * 10 + hour}\n")
    (root / "_dataloader").mkdir()
    (root / "_dataloader" / "x.csv").write_text("id\n-1\n")
    (root / ".staging").mkdir()
    (root / ".staging" / "y.csv").write_text("id\n-2\n")
    (root / "top.csv").write_text("id\n99\n")
    connector = open_source(str(root))
    calls = record_calls(connector.fs, "ls", monkeypatch)
    batches = connector.read_batches(State())
    first = next(batches)

    assert source_file(first).endswith("day=0/00.csv")
    assert [Path(args[0]).name for args, _ in calls] == ["tree", "day=0"]
    rest = [source_file(batch) for batch in batches]
    expected = [f"day={d}/{h:02d}.csv" for d in range(5) for h in range(3)] + ["top.csv"]
    assert [str(Path(p).relative_to(root)) for p in [source_file(first), *rest]] == expected
    assert not {"_dataloader", ".staging"} & {Path(args[0]).name for args, _ in calls}


def test_local_glob_lists_only_the_levels_it_can_match(
    tmp_path: Path,
    open_source: Callable[..., FileStoreConnector],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "tree"
    for name in ["a/1.csv", "a/deep/2.csv", "b/3.csv", "c.csv"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("id\n1\n")
    connector = open_source(str(root / "*" / "*.csv"))
    calls = record_calls(connector.fs, "ls", monkeypatch)
    read = [str(Path(source_file(b)).relative_to(root)) for b in connector.read_batches(State())]

    assert read == ["a/1.csv", "b/3.csv"]
    assert "deep" not in {Path(args[0]).name for args, _ in calls}  # below the glob's depth


def test_recursive_local_glob_matches_every_depth(
    tmp_path: Path, open_source: Callable[..., FileStoreConnector]
) -> None:
    root = tmp_path / "tree"
    for name in ["1.csv", "a/2.csv", "a/deep/3.csv", "a/deep/_skip/4.csv", "b/5.json"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("id\n1\n")
    connector = open_source(str(root / "**" / "*.csv"))
    read = [str(Path(source_file(b)).relative_to(root)) for b in connector.read_batches(State())]

    assert read == ["1.csv", "a/2.csv", "a/deep/3.csv"]


# -- the same order on every backend ---------------------------------------------------------
# Full-path byte order, as S3 lists keys: `-` (0x2D) and `.` (0x2E) sort before `/` (0x2F),
# so `a-b.csv` and `a.csv` come before the files in `a/`, and `a0.csv` (0x30) after them.
TREE = ["A.csv", "a-b.csv", "a.csv", "a/x.csv", "a/y-z/1.csv", "a/y/2.csv", "a0.csv", "é.csv"]


@pytest.mark.parametrize("backend", ["local", "sftp", "s3"])
def test_every_backend_reads_a_tree_in_full_path_byte_order(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    open_source: Callable[..., FileStoreConnector],
    backend: str,
) -> None:
    assert sorted(TREE, key=lambda path: path.encode()) == TREE
    if backend == "s3":
        server: Any = request.getfixturevalue("moto_server")
        bucket = server.create_bucket()
        s3 = server.client("s3")
        for number, name in enumerate(reversed(TREE)):
            s3.put_object(Bucket=bucket, Key=f"tree/{name}", Body=f"id\n{number}\n".encode())
        root, options = f"{bucket}/tree", server.settings()
        connector = open_source(f"s3://{root}/", **options)
    else:
        if backend == "sftp":
            sftp: SftpServer = request.getfixturevalue("sftp_server")
            base = sftp.data / f"tree-{tmp_path.name}"
            options = {"backend": "sftp", **sftp.password_settings()}
        else:
            base, options = tmp_path / "tree", {}
        for number, name in enumerate(reversed(TREE)):
            (base / name).parent.mkdir(parents=True, exist_ok=True)
            (base / name).write_text(f"id\n{number}\n")
        root = str(base)
        connector = open_source(root, **options)

    read = [source_file(batch) for batch in connector.read_batches(State())]

    assert [path.removeprefix(root + "/") for path in read] == TREE
