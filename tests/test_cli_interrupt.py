"""Ctrl-C through the CLI: SIGINT while a batch is read, written or committed ends with one
message naming what was committed and exit 130, and a re-run loads the rest exactly once; a
failed run logs and summarises the counts it committed, and its error is printed once.

The signal is placed deterministically: a wrapper around the CLI sends SIGINT to its own
process from inside the N-th call of the chosen step (Python raises `KeyboardInterrupt` in the
main thread right after `os.kill` returns), so no test depends on timing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_support import CLI_TIMEOUT, duckdb_rows, write_recipe

FILES, ROWS_PER_FILE = 3, 100

# The CLI, with SIGINT (or an error) sent from inside the N-th call of one step of the run:
#   read          the N-th batch the source yields, once the batches before it are committed
#                 (with read-ahead the source runs a batch ahead of the writes, in a thread of
#                 its own: the signal then reaches the run while it waits for this batch)
#   write         the N-th `write_batch`, before it runs
#   commit        the N-th destination `commit`, before it runs
#   committed     the N-th destination `commit`, after it has landed
#   fail-committed  like `committed`, but a RuntimeError instead of SIGINT
#   worker-write  the N-th `write_batch` of any recipe (run in worker threads with -j); from
#                 then on every `write_batch` waits until the CLI has asked the runs to stop
_SIGNALLING_CLI = """
import os
import signal
import sys
import threading

from dataloader.cli import main, run_cmd
from dataloader_duckdb.connector import DuckDBConnector
from dataloader_filestore.connector import FileStoreConnector

# Ctrl-C as a terminal delivers it, whatever this process inherited: a shell starts background
# jobs with SIGINT ignored, and the CLI under test would then never see the signal.
signal.signal(signal.SIGINT, signal.default_int_handler)

point, after, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
calls = []
lock = threading.Lock()
stops = []
reads = []
landed = threading.Condition()  # notified after each destination commit
commits = []


def hit(landed=False):
    with lock:
        calls.append(1)
        if len(calls) != after:
            return
    if point == "fail-committed":
        raise RuntimeError("the connection broke after the commit")
    os.kill(os.getpid(), signal.SIGINT)


init = run_cmd.ProgressReporter.__init__


def reporter_init(self, *args, **kwargs):
    init(self, *args, **kwargs)
    stops.append(getattr(self, "stop", None))


run_cmd.ProgressReporter.__init__ = reporter_init
read, write, commit = (
    FileStoreConnector.read_batches,
    DuckDBConnector.write_batch,
    DuckDBConnector.commit,
)


def read_batches(self, state):
    for batch in read(self, state):
        if point == "read":
            reads.append(1)
            if len(reads) == after:
                with landed:
                    landed.wait_for(lambda: len(commits) >= after - 1)
            hit()
        yield batch


def write_batch(self, batch, state):
    if point in ("write", "worker-write"):
        hit()
    if point == "worker-write" and len(calls) >= after:
        stops[0].wait()  # no worker writes on until the CLI has asked the runs to stop
    return write(self, batch, state)


def commit_(self, state):
    if point == "commit":
        hit()
    commit(self, state)
    with landed:
        commits.append(1)
        landed.notify_all()
    if point in ("committed", "fail-committed"):
        hit()


FileStoreConnector.read_batches = read_batches
DuckDBConnector.write_batch, DuckDBConnector.commit = write_batch, commit_
main(args)
"""


def signalling_cli(
    point: str, after: int, args: list[str], cwd: Path, env: dict
) -> tuple[int, str, str]:
    command = [sys.executable, "-c", _SIGNALLING_CLI, point, str(after), *args]
    proc = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT
    )
    return proc.returncode, proc.stdout, proc.stderr


def write_files(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for number in range(FILES):
        first = number * ROWS_PER_FILE
        lines = ["id,name"] + [f"{i},name {i}" for i in range(first, first + ROWS_PER_FILE)]
        (directory / f"part{number}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def files_recipe(cwd: Path, name: str = "orders", data: str = "data", read_ahead: int = 1) -> Path:
    write_files(cwd / data)
    return write_recipe(
        cwd / f"{name}.yaml",
        {
            "name": name,
            "source": {
                "type": "filestore",
                "path": f"{data}/*.csv",
                "incremental": {"strategy": "modified_time"},
            },
            "destination": {"type": "duckdb", "database": f"{name}.duckdb", "table": "t"},
            "runtime": {"batch_size": ROWS_PER_FILE, "read_ahead": read_ahead},
        },
    )


def messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def committed_rows(stderr: str) -> int:
    """The rows the one message after Ctrl-C says were committed."""
    [line] = messages(stderr)
    match = re.fullmatch(
        r"interrupted; committed up to (\d+) rows of 'orders' \((\d+) files? read\), "
        r"re-run to resume",
        line,
    )
    assert match is not None, stderr
    rows = int(match.group(1))
    assert int(match.group(2)) == rows // ROWS_PER_FILE, line  # the files those rows came from
    return rows


def assert_state_agrees(cwd: Path, rows: int) -> dict:
    """The destination holds exactly `rows` distinct rows, and the state mirrored beside it
    records exactly their files as loaded; returns that state."""
    database = cwd / "orders.duckdb"
    assert duckdb_rows(database, "SELECT count(*), count(DISTINCT id) FROM t") == [(rows, rows)]
    state = json.loads((cwd / ".state" / "orders.json").read_text(encoding="utf-8"))
    files = state["watermarks"].get("files", {})
    assert sum(entry["rows"] for entry in files.values() if entry["complete"]) == rows, files
    return state


@pytest.mark.parametrize(
    ("point", "read_ahead", "committed"),
    [
        ("read", 1, None),
        ("read", 0, None),
        ("write", 1, 100),
        ("commit", 1, 100),
        ("committed", 1, 200),
    ],
)
def test_sigint_at_read_write_or_commit_ends_with_one_message_and_exit_130(
    tmp_path: Path, cli_env: dict, point: str, read_ahead: int, committed: int | None
) -> None:
    """Whatever the run was doing when Ctrl-C came, the message, the destination and the
    state agree on what was committed, and a re-run loads exactly the rest. A read runs a
    batch ahead of the writes in a thread of its own (or, with `read_ahead: 0`, in turn with
    them): where its signal lands is not asserted, only that nothing committed is lost."""
    files_recipe(tmp_path, read_ahead=read_ahead)
    args = ["run", "orders.yaml", "--state-dir", ".state"]

    code, out, err = signalling_cli(point, 2, args, tmp_path, cli_env)

    assert code == 130, f"exit {code}\n{out}\n{err}"
    assert "Traceback" not in out + err
    rows = committed_rows(err)
    if committed is not None:  # signalled in the writing thread: exactly there
        assert rows == committed, err
    else:  # the first batch's commit landed before the signal was sent: it is kept
        assert ROWS_PER_FILE <= rows < FILES * ROWS_PER_FILE, err
    state = assert_state_agrees(tmp_path, rows)
    assert state["last_commit"]["counts"]["rows_written"] == rows, state["last_commit"]

    code, out, err = signalling_cli("none", 0, args, tmp_path, cli_env)  # the re-run
    assert code == 0, f"exit {code}\n{out}\n{err}"
    last_run = assert_state_agrees(tmp_path, FILES * ROWS_PER_FILE)["checkpoints"][-1]
    assert last_run["status"] == "success", last_run
    assert last_run["rows_written"] == FILES * ROWS_PER_FILE - rows, last_run


def test_sigint_stops_recipes_running_in_worker_threads_with_one_message(
    tmp_path: Path, cli_env: dict
) -> None:
    files_recipe(tmp_path, "first", "in1")
    files_recipe(tmp_path, "second", "in2")
    args = ["run", "first.yaml", "second.yaml", "-j", "2", "--state-dir", ".state"]

    code, out, err = signalling_cli("worker-write", 1, args, tmp_path, cli_env)

    assert code == 130, f"exit {code}\n{out}\n{err}"
    lines = messages(err)
    assert len(lines) == 1 and lines[0].startswith("interrupted; committed up to "), err
    assert "'first'" in lines[0] and "'second'" in lines[0] and "re-run to resume" in lines[0]
    assert "Run summary" not in out

    code, out, err = signalling_cli("none", 0, args, tmp_path, cli_env)
    assert code == 0, f"exit {code}\n{out}\n{err}"
    for name in ("first", "second"):
        rows = duckdb_rows(
            tmp_path / f"{name}.duckdb", "SELECT count(*), count(DISTINCT id) FROM t"
        )
        assert rows == [(300, 300)]


def test_a_failed_run_reports_what_it_committed_and_its_error_once(
    tmp_path: Path, cli_env: dict
) -> None:
    """The second commit lands, then the run fails: the log line and the summary count the
    200 rows committed (not the 100 of the last acknowledged commit); the error appears once."""
    files_recipe(tmp_path)
    args = ["run", "orders.yaml", "--state-dir", ".state"]

    code, out, err = signalling_cli("fail-committed", 2, args, tmp_path, cli_env)

    assert code == 1, f"exit {code}\n{out}\n{err}"
    assert (out + err).count("the connection broke after the commit") == 1, out + err
    failure = next(line for line in messages(err) if "run failed in commit" in line)
    assert "rows_written=200" in failure and "commits=2" in failure, failure
    row = next(line for line in out.splitlines() if line.startswith("│ orders "))
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[:4] == ["orders", "failed: EngineError", "200", "200"], cells
    assert duckdb_rows(tmp_path / "orders.duckdb", "SELECT count(*) FROM t") == [(200,)]
