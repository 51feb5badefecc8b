"""The kill test: SIGKILL a load at random instants, re-run it, and get the uninterrupted result.

For each (source, destination, write mode), a clean run loads a reference destination and is
timed from its first batch to its end. Then, for seeded random kill points spread over that
duration, a run is started with Popen, killed with SIGKILL that long after its first batch, and
re-run to completion with the same recipe and state directory: the destination must equal the
reference row for row, with no staging table and no temporary file left over. Kill points are
counted from the first batch (the CLI prints a progress line per batch when its output is not a
terminal) so that they fall in the load, not in the interpreter's start-up.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from e2e_support import (
    duckdb_rows,
    duckdb_table,
    flat,
    popen_cli,
    run_cli,
    sorted_rows,
    visible_parquet,
    write_recipe,
)

FILES = 8
ROWS_PER_FILE = 3_000
BATCH_SIZE = 500
REPEATS_PER_FILE = 300  # rows of each file (but the first) that update keys of the file before
T0 = 1_700_000_000
KEY = ["id", "updated_at"]

# (source, destination, write mode, kill points). The `duckdb` source reads incrementally on
# a cursor column with runs of 7 equal values, so batch boundaries fall inside runs of ties.
COMBOS = [
    ("files", "duckdb", "append", 4),
    ("files", "duckdb", "overwrite", 3),
    ("files", "duckdb", "merge", 4),
    ("files", "filestore", "append", 4),
    ("files", "filestore", "overwrite", 3),
    ("duckdb", "duckdb", "append", 3),
]
TOTAL_KILL_POINTS = sum(combo[-1] for combo in COMBOS)


def _write_data(directory: Path) -> None:
    """8 CSV files; from the second on, some rows repeat a key of the previous file, newer."""
    directory.mkdir()
    for f in range(FILES):
        lines = ["id,customer,amount,updated_at,note"]
        for i in range(ROWS_PER_FILE):
            if f and i < REPEATS_PER_FILE:
                key = (f - 1) * ROWS_PER_FILE + REPEATS_PER_FILE + i * 7
            else:
                key = f * ROWS_PER_FILE + i
            minute, second = divmod(i, 60)
            lines.append(
                f'{key},"Cust {key % 97}, ""{f}""",{key % 1000}.{i % 100:02d},'
                f"2024-01-{f + 1:02d} {minute // 60:02d}:{minute % 60:02d}:{second:02d},"
                f"n{f}-{i}"
            )
        path = directory / f"part-{f}.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.utime(path, (T0 + f, T0 + f))
    con = duckdb.connect(str(directory / "source.duckdb"))
    con.execute(
        "CREATE TABLE orders AS SELECT i AS id, "
        "TIMESTAMP '2024-01-01' + to_seconds(i // 7) AS updated_at, 'v' || i AS note "
        f"FROM range({FILES * ROWS_PER_FILE}) t(i)"
    )
    con.close()


def _recipe(cwd: Path, data: Path, source_kind: str, destination: str, mode: str) -> Path:
    data_path = os.path.relpath(data, cwd)
    steps: list[dict] = [{"type": "add_column", "name": "origin", "value": "e2e"}]
    if source_kind == "duckdb":
        source: dict = {
            "type": "duckdb",
            "database": f"{data_path}/source.duckdb",
            "table": "orders",
            "read_only": True,
            "incremental": {"cursor_column": "updated_at"},
        }
    else:
        source = {"type": "filestore", "path": f"{data_path}/*.csv"}
        if mode != "overwrite":
            # Resumable and idempotent: a re-run after a completed run reads nothing new.
            source["incremental"] = {"strategy": "modified_time"}
        cast = {"amount": "decimal(12,2)", "updated_at": {"type": "datetime", "timezone": "UTC"}}
        steps.insert(0, {"type": "cast", "columns": cast})
    if destination == "duckdb":
        dest: dict = {"type": "duckdb", "database": "out.duckdb", "table": "orders"}
    else:
        dest = {"type": "filestore", "path": "out", "format": "parquet"}
    dest["write_mode"] = mode
    if mode == "merge":
        dest["merge_keys"] = ["id"]
    return write_recipe(
        cwd / "recipe.yaml",
        {
            "name": "crash",
            "source": source,
            "transform": {"steps": steps},
            "destination": dest,
            "runtime": {"batch_size": BATCH_SIZE},
        },
    )


def _result(cwd: Path, destination: str) -> pa.Table:
    if destination == "duckdb":
        return duckdb_table(cwd / "out.duckdb", "orders")
    return visible_parquet(cwd / "out")


def _leftovers(cwd: Path, destination: str) -> list[str]:
    """Staging tables in DuckDB; temporary files anywhere under the destination directory."""
    if destination == "duckdb":
        return [
            row[0]
            for row in duckdb_rows(
                cwd / "out.duckdb",
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_name LIKE '\\_dl\\_stage\\_%' ESCAPE '\\'",
            )
        ]
    return [str(p.relative_to(cwd)) for p in (cwd / "out").rglob("*") if p.name.endswith(".tmp")]


def _interrupted(cwd: Path, destination: str) -> str:
    """What a killed run left: its last commit, a staging table or temporary files."""
    if destination == "duckdb":
        if not (cwd / "out.duckdb").exists():
            return "nothing"
        tables = {r[0] for r in duckdb_rows(cwd / "out.duckdb", "SHOW TABLES")}
        committed = "orders" in tables and duckdb_rows(cwd / "out.duckdb", "FROM orders LIMIT 1")
        staged = any(t.startswith("_dl_stage_") for t in tables)
    else:
        committed = visible_parquet(cwd / "out").num_rows > 0
        staged = bool(_leftovers(cwd, destination))
    return "committed" if committed else "staged" if staged else "nothing"


def _start(cwd: Path, env: dict, log: Path) -> tuple[subprocess.Popen, float]:
    """Start a run (stdout to `log`) and wait for its first batch: (process, time of that batch)."""
    args = ["run", "recipe.yaml", "--state-dir", ".state"]
    with open(log, "wb") as out:
        proc = popen_cli(args, cwd, env, stdout=out)
    deadline = time.monotonic() + 60
    # The engine prints a progress line per batch written: a load is under way.
    while b" rows, " not in log.read_bytes() and proc.poll() is None:
        assert time.monotonic() < deadline, "no batch within 60 s"
        time.sleep(0.005)
    return proc, time.monotonic()


def _clean_run(cwd: Path, env: dict) -> float:
    """Run to completion; return the seconds from its first batch to its end."""
    proc, first = _start(cwd, env, cwd / "clean.log")
    assert proc.wait(timeout=120) == 0, (cwd / "clean.log").read_text(encoding="utf-8")
    return time.monotonic() - first


def _check_reference(table: pa.Table, source_kind: str, mode: str) -> None:
    ids = table.column("id").to_pylist()
    if source_kind == "duckdb":
        assert sorted(ids) == list(range(FILES * ROWS_PER_FILE))
    elif mode == "merge":
        assert len(ids) == len(set(ids)) == FILES * ROWS_PER_FILE - (FILES - 1) * REPEATS_PER_FILE
    else:
        assert len(ids) == FILES * ROWS_PER_FILE
    assert set(table.column("origin").to_pylist()) == {"e2e"}


def _kill_and_resume(
    base: Path, data: Path, combo: tuple[str, str, str], delay: float, env: dict, expected: list
) -> tuple[str, float]:
    """One kill point: SIGKILL `delay` s after the first batch, re-run, compare with `expected`.

    Returns what the killed run left behind, or "ended" if it finished before the kill, and the
    seconds from its first batch to the kill or its end.
    """
    source_kind, destination, mode = combo
    cwd = Path(tempfile.mkdtemp(prefix=f"kill-{delay:.3f}-", dir=base))
    _recipe(cwd, data, source_kind, destination, mode)
    proc, first = _start(cwd, env, cwd / "killed.log")
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=delay)
    hit = proc.poll() is None
    if hit:
        proc.send_signal(signal.SIGKILL)
    elapsed = time.monotonic() - first
    proc.wait()
    left = _interrupted(cwd, destination) if hit else "ended"

    code, out, err = run_cli(["run", "recipe.yaml", "--state-dir", ".state"], cwd, env)
    assert code == 0, f"re-run after a kill at {delay:.3f}s failed:\n{out}\n{err}"
    got = sorted_rows(_result(cwd, destination), KEY)
    assert len(got) == len(expected), f"kill at {delay:.3f}s: {len(got)} rows, not {len(expected)}"
    assert got == expected, f"kill at {delay:.3f}s: rows differ from the uninterrupted run"
    assert _leftovers(cwd, destination) == [], f"kill at {delay:.3f}s left temporary data"
    return left, elapsed


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("crash") / "data"
    _write_data(data)
    return data


@pytest.fixture(scope="module")
def references(data_dir: Path, cli_env: dict) -> dict[tuple[str, str, str], tuple[float, list]]:
    """The clean run of every combination, two at a time (as the kill trials run): its load's
    duration and its destination's rows, sorted."""

    def clean(combo: tuple[str, str, str]) -> tuple[float, list]:
        reference = data_dir.parent / "-".join(combo) / "reference"
        reference.mkdir(parents=True)
        _recipe(reference, data_dir, *combo)
        duration = _clean_run(reference, cli_env)
        table = _result(reference, combo[1])
        _check_reference(table, combo[0], combo[2])
        return duration, sorted_rows(table, KEY)

    combos = [combo[:3] for combo in COMBOS]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(combos, pool.map(clean, combos), strict=True))


@pytest.mark.parametrize(("source_kind", "destination", "mode", "kill_points"), COMBOS)
def test_kill_anywhere_then_rerun_equals_clean_run(
    data_dir: Path,
    cli_env: dict,
    references: dict,
    source_kind: str,
    destination: str,
    mode: str,
    kill_points: int,
) -> None:
    assert TOTAL_KILL_POINTS >= 20
    combo = (source_kind, destination, mode)
    base = data_dir.parent / "-".join(combo)
    duration, expected = references[combo]

    # Kill points: seeded, stratified over the clean run's load (its first batch to its end).
    rng = random.Random("-".join(combo))
    delays = [duration * (k + rng.random()) / kill_points for k in range(kill_points)]
    with ThreadPoolExecutor(max_workers=2) as pool:

        def trial(delay: float) -> tuple[str, float]:
            return _kill_and_resume(base, data_dir, combo, delay, cli_env, expected)

        outcomes = list(pool.map(trial, delays))
        # A run faster than the clean one may end before its kill point, which then killed
        # nothing: try again at the same place in the load as the run that ended timed it.
        for _ in range(2):
            late = [k for k, (what, _) in enumerate(outcomes) if what == "ended"]
            retry = [outcomes[k][1] * delays[k] / duration * 0.9 for k in late]
            for k, delay, outcome in zip(late, retry, pool.map(trial, retry), strict=True):
                delays[k], outcomes[k] = delay, outcome
    left = [what for what, _ in outcomes]
    print(f"{'/'.join(combo)}: kills at {[round(d, 2) for d in delays]} s left {left}")
    assert "ended" not in left, f"runs ended before their kill point: {left}"


def test_second_concurrent_run_fails_while_the_first_holds_the_lock(
    data_dir: Path, cli_env: dict
) -> None:
    cwd = data_dir.parent / "lock"
    cwd.mkdir()
    _recipe(cwd, data_dir, "files", "duckdb", "merge")
    args = ["run", "recipe.yaml", "--state-dir", ".state"]
    log = cwd / "first.log"
    with open(log, "wb") as out:
        first = popen_cli(args, cwd, cli_env, stdout=out)
        try:
            deadline = time.monotonic() + 60
            while b" rows, " not in log.read_bytes():  # a batch is written: the lock is held
                assert first.poll() is None, "the first run ended before the second started"
                assert time.monotonic() < deadline, "the first run wrote no batch"
                time.sleep(0.005)
            # Freeze the first run mid-load, lock held, so the second surely overlaps it.
            first.send_signal(signal.SIGSTOP)
            assert first.poll() is None, "the first run ended before it could be paused"
            code, out_text, err = run_cli(args, cwd, cli_env)
        finally:
            first.send_signal(signal.SIGCONT)
            first.wait(timeout=120)
    assert code == 1, f"exit {code}\n{out_text}\n{err}"
    assert "already running" in flat(err)
    # The refused run did not disturb the first one, which completes the load.
    assert first.returncode == 0, log.read_text(encoding="utf-8")
    _check_reference(duckdb_table(cwd / "out.duckdb", "orders"), "files", "merge")
