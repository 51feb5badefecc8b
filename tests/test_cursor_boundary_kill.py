"""Exactly once at the cursor boundary across a kill: a DuckDB → DuckDB incremental run is
stopped for good after its third commit (a gate, not a sleep) and killed; rows then arrive with
a cursor value equal to the committed one, and the re-run loads every row once."""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from e2e_support import duckdb_rows, popen_gated_cli, run_cli, wait_for_gate, write_recipe

ROWS = 2_000
BATCH_SIZE = 100
TIE = 7  # rows per cursor value: batch boundaries fall inside runs of equal values


def _source(path: Path) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute(
            "CREATE TABLE events AS SELECT i AS id, 'v1' AS note, "
            f"TIMESTAMP '2024-01-01' + to_seconds(i // {TIE}) AS updated_at FROM range({ROWS}) t(i)"
        )
    finally:
        con.close()


def _recipe(cwd: Path, mode: str) -> None:
    destination = {"type": "duckdb", "database": "out.duckdb", "table": "events"}
    destination["write_mode"] = mode
    if mode == "merge":
        destination["merge_keys"] = ["id"]
    write_recipe(
        cwd / "recipe.yaml",
        {
            "name": "boundary",
            "source": {
                "type": "duckdb",
                "database": "source.duckdb",
                "table": "events",
                "read_only": True,
                "incremental": {"cursor_column": "updated_at"},
            },
            "destination": destination,
            "runtime": {"batch_size": BATCH_SIZE, "commit_interval_seconds": 1e-9},
        },
    )


def _rows(database: Path) -> Counter:
    return Counter(duckdb_rows(database, "SELECT id, note, updated_at FROM events"))


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_rows_at_the_committed_cursor_after_a_kill_are_loaded_once(
    tmp_path: Path, cli_env: dict, mode: str
) -> None:
    _source(tmp_path / "source.duckdb")
    _recipe(tmp_path, mode)
    gate = tmp_path / "gate"
    proc = popen_gated_cli(
        ["run", "recipe.yaml", "--state-dir", ".state"], tmp_path, cli_env, gate, after=3
    )
    wait_for_gate(proc, gate)  # three commits made, the run blocked before its fourth batch
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    out = tmp_path / "out.duckdb"
    partial = duckdb_rows(out, "SELECT count(*), max(updated_at) FROM events")[0]
    assert 0 < partial[0] < ROWS
    state = json.loads(
        duckdb_rows(out, "SELECT state FROM _dataloader_state WHERE recipe = 'boundary'")[0][0]
    )
    assert state["cursor_boundaries"]["updated_at"]["rows"] == TIE, state
    # Late rows at the committed maximum (a transaction that committed after the read), and a
    # changed row at that value.
    con = duckdb.connect(str(tmp_path / "source.duckdb"))
    try:
        con.execute(
            f"INSERT INTO events SELECT {ROWS} + i, 'late', ? FROM range(5) t(i)", [partial[1]]
        )
        con.execute("UPDATE events SET note = 'v2' WHERE id = (SELECT max(id) - 10 FROM events)")
        con.execute(
            "UPDATE events SET note = 'v2' WHERE id = (SELECT min(id) FROM events WHERE "
            "updated_at = ?)",
            [partial[1]],
        )
    finally:
        con.close()

    code, stdout, stderr = run_cli(
        ["run", "recipe.yaml", "--state-dir", ".state"], tmp_path, cli_env
    )
    assert code == 0, stdout + stderr

    source = _rows(tmp_path / "source.duckdb")
    loaded = _rows(out)
    if mode == "merge":
        assert loaded == source
    else:
        # Append keeps the version of the changed row at the boundary loaded before the kill,
        # and adds its new version: every other row is there exactly once.
        changed = [row for row in source if row[1] == "v2" and row[2] == partial[1]]
        assert len(changed) == 1
        before = (changed[0][0], "v1", changed[0][2])
        assert loaded - source == Counter([before]) and source - loaded == Counter()
    assert sum(loaded.values()) == sum(source.values()) + (mode == "append")

    code, stdout, stderr = run_cli(
        ["run", "recipe.yaml", "--state-dir", ".state"], tmp_path, cli_env
    )
    assert code == 0, stdout + stderr
    assert _rows(out) == loaded
