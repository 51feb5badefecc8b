"""The REST source's JSON pages through the native converter (`rest_json_records`) load
exactly what the pure-Python path loads: each listing below is run twice into Parquet, once
with the accelerator and once without, and the two files must be equal (schema and values),
whether the converter took the pages or declined them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import dataloader_rest.connector as rest_connector
from dataloader.testing import local_runner
from dataloader_rest.raw import accelerator
from dataloader_rest.testing import serve_app

PLAIN = [
    '{"items": [{"id": 1, "name": "Ada", "amount": 10.5, "at": "2024-01-01T00:00:00Z",'
    ' "tags": ["a", "b"], "address": {"city": "Lagos", "zip": null}, "ok": true}],'
    ' "total": 3}',
    '{"items": [{"id": 2, "name": "Bo\\u00e9 \\"q\\"", "amount": 3, "at":'
    ' "2024-01-02T10:00:00.123456+02:00", "tags": [], "address": null, "ok": false},'
    ' {"id": 3, "amount": 1234.125, "extra": "\\ud83d\\ude00"}], "total": 3}',
]

LISTINGS: dict[str, tuple[list[str], bool]] = {
    # name: (pages, whether the converter must take at least one batch)
    "plain pages, decimals widening across pages": (PLAIN, True),
    "a field that is a number here and text there": (
        ['{"items": [{"id": 1, "v": 1}]}', '{"items": [{"id": 2, "v": "x"}]}'],
        False,
    ),
    "numbers with exponents, NaN": (
        ['{"items": [{"id": 1, "v": 1e3}]}', '{"items": [{"id": 2, "v": NaN}]}'],
        False,
    ),
    "an integer past int64": (['{"items": [{"id": 1, "v": 18446744073709551616}]}'], False),
    "the records key twice (the last counts)": (
        ['{"items": [{"id": 9}], "total": 1, "items": [{"id": 1, "v": 2.50}]}'],
        True,
    ),
    "an escaped key and whitespace": (['  {"it\\u0065ms" : [ {"id" : 1} ] }\n'], True),
    "a lone item that is not an object": (['{"items": [{"id": 1}, 5]}'], False),
    "nested lists of structs": (
        ['{"items": [{"id": 1, "l": [{"a": 1.5, "b": [1, 2]}, null], "s": {"t": {"u": "x"}}}]}'],
        True,
    ),
}


@pytest.fixture
def serve() -> Iterator[Any]:
    contexts: list[Any] = []

    def start(pages: list[str]) -> str:
        async def endpoint(request: Request) -> Response:
            page = int(request.query_params.get("offset", "0"))
            body = pages[page] if page < len(pages) else '{"items": []}'
            return Response(body.encode("utf-8"), media_type="application/json")

        context = serve_app(Starlette(routes=[Route("/items", endpoint)]))
        contexts.append(context)
        return context.__enter__()

    yield start
    for context in contexts:
        context.__exit__(None, None, None)


def load(base_url: str, out: Path, paginator: dict[str, Any]) -> Any:
    recipe = {
        "name": "pages",
        "source": {
            "type": "rest",
            "client": {"base_url": base_url},
            "resource": {"path": "/items", "data_selector": "items", "paginator": paginator},
        },
        "destination": {"type": "filestore", "path": str(out), "format": "parquet"},
        "runtime": {"retries": 0},
    }
    return local_runner(out.parent / f"{out.name}-state")(recipe)


def parquet(out: Path) -> Any:
    files = sorted(out.rglob("*.parquet"))
    assert len(files) == 1, files
    return pq.read_table(files[0])


# `?offset=0`, `?offset=1`, …: the page's index (the listing ends at an empty page).
PAGES = {"type": "page_number", "page_param": "offset", "initial_page": 0}


@pytest.mark.parametrize("name", list(LISTINGS))
def test_the_native_path_loads_what_the_python_path_loads(
    name: str, serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages, taken = LISTINGS[name]
    native = accelerator()
    assert native is not None, "the dataloader-rust accelerator is not installed"
    calls: list[bool] = []

    class Spy:
        def locate(self, content: bytes, keys: Any) -> Any:
            return native.locate(content, keys)

        def to_arrays(self, content: bytes) -> Any:
            result = native.to_arrays(content)
            calls.append(result is not None)
            return result

    base_url = serve(pages)
    monkeypatch.setattr(rest_connector, "accelerator", lambda: Spy())
    load(base_url, tmp_path / "native", PAGES)
    monkeypatch.setattr(rest_connector, "accelerator", lambda: None)
    load(base_url, tmp_path / "python", PAGES)

    expected, got = parquet(tmp_path / "python"), parquet(tmp_path / "native")
    assert got.schema == expected.schema
    assert got.to_pylist() == expected.to_pylist()
    assert any(calls) is taken, calls


def test_a_paginator_reading_the_records_keeps_the_python_path(
    serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages = [
        '{"items": [{"id": 1}, {"id": 2}], "has_more": true}',
        '{"items": [{"id": 3}], "has_more": false}',
    ]

    class Refusing:
        def locate(self, content: bytes, keys: Any) -> Any:
            raise AssertionError("the records were asked for by the paginator")

        to_arrays = locate

    def endpoint_pages(request: Request) -> Response:
        after = request.query_params.get("starting_after")
        body = pages[1] if after == "2" else pages[0]
        return Response(body.encode(), media_type="application/json")

    async def endpoint(request: Request) -> Response:
        return endpoint_pages(request)

    with serve_app(Starlette(routes=[Route("/items", endpoint)])) as base_url:
        monkeypatch.setattr(rest_connector, "accelerator", lambda: Refusing())
        load(base_url, tmp_path / "out", {"type": "starting_after", "records_path": "items"})
    assert parquet(tmp_path / "out").column("id").to_pylist() == [1, 2, 3]
