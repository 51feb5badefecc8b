"""Shared fixtures of the end-to-end tests: every load goes through the CLI in a subprocess.

Recipes and data are written under `tmp_path` and the CLI runs with `cwd=tmp_path`, so the
relative paths of a recipe resolve there. The bytecode of the child processes is cached under
pytest's cache directory, so a CLI start does not recompile every module it imports.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_support import CliResult, run_cli


@pytest.fixture(scope="session")
def cli_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The environment of CLI subprocesses: plain output, cached bytecode, and no dataloader
    switch but `DATALOADER_DISABLE_PLUGINS` (the test run without the Rust accelerator sets
    it, and its subprocesses run without it too)."""
    cache = getattr(request.config, "cache", None)
    pycache = cache.mkdir("e2e-pycache") if cache is not None else tmp_path_factory.mktemp("pyc")
    env = {
        k: v
        for k, v in os.environ.items()
        if (not k.startswith("DATALOADER_") or k == "DATALOADER_DISABLE_PLUGINS")
        and k != "PYTHONDONTWRITEBYTECODE"
    }
    env |= {
        "PYTHONPYCACHEPREFIX": str(pycache),
        "PYTHONIOENCODING": "utf-8",
        "PYTHONUNBUFFERED": "1",
        "NO_COLOR": "1",
        "TERM": "dumb",
        "COLUMNS": "200",
    }
    return env


@pytest.fixture
def cli(tmp_path: Path, cli_env: dict) -> Callable[..., CliResult]:
    """`cli("run", "r.yaml", ...)` → `(returncode, stdout, stderr)`, run with cwd=tmp_path."""

    def _run(*args: str, cwd: Path | None = None) -> CliResult:
        return run_cli(args, cwd or tmp_path, cli_env)

    return _run


@pytest.fixture
def run_ok(cli: Callable[..., CliResult]) -> Callable[..., str]:
    """`run_ok("run", "r.yaml")`: run the CLI, assert exit code 0, return stdout."""

    def _run(*args: str, cwd: Path | None = None) -> str:
        code, out, err = cli(*args, cwd=cwd)
        assert code == 0, (
            f"dataloader {' '.join(args)} exited {code}\nstdout:\n{out}\nstderr:\n{err}"
        )
        return out

    return _run


@pytest.fixture
def load(run_ok: Callable[..., str]) -> Callable[..., str]:
    """`load("a.yaml", "b.yaml")`: `dataloader run` with the state in `.state` under the cwd."""

    def _load(*recipes: str | Path, cwd: Path | None = None) -> str:
        return run_ok("run", *map(str, recipes), "--state-dir", ".state", cwd=cwd)

    return _load


@pytest.fixture
def show_state(run_ok: Callable[..., str]) -> Callable[..., dict]:
    """`show_state("r.yaml")`: the state document printed by `show-state --json`."""

    def _show(recipe: str | Path, cwd: Path | None = None) -> dict:
        out = run_ok("show-state", str(recipe), "--state-dir", ".state", "--json", cwd=cwd)
        return json.loads(out)

    return _show
