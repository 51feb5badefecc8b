"""Fixtures of the REST source's tests: one demo API server per session, a fresh
`DemoApi` (250 records, default credentials, no faults, empty log) for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dataloader_rest.testing import DemoApi, DemoServer, run_server


@pytest.fixture(scope="session")
def demo_server() -> Iterator[DemoServer]:
    """The session's demo API server (serve a test's state through `demo_api`)."""
    with run_server(DemoApi(0, customers=0)) as server:
        yield server


@pytest.fixture
def demo_api(demo_server: DemoServer) -> Iterator[DemoApi]:
    """A fresh `DemoApi` with 250 records, served by the session's server for this test."""
    api = demo_server.install(DemoApi(250))
    yield api
    demo_server.install(DemoApi(0, customers=0))
