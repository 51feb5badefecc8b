"""The kill test: SIGKILL a load at points spread over its protocol, re-run it, and get the
uninterrupted result.

For each (source, destination, write mode), a clean run loads a reference destination and counts
the calls of the methods that mark the protocol's steps. Each kill point is a gate (see
`e2e_support.Gate`): a batch read but not written, a batch written but not committed, a file
half written, a commit's record written before its files are renamed, a destination's commit
before the state mirror is saved, a whole commit; the run blocks there, is killed with SIGKILL,
and is re-run to completion with the same recipe and state directory: the destination must equal
the reference row for row, with no staging table and no temporary file left over. The places
are counts of calls, not instants, so a slow or a fast machine kills at the same points.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from e2e_support import (
    Gate,
    after_commit,
    before_renames_gate,
    destination_committed_gate,
    duckdb_rows,
    duckdb_table,
    flat,
    kill_at_gate,
    mid_file_gate,
    popen_gated_cli,
    read_gate,
    run_cli,
    run_counting_cli,
    sorted_rows,
    visible_parquet,
    wait_for_gate,
    write_recipe,
    written_gate,
)

FILES = 8
ROWS_PER_FILE = 3_000
BATCH_SIZE = 500
REPEATS_PER_FILE = 300  # rows of each file (but the first) that update keys of the file before
T0 = 1_700_000_000
KEY = ["id", "updated_at"]


# (source, destination, write mode, kill points). The `duckdb` source reads incrementally on
# a cursor column with runs of 7 equal values, so batch boundaries fall inside runs of ties.
# A call between 0 and 1 is a fraction of the clean run's calls; 0 is its last call.
COMBOS = [
    (
        "files",
        "duckdb",
        "append",
        [
            read_gate(0.15),
            written_gate("duckdb", 0.35),
            destination_committed_gate("duckdb", 0.6),
            after_commit(0),
        ],
    ),
    (
        "files",
        "duckdb",
        "overwrite",
        [
            written_gate("duckdb", 1),
            written_gate("duckdb", 0.6),
            destination_committed_gate("duckdb", 0),
            after_commit(0),
        ],
    ),
    (
        "files",
        "duckdb",
        "merge",
        [
            read_gate(0.25),
            written_gate("duckdb", 0.45),
            destination_committed_gate("duckdb", 0.7),
            after_commit(0.85),
        ],
    ),
    (
        "files",
        "filestore",
        "append",
        [
            mid_file_gate(0.3),
            written_gate("filestore", 0.3),
            before_renames_gate(0.5),
            destination_committed_gate("filestore", 0.65),
            after_commit(0.9),
        ],
    ),
    (
        "files",
        "filestore",
        "overwrite",
        [
            mid_file_gate(0.5),
            written_gate("filestore", 0.5),
            before_renames_gate(0),
            after_commit(0),
        ],
    ),
    (
        "duckdb",
        "duckdb",
        "append",
        [read_gate(0.2), written_gate("duckdb", 0), destination_committed_gate("duckdb", 0.4)],
    ),
]
TOTAL_KILL_POINTS = sum(len(combo[-1]) for combo in COMBOS)


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
        # Parts of three batches: a part (and a commit) holds several batches, and a load
        # several parts, so kills fall inside a part, between parts and inside a commit.
        dest = {"type": "filestore", "path": "out", "format": "parquet"}
        dest["rows_per_file"] = 3 * BATCH_SIZE
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
            # Commits at every `batch_size` rows, never early after a slow batch: the protocol's
            # calls are the same in every run, so the gates stop at the same places.
            "runtime": {"batch_size": BATCH_SIZE, "commit_interval_seconds": 3600},
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


def _check_reference(table: pa.Table, source_kind: str, mode: str) -> None:
    ids = table.column("id").to_pylist()
    if source_kind == "duckdb":
        assert sorted(ids) == list(range(FILES * ROWS_PER_FILE))
    elif mode == "merge":
        assert len(ids) == len(set(ids)) == FILES * ROWS_PER_FILE - (FILES - 1) * REPEATS_PER_FILE
    else:
        assert len(ids) == FILES * ROWS_PER_FILE
    assert set(table.column("origin").to_pylist()) == {"e2e"}


ARGS = ["run", "recipe.yaml", "--state-dir", ".state"]


def _gate_targets(gates: list[Gate]) -> list[str]:
    return list(dict.fromkeys(gate.target for gate in gates))


def _kill_and_resume(
    base: Path, data: Path, combo: tuple[str, str, str], gate: Gate, env: dict, expected: list
) -> str:
    """One kill point: SIGKILL at `gate`, re-run, compare with `expected`; what the killed run
    left behind."""
    source_kind, destination, mode = combo
    cwd = Path(tempfile.mkdtemp(prefix=f"kill-{gate.name.replace('#', '-')}-", dir=base))
    _recipe(cwd, data, source_kind, destination, mode)
    kill_at_gate(ARGS, cwd, env, gate)
    left = _interrupted(cwd, destination)

    code, out, err = run_cli(ARGS, cwd, env)
    assert code == 0, f"re-run after a kill at {gate} failed:\n{out}\n{err}"
    got = sorted_rows(_result(cwd, destination), KEY)
    assert len(got) == len(expected), f"kill at {gate}: {len(got)} rows, not {len(expected)}"
    assert got == expected, f"kill at {gate}: rows differ from the uninterrupted run"
    assert _leftovers(cwd, destination) == [], f"kill at {gate} left temporary data"
    return left


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("crash") / "data"
    _write_data(data)
    return data


@pytest.fixture(scope="module")
def references(data_dir: Path, cli_env: dict) -> dict[tuple[str, str, str], tuple[dict, list]]:
    """The clean run of every combination, two at a time (as the kill trials run): the calls of
    its gates' methods and its destination's rows, sorted."""

    def clean(combo: tuple[str, str, str, list[Gate]]) -> tuple[dict, list]:
        reference = data_dir.parent / "-".join(combo[:3]) / "reference"
        reference.mkdir(parents=True)
        _recipe(reference, data_dir, *combo[:3])
        (code, out, err), counts = run_counting_cli(
            ARGS, reference, cli_env, _gate_targets(combo[3])
        )
        assert code == 0, f"{out}\n{err}"
        table = _result(reference, combo[1])
        _check_reference(table, combo[0], combo[2])
        return counts, sorted_rows(table, KEY)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip([c[:3] for c in COMBOS], pool.map(clean, COMBOS), strict=True))


@pytest.mark.parametrize(
    ("source_kind", "destination", "mode", "gates"), COMBOS, ids=["-".join(c[:3]) for c in COMBOS]
)
def test_kill_anywhere_then_rerun_equals_clean_run(
    data_dir: Path,
    cli_env: dict,
    references: dict,
    source_kind: str,
    destination: str,
    mode: str,
    gates: list[Gate],
) -> None:
    assert TOTAL_KILL_POINTS >= 20
    combo = (source_kind, destination, mode)
    base = data_dir.parent / "-".join(combo)
    counts, expected = references[combo]
    placed = [gate.at_counts(counts) for gate in gates]  # every gate is inside the clean run

    with ThreadPoolExecutor(max_workers=2) as pool:

        def trial(gate: Gate) -> str:
            return _kill_and_resume(base, data_dir, combo, gate, cli_env, expected)

        left = list(pool.map(trial, placed))
    print(f"{'/'.join(combo)}: kills at {[g.name for g in placed]} left {left}")
    if mode != "overwrite":
        assert "committed" in left, f"no kill left a partial load: {left}"


def test_second_concurrent_run_fails_while_the_first_holds_the_lock(
    data_dir: Path, cli_env: dict
) -> None:
    cwd = data_dir.parent / "lock"
    cwd.mkdir()
    _recipe(cwd, data_dir, "files", "duckdb", "merge")
    gate_file, log = cwd / "gate", cwd / "first.log"
    with open(log, "wb") as out:
        # The first run stops after its first commit, lock held, until it is told to go on.
        first = popen_gated_cli(
            ARGS, cwd, cli_env, gate_file, gate=after_commit(1), resume=True, stdout=out
        )
        try:
            wait_for_gate(first, gate_file)
            code, out_text, err = run_cli(ARGS, cwd, cli_env)
        finally:
            assert first.stdin is not None
            first.stdin.write(b"go on\n")
            first.stdin.close()
            first.wait(timeout=120)
    assert code == 1, f"exit {code}\n{out_text}\n{err}"
    assert "already running" in flat(err)
    # The refused run did not disturb the first one, which completes the load.
    assert first.returncode == 0, log.read_text(encoding="utf-8")
    _check_reference(duckdb_table(cwd / "out.duckdb", "orders"), "files", "merge")
