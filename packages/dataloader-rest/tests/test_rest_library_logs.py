"""httpx logs every request's URL at INFO, a query API key in it; whoever handles that
logger (an application's root logging) sees the key masked."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dataloader.testing import local_runner
from dataloader_rest.testing import DemoApi


def test_the_query_api_key_is_masked_in_httpx_own_log_lines(
    demo_api: DemoApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recipe = {
        "name": "logged",
        "source": {
            "type": "rest",
            "client": {
                "base_url": demo_api.base_url,
                "auth": {
                    "type": "api_key",
                    "name": "api_key",
                    "value": demo_api.api_key,
                    "location": "query",
                },
            },
            "resource": {"path": "/auth/apikey/items", "paginator": {"type": "offset"}},
        },
        "destination": {
            "type": "duckdb",
            "database": str(tmp_path / "out.duckdb"),
            "table": "items",
        },
    }
    with caplog.at_level(logging.INFO, logger="httpx"):
        assert local_runner(tmp_path / "state")(recipe).rows_written == 250
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert lines and all("api_key=***" in line for line in lines)
    assert demo_api.api_key not in caplog.text
