"""`codec:` picks how rows cross COPY: `csv` always works, `binary` needs the dataloader-rust
accelerator, `auto` takes binary when it is installed and CSV otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dataloader import ConnectorError
from dataloader.registry import reset_registry
from dataloader_postgres.codec import CsvCopyCodec, choose_codec


@pytest.fixture
def without_accelerator(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DATALOADER_DISABLE_PLUGINS", "rust")
    reset_registry()
    yield
    monkeypatch.delenv("DATALOADER_DISABLE_PLUGINS")
    reset_registry()


def test_csv_is_always_the_pure_python_codec() -> None:
    assert type(choose_codec("csv")) is CsvCopyCodec


def test_auto_without_the_accelerator_is_csv(without_accelerator: None) -> None:
    assert type(choose_codec("auto")) is CsvCopyCodec


def test_binary_without_the_accelerator_fails_before_anything_is_written(
    pg: Any, run: Any, without_accelerator: None
) -> None:
    pg.execute("CREATE TABLE src (id int)")
    pg.execute("INSERT INTO src VALUES (1), (2)")
    recipe = {
        "name": "binary_needs_rust",
        "source": pg.source(table="src"),
        "destination": pg.destination("dst", codec="binary"),
    }
    with pytest.raises(ConnectorError) as caught:
        run(recipe)
    message = str(caught.value)
    assert "codec" in message and "pip install dataloader-rust" in message
    assert not pg.exists('"dst"')


def test_a_recipe_choosing_csv_moves_rows_through_the_csv_codec(
    pg: Any, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    used: list[str] = []
    read, write = CsvCopyCodec.read, CsvCopyCodec.write

    def counted_read(self: CsvCopyCodec, *args: Any) -> Any:
        used.append("read")
        return read(self, *args)

    def counted_write(self: CsvCopyCodec, *args: Any) -> None:
        used.append("write")
        write(self, *args)

    monkeypatch.setattr(CsvCopyCodec, "read", counted_read)
    monkeypatch.setattr(CsvCopyCodec, "write", counted_write)
    pg.execute("CREATE TABLE src (id int, name text)")
    pg.execute("INSERT INTO src VALUES (1, 'a'), (2, NULL)")
    run(
        {
            "name": "csv_codec",
            "source": pg.source(table="src", codec="csv"),
            "destination": pg.destination("dst", codec="csv"),
        }
    )
    assert pg.query("SELECT id, name FROM dst ORDER BY id") == [(1, "a"), (2, None)]
    assert used == ["read", "write"]
