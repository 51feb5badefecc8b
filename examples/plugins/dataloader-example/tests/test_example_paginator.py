"""The `header_cursor` paginator, registered from outside dataloader-rest, pages a `rest`
source through the demo API's `/header/items` (the next token in `X-Next-Cursor`) into the
SQLite destination."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dataloader import RunResult
from dataloader.registry import get_registry
from dataloader_example.header_cursor import HeaderCursorPaginator
from dataloader_rest.testing import DemoApi, serve_api


@pytest.fixture(scope="module")
def api() -> Iterator[DemoApi]:
    with serve_api(DemoApi(95)) as served:
        yield served


def recipe(api: DemoApi, database: Path, **paginator: Any) -> dict[str, Any]:
    return {
        "name": "header_items",
        "source": {
            "type": "rest",
            "client": {"base_url": api.base_url},
            "resource": {
                "path": "/header/items",
                "params": {"limit": 20},
                "paginator": {"type": "header_cursor", "param": "after", **paginator},
            },
        },
        # SQLite takes no list or struct columns.
        "transform": {"steps": [{"type": "drop_columns", "columns": ["tags", "address"]}]},
        "destination": {"type": "sqlite", "database": str(database), "table": "items"},
    }


def test_the_plugin_registers_header_cursor() -> None:
    registration = get_registry().paginator("header_cursor")
    assert registration.create(registration.config_model()).__class__ is HeaderCursorPaginator


def test_header_cursor_reads_every_page_once(
    api: DemoApi, run: Callable[..., RunResult], database: Path
) -> None:
    api.reset_log()
    result = run(recipe(api, database))

    assert result.rows_written == 95
    with sqlite3.connect(database) as db:
        ids = [row[0] for row in db.execute("SELECT id FROM items ORDER BY id")]
    assert ids == list(range(1, 96))
    pages = api.requests_to("/header/items")
    assert len(pages) == 5  # 20 + 20 + 20 + 20 + 15, the last without the header
    assert "after" not in pages[0].query
    assert all(request.query.get("after") for request in pages[1:])


def test_header_cursor_keeps_the_shared_stop_conditions(
    api: DemoApi, run: Callable[..., RunResult], database: Path
) -> None:
    result = run(recipe(api, database, max_pages=2))

    assert result.rows_written == 40
