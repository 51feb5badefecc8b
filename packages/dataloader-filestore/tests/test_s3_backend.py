"""The filestore connector on S3 (moto's server on 127.0.0.1): every format both ways, globs
and prefixes, gzip, the hidden-temporary-object commit protocol, incremental reads by
modification time, errors that name the backend and path (never a secret), and transient
errors retried per `runtime.retries` (through a fault-injecting HTTP proxy in front of moto)."""

from __future__ import annotations

import gzip
import http.client
import io
import json
import posixpath
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from remote_support import (
    FAILING_RUNTIME,
    ROWS,
    YamlRunner,
    assert_clean_error,
    by_id,
    collect,
    csv_text,
    failing_source,
    ids_of,
    register_failing_sources,
    rows_source,
)

from dataloader import ConnectorError, DataLoaderError, State
from dataloader_filestore import FileStoreConnector
from dataloader_filestore.listing import ListedFile
from dataloader_filestore.testing import MotoServer, free_port

SECRET = "s3-Secret-Value-4711-never-printed"


@pytest.fixture
def failing_sources(_test_connectors: None) -> Iterator[list[Callable[[int], None]]]:
    yield from register_failing_sources()


@pytest.fixture
def run_yaml(tmp_path: Path) -> YamlRunner:
    return YamlRunner(tmp_path)


@pytest.fixture
def s3(moto_server: MotoServer) -> Any:
    return moto_server.client("s3")


def settings(server: MotoServer, **changes: Any) -> dict[str, Any]:
    return {**server.settings(), "secret": SECRET, **changes}


def keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    found: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found += [item["Key"] for item in page.get("Contents", [])]
    return sorted(found)


def visible_data(names: list[str]) -> list[str]:
    """Keys a reader of the prefix sees as data: no `.`/`_` name or directory."""
    return [k for k in names if not any(part.startswith((".", "_")) for part in k.split("/"))]


def temporary(names: list[str]) -> list[str]:
    return [k for k in names if posixpath.basename(k).startswith(".") and k.endswith(".tmp")]


def put(s3: Any, bucket: str, key: str, text: str) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=text.encode())


# -- formats, both ways of naming S3 --------------------------------------------------------
@pytest.mark.parametrize(
    ("file_format", "write_style"),
    [("csv", "url"), ("json", "backend"), ("jsonl", "url"), ("parquet", "backend")],
)
def test_every_format_is_written_to_and_read_from_s3(
    run_yaml: YamlRunner,
    moto_server: MotoServer,
    s3: Any,
    s3_bucket: str,
    collected: dict[str, list[dict[str, Any]]],
    file_format: str,
    write_style: str,
) -> None:
    url = {"path": f"s3://{s3_bucket}/exports/{file_format}/"}
    plain = {"path": f"{s3_bucket}/exports/{file_format}", "backend": "s3"}
    write_at, read_at = (url, plain) if write_style == "url" else (plain, url)
    written = run_yaml(
        {
            "name": "export",
            "source": rows_source(),
            "destination": {
                "type": "filestore",
                **write_at,
                "format": file_format,
                "rows_per_file": 3,
                **settings(moto_server),
            },
        }
    )
    assert written.rows_written == len(ROWS)

    objects = keys(s3, s3_bucket, f"exports/{file_format}/")
    data = visible_data(objects)
    assert len(data) == 3  # batches of 2: a second would not fit in a part of 3
    assert all(k.endswith(f".{file_format}") and "/export-" in k for k in data)
    assert temporary(objects) == []
    assert f"exports/{file_format}/_dataloader/export.json" in objects

    run_yaml(collect("back", {"type": "filestore", **read_at, **settings(moto_server)}))
    assert by_id(collected["back"]) == ROWS


def test_parquet_objects_are_readable_by_other_tools(
    run_yaml: YamlRunner, moto_server: MotoServer, s3: Any, s3_bucket: str
) -> None:
    run_yaml(
        {
            "name": "export",
            "source": rows_source(batch_size=5),
            "destination": {
                "type": "filestore",
                "path": f"s3://{s3_bucket}/pq",
                "format": "parquet",
                **settings(moto_server),
            },
        }
    )
    [key] = visible_data(keys(s3, s3_bucket, "pq/"))
    body = s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    assert pq.read_table(io.BytesIO(body)).to_pylist() == ROWS


@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
def test_gzip_objects_are_written_and_read_back(
    run_yaml: YamlRunner,
    moto_server: MotoServer,
    s3: Any,
    s3_bucket: str,
    collected: dict[str, list[dict[str, Any]]],
    file_format: str,
) -> None:
    run_yaml(
        {
            "name": "zipped",
            "source": rows_source(batch_size=5),
            "destination": {
                "type": "filestore",
                "path": f"s3://{s3_bucket}/gz",
                "format": file_format,
                "compression": "gzip",
                **settings(moto_server),
            },
        }
    )
    [key] = visible_data(keys(s3, s3_bucket, "gz/"))
    assert key.endswith(f".{file_format}.gz")
    body = s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    assert body[:2] == b"\x1f\x8b"
    assert b"alpha" in gzip.decompress(body)

    # Read compression is inferred from the extension; the format too.
    run_yaml(
        collect(
            "back",
            {"type": "filestore", "path": f"s3://{s3_bucket}/gz/*.gz", **settings(moto_server)},
        )
    )
    assert by_id(collected["back"]) == ROWS


# -- what a path selects ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def layout(moto_server: MotoServer) -> str:
    """A bucket: `data/a.csv` (1-2), `data/b.csv` (3), `data/sub/c.csv` (4), files to ignore,
    and `data2/e.csv` (5) and `other/d.csv` (6), which share a prefix or sit elsewhere."""
    bucket = moto_server.create_bucket()
    s3 = moto_server.client("s3")
    for key, ids in {
        "data/a.csv": [1, 2],
        "data/b.csv": [3],
        "data/sub/c.csv": [4],
        "data2/e.csv": [5],
        "other/d.csv": [6],
        "data/.hidden.csv": [100],
        "data/_SUCCESS.csv": [101],
        "data/_dataloader/meta.csv": [102],
    }.items():
        put(s3, bucket, key, csv_text(ids))
    put(s3, bucket, "data/notes.txt", "not data")
    return bucket


@pytest.mark.parametrize(
    ("path", "backend", "expected"),
    [
        ("s3://{b}/data/", None, [1, 2, 3, 4]),
        ("s3://{b}/data", None, [1, 2, 3, 4]),
        ("{b}/data", "s3", [1, 2, 3, 4]),
        ("s3://{b}/data/*.csv", None, [1, 2, 3]),
        ("{b}/data/[ab].csv", "s3", [1, 2, 3]),
        ("s3://{b}/data/?.csv", None, [1, 2, 3]),
        ("s3://{b}/data*/*.csv", None, [1, 2, 3, 5]),
        ("s3://{b}/*/sub/*.csv", None, [4]),
        ("s3://{b}/data/b.csv", None, [3]),
        ("{b}/other/d.csv", "s3", [6]),
    ],
)
def test_globs_and_prefixes_select_objects(
    run_yaml: YamlRunner,
    moto_server: MotoServer,
    layout: str,
    collected: dict[str, list[dict[str, Any]]],
    path: str,
    backend: str | None,
    expected: list[int],
) -> None:
    source: dict[str, Any] = {"type": "filestore", "path": path.format(b=layout)}
    if backend:
        source["backend"] = backend
    run_yaml(collect("sel", {**source, **settings(moto_server)}))
    assert ids_of(collected["sel"]) == expected


# -- commit protocol -------------------------------------------------------------------------
def failing_recipe(
    moto_server: MotoServer, bucket: str, *, resumable: bool, fail_after: int | None
) -> dict[str, Any]:
    return {
        "name": "staged",
        "source": failing_source(resumable=resumable, fail_after=fail_after),
        "destination": {
            "type": "filestore",
            "path": f"s3://{bucket}/out",
            "format": "jsonl",
            # A part per batch (2 rows), as small as the batches: every commit has its own files.
            "rows_per_file": 2,
            **settings(moto_server),
        },
        "runtime": {**FAILING_RUNTIME},
    }


def object_rows(s3: Any, bucket: str, names: list[str]) -> list[int]:
    ids: list[int] = []
    for key in names:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        ids += [json.loads(line)["id"] for line in body.splitlines() if line]
    return sorted(ids)


def test_uncommitted_objects_stay_hidden_and_a_failed_run_leaves_no_visible_data(
    run_yaml: YamlRunner, moto_server: MotoServer, s3: Any, s3_bucket: str, failing_sources: list
) -> None:
    # One commit at the end of the run (the source cannot resume): until then every object
    # is a hidden temporary; the failure before batch 4 aborts and removes them.
    seen: dict[int, list[str]] = {}
    failing_sources.append(lambda index: seen.setdefault(index, keys(s3, s3_bucket, "out/")))
    recipe = failing_recipe(moto_server, s3_bucket, resumable=False, fail_after=3)
    with pytest.raises(DataLoaderError, match="source failed before batch 4"):
        run_yaml(recipe)
    for index in (1, 2, 3):
        assert visible_data(seen[index]) == [], seen[index]
        hidden = temporary(seen[index])
        assert len(hidden) == index, seen[index]
        assert all(posixpath.basename(k).startswith(".staged-") for k in hidden)
    after = keys(s3, s3_bucket, "out/")
    assert visible_data(after) == []
    assert temporary(after) == []

    # The same load without the failure: all five batches become visible at once, at commit.
    recipe["source"]["fail_after"] = None
    result = run_yaml(recipe)
    assert result.rows_written == 10
    after = keys(s3, s3_bucket, "out/")
    assert len(visible_data(after)) == 5
    assert temporary(after) == []
    assert object_rows(s3, s3_bucket, visible_data(after)) == list(range(1, 11))


def test_each_commit_makes_exactly_its_objects_visible_and_a_rerun_resumes(
    run_yaml: YamlRunner, moto_server: MotoServer, s3: Any, s3_bucket: str, failing_sources: list
) -> None:
    # A resumable source commits per batch: before batch i, exactly i objects are visible.
    seen: dict[int, list[str]] = {}
    failing_sources.append(lambda index: seen.setdefault(index, keys(s3, s3_bucket, "out/")))
    recipe = failing_recipe(moto_server, s3_bucket, resumable=True, fail_after=3)
    with pytest.raises(DataLoaderError, match="source failed before batch 4"):
        run_yaml(recipe)
    for index in (1, 2, 3):
        assert len(visible_data(seen[index])) == index, seen[index]
        assert temporary(seen[index]) == []
    committed = visible_data(keys(s3, s3_bucket, "out/"))
    assert object_rows(s3, s3_bucket, committed) == [1, 2, 3, 4, 5, 6]

    recipe["source"]["fail_after"] = None
    assert run_yaml(recipe).rows_written == 4  # batches 4 and 5 only
    after = keys(s3, s3_bucket, "out/")
    assert object_rows(s3, s3_bucket, visible_data(after)) == list(range(1, 11))
    assert temporary(after) == []


def test_a_failing_commit_leaves_its_batch_invisible(
    run_yaml: YamlRunner,
    moto_server: MotoServer,
    s3: Any,
    s3_bucket: str,
    failing_sources: list,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = FileStoreConnector.commit
    calls = {"n": 0}

    def commit(self: FileStoreConnector, state: State) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("destination lost its connection while committing")
        original(self, state)

    monkeypatch.setattr(FileStoreConnector, "commit", commit)
    recipe = failing_recipe(moto_server, s3_bucket, resumable=True, fail_after=None)
    with pytest.raises(DataLoaderError, match="lost its connection"):
        run_yaml(recipe)
    after = keys(s3, s3_bucket, "out/")
    assert object_rows(s3, s3_bucket, visible_data(after)) == [1, 2]  # batch 1 only
    assert temporary(after) == []

    monkeypatch.setattr(FileStoreConnector, "commit", original)
    assert run_yaml(recipe).rows_written == 8
    after = keys(s3, s3_bucket, "out/")
    assert object_rows(s3, s3_bucket, visible_data(after)) == list(range(1, 11))


def test_temporaries_of_a_killed_run_stay_hidden_and_are_removed_by_the_next(
    run_yaml: YamlRunner,
    moto_server: MotoServer,
    s3: Any,
    s3_bucket: str,
    failing_sources: list,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A killed process never aborts: its staged objects stay behind, hidden.
    monkeypatch.setattr(FileStoreConnector, "abort", lambda self: None)
    recipe = failing_recipe(moto_server, s3_bucket, resumable=False, fail_after=2)
    with pytest.raises(DataLoaderError):
        run_yaml(recipe)
    left = keys(s3, s3_bucket, "out/")
    assert len(temporary(left)) == 2
    assert visible_data(left) == []

    monkeypatch.undo()
    recipe["source"]["fail_after"] = None
    assert run_yaml(recipe).rows_written == 10
    after = keys(s3, s3_bucket, "out/")
    assert temporary(after) == []
    assert object_rows(s3, s3_bucket, visible_data(after)) == list(range(1, 11))


# -- incremental by modification time --------------------------------------------------------
def test_incremental_reads_new_and_changed_objects_only(
    run_yaml: YamlRunner,
    moto_server: MotoServer,
    s3: Any,
    s3_bucket: str,
    collected: dict[str, list[dict[str, Any]]],
) -> None:
    put(s3, s3_bucket, "in/a.csv", csv_text([1, 2], "a"))
    put(s3, s3_bucket, "in/b.csv", csv_text([3], "b"))
    recipe = collect(
        "inc",
        {
            "type": "filestore",
            "path": f"s3://{s3_bucket}/in/*.csv",
            "incremental": {"strategy": "modified_time"},
            **settings(moto_server),
        },
    )
    assert run_yaml(recipe).rows_read == 3
    assert ids_of(collected["inc"]) == [1, 2, 3]

    collected["inc"] = []
    put(s3, s3_bucket, "in/c.csv", csv_text([4, 5], "c"))  # new
    put(s3, s3_bucket, "in/b.csv", csv_text([3, 30], "b2"))  # changed: another size
    result = run_yaml(recipe)
    assert result.rows_read == 4
    assert by_id(collected["inc"]) == [
        {"id": 3, "tag": "b23"},
        {"id": 4, "tag": "c4"},
        {"id": 5, "tag": "c5"},
        {"id": 30, "tag": "b230"},
    ]  # a.csv, untouched, is not read again

    collected["inc"] = []
    assert run_yaml(recipe).rows_read == 0
    assert collected.get("inc") == []


# -- failures --------------------------------------------------------------------------------
def test_missing_bucket_as_source_names_backend_and_path(
    run_yaml: YamlRunner, moto_server: MotoServer
) -> None:
    with pytest.raises(ConnectorError) as caught:
        run_yaml(
            collect(
                "nobucket",
                {
                    "type": "filestore",
                    "path": "s3://no-such-bucket-dl/in/*.csv",
                    **settings(moto_server),
                },
                retries={"attempts": 0},
            )
        )
    assert_clean_error(caught.value, [SECRET], "s3", "no-such-bucket-dl/in/*.csv")


def test_missing_bucket_as_destination_names_backend_and_path(
    run_yaml: YamlRunner, moto_server: MotoServer
) -> None:
    with pytest.raises(ConnectorError) as caught:
        run_yaml(
            {
                "name": "nobucket",
                "source": rows_source(),
                "destination": {
                    "type": "filestore",
                    "path": "no-such-bucket-dl/out",
                    "backend": "s3",
                    "format": "csv",
                    **settings(moto_server),
                },
            }
        )
    assert_clean_error(caught.value, [SECRET], "s3", "no-such-bucket-dl", "does not exist")


def test_missing_prefix_names_backend_and_path(
    run_yaml: YamlRunner, moto_server: MotoServer, s3_bucket: str
) -> None:
    with pytest.raises(ConnectorError) as caught:
        run_yaml(
            collect(
                "noprefix",
                {
                    "type": "filestore",
                    "path": f"s3://{s3_bucket}/nothing/here",
                    **settings(moto_server),
                },
            )
        )
    assert_clean_error(caught.value, [SECRET], "s3", f"{s3_bucket}/nothing/here", "does not exist")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("s3://{b}/data/2023/*.csv", "no file matches the glob"),
        ("s3://{b}/data/*.parquet", "no file matches the glob"),
        ("s3://{b}/data/2023/", "does not exist"),
    ],
)
def test_selecting_no_object_fails_unless_allow_empty(
    run_yaml: YamlRunner,
    moto_server: MotoServer,
    layout: str,
    collected: dict[str, list[dict[str, Any]]],
    path: str,
    message: str,
) -> None:
    """S3 has no directories: a prefix with no key is an empty selection, like a glob that
    matches nothing, and is an error unless the recipe allows it."""
    source = {"type": "filestore", "path": path.format(b=layout), **settings(moto_server)}

    with pytest.raises(ConnectorError) as caught:
        run_yaml(collect("s3_empty_selection", source))
    assert_clean_error(
        caught.value, [SECRET], "s3", path.format(b=layout).removeprefix("s3://"), message
    )
    assert "allow_empty" in str(caught.value)
    assert caught.value.context["file"].endswith("recipe-1.yaml")  # the recipe file

    assert run_yaml(collect("s3_empty_selection", {**source, "allow_empty": True})).rows_read == 0
    assert collected.get("s3_empty_selection", []) == []


def test_unreachable_endpoint_names_backend_and_path(
    run_yaml: YamlRunner, moto_server: MotoServer
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConnectorError) as caught:
        run_yaml(
            collect(
                "unreachable",
                {
                    "type": "filestore",
                    "path": "s3://some-bucket/in/",
                    **settings(moto_server, endpoint_url=closed, timeout=5),
                },
                retries={"attempts": 1, "initial_backoff": 0.01},
            )
        )
    assert_clean_error(caught.value, [SECRET], "s3", "some-bucket/in", "Could not connect")


def test_object_deleted_between_listing_and_reading(
    run_yaml: YamlRunner,
    moto_server: MotoServer,
    s3: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    put(s3, s3_bucket, "in/a.csv", csv_text([1]))
    put(s3, s3_bucket, "in/b.csv", csv_text([2]))
    original = FileStoreConnector._list

    def list_then_delete(self: FileStoreConnector) -> Iterator[ListedFile]:
        files = list(original(self))
        s3.delete_object(Bucket=s3_bucket, Key="in/b.csv")
        return iter(files)

    monkeypatch.setattr(FileStoreConnector, "_list", list_then_delete)
    with pytest.raises(ConnectorError) as caught:
        run_yaml(
            collect(
                "gone",
                {"type": "filestore", "path": f"s3://{s3_bucket}/in/", **settings(moto_server)},
            )
        )
    assert_clean_error(caught.value, [SECRET], "s3", f"{s3_bucket}/in/b.csv", "disappeared")


# -- transient errors: a fault proxy in front of moto ----------------------------------------
class FaultProxy:
    """An HTTP proxy to moto that answers 503 to the first `failures` requests `matching`."""

    def __init__(
        self, upstream: int, failures: int, matching: Callable[[str, str], bool] | None = None
    ) -> None:
        self.upstream = upstream
        self.failures = failures
        self.matching = matching or (lambda method, path: True)
        self.failed: list[tuple[str, str]] = []
        self.forwarded = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # answers `Expect: 100-continue`

            def log_message(self, *args: Any) -> None:
                pass

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy.lock:
                    fail = len(proxy.failed) < proxy.failures and proxy.matching(
                        self.command, self.path
                    )
                    if fail:
                        proxy.failed.append((self.command, self.path))
                    else:
                        proxy.forwarded += 1
                if fail:
                    status, reason = 503, "Service Unavailable"
                    headers = [("Content-Type", "application/xml")]
                    data = (
                        b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ServiceUnavailable"
                        b"</Code><Message>Please try again (injected)</Message></Error>"
                    )
                else:
                    upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream, timeout=30)
                    forward = {
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() not in ("connection", "expect", "transfer-encoding")
                    }
                    forward["Content-Length"] = str(len(body))
                    upstream.request(self.command, self.path, body=body, headers=forward)
                    answer = upstream.getresponse()
                    data = answer.read()
                    upstream.close()
                    status, reason = answer.status, answer.reason
                    dropped = ["connection", "transfer-encoding", "server", "date"]
                    if self.command != "HEAD":  # a HEAD's Content-Length is the object's size
                        dropped.append("content-length")
                    headers = [(k, v) for k, v in answer.getheaders() if k.lower() not in dropped]
                self.send_response(status, reason)
                for name, value in headers:
                    self.send_header(name, value)
                if self.command != "HEAD" or fail:
                    self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                self.close_connection = True

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = handle_one

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fault_proxy(moto_server: MotoServer) -> Iterator[Callable[..., FaultProxy]]:
    proxies: list[FaultProxy] = []

    def _start(failures: int, matching: Callable[[str, str], bool] | None = None) -> FaultProxy:
        proxy = FaultProxy(moto_server.port, failures, matching)
        proxies.append(proxy)
        return proxy

    yield _start
    for proxy in proxies:
        proxy.close()


def _is_listing(method: str, path: str) -> bool:
    return method == "GET" and "list-type" in path


def _is_object_get(method: str, path: str) -> bool:
    return method == "GET" and path.split("?")[0].endswith(".csv")


def _is_object_put(method: str, path: str) -> bool:
    return method == "PUT" and ".tmp" in path


RETRIES = {"attempts": 5, "initial_backoff": 0.01, "max_backoff": 0.05}


@pytest.mark.parametrize("where", ["listing", "object read"])
def test_transient_503s_when_reading_are_retried(
    run_yaml: YamlRunner,
    moto_server: MotoServer,
    s3: Any,
    s3_bucket: str,
    fault_proxy: Callable[..., FaultProxy],
    collected: dict[str, list[dict[str, Any]]],
    where: str,
) -> None:
    put(s3, s3_bucket, "in/a.csv", csv_text([1, 2]))
    proxy = fault_proxy(3, _is_listing if where == "listing" else _is_object_get)
    result = run_yaml(
        collect(
            "retried",
            {
                "type": "filestore",
                "path": f"s3://{s3_bucket}/in/*.csv",
                **settings(moto_server, endpoint_url=proxy.url),
            },
            retries=RETRIES,
        )
    )
    assert len(proxy.failed) == 3
    assert result.rows_read == 2
    assert ids_of(collected["retried"]) == [1, 2]


@pytest.mark.parametrize("where", ["bucket check", "object write"])
def test_transient_503s_when_writing_are_retried(
    run_yaml: YamlRunner,
    moto_server: MotoServer,
    s3: Any,
    s3_bucket: str,
    fault_proxy: Callable[..., FaultProxy],
    where: str,
) -> None:
    # The first requests of a destination check that the bucket exists.
    proxy = fault_proxy(3, None if where == "bucket check" else _is_object_put)
    result = run_yaml(
        {
            "name": "retried",
            "source": rows_source(batch_size=5),
            "destination": {
                "type": "filestore",
                "path": f"s3://{s3_bucket}/out",
                "format": "csv",
                **settings(moto_server, endpoint_url=proxy.url),
            },
            "runtime": {"retries": RETRIES},
        }
    )
    assert len(proxy.failed) == 3
    assert result.rows_written == 5
    names = keys(s3, s3_bucket, "out/")
    assert len(visible_data(names)) == 1
    assert temporary(names) == []


def test_without_retries_one_503_fails_the_load_clearly(
    run_yaml: YamlRunner,
    moto_server: MotoServer,
    s3: Any,
    s3_bucket: str,
    fault_proxy: Callable[..., FaultProxy],
) -> None:
    put(s3, s3_bucket, "in/a.csv", csv_text([1, 2]))
    proxy = fault_proxy(1)
    with pytest.raises(ConnectorError) as caught:
        run_yaml(
            collect(
                "unretried",
                {
                    "type": "filestore",
                    "path": f"s3://{s3_bucket}/in/*.csv",
                    **settings(moto_server, endpoint_url=proxy.url),
                },
                retries={"attempts": 0, "initial_backoff": 0.01},
            )
        )
    # Neither botocore nor s3fs retried behind the policy's back: one request, refused.
    assert len(proxy.failed) == 1
    assert proxy.forwarded == 0
    assert_clean_error(caught.value, [SECRET], "s3", f"{s3_bucket}/in/*.csv", "Please try again")
