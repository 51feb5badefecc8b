"""Helpers of the end-to-end tests: run the CLI as a subprocess, write recipes, read results."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

CLI = [sys.executable, "-m", "dataloader"]
CLI_TIMEOUT = 120

CliResult = tuple[int, str, str]


def run_cli(args: Sequence[str], cwd: Path, env: dict) -> CliResult:
    """Run the CLI to completion: `(returncode, stdout, stderr)`."""
    proc = subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=CLI_TIMEOUT,
    )
    return proc.returncode, proc.stdout, proc.stderr


def popen_cli(args: Sequence[str], cwd: Path, env: dict, **kwargs: Any) -> subprocess.Popen:
    """Start the CLI without waiting (for the kill and lock tests)."""
    kwargs.setdefault("stdout", subprocess.DEVNULL)
    kwargs.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen([*CLI, *args], cwd=cwd, env=env, **kwargs)


# The CLI with a gate: after its `after`-th commit (data and state mirror both saved) the run
# creates the file `gate` and blocks there, so a test kills it at a known point of the load.
_GATED_CLI = """
import sys
import threading
from pathlib import Path

from dataloader.cli import main
from dataloader.engine.runner import Runner

gate, after, args = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
commit = Runner._commit
done = []


def gated_commit(self, *positional, **named):
    commit(self, *positional, **named)
    done.append(1)
    if len(done) == after:
        gate.touch()
        threading.Event().wait()  # until the test kills the process


Runner._commit = gated_commit
main(args)
"""


def popen_gated_cli(
    args: Sequence[str], cwd: Path, env: dict, gate: Path, after: int, **kwargs: Any
) -> subprocess.Popen:
    """Start the CLI; it stops for good after its `after`-th commit, once `gate` exists."""
    kwargs.setdefault("stdout", subprocess.DEVNULL)
    kwargs.setdefault("stderr", subprocess.DEVNULL)
    command = [sys.executable, "-c", _GATED_CLI, str(gate), str(after), *args]
    return subprocess.Popen(command, cwd=cwd, env=env, **kwargs)


def wait_for_gate(proc: subprocess.Popen, gate: Path, timeout: float = CLI_TIMEOUT) -> None:
    """Wait until a gated run has reached its gate (it is then blocked, not finished)."""
    for _ in range(int(timeout * 100)):
        if gate.exists():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before its gate")
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.01)
    raise AssertionError(f"the run did not reach its gate within {timeout} s")


def flat(text: str) -> str:
    """Whitespace collapsed, so that a message wrapped by the console still matches."""
    return " ".join(text.split())


def write_recipe(path: Path, recipe: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def duckdb_rows(database: Path, sql: str, params: list | None = None) -> list[tuple]:
    """Rows of a query on a DuckDB file (opened read-only, closed afterwards)."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def duckdb_table(database: Path, table: str) -> pa.Table:
    con = duckdb.connect(str(database), read_only=True)
    try:
        return con.sql(f'SELECT * FROM "{table}"').to_arrow_table()
    finally:
        con.close()


def visible_parquet(directory: Path) -> pa.Table:
    """Every visible `*.parquet` file of a directory (no hidden or `_` names), as one table."""
    files = sorted(
        p for p in directory.glob("*.parquet") if p.is_file() and not p.name.startswith((".", "_"))
    )
    if not files:
        return pa.table({})
    return pa.concat_tables([pq.read_table(p) for p in files], promote_options="default")


def sorted_rows(table: pa.Table, key: str | Sequence[str]) -> list[dict]:
    keys = [key] if isinstance(key, str) else list(key)
    return table.sort_by([(k, "ascending") for k in keys]).to_pylist()
