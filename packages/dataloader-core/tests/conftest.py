"""Shared fixtures: recipe files in tmp_path, an in-process destination, a run context."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dataloader import (
    ArrowBatch,
    BaseConnector,
    Capabilities,
    ConnectorConfig,
    RunContext,
    register_connector,
)
from dataloader import secrets as secrets_module
from dataloader.registry import Registry, get_registry, reset_registry, unregister

SINK = "memory_sink"

# A script for subprocess tests: registers the `memory_sink` destination in the child process
# (in-process registrations of the test process are invisible there), then runs the CLI.
CLI_WITH_SINK = textwrap.dedent(
    """
    import sys
    from dataloader import BaseConnector, Capabilities, ConnectorConfig, register_connector
    from dataloader.cli import main

    class MemorySinkConfig(ConnectorConfig):
        table: str
        password: str | None = None
        api_key: str | None = None

    @register_connector(
        "memory_sink",
        config_model=MemorySinkConfig,
        capabilities=Capabilities(write=True, write_modes=("append", "overwrite", "merge")),
    )
    class MemorySink(BaseConnector):
        pass

    main(sys.argv[1:])
    """
)


class MemorySinkConfig(ConnectorConfig):
    """Options of the test destination: secrets included, to test masking."""

    table: str
    password: str | None = None
    api_key: str | None = None
    token: str | None = None
    port: int = 5432


class MemorySink(BaseConnector):
    """A destination that keeps written batches in a list."""

    config_model = MemorySinkConfig
    capabilities = Capabilities(write=True, write_modes=("append", "overwrite", "merge"))

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.batches: list[Any] = []

    def write_batch(self, batch: Any, state: Any) -> None:
        self.batches.append(batch)


@pytest.fixture(autouse=True)
def _isolated_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No plugin switches leak in from the outer environment; the registry is rebuilt per test."""
    monkeypatch.delenv("DATALOADER_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("DATALOADER_LOAD_PLUGINS", raising=False)
    reset_registry()
    yield
    reset_registry()


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    """Secret values read from the environment are remembered process-wide; forget them."""
    yield
    with secrets_module._lock:
        secrets_module._known_values.clear()


@pytest.fixture
def sink() -> Iterator[str]:
    """Register the in-process `memory_sink` destination; its name is the fixture's value."""
    register_connector(SINK)(MemorySink)
    try:
        yield SINK
    finally:
        unregister("connector", SINK)


@pytest.fixture
def registry(sink: str) -> Registry:
    """The process-wide registry, with `memory_sink` registered."""
    return get_registry()


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """`write("name.yaml", text)`: write a dedented file under tmp_path and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return _write


VALID_RECIPE = """
    name: orders
    source:
      type: sequence
      stop: 10
    destination:
      type: memory_sink
      table: orders
"""


@pytest.fixture
def valid_recipe(write: Callable[[str, str], Path]) -> Path:
    return write("orders.yaml", VALID_RECIPE)


@pytest.fixture
def context() -> RunContext:
    return RunContext(
        recipe_name="orders",
        run_id="run-0001",
        started_at=datetime(2024, 5, 17, 12, 30, tzinfo=UTC),
    )


@pytest.fixture
def make_batch() -> Callable[..., ArrowBatch]:
    """`make_batch(col=[...], ...)` or `make_batch(rows=[{...}])`: an ArrowBatch."""

    def _make(rows: list[dict[str, Any]] | None = None, **columns: list[Any]) -> ArrowBatch:
        if rows is not None:
            return ArrowBatch(pa.RecordBatch.from_pylist(rows))
        return ArrowBatch(pa.RecordBatch.from_pydict(columns))

    return _make


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., Any]:
    """Run the CLI in a subprocess with `memory_sink` registered; returns CompletedProcess."""
    import os
    import subprocess

    def _run(*args: str, env: dict[str, str] | None = None, module: bool = False) -> Any:
        command = [sys.executable, "-m", "dataloader"] if module else [sys.executable, "-c"]
        if not module:
            command.append(CLI_WITH_SINK)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("DATALOADER_")} | {
            "NO_COLOR": "1",
            "COLUMNS": "200",
            "TERM": "dumb",
            "PYTHONIOENCODING": "utf-8",
        }
        full_env |= env or {}
        return subprocess.run(
            [*command, *args],
            capture_output=True,
            text=True,
            encoding="utf-8",
            env=full_env,
            cwd=tmp_path,
            timeout=120,
        )

    return _run
