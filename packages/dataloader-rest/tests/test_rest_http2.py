"""HTTP/2 where the server offers it: the demo API under hypercorn over TLS (a throwaway CA
from trustme), which negotiates h2 by ALPN. The recipe trusts that CA through
`client.verify: <PEM path>`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import trustme
from hypercorn.asyncio import serve
from hypercorn.config import Config

from dataloader import DataLoaderError
from dataloader.testing import free_port, local_runner
from dataloader_rest.testing import DemoApi, create_app


@pytest.fixture
def tls_api(tmp_path: Path) -> Iterator[tuple[DemoApi, str, Path]]:
    """The demo API over HTTPS with HTTP/2, its base URL, and the CA's PEM file."""
    ca = trustme.CA()
    served = ca.issue_cert("127.0.0.1")
    key_and_chain = tmp_path / "server.pem"
    served.private_key_and_cert_chain_pem.write_to_path(str(key_and_chain))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.certfile = config.keyfile = str(key_and_chain)
    config.loglevel = "WARNING"
    api = DemoApi(120)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()

    async def main() -> None:
        async def trigger() -> None:
            started.set()
            await stop.wait()

        await serve(create_app(lambda: api), config, shutdown_trigger=trigger)  # type: ignore[arg-type]

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not started.wait(10):
        pytest.fail("hypercorn did not start within 10 s", pytrace=False)
    try:
        yield api, f"https://127.0.0.1:{port}", ca_file
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def recipe(base_url: str, ca_file: Path, tmp_path: Path, **client: Any) -> dict[str, Any]:
    return {
        "name": "h2",
        "source": {
            "type": "rest",
            "client": {"base_url": base_url, "verify": str(ca_file), **client},
            "resource": {
                "path": "/link/items",
                "params": {"per_page": 25},
                "paginator": "link_header",
            },
        },
        "destination": {
            "type": "duckdb",
            "database": str(tmp_path / "out.duckdb"),
            "table": "items",
        },
    }


def loaded(tmp_path: Path) -> tuple[int, int]:
    with duckdb.connect(str(tmp_path / "out.duckdb")) as con:
        return con.execute("select count(*), count(distinct id) from items").fetchone()  # type: ignore[return-value]


def test_pages_come_over_http2_when_the_server_offers_it(
    tls_api: tuple[DemoApi, str, Path], tmp_path: Path
) -> None:
    api, base_url, ca_file = tls_api
    result = local_runner(tmp_path / "state")(recipe(base_url, ca_file, tmp_path))
    assert result.error is None
    assert loaded(tmp_path) == (120, 120)
    assert {request.http_version for request in api.requests} == {"2"}


def test_http2_off_speaks_http1_to_the_same_server(
    tls_api: tuple[DemoApi, str, Path], tmp_path: Path
) -> None:
    api, base_url, ca_file = tls_api
    local_runner(tmp_path / "state")(recipe(base_url, ca_file, tmp_path, http2=False))
    assert loaded(tmp_path) == (120, 120)
    assert {request.http_version for request in api.requests} == {"1.1"}


def test_a_server_whose_certificate_is_not_trusted_is_refused(
    tls_api: tuple[DemoApi, str, Path], tmp_path: Path
) -> None:
    _, base_url, _ = tls_api
    settings = recipe(base_url, Path("unused"), tmp_path)
    settings["source"]["client"]["verify"] = True  # the system's CAs: not the throwaway one
    settings["runtime"] = {"retries": 0}
    with pytest.raises(DataLoaderError, match=r"(?i)certificate verify failed"):
        local_runner(tmp_path / "state")(settings)
