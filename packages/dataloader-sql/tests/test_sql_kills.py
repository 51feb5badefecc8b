"""SIGKILL of a `sql` load into MariaDB (whose DDL commits implicitly) at points of the
protocol — rows staged but not committed, the state written inside the commit but not
committed, a commit done but the state backend's mirror not saved — then a re-run: the table
ends exactly as a clean run leaves it, in append, merge and overwrite, no row lost or doubled.

The run is a subprocess that blocks at its gate (the `call`-th call of a `SqlConnector`
method, after it returned) and says so by creating a file; the test then kills it.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dataloader import LocalStateBackend, from_yaml, run_recipe
from dataloader_mysql.testing import MariaDBServer

ROWS, BATCH = 200, 20  # 10 batches; cursor ties in threes; merge keys repeat every 70 ids
# (key 0 among them: MySQL generates a value for 0 in an AUTO_INCREMENT key)

GATED_RUN = """
import json, sys, threading
from pathlib import Path
from dataloader_sql.connector import SqlConnector

spec = json.loads(sys.argv[1])
original = getattr(SqlConnector, spec["method"])
calls = 0

def gated(self, *args, **kwargs):
    global calls
    result = original(self, *args, **kwargs)
    calls += 1
    if calls == spec["call"]:
        Path(spec["gate"]).touch()
        threading.Event().wait()  # until the test kills the process
    return result

setattr(SqlConnector, spec["method"], gated)
from dataloader import LocalStateBackend, from_yaml, run_recipe
result = run_recipe(from_yaml(spec["recipe"]), LocalStateBackend(spec["state"]))
sys.exit(0 if result.status == "success" else 1)
"""


def seed(path: Path, version: str) -> None:
    connection = sqlite3.connect(path)
    connection.execute("DROP TABLE IF EXISTS src")
    connection.execute("CREATE TABLE src (id INTEGER, k INTEGER, seq INTEGER, name TEXT)")
    connection.executemany(
        "INSERT INTO src VALUES (?, ?, ?, ?)",
        [(i, i % 70, i // 3, f"{version}-{i}") for i in range(1, ROWS + 1)],
    )
    connection.commit()
    connection.close()


def run(tmp_path: Path, recipe: Path, gate: tuple[str, int] | None = None) -> None:
    marker = tmp_path / "gate"
    marker.unlink(missing_ok=True)
    spec = {
        "method": gate[0] if gate else "commit",
        "call": gate[1] if gate else 0,
        "gate": str(marker),
        "recipe": str(recipe),
        "state": str(tmp_path / "state"),
    }
    if gate is None:  # a plain run: in this process
        result = run_recipe(from_yaml(recipe), LocalStateBackend(tmp_path / "state"))
        assert result.status == "success", result
        return
    command = [sys.executable, "-c", GATED_RUN, json.dumps(spec)]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        while not marker.exists():
            try:
                proc.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError(f"the run ended before its gate: {proc.stdout.read().decode()}")  # type: ignore[union-attr]
    finally:
        proc.kill()
        proc.communicate(timeout=120)


@pytest.mark.parametrize(
    ("mode", "gate"),
    [
        ("append", ("write_batch", 3)),
        ("append", ("_save_state", 2)),
        ("merge", ("_save_state", 2)),
        ("merge", ("commit", 1)),
        ("overwrite", ("write_batch", 4)),
        ("overwrite", ("_save_state", 1)),
    ],
    ids=lambda value: value if isinstance(value, str) else f"{value[0]}#{value[1]}",
)
def test_a_killed_load_rerun_ends_as_a_clean_one(
    tmp_path: Path, mariadb_server: MariaDBServer, mariadb_database: str, mode: str, gate: Any
) -> None:
    source = tmp_path / "source.sqlite"
    seed(source, "v1")
    recipe: dict[str, Any] = {
        "name": f"kill_{mode}",
        "source": {"type": "sql", "url": f"sqlite:///{source}", "table": "src"},
        "destination": {
            "type": "sql",
            "url": mariadb_server.url(mariadb_database),
            "table": "dst",
            "write_mode": mode,
        },
        "runtime": {"batch_size": BATCH, "commit_interval_seconds": 3600},
    }
    if mode != "overwrite":
        recipe["source"]["incremental"] = {"strategy": "cursor", "cursor_column": "seq"}
    if mode == "merge":
        recipe["destination"]["merge_keys"] = ["k"]
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), "utf-8")
    if mode == "overwrite":
        run(tmp_path, path)  # a table to replace
        seed(source, "v2")

    run(tmp_path, path, gate)
    run(tmp_path, path)

    connection = mariadb_server.connect(mariadb_database)
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT id, name FROM dst ORDER BY id")
        rows = [tuple(row) for row in cursor.fetchall()]
        cursor.execute("SHOW TABLES LIKE '\\_dl\\_stage\\_%'")
        assert cursor.fetchall() == ()
    finally:
        connection.close()
    version = "v2" if mode == "overwrite" else "v1"
    ids = range(1, ROWS + 1)
    if mode == "merge":  # the last row read of each key: the highest id
        ids = sorted({i % 70: i for i in range(1, ROWS + 1)}.values())  # type: ignore[assignment]
    assert rows == [(i, f"{version}-{i}") for i in ids]
