"""`dataloader init` writes a project that `dataloader run .` runs as it is (its base recipe
is abstract), and says which package to install when a connector it needs is missing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from e2e_support import CliResult, duckdb_rows, flat, run_cli


def test_run_dot_in_a_fresh_init_project(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    code, out, err = cli("init", "project")
    assert code == 0, out + err
    assert "next: cd project && dataloader run ." in out
    project = tmp_path / "project"
    assert "abstract: true" in (project / "base.yaml").read_text(encoding="utf-8")

    code, out, err = cli("validate", ".", cwd=project)
    assert code == 0, out + err
    assert "base.yaml (abstract" in out and "✓ customers.yaml" in out

    code, out, err = cli("run", ".", cwd=project)
    assert code == 0, out + err
    assert "skipped base.yaml (abstract" in out
    assert duckdb_rows(project / "warehouse.duckdb", "SELECT count(*) FROM customers") == [(5,)]

    code, out, err = cli("init", "--force", cwd=project)
    assert code == 0, out + err
    assert "next: dataloader run ." in out  # no `cd .`


def test_init_names_the_packages_a_core_and_postgres_install_lacks(
    tmp_path: Path, cli_env: dict
) -> None:
    env = cli_env | {"DATALOADER_LOAD_PLUGINS": "postgres"}
    code, out, err = run_cli(("init", "project"), tmp_path, env)
    assert code == 2, out + err
    text = flat(out + err)
    assert "pip install dataloader-filestore dataloader-duckdb" in text
    assert "Traceback" not in text
    assert not (tmp_path / "project").exists()  # nothing written that cannot run


def test_an_unknown_connector_names_its_distribution(tmp_path: Path, cli_env: dict) -> None:
    (tmp_path / "r.yaml").write_text(
        "name: r\nsource: {type: filestore, path: in/}\n"
        "destination: {type: postgres, host: h, table: t}\n",
        encoding="utf-8",
    )
    env = cli_env | {"DATALOADER_LOAD_PLUGINS": "postgres"}
    code, out, err = run_cli(("validate", "r.yaml"), tmp_path, env)
    assert code == 2, out + err
    text = flat(out + err)
    assert "unknown connector 'filestore': it is provided by dataloader-filestore" in text
