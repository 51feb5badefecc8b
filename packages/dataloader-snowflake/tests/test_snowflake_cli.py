"""The CLI in a subprocess loads into fakesnow over HTTP: the installed entry point, the real
connector and its PUT uploads, from another process than the emulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from dataloader_snowflake.testing import FakeSnowflake


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dataloader", *args],
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dataloader_run_in_a_subprocess_loads_csv_into_fakesnow(
    snowflake_db: FakeSnowflake, tmp_path: Path
) -> None:
    (tmp_path / "people.csv").write_text("id,name\n1,Ada\n2,Zoë 😀\n", encoding="utf-8")
    recipe = {
        "name": "sf_cli",
        "source": {"type": "filestore", "format": "csv", "path": "people.csv"},
        "destination": {"type": "snowflake", **snowflake_db.settings(), "table": "people"},
    }
    (tmp_path / "sf_cli.yaml").write_text(yaml.safe_dump(recipe, allow_unicode=True), "utf-8")
    result = cli("run", "--state-dir", "state", "sf_cli.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = snowflake_db.query('SELECT "id", "name" FROM "people" ORDER BY "id"')
    assert rows == [(1, "Ada"), (2, "Zoë 😀")]
    assert "fakesnow-accepts-any-password" not in result.stdout + result.stderr


def test_the_connector_is_experimental_until_run_against_a_real_account() -> None:
    from dataloader.registry import get_registry

    capabilities = get_registry().connector("snowflake").capabilities
    assert capabilities is not None and capabilities.experimental
