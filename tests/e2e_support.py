"""Helpers of the end-to-end tests: run the CLI as a subprocess, write recipes, read results."""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

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


# The CLI with a gate. A gate is one named point of the load protocol: the `call`-th call of a
# method (`module:Class.method`), before or after it runs, or inside it once the first chunk of
# its file argument has gone through (`mid-stream`: a file it writes or reads; `mid-copy`: the
# file of a `COPY ... FROM STDIN` on its connection argument). On reaching it the run creates the
# gate file and blocks for good (until the test kills it) or, with `resume`, until a line comes
# on its stdin. A run can also count the calls of methods and write the counts to a JSON file
# when it ends, so a test places gates relative to what an uninterrupted run does.
_GATED_CLI = """
import atexit
import functools
import importlib
import inspect
import json
import sys
import threading
from pathlib import Path

from dataloader.cli import main

spec, args = json.loads(sys.argv[1]), sys.argv[2:]
counts = {}


def stop():
    Path(spec["gate_file"]).touch()
    if spec["resume"]:
        sys.stdin.readline()
    else:
        threading.Event().wait()  # until the test kills the process


class GatedStream:
    # A file whose second read or write blocks at the gate: one chunk has gone through.
    def __init__(self, inner):
        self._inner, self._chunks = inner, 0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def _chunk(self):
        self._chunks += 1
        if self._chunks == 2:
            stop()

    def read(self, *size):
        self._chunk()
        return self._inner.read(*size)

    def write(self, data):
        self._chunk()
        return self._inner.write(data)


class GatedCursor:
    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def copy_expert(self, sql, file, *rest, **named):
        return self._inner.copy_expert(sql, GatedStream(file), *rest, **named)


class GatedConnection:
    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def cursor(self, *positional, **named):
        return GatedCursor(self._inner.cursor(*positional, **named))


def resolve(target):
    module, _, qualified = target.partition(":")
    owner_name, _, method = qualified.rpartition(".")
    owner = importlib.import_module(module)
    for part in owner_name.split("."):
        owner = getattr(owner, part)
    return owner, method


def patch(target, gate):
    owner, method = resolve(target)
    original = getattr(owner, method)
    signature = inspect.signature(original)

    @functools.wraps(original)
    def counted(*positional, **named):
        counts[target] = number = counts.get(target, 0) + 1
        here = gate is not None and number == gate["call"]
        if here and gate["how"] == "before":
            stop()
        if here and gate["how"] in ("mid-stream", "mid-copy"):
            bound = signature.bind(*positional, **named)
            wrap = GatedStream if gate["how"] == "mid-stream" else GatedConnection
            bound.arguments[gate["arg"]] = wrap(bound.arguments[gate["arg"]])
            positional, named = bound.args, bound.kwargs
        result = original(*positional, **named)
        if here and gate["how"] == "after":
            stop()
        return result

    setattr(owner, method, counted)


def write_counts():
    Path(spec["counts_file"]).write_text(json.dumps(counts))


gate = spec["gate"]
for target in dict.fromkeys([*spec["count"], *([gate["target"]] if gate else [])]):
    patch(target, gate if gate and gate["target"] == target else None)
if spec["counts_file"]:
    atexit.register(write_counts)
main(args)
"""

RUNNER_COMMIT = "dataloader.engine.runner:Runner._commit"
"""A run's commit, whole: the destination's commit and the state mirror's save."""
TRANSFORM = "dataloader.transforms.pipeline:TransformPipeline.apply"
"""Called once per batch read, before it is written."""
DESTINATIONS = {
    "duckdb": "dataloader_duckdb.connector:DuckDBConnector",
    "filestore": "dataloader_filestore.connector:FileStoreConnector",
    "postgres": "dataloader_postgres.connector:PostgresConnector",
    "mysql": "dataloader_mysql.connector:MySQLConnector",
}


@dataclass(frozen=True)
class Gate:
    """Where a gated run stops: the `call`-th call of `target` (`module:Class.method`).

    `how` is `before` or `after` the call, or inside it once the first chunk of its file
    argument `arg` went through (`mid-stream`), or of the file of a COPY on its connection
    argument `arg` (`mid-copy`). Against the calls of an uninterrupted run (`at_counts`), a
    `call` between 0 and 1 is a fraction of them (0.5: half way), and a `call` of 0 or less
    counts back from the last (0: the last), so a gate stays inside the load when the number of
    batches, files or commits changes.
    """

    step: str
    target: str
    call: float
    how: Literal["before", "after", "mid-stream", "mid-copy"] = "after"
    arg: str | None = None

    @property
    def name(self) -> str:
        return f"{self.step}#{self.call:g}"

    def at_counts(self, counts: dict[str, int]) -> Gate:
        """This gate with a `call` counted from the start, given a clean run's call counts."""
        total = counts.get(self.target, 0)
        if 0 < self.call < 1:
            call = max(1, math.ceil(total * self.call))
        else:
            call = int(self.call) if self.call >= 1 else total + int(self.call)
        assert 0 < call <= total, f"gate {self.name}: call {self.call} of {total} calls"
        return replace(self, call=call)


# The protocol's steps, as gates. The destination's methods are those of `Connector`.
def read_gate(call: float) -> Gate:
    """Before the `call`-th batch read is transformed and written."""
    return Gate("read", TRANSFORM, call, "before")


def written_gate(destination: str, call: float) -> Gate:
    """After the destination's `call`-th write_batch, before the commit that would keep it."""
    return Gate("written", f"{DESTINATIONS[destination]}.write_batch", call)


def mid_file_gate(call: float, file_format: str = "Parquet") -> Gate:
    """Inside the `call`-th file written: its first chunk is out, the rest is not."""
    target = f"dataloader_filestore.formats:{file_format}Format.open_writer"
    return Gate("mid-file", target, call, "mid-stream", arg="stream")


def mid_copy_gate(call: float) -> Gate:
    """Inside the `call`-th COPY into a Postgres table: its first chunk sent, COPY not ended.
    The COPY is the codec's that runs use: binary while dataloader-rust is installed and
    enabled, CSV otherwise."""
    from dataloader_postgres.codec import choose_codec

    codec = type(choose_codec("auto"))
    target = f"{codec.__module__}:{codec.__qualname__}.write"
    return Gate("mid-copy", target, call, "mid-copy", arg="connection")


def mid_load_gate(call: float) -> Gate:
    """Inside the `call`-th `LOAD DATA LOCAL INFILE` (MySQL, MariaDB): the server runs the
    statement and has asked PyMySQL for the file; no byte of it is sent yet."""
    target = "pymysql.connections:MySQLResult._read_load_local_packet"
    return Gate("mid-load", target, call, "before")


def mysql_gate(step: str, method: str, call: float, how: Literal["before", "after"]) -> Gate:
    """`how` the `call`-th call of the MySQL destination's `method` (named `step`)."""
    return Gate(step, f"{DESTINATIONS['mysql']}.{method}", call, how)


def before_renames_gate(call: float) -> Gate:
    """Inside a file destination's commit: its record (state and renames to do) is written, no
    file renamed yet."""
    return Gate("renames", f"{DESTINATIONS['filestore']}._apply_pending", call, "before")


def destination_committed_gate(destination: str, call: float) -> Gate:
    """After the destination's `call`-th commit, before the state backend's mirror is saved."""
    return Gate("commit", f"{DESTINATIONS[destination]}.commit", call)


def after_commit(call: float) -> Gate:
    """After the `call`-th commit of the run: its data and its state mirror are saved."""
    return Gate("committed", RUNNER_COMMIT, call)


def popen_gated_cli(
    args: Sequence[str],
    cwd: Path,
    env: dict,
    gate_file: Path,
    after: int | None = None,
    *,
    gate: Gate | None = None,
    resume: bool = False,
    **kwargs: Any,
) -> subprocess.Popen:
    """Start the CLI; it stops at `gate` (or after its `after`-th commit) once `gate_file`
    exists: for good, or with `resume` until a line is written to its stdin."""
    if gate is None:
        assert after is not None, "a gate or a commit to stop after"
        gate = after_commit(after)
    assert gate.call >= 1 and gate.call == int(gate.call), f"gate {gate.name} is not resolved"
    kwargs.setdefault("stdout", subprocess.DEVNULL)
    kwargs.setdefault("stderr", subprocess.DEVNULL)
    kwargs.setdefault("stdin", subprocess.PIPE if resume else subprocess.DEVNULL)
    spec = {
        "gate_file": str(gate_file),
        "gate": {**asdict(gate), "call": int(gate.call)},
        "resume": resume,
        "count": [],
        "counts_file": None,
    }
    command = [sys.executable, "-c", _GATED_CLI, json.dumps(spec), *args]
    return subprocess.Popen(command, cwd=cwd, env=env, **kwargs)


def run_counting_cli(
    args: Sequence[str], cwd: Path, env: dict, targets: Sequence[str]
) -> tuple[CliResult, dict[str, int]]:
    """Run the CLI to completion, counting the calls of `targets`: (result, counts)."""
    counts_file = cwd / ".gate-counts.json"
    spec = {
        "gate_file": None,
        "gate": None,
        "resume": False,
        "count": list(targets),
        "counts_file": str(counts_file),
    }
    proc = subprocess.run(
        [sys.executable, "-c", _GATED_CLI, json.dumps(spec), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=CLI_TIMEOUT,
    )
    counts = json.loads(counts_file.read_text()) if counts_file.exists() else {}
    counts_file.unlink(missing_ok=True)
    return (proc.returncode, proc.stdout, proc.stderr), counts


def kill_at_gate(
    args: Sequence[str], cwd: Path, env: dict, gate: Gate, **kwargs: Any
) -> subprocess.Popen:
    """Start a gated run, wait until it is blocked at `gate`, SIGKILL it; the ended process."""
    gate_file = cwd / f".gate-{uuid.uuid4().hex[:8]}"
    proc = popen_gated_cli(args, cwd, env, gate_file, gate=gate, **kwargs)
    try:
        wait_for_gate(proc, gate_file)
    finally:
        proc.kill()
        proc.wait(timeout=CLI_TIMEOUT)
        gate_file.unlink(missing_ok=True)
    return proc


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


def visible_parquet(directory: Path, schema: pa.Schema | None = None) -> pa.Table:
    """Every visible `*.parquet` file of a directory (no hidden or `_` names), as one table;
    with `schema` (the table's schema after its last change), parts written before a column
    widened are cast to it and lack no column."""
    files = sorted(
        p for p in directory.glob("*.parquet") if p.is_file() and not p.name.startswith((".", "_"))
    )
    if not files:
        return pa.table({})
    parts = [pq.read_table(p) for p in files]
    if schema is not None:
        parts = [
            pa.table(
                {
                    field.name: part.column(field.name).cast(field.type)
                    if field.name in part.column_names
                    else pa.nulls(part.num_rows, field.type)
                    for field in schema
                }
            )
            for part in parts
        ]
    return pa.concat_tables(parts, promote_options="default")


def sorted_rows(table: pa.Table, key: str | Sequence[str]) -> list[dict]:
    keys = [key] if isinstance(key, str) else list(key)
    return table.sort_by([(k, "ascending") for k in keys]).to_pylist()
