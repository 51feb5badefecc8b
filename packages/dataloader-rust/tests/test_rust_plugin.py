"""The plugin as a user meets it: `list-connectors` shows both slots with the version and what
they accelerate, `codec: auto` takes the binary codec, and `DATALOADER_DISABLE_PLUGINS=rust`
puts every consumer back on its Python code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import metadata

import pyarrow as pa
import pytest
from click.testing import CliRunner

import dataloader_rust
from dataloader.cli.app import _register_commands, cli
from dataloader.normalize import keys
from dataloader.registry import get_registry, reset_registry
from dataloader_postgres.codec import CsvCopyCodec, choose_codec
from dataloader_rust.codec import BinaryCopyCodec
from dataloader_rust.hashing import hash_rows as native_hash_rows
from dataloader_rust.json_records import JsonRecords


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    reset_registry()
    yield
    reset_registry()


def list_connectors(columns: int, *args: str) -> str:
    _register_commands()
    result = CliRunner(env={"COLUMNS": str(columns)}).invoke(cli, ["list-connectors", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_list_connectors_shows_every_slot_with_version_and_purpose(fresh_registry: None) -> None:
    items = {
        item["name"]: item
        for item in json.loads(list_connectors(80, "--json"))["items"]
        if item["kind"] == "accelerator"
    }
    version = metadata.version("dataloader-rust")
    assert version == dataloader_rust.__version__
    assert set(items) == {"postgres_copy_codec", "row_hash", "rest_json_records"}
    for item in items.values():
        assert item["distribution"] == "dataloader-rust"
        assert item["version"] == version
    assert "postgres connector's COPY" in items["postgres_copy_codec"]["accelerates"]
    assert "row hashing" in items["row_hash"]["accelerates"]
    assert "rest source's JSON pages" in items["rest_json_records"]["accelerates"]


@pytest.mark.parametrize("columns", [80, 120])
def test_the_accelerator_rows_fit_the_terminal(columns: int, fresh_registry: None) -> None:
    text = list_connectors(columns)
    assert all(len(line) <= columns for line in text.splitlines()), text
    assert "postgres_copy_codec" in text and "row_hash" in text
    assert "…" not in text


def test_installed_it_fills_every_slot(fresh_registry: None) -> None:
    assert isinstance(choose_codec("auto"), BinaryCopyCodec)
    assert isinstance(choose_codec("binary"), BinaryCopyCodec)
    assert get_registry().accelerator("row_hash") is native_hash_rows
    assert get_registry().accelerator("rest_json_records") is JsonRecords


def test_disabled_every_consumer_uses_its_python_code(
    monkeypatch: pytest.MonkeyPatch, fresh_registry: None
) -> None:
    monkeypatch.setenv("DATALOADER_DISABLE_PLUGINS", "rust")
    reset_registry()
    assert type(choose_codec("auto")) is CsvCopyCodec
    assert get_registry().accelerator("row_hash") is None
    assert get_registry().accelerator("rest_json_records") is None
    [rust] = [info for info in get_registry().plugins if info.name == "rust"]
    assert rust.status == "disabled"
    column = pa.array([1, None, 3])
    assert (keys.hash_rows([column], ["a"]) == keys.python_hash_rows([column], ["a"])).all()


def test_without_dataloader_postgres_or_rest_only_the_row_hash_slot_is_offered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataloader_rust import plugin

    real = plugin.find_spec
    absent = {"dataloader_postgres", "dataloader_rest"}
    monkeypatch.setattr(plugin, "find_spec", lambda name: None if name in absent else real(name))
    assert [ref.name for ref in plugin.register_accelerators()] == ["row_hash"]
    absent.discard("dataloader_rest")
    assert [ref.name for ref in plugin.register_accelerators()] == ["row_hash", "rest_json_records"]
