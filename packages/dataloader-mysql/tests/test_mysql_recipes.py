"""Recipes into MariaDB through the CLI: the shipped example (CSV files merged into a table),
a CSV file loaded exactly, and the password kept out of `validate` output and errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from dataloader.testing import free_port

ROOT = Path(__file__).resolve().parents[3]


def cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run `dataloader` to completion: its exit code and stdout + stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "dataloader", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stdout + proc.stderr


def mysql_env(my: Any) -> dict[str, str]:
    settings = my.settings()
    return {
        "DATALOADER_MYSQL_HOST": settings["host"],
        "DATALOADER_MYSQL_PORT": str(settings["port"]),
        "DATALOADER_MYSQL_DATABASE": settings["database"],
        "DATALOADER_MYSQL_USER": settings["user"],
        "DATALOADER_MYSQL_PASSWORD": settings["password"],
    }


def test_the_csv_to_mysql_example_merges_the_same_table_on_every_run(
    my: Any, tmp_path: Path
) -> None:
    for part in ("recipes", "data"):
        shutil.copytree(ROOT / "examples" / part, tmp_path / "examples" / part)
    recipe = "examples/recipes/orders_csv_to_mysql.yaml"
    env = mysql_env(my)
    code, out = cli(["run", recipe, "--state-dir", ".state"], tmp_path, env)
    assert code == 0, out
    assert env["DATALOADER_MYSQL_PASSWORD"] not in out
    count = "SELECT count(*), count(DISTINCT order_id), sum(amount) FROM orders"
    first = my.query(count)
    assert first[0][0] == first[0][1] > 0
    assert my.column_types("orders")["amount"] == "decimal(12,2)"
    assert my.scalar("SELECT note FROM orders WHERE order_id = 1") == "leave at door\nring twice"
    assert my.scalar("SELECT customer FROM orders WHERE order_id = 401") == "Zoë"
    code, out = cli(["run", recipe, "--state-dir", ".state", "--full-refresh"], tmp_path, env)
    assert code == 0, out
    assert my.query(count) == first


def test_a_csv_file_is_loaded_exactly(my: Any, run: Any, tmp_path: Path) -> None:
    data = tmp_path / "people.csv"
    data.write_text(
        'id,name,score,born\n1,"Ann, ""the first""",1.25,1990-01-02\n2,,\\N,\n3,Zoë 😀,-3,2000-02-29\n',
        encoding="utf-8",
    )
    run(
        {
            "name": "people",
            "source": {"type": "filestore", "format": "csv", "path": str(data)},
            "destination": my.destination("people"),
        }
    )
    rows = my.query("SELECT id, name, score, CAST(born AS CHAR) FROM people ORDER BY id")
    assert [row[0] for row in rows] == [1, 2, 3]
    assert rows[0][1] == 'Ann, "the first"' and rows[2][1] == "Zoë 😀"
    # `\\N` in the file is text (it makes `score` a text column), not MySQL's NULL marker.
    assert [row[2] for row in rows] == ["1.25", "\\N", "-3"]
    assert [row[3] for row in rows] == ["1990-01-02", None, "2000-02-29"]
    assert my.column_types("people")["born"] == "date"


def test_the_password_is_never_shown(my: Any, tmp_path: Path) -> None:
    marker = "Qv7-mysql-secret-password"
    recipe = {
        "name": "secret",
        "source": {"type": "filestore", "format": "csv", "path": "a.csv"},
        "destination": {**my.settings(), "type": "mysql", "table": "t", "password": marker},
    }
    (tmp_path / "a.csv").write_text("id\n1\n", encoding="utf-8")
    (tmp_path / "secret.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    code, out = cli(["validate", "secret.yaml"], tmp_path)
    assert code == 0, out
    assert marker not in out
    code, out = cli(["run", "secret.yaml", "--state-dir", ".state"], tmp_path)
    assert code != 0 and "Access denied" in out
    assert marker not in out
    closed = {**recipe["destination"], "port": free_port(), "connect_timeout": 1}
    (tmp_path / "secret.yaml").write_text(yaml.safe_dump({**recipe, "destination": closed}))
    code, out = cli(["run", "secret.yaml", "--state-dir", ".state"], tmp_path)
    assert code != 0 and "127.0.0.1" in out
    assert marker not in out
