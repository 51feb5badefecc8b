"""A checkpoint keeps the request of a page, whose URL may come from the API's own next
link; an API key sent as a query parameter, which such links often echo, is not kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from dataloader import ConnectorError, LocalStateBackend
from dataloader.testing import local_runner
from dataloader_rest.client import RestClient
from dataloader_rest.testing import DemoApi

KEY = "query-key-that-must-not-be-stored-7f3a"


def test_the_api_key_echoed_in_next_links_is_not_stored_in_the_state(
    demo_api: DemoApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    send = RestClient.send
    calls = []

    def fail_at_the_fourth_page(self: RestClient, *args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == 4:
            raise ConnectorError("the run is stopped here")
        return send(self, *args, **kwargs)

    monkeypatch.setattr(RestClient, "send", fail_at_the_fourth_page)
    run = local_runner(tmp_path / "state")
    recipe = {
        "name": "echo",
        "source": {
            "type": "rest",
            "client": {
                "base_url": demo_api.base_url,
                "auth": {"type": "api_key", "name": "api_key", "value": KEY, "location": "query"},
            },
            "resource": {
                "path": "/nexturl/items",
                "params": {"per_page": 50},
                "paginator": {"type": "next_url", "next_url_path": "links.next"},
            },
            "incremental": {"cursor_column": "updated_at"},
        },
        "destination": {
            "type": "duckdb",
            "database": str(tmp_path / "out.duckdb"),
            "table": "items",
        },
        "runtime": {"batch_size": 50, "commit_interval_seconds": 1e-9},
    }
    with pytest.raises(ConnectorError):
        run(recipe)
    pages = [r for r in demo_api.requests if r.path == "/nexturl/items"]
    assert len(pages) == 3 and all(r.query.get("api_key") == KEY for r in pages)
    assert all("page" in r.query for r in pages[1:])  # the pages after the first: next links
    stored = "".join(p.read_text() for p in (tmp_path / "state").rglob("*") if p.is_file())
    assert KEY not in stored
    state = LocalStateBackend(tmp_path / "state").load("echo")
    assert "page=3" in state["watermarks"]["rest"]["request"]["url"]  # the state searched

    monkeypatch.setattr(RestClient, "send", send)
    assert run(recipe).error is None  # resumed at page 3, the key added by auth again
    with duckdb.connect(str(tmp_path / "out.duckdb")) as con:
        assert con.execute("select count(*), count(distinct id) from items").fetchone() == (
            250,
            250,
        )
