"""The filestore connector over SFTP (Debian's OpenSSH `sshd` on 127.0.0.1): every format both
ways, globs and directories, gzip, hidden temporary files until commit, incremental reads by
modification time, the three ways to log in, host-key checking, and errors that name the
backend and path but never a secret."""

from __future__ import annotations

import gzip
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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

from dataloader import ConnectorError, DataLoaderError, RecipeError
from dataloader_filestore import FileStoreConnector
from dataloader_filestore.listing import ListedFile
from dataloader_filestore.testing import SftpServer, free_port


@pytest.fixture
def failing_sources(_test_connectors: None) -> Iterator[list[Callable[[int], None]]]:
    yield from register_failing_sources()


@pytest.fixture
def run_yaml(tmp_path: Path) -> YamlRunner:
    return YamlRunner(tmp_path)


def new_dir(server: SftpServer) -> Path:
    """A fresh directory on the server (the same machine), writable by both SFTP users."""
    directory = server.data / uuid.uuid4().hex[:10]
    directory.mkdir()
    os.chmod(directory, 0o777)
    return directory


@pytest.fixture
def remote(sftp_server: SftpServer) -> Path:
    return new_dir(sftp_server)


def url(server: SftpServer, path: Path | str) -> str:
    return f"sftp://127.0.0.1:{server.port}{path}"


def by_url(server: SftpServer, path: Path | str) -> dict[str, Any]:
    """`path: sftp://host:port/…` plus the key login (host and port from the URL)."""
    login = {k: v for k, v in server.key_settings().items() if k not in ("host", "port")}
    return {"path": url(server, path), **login}


def by_backend(server: SftpServer, path: Path | str) -> dict[str, Any]:
    """`backend: sftp` with a plain path, `host` and `port`, and the password login."""
    return {"path": str(path), "backend": "sftp", **server.password_settings()}


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_file())


def visible(directory: Path) -> list[str]:
    return [name for name in names(directory) if not name.startswith((".", "_"))]


def temporary(directory: Path) -> list[str]:
    return [n for n in names(directory) if n.startswith(".") and n.endswith(".tmp")]


def jsonl_ids(directory: Path) -> list[int]:
    import json

    ids: list[int] = []
    for name in visible(directory):
        ids += [json.loads(line)["id"] for line in (directory / name).read_text().splitlines()]
    return sorted(ids)


def write(path: Path, text: str, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


# -- formats, both ways of naming the server ---------------------------------------------------
@pytest.mark.parametrize(
    ("file_format", "write_style"),
    [("csv", "url"), ("json", "backend"), ("jsonl", "backend"), ("parquet", "url")],
)
def test_every_format_is_written_to_and_read_from_sftp(
    run_yaml: YamlRunner,
    sftp_server: SftpServer,
    remote: Path,
    collected: dict[str, list[dict[str, Any]]],
    file_format: str,
    write_style: str,
) -> None:
    out = remote / "out"
    write_at, read_at = (
        (by_url(sftp_server, out), by_backend(sftp_server, out))
        if write_style == "url"
        else (by_backend(sftp_server, out), by_url(sftp_server, out))
    )
    result = run_yaml(
        {
            "name": "export",
            "source": rows_source(),
            "destination": {
                "type": "filestore",
                **write_at,
                "format": file_format,
                "rows_per_file": 3,
            },
        }
    )
    assert result.rows_written == len(ROWS)
    files = visible(out)
    assert len(files) == 3  # batches of 2: a second would not fit in a part of 3
    assert all(n.startswith("export-") and n.endswith(f".{file_format}") for n in files)
    assert temporary(out) == []
    assert (out / "_dataloader" / "export.json").is_file()

    run_yaml(collect("back", {"type": "filestore", **read_at}))
    assert by_id(collected["back"]) == ROWS


def test_gzip_files_are_written_and_read_back(
    run_yaml: YamlRunner,
    sftp_server: SftpServer,
    remote: Path,
    collected: dict[str, list[dict[str, Any]]],
) -> None:
    run_yaml(
        {
            "name": "zipped",
            "source": rows_source(batch_size=5),
            "destination": {
                "type": "filestore",
                **by_url(sftp_server, remote),
                "format": "csv",
                "compression": "gzip",
            },
        }
    )
    [name] = visible(remote)
    assert name.endswith(".csv.gz")
    body = (remote / name).read_bytes()
    assert body[:2] == b"\x1f\x8b"
    assert b"alpha" in gzip.decompress(body)

    run_yaml(collect("back", {"type": "filestore", **by_backend(sftp_server, f"{remote}/*.gz")}))
    assert by_id(collected["back"]) == ROWS


# -- what a path selects ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def layout(sftp_server: SftpServer) -> Path:
    """`a.csv` (1-2), `b.csv` (3), `ab.csv` (7), `report#1.csv` (8), `sub/c.csv` (4), and
    files to ignore (hidden, `_`-prefixed, unknown extension)."""
    root = new_dir(sftp_server)
    for name, ids in {
        "a.csv": [1, 2],
        "b.csv": [3],
        "ab.csv": [7],
        "report#1.csv": [8],
        "sub/c.csv": [4],
        ".hidden.csv": [100],
        "_SUCCESS.csv": [101],
        "_dataloader/meta.csv": [102],
    }.items():
        write(root / name, csv_text(ids))
    write(root / "notes.txt", "not data")
    return root


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("", [1, 2, 3, 4, 7, 8]),
        ("/", [1, 2, 3, 4, 7, 8]),
        ("/*.csv", [1, 2, 3, 7, 8]),
        ("/[ab].csv", [1, 2, 3]),
        ("/?.csv", [1, 2, 3]),
        ("/a*.csv", [1, 2, 7]),
        ("/*/c.csv", [4]),
        ("/b.csv", [3]),
        ("/report#1.csv", [8]),
    ],
)
@pytest.mark.parametrize("style", ["url", "backend"])
def test_globs_and_directories_select_files(
    run_yaml: YamlRunner,
    sftp_server: SftpServer,
    layout: Path,
    collected: dict[str, list[dict[str, Any]]],
    relative: str,
    expected: list[int],
    style: str,
) -> None:
    where = (by_url if style == "url" else by_backend)(sftp_server, f"{layout}{relative}")
    run_yaml(collect("sel", {"type": "filestore", **where}))
    assert ids_of(collected["sel"]) == expected


# -- commit protocol -------------------------------------------------------------------------
def staged_recipe(
    server: SftpServer, out: Path, *, resumable: bool, fail_after: int | None
) -> dict[str, Any]:
    return {
        "name": "staged",
        "source": failing_source(resumable=resumable, fail_after=fail_after),
        # A part per batch (2 rows), as small as the batches: every commit has its own files.
        "destination": {
            "type": "filestore",
            **by_url(server, out),
            "format": "jsonl",
            "rows_per_file": 2,
        },
        "runtime": {**FAILING_RUNTIME},
    }


def test_uncommitted_files_stay_hidden_and_a_failed_run_leaves_no_visible_data(
    run_yaml: YamlRunner, sftp_server: SftpServer, remote: Path, failing_sources: list
) -> None:
    seen: dict[int, list[str]] = {}
    failing_sources.append(lambda index: seen.setdefault(index, names(remote)))
    recipe = staged_recipe(sftp_server, remote, resumable=False, fail_after=3)
    with pytest.raises(DataLoaderError, match="source failed before batch 4"):
        run_yaml(recipe)
    for index in (1, 2, 3):
        assert [n for n in seen[index] if not n.startswith((".", "_"))] == [], seen[index]
        hidden = [n for n in seen[index] if n.endswith(".tmp")]
        assert len(hidden) == index, seen[index]
        assert all(n.startswith(".staged-") for n in hidden)
    assert visible(remote) == []
    assert temporary(remote) == []

    recipe["source"]["fail_after"] = None
    assert run_yaml(recipe).rows_written == 10
    assert len(visible(remote)) == 5
    assert temporary(remote) == []
    assert jsonl_ids(remote) == list(range(1, 11))


def test_each_commit_makes_exactly_its_files_visible_and_a_rerun_resumes(
    run_yaml: YamlRunner, sftp_server: SftpServer, remote: Path, failing_sources: list
) -> None:
    seen: dict[int, list[str]] = {}
    failing_sources.append(lambda index: seen.setdefault(index, visible(remote)))
    recipe = staged_recipe(sftp_server, remote, resumable=True, fail_after=3)
    with pytest.raises(DataLoaderError, match="source failed before batch 4"):
        run_yaml(recipe)
    assert {i: len(seen[i]) for i in (0, 1, 2, 3)} == {0: 0, 1: 1, 2: 2, 3: 3}
    assert jsonl_ids(remote) == [1, 2, 3, 4, 5, 6]
    assert temporary(remote) == []

    recipe["source"]["fail_after"] = None
    assert run_yaml(recipe).rows_written == 4
    assert jsonl_ids(remote) == list(range(1, 11))


def test_temporaries_of_a_killed_run_stay_hidden_and_are_removed_by_the_next(
    run_yaml: YamlRunner,
    sftp_server: SftpServer,
    remote: Path,
    failing_sources: list,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(FileStoreConnector, "abort", lambda self: None)  # killed: no abort
    recipe = staged_recipe(sftp_server, remote, resumable=False, fail_after=2)
    with pytest.raises(DataLoaderError):
        run_yaml(recipe)
    assert len(temporary(remote)) == 2
    assert visible(remote) == []

    monkeypatch.undo()
    recipe["source"]["fail_after"] = None
    assert run_yaml(recipe).rows_written == 10
    assert temporary(remote) == []
    assert jsonl_ids(remote) == list(range(1, 11))


# -- incremental by modification time --------------------------------------------------------
def test_incremental_reads_new_and_changed_files_only(
    run_yaml: YamlRunner,
    sftp_server: SftpServer,
    remote: Path,
    collected: dict[str, list[dict[str, Any]]],
) -> None:
    t0 = 1_700_000_000
    write(remote / "a.csv", csv_text([1, 2], "a"), mtime=t0)
    write(remote / "b.csv", csv_text([3], "b"), mtime=t0 + 1)
    recipe = collect(
        "inc",
        {
            "type": "filestore",
            **by_url(sftp_server, f"{remote}/*.csv"),
            "incremental": {"strategy": "modified_time"},
        },
    )
    assert run_yaml(recipe).rows_read == 3
    assert ids_of(collected["inc"]) == [1, 2, 3]

    collected["inc"] = []
    write(remote / "c.csv", csv_text([4, 5], "c"), mtime=t0 + 2)  # new
    # Changed: another size, even with the same modification time.
    write(remote / "b.csv", csv_text([3, 30], "b2"), mtime=t0 + 1)
    assert run_yaml(recipe).rows_read == 4
    assert by_id(collected["inc"]) == [
        {"id": 3, "tag": "b23"},
        {"id": 4, "tag": "c4"},
        {"id": 5, "tag": "c5"},
        {"id": 30, "tag": "b230"},
    ]  # a.csv, untouched, is not read again

    collected["inc"] = []
    write(remote / "a.csv", csv_text([1, 2], "A"), mtime=t0 + 10)  # touched: same size
    assert run_yaml(recipe).rows_read == 2
    assert by_id(collected["inc"]) == [{"id": 1, "tag": "A1"}, {"id": 2, "tag": "A2"}]

    collected["inc"] = []
    assert run_yaml(recipe).rows_read == 0


# -- logging in ------------------------------------------------------------------------------
def login(server: SftpServer, how: str) -> dict[str, Any]:
    if how == "password":
        return server.password_settings()
    if how == "private_key":
        return server.key_settings()
    settings = {k: v for k, v in server.key_settings().items() if k != "private_key"}
    return {**settings, "private_key_text": server.user_key_text}


@pytest.mark.parametrize("how", ["password", "private_key", "private_key_text"])
def test_login_with_password_key_file_or_key_text(
    run_yaml: YamlRunner,
    sftp_server: SftpServer,
    remote: Path,
    collected: dict[str, list[dict[str, Any]]],
    how: str,
) -> None:
    write(remote / "a.csv", csv_text([1, 2]))
    where = {"path": str(remote), "backend": "sftp"}
    run_yaml(collect("login", {"type": "filestore", **where, **login(sftp_server, how)}))
    assert ids_of(collected["login"]) == [1, 2]


def test_credentials_are_never_printed_in_recipe_errors(run_yaml: YamlRunner, remote: Path) -> None:
    # Fresh values, never seen by the process: only masking by key name can hide them.
    token = uuid.uuid4().hex
    key_text = (
        f"-----BEGIN OPENSSH PRIVATE KEY-----\nkeybody{token}\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    password = f"pw{token}"
    source = {
        "type": "filestore",
        "path": str(remote),  # no backend: local, to which the SFTP keys do not apply
        "host": "127.0.0.1",
        "username": "someone",
        "password": password,
        "private_key_text": key_text,
        "passphrase": f"pp{token}",
    }
    with pytest.raises(RecipeError) as caught:
        run_yaml(collect("leak", source))
    text = str(caught.value)
    assert "do not apply to the local backend" in text
    assert token not in text, text


@pytest.fixture(scope="module")
def other_host_key(tmp_path_factory: pytest.TempPathFactory) -> str:
    key = tmp_path_factory.mktemp("otherkey") / "other_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return " ".join(key.with_suffix(".pub").read_text().split()[:2])


def test_a_wrong_pinned_host_key_is_refused(
    run_yaml: YamlRunner, sftp_server: SftpServer, remote: Path, other_host_key: str
) -> None:
    assert other_host_key != sftp_server.host_key_line
    write(remote / "a.csv", csv_text([1]))
    settings = {**sftp_server.password_settings(), "known_host_key": other_host_key}
    with pytest.raises(ConnectorError) as caught:
        run_yaml(
            collect(
                "hostkey",
                {"type": "filestore", "path": str(remote), "backend": "sftp", **settings},
                retries=0,
            )
        )
    assert_clean_error(
        caught.value, [sftp_server.password], "sftp", str(remote), "Host key is not trusted"
    )


def test_host_key_checking_off_accepts_any_host_key(
    run_yaml: YamlRunner,
    sftp_server: SftpServer,
    remote: Path,
    collected: dict[str, list[dict[str, Any]]],
) -> None:
    write(remote / "a.csv", csv_text([1]))
    settings = {k: v for k, v in sftp_server.password_settings().items() if k != "known_host_key"}
    run_yaml(
        collect(
            "nocheck",
            {
                "type": "filestore",
                "path": str(remote),
                "backend": "sftp",
                **settings,
                "host_key_checking": False,
            },
        )
    )
    assert ids_of(collected["nocheck"]) == [1]


# -- failures --------------------------------------------------------------------------------
def test_wrong_password_names_backend_and_path_but_no_password(
    run_yaml: YamlRunner, sftp_server: SftpServer, remote: Path
) -> None:
    wrong = "Wrong-Password-" + uuid.uuid4().hex
    settings = {**sftp_server.password_settings(), "password": wrong}
    with pytest.raises(ConnectorError) as caught:
        run_yaml(
            collect(
                "badlogin",
                {"type": "filestore", "path": f"{remote}/*.csv", "backend": "sftp", **settings},
                retries=0,
            )
        )
    assert_clean_error(
        caught.value,
        [wrong, sftp_server.password],
        "sftp",
        f"{remote}/*.csv",
        "Permission denied",
    )


def test_a_glob_under_a_missing_directory_fails_even_with_allow_empty(
    run_yaml: YamlRunner, sftp_server: SftpServer, remote: Path
) -> None:
    source = {"type": "filestore", **by_backend(sftp_server, f"{remote}/2024/*.csv")}
    for allow_empty in (False, True):
        with pytest.raises(ConnectorError) as caught:
            run_yaml(collect("sftp_glob_base_gone", {**source, "allow_empty": allow_empty}))
        assert_clean_error(
            caught.value, [sftp_server.password], "sftp", f"{remote}/2024", "does not exist"
        )


def test_a_glob_matching_no_file_fails_unless_allow_empty(
    run_yaml: YamlRunner,
    sftp_server: SftpServer,
    remote: Path,
    collected: dict[str, list[dict[str, Any]]],
) -> None:
    write(remote / "notes.txt", "not data")
    source = {"type": "filestore", **by_url(sftp_server, f"{remote}/*.csv")}

    with pytest.raises(ConnectorError) as caught:
        run_yaml(collect("sftp_glob_empty", source))
    assert_clean_error(
        caught.value, [], "sftp", f"{remote}/*.csv", "no file matches", "allow_empty"
    )

    assert run_yaml(collect("sftp_glob_empty", {**source, "allow_empty": True})).rows_read == 0
    assert collected.get("sftp_glob_empty", []) == []


def test_unreachable_host_names_backend_and_path(
    run_yaml: YamlRunner, sftp_server: SftpServer, remote: Path
) -> None:
    settings = {**sftp_server.password_settings(), "port": free_port(), "timeout": 5}
    with pytest.raises(ConnectorError) as caught:
        run_yaml(
            collect(
                "unreachable",
                {"type": "filestore", "path": str(remote), "backend": "sftp", **settings},
                retries={"attempts": 1, "initial_backoff": 0.01},
            )
        )
    assert_clean_error(caught.value, [sftp_server.password], "sftp", str(remote), "Connect")


@pytest.fixture
def private_dir(sftp_server: SftpServer) -> Path:
    """A directory owned by root, mode 0o700: the password user may not enter it."""
    directory = sftp_server.data / f"private-{uuid.uuid4().hex[:8]}"
    directory.mkdir()
    write(directory / "x.csv", csv_text([1]))
    os.chown(directory, 0, 0)
    os.chmod(directory, 0o700)
    return directory


@pytest.mark.parametrize("relative", ["", "/*.csv", "/x.csv"])
def test_permission_denied_when_reading(
    run_yaml: YamlRunner, sftp_server: SftpServer, private_dir: Path, relative: str
) -> None:
    path = f"{private_dir}{relative}"
    with pytest.raises(ConnectorError) as caught:
        run_yaml(
            collect(
                "denied",
                {
                    "type": "filestore",
                    "path": path,
                    "backend": "sftp",
                    **sftp_server.password_settings(),
                },
                retries=0,
            )
        )
    assert_clean_error(caught.value, [sftp_server.password], "sftp", path, "Permission denied")


def test_permission_denied_when_writing(
    run_yaml: YamlRunner, sftp_server: SftpServer, private_dir: Path
) -> None:
    with pytest.raises(ConnectorError) as caught:
        run_yaml(
            {
                "name": "denied",
                "source": rows_source(),
                "destination": {
                    "type": "filestore",
                    "path": url(sftp_server, private_dir / "out"),
                    "format": "csv",
                    **{
                        k: v
                        for k, v in sftp_server.password_settings().items()
                        if k not in ("host", "port")
                    },
                },
                "runtime": {"retries": 0},
            }
        )
    assert_clean_error(
        caught.value, [sftp_server.password], "sftp", str(private_dir / "out"), "Permission denied"
    )
    assert not (private_dir / "out").exists()


def test_file_deleted_between_listing_and_reading(
    run_yaml: YamlRunner,
    sftp_server: SftpServer,
    remote: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write(remote / "a.csv", csv_text([1]))
    write(remote / "b.csv", csv_text([2]))
    original = FileStoreConnector._list

    def list_then_delete(self: FileStoreConnector) -> Iterator[ListedFile]:
        files = list(original(self))
        (remote / "b.csv").unlink()
        return iter(files)

    monkeypatch.setattr(FileStoreConnector, "_list", list_then_delete)
    with pytest.raises(ConnectorError) as caught:
        run_yaml(
            collect(
                "gone",
                {"type": "filestore", **by_backend(sftp_server, remote)},
                retries=0,
            )
        )
    assert_clean_error(
        caught.value, [sftp_server.password], "sftp", f"{remote}/b.csv", "disappeared"
    )
