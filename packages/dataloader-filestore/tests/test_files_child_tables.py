"""Child tables of normalized nested data in a file destination: each one a sibling directory of
the main table's, its parts written like the main table's and published by the one commit record
of the main directory, so every table shows the same commit — after a commit, an abort, a kill
between a child write and the commit, and a kill during the commit. Local files, S3 and SFTP."""

from __future__ import annotations

import gzip
import json
import os
import posixpath
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataloader import ArrowBatch, ConnectorError, RunContext, State
from dataloader.registry import get_registry
from dataloader_filestore import FileStoreConfig, FileStoreConnector
from dataloader_filestore.testing import MotoServer, SftpServer

RUN_A = "20240517T120000-0000000a"
RUN_B = "20240518T120000-0000000b"
RUN_C = "20240519T120000-0000000c"
ORDERS, ITEMS = "customers__orders", "customers__orders__items"

Opener = Callable[..., FileStoreConnector]


# -- rows as the normalizer hands them over -----------------------------------------------------
def roots(*ids: str) -> ArrowBatch:
    return ArrowBatch(pa.record_batch({"name": [f"customer {i}" for i in ids], "_dl_id": ids}))


def children(*pairs: tuple[str, int]) -> ArrowBatch:
    """Child rows `(parent id, position)`: ids `<parent>.<position>`, each parent a root."""
    return ArrowBatch(
        pa.record_batch(
            {
                "sku": [f"sku {parent}.{idx}" for parent, idx in pairs],
                "_dl_id": [f"{parent}.{idx}" for parent, idx in pairs],
                "_dl_parent_id": [parent for parent, _ in pairs],
                "_dl_root_id": [parent.split(".")[0] for parent, _ in pairs],
                "_dl_list_idx": pa.array([idx for _, idx in pairs], pa.int64()),
            }
        )
    )


def write_run(connector: FileStoreConnector, *ids: str) -> None:
    """Stage the roots `ids`, two orders each and one item per order."""
    connector.write_batch(roots(*ids), State())
    connector.write_child_batch(ORDERS, children(*[(i, n) for i in ids for n in (0, 1)]), State())
    connector.write_child_batch(
        ITEMS, children(*[(f"{i}.{n}", 0) for i in ids for n in (0, 1)]), State()
    )


# -- where the tables are: local, S3, SFTP ------------------------------------------------------
class Place:
    """A destination directory `<base>/customers` on one backend, and how to look at it."""

    def __init__(self, base: str, settings: dict[str, Any]) -> None:
        self.base, self.settings = base.rstrip("/"), settings
        self.path = f"{self.base}/customers"

    def open(
        self, run_id: str = RUN_A, write_mode: str = "append", recipe: str = "export", **config: Any
    ) -> FileStoreConnector:
        """Opened, its state loaded (an interrupted commit rolled forward) and begun."""
        connector = FileStoreConnector(
            FileStoreConfig(path=self.path, **({"format": "jsonl"} | self.settings | config))
        )
        connector.open(
            RunContext(
                recipe_name=recipe,
                run_id=run_id,
                started_at=datetime(2024, 5, 17, 12, tzinfo=UTC),
                role="destination",
                write_mode=write_mode,
            )
        )
        connector.begin(connector.load_state() or State())
        return connector

    def directory(self, connector: FileStoreConnector, table: str | None = None) -> str:
        root = connector.root.rstrip("/")
        return root if table is None else posixpath.join(posixpath.dirname(root), table)

    def names(self, connector: FileStoreConnector, table: str | None = None) -> list[str]:
        """Every file name in the table's directory (hidden ones too), read afresh."""
        connector.fs.invalidate_cache()
        try:
            paths = connector.fs.ls(self.directory(connector, table), detail=False)
        except FileNotFoundError:
            return []
        return sorted(posixpath.basename(p.rstrip("/")) for p in paths if connector.fs.isfile(p))

    def visible(self, connector: FileStoreConnector, table: str | None = None) -> list[str]:
        return [n for n in self.names(connector, table) if not n.startswith((".", "_"))]

    def rows(self, connector: FileStoreConnector, table: str | None = None) -> list[dict[str, Any]]:
        """The rows of the table's visible parts, by `_dl_id`."""
        found: list[dict[str, Any]] = []
        for name in self.visible(connector, table):
            data = connector.fs.cat_file(posixpath.join(self.directory(connector, table), name))
            if name.endswith(".gz"):
                data = gzip.decompress(data)
            if ".parquet" in name:
                found += pq.read_table(pa.BufferReader(data)).to_pylist()
            else:
                found += [json.loads(line) for line in data.splitlines()]
        return sorted(found, key=lambda row: row["_dl_id"])


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["_dl_id"] for row in rows]


def runs(names: list[str]) -> set[str]:
    """The run ids in part names `<recipe>-<run id>-<part>.<ext>`."""
    return {"-".join(name.split("-")[1:3]) for name in names}


@pytest.fixture
def local(tmp_path: Path) -> Place:
    return Place(str(tmp_path / "exports"), {})


@pytest.fixture
def s3_place(moto_server: MotoServer, s3_bucket: str) -> Place:
    return Place(f"s3://{s3_bucket}/exports", moto_server.settings())


@pytest.fixture
def sftp_place(sftp_server: SftpServer) -> Place:
    directory = sftp_server.data / uuid.uuid4().hex[:10]
    directory.mkdir()
    os.chmod(directory, 0o777)
    login = {k: v for k, v in sftp_server.key_settings().items() if k not in ("host", "port")}
    return Place(f"sftp://127.0.0.1:{sftp_server.port}{directory}", login)


@pytest.fixture(params=["local", "s3", "sftp"])
def place(request: pytest.FixtureRequest) -> Place:
    return request.getfixturevalue(
        {"local": "local", "s3": "s3_place", "sftp": "sftp_place"}[request.param]
    )


@pytest.fixture
def closing() -> Iterator[Callable[[FileStoreConnector], FileStoreConnector]]:
    opened: list[FileStoreConnector] = []
    yield lambda connector: opened.append(connector) or connector
    for connector in opened:
        connector.close()


# -- the API ------------------------------------------------------------------------------------
def test_the_filestore_destination_declares_child_tables_and_its_name_limit() -> None:
    for capabilities in (
        FileStoreConnector.capabilities,
        get_registry().connector("filestore").capabilities,
    ):
        assert capabilities.child_tables
        assert capabilities.max_identifier_length == 255


@pytest.mark.parametrize(
    ("path", "name"),
    [("exports/customers", "customers"), ("exports/customers/", "customers"), ("/d/ä b", "ä b")],
)
def test_table_name_is_the_last_segment_of_the_directory(
    tmp_path: Path, path: str, name: str
) -> None:
    connector = FileStoreConnector(FileStoreConfig(path=path, format="jsonl"))
    connector.root = path
    assert connector.table_name() == name


# -- one commit publishes every table -----------------------------------------------------------
def test_child_tables_are_sibling_directories_published_by_the_commit_of_the_main_table(
    place: Place, closing: Callable[[FileStoreConnector], FileStoreConnector]
) -> None:
    connector = closing(place.open())
    assert connector.table_name() == "customers"
    write_run(connector, "r1", "r2")

    for table in (None, ORDERS, ITEMS):  # on S3 an object appears when its part is closed
        assert place.visible(connector, table) == []
        staged = place.names(connector, table)
        assert all(n.startswith(f".export-{RUN_A}-") and n.endswith(".jsonl.tmp") for n in staged)
    connector.commit(State(watermarks={"run": 1}))

    assert ids(place.rows(connector)) == ["r1", "r2"]
    assert ids(place.rows(connector, ORDERS)) == ["r1.0", "r1.1", "r2.0", "r2.1"]
    assert ids(place.rows(connector, ITEMS)) == ["r1.0.0", "r1.1.0", "r2.0.0", "r2.1.0"]
    assert place.rows(connector, ITEMS)[0] == {
        "sku": "sku r1.0.0",
        "_dl_id": "r1.0.0",
        "_dl_parent_id": "r1.0",
        "_dl_root_id": "r1",
        "_dl_list_idx": 0,
    }
    for table in (ORDERS, ITEMS):  # no record of their own: the main table's publishes them
        assert place.names(connector, table) == place.visible(connector, table)
    record = json.loads(
        connector.fs.cat_file(posixpath.join(connector.root, "_dataloader", "export.json"))
    )
    assert record["pending"] == {} and record["tables"] == [ORDERS, ITEMS]
    assert record["state"]["watermarks"] == {"run": 1}


def test_overwrite_replaces_the_child_tables_it_writes_and_those_it_is_told_to_empty(
    place: Place, closing: Callable[[FileStoreConnector], FileStoreConnector]
) -> None:
    first = closing(place.open(RUN_A))
    write_run(first, "r1", "r2")
    first.commit(State())
    other = closing(place.open(RUN_A, recipe="other"))  # another recipe's parts are not ours
    other.write_child_batch(ORDERS, children(("x", 0)), State())
    other.write_child_batch(ITEMS, children(("x.0", 0)), State())
    other.commit(State())

    second = closing(place.open(RUN_B, write_mode="overwrite"))
    second.write_batch(roots("r3"), State())
    second.write_child_batch(ORDERS, children(("r3", 0)), State())
    second.delete_children(ITEMS, None)  # known, not written by this run
    second.delete_children("customers__never_written", None)  # no such table: nothing to do

    assert ids(place.rows(second, ITEMS)) == ["r1.0.0", "r1.1.0", "r2.0.0", "r2.1.0", "x.0.0"]
    second.commit(State())

    assert ids(place.rows(second)) == ["r3"]
    assert ids(place.rows(second, ORDERS)) == ["r3.0", "x.0"]
    assert ids(place.rows(second, ITEMS)) == ["x.0.0"]
    assert place.names(second, "customers__never_written") == []


def test_overwrite_leaves_a_child_table_it_neither_writes_nor_is_told_to_empty(
    local: Place, closing: Callable[[FileStoreConnector], FileStoreConnector]
) -> None:
    first = closing(local.open(RUN_A))
    write_run(first, "r1")
    first.commit(State())

    second = closing(local.open(RUN_B, write_mode="overwrite"))
    second.write_batch(roots("r2"), State())
    second.commit(State())

    assert ids(local.rows(second)) == ["r2"]
    assert ids(local.rows(second, ITEMS)) == ["r1.0.0", "r1.1.0"]


def test_files_are_not_merged_so_children_are_not_deleted_by_id(
    local: Place, closing: Callable[[FileStoreConnector], FileStoreConnector]
) -> None:
    connector = closing(local.open())
    with pytest.raises(NotImplementedError, match="does not merge"):
        connector.delete_children(ORDERS, pa.array(["r1"]))


@pytest.mark.parametrize(("file_format", "compression"), [("parquet", "none"), ("jsonl", "gzip")])
def test_child_parts_have_the_format_and_compression_of_the_main_table(
    local: Place,
    closing: Callable[[FileStoreConnector], FileStoreConnector],
    file_format: str,
    compression: str,
) -> None:
    connector = closing(local.open(format=file_format, compression=compression))
    write_run(connector, "r1")
    connector.commit(State())

    suffix = {"none": "", "gzip": ".gz"}[compression]
    for table in (None, ORDERS, ITEMS):
        (part,) = local.visible(connector, table)
        assert part == f"export-{RUN_A}-{part.split('-')[3].split('.')[0]}.{file_format}{suffix}"
    assert ids(local.rows(connector, ORDERS)) == ["r1.0", "r1.1"]


def test_a_full_child_part_asks_for_a_commit_and_parts_are_numbered_after_a_retry(
    local: Place, closing: Callable[[FileStoreConnector], FileStoreConnector]
) -> None:
    connector = closing(local.open(rows_per_file=2))
    connector.write_child_batch(ORDERS, children(("r1", 0)), State())
    assert not connector.commit_due(1)
    connector.write_child_batch(ORDERS, children(("r1", 1), ("r1", 2)), State())
    assert connector.commit_due(3)
    connector.commit(State())
    committed = local.visible(connector, ORDERS)
    connector.close()

    retry = closing(local.open(RUN_A, rows_per_file=2))  # the same run, after a retry
    retry.write_child_batch(ORDERS, children(("r2", 0)), State())
    retry.commit(State())

    assert set(committed) < set(local.visible(retry, ORDERS))
    assert len(local.visible(retry, ORDERS)) == len(committed) + 1
    assert ids(local.rows(retry, ORDERS)) == ["r1.0", "r1.1", "r1.2", "r2.0"]


# -- abort and kills: every table at one commit -------------------------------------------------
def test_abort_after_child_rows_leaves_every_table_at_the_last_commit(
    place: Place, closing: Callable[[FileStoreConnector], FileStoreConnector]
) -> None:
    connector = closing(place.open())
    write_run(connector, "r1")
    connector.commit(State())
    before = {t: place.names(connector, t) for t in (None, ORDERS, ITEMS)}

    write_run(connector, "r2")
    connector.write_child_batch("customers__new", children(("r2", 0)), State())
    connector.abort()

    assert {t: place.names(connector, t) for t in (None, ORDERS, ITEMS)} == before
    assert place.names(connector, "customers__new") == []


def _second_run(path: str, kill: str) -> None:
    """In a subprocess: stage a second append run on `path`, then die with `os._exit` at `kill`:
    `write` (after the last child write, before the commit) or `mv<N>` (the commit's N-th
    rename: 1 the record, 2.. the parts)."""
    connector = Place(path, {}).open(RUN_B)
    if kill == "write":
        write_child_batch = FileStoreConnector.write_child_batch

        def write_then_die(self: FileStoreConnector, table: str, *args: Any) -> None:
            write_child_batch(self, table, *args)
            if table == ITEMS:
                os._exit(17)

        FileStoreConnector.write_child_batch = write_then_die  # type: ignore[method-assign]
    write_run(connector, "r2")
    renames = {"n": 0}
    mv = connector.fs.mv

    def mv_or_die(*args: Any, **kwargs: Any) -> Any:
        renames["n"] += 1
        if kill == f"mv{renames['n']}":
            os._exit(17)
        return mv(*args, **kwargs)

    connector.fs.mv = mv_or_die
    connector.commit(State(watermarks={"run": 2}))
    os._exit(0)


@pytest.mark.parametrize(
    ("kill", "published"),
    [("write", False), ("mv1", False), ("mv2", True), ("mv3", True), ("mv4", True)],
)
def test_a_killed_run_leaves_every_table_at_one_commit(
    local: Place,
    closing: Callable[[FileStoreConnector], FileStoreConnector],
    kill: str,
    published: bool,
) -> None:
    first = closing(local.open(RUN_A))
    write_run(first, "r1")
    first.commit(State(watermarks={"run": 1}))
    first.close()

    code = f"import test_files_child_tables as t; t._second_run({local.base!r}, {kill!r})"
    tests = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    died = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert died.returncode == 17, died.stderr
    assert any(n.startswith(".") for t in (None, ORDERS, ITEMS) for n in local.names(first, t))

    later = closing(local.open(RUN_C))  # the next run: rolls the record forward, cleans up
    state = later.load_state()

    assert state is not None and state.watermarks == {"run": 2 if published else 1}
    expected = {RUN_A, RUN_B} if published else {RUN_A}
    for table in (None, ORDERS, ITEMS):
        assert local.names(later, table) == local.visible(later, table)  # no temporary file
        assert runs(local.visible(later, table)) == expected, table
    assert ids(local.rows(later)) == (["r1", "r2"] if published else ["r1"])
    assert len(local.rows(later, ITEMS)) == (4 if published else 2)


def test_the_next_run_removes_temporary_files_of_a_new_child_table_of_a_killed_run(
    local: Place, closing: Callable[[FileStoreConnector], FileStoreConnector]
) -> None:
    killed = local.open(RUN_A)
    killed.write_child_batch("customers__tags", children(("r1", 0)), State())
    assert local.names(killed, "customers__tags")[0].endswith(".tmp")
    del killed  # no commit, abort or close: the process died

    later = closing(local.open(RUN_B))

    assert local.names(later, "customers__tags") == []
    assert later.load_state() is None  # the record knows the table, and no commit


# -- names ------------------------------------------------------------------------------------
@pytest.mark.parametrize("remote", ["local", "s3"])
def test_child_table_names_that_need_quoting_are_directory_names(
    request: pytest.FixtureRequest,
    closing: Callable[[FileStoreConnector], FileStoreConnector],
    remote: str,
) -> None:
    place: Place = request.getfixturevalue({"local": "local", "s3": "s3_place"}[remote])
    names = ["customers__order items", "customers__\"quoted\" 'ones'", "kunden__bestellungen_äöü€"]
    connector = closing(place.open())
    for name in names:
        connector.apply_child_schema(name, None)  # type: ignore[arg-type]
        connector.write_child_batch(name, children(("r1", 0)), State())
    connector.commit(State())

    for name in names:
        assert ids(place.rows(connector, name)) == ["r1.0"]


@pytest.mark.parametrize(
    "name", ["a/b", "..", ".", "", "customers", "customers__quarantine", "x" * 256, "ä" * 128]
)
def test_a_child_table_name_that_is_no_directory_of_its_own_is_refused(
    local: Place, closing: Callable[[FileStoreConnector], FileStoreConnector], name: str
) -> None:
    connector = closing(local.open())
    with pytest.raises(ConnectorError, match="child table name"):
        connector.write_child_batch(name, children(("r1", 0)), State())


def test_a_name_of_255_bytes_is_taken(
    local: Place, closing: Callable[[FileStoreConnector], FileStoreConnector]
) -> None:
    connector = closing(local.open())
    connector.write_child_batch("ä" * 127 + "x", children(("r1", 0)), State())
    connector.commit(State())
    assert ids(local.rows(connector, "ä" * 127 + "x")) == ["r1.0"]


def test_a_whole_bucket_has_no_sibling_directory_for_child_tables(
    moto_server: MotoServer,
    s3_bucket: str,
    closing: Callable[[FileStoreConnector], FileStoreConnector],
) -> None:
    place = Place(f"s3://{s3_bucket}", moto_server.settings())
    place.path = f"s3://{s3_bucket}"
    connector = closing(place.open())
    with pytest.raises(ConnectorError, match="sibling directories") as error:
        connector.write_child_batch(f"{s3_bucket}__orders", children(("r1", 0)), State())
    assert error.value.problem.key == "destination.path"


# -- read back ----------------------------------------------------------------------------------
def test_a_child_table_is_read_back_by_the_filestore_source(
    local: Place, closing: Callable[[FileStoreConnector], FileStoreConnector], read_back: Any
) -> None:
    connector = closing(local.open(format="parquet"))
    write_run(connector, "r1", "r2")
    connector.commit(State())

    rows = read_back(local.directory(connector, ITEMS))

    assert sorted(ids(rows)) == ["r1.0.0", "r1.1.0", "r2.0.0", "r2.1.0"]
    assert {row["_dl_root_id"] for row in rows} == {"r1", "r2"}


def test_reset_state_forgets_the_progress_but_keeps_the_child_tables_to_clean(
    local: Place, closing: Callable[[FileStoreConnector], FileStoreConnector]
) -> None:
    connector = closing(local.open())
    write_run(connector, "r1")
    connector.commit(State(watermarks={"run": 1}))

    connector.reset_state()

    assert connector.load_state() is None
    record = json.loads((Path(connector.root) / "_dataloader" / "export.json").read_text())
    assert record == {"tables": [ORDERS, ITEMS]}
