"""Listings at the edges, each served by a small app of its own on 127.0.0.1: an API that
answers past its last page with the last page, an empty page in the middle of a cursor
listing, JSON Lines with line separators inside strings, a cursor that changes type, and
a strict `>` parameter (`inclusive: false`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dataloader import DataLoaderError
from dataloader.testing import local_runner
from dataloader_rest.testing import DemoApi, serve_app

Handler = Callable[[Request], Response]


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], str]]:
    """`serve(handler)`: the base URL of an app answering `GET /items` with `handler`."""
    with_apps: list[Any] = []

    def start(handler: Handler) -> str:
        async def endpoint(request: Request) -> Response:
            return handler(request)

        context = serve_app(Starlette(routes=[Route("/items", endpoint)]))
        with_apps.append(context)
        return context.__enter__()

    yield start
    for context in with_apps:
        context.__exit__(None, None, None)


def load(
    base_url: str, tmp_path: Path, *, runtime: dict[str, Any] | None = None, **resource: Any
) -> Any:
    recipe = {
        "name": "edges",
        "source": {
            "type": "rest",
            "client": {"base_url": base_url},
            "resource": {"path": "/items", **resource},
        },
        "destination": {
            "type": "duckdb",
            "database": str(tmp_path / "out.duckdb"),
            "table": "items",
        },
        "runtime": {"retries": 0, **(runtime or {})},
    }
    return local_runner(tmp_path / "state")(recipe)


def ids(tmp_path: Path) -> list[int]:
    with duckdb.connect(str(tmp_path / "out.duckdb")) as con:
        return [row[0] for row in con.execute("select id from items order by id").fetchall()]


def test_a_page_past_the_end_answered_with_the_last_page_is_not_loaded_again(
    serve: Callable[[Handler], str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pages = [[1, 2], [3, 4], [5]]

    def clamped(request: Request) -> Response:
        page = min(int(request.query_params.get("page", "1")), len(pages))
        return JSONResponse({"data": [{"id": i} for i in pages[page - 1]]})

    base_url = serve(clamped)
    load(base_url, tmp_path, paginator={"type": "page_number"})
    assert ids(tmp_path) == [1, 2, 3, 4, 5]
    assert "repeats the page before it" in caplog.text


def test_the_last_page_again_with_the_page_asked_for_in_its_body_is_not_loaded_again(
    serve: Callable[[Handler], str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The body differs from the page before (`"page": 4`), its records do not: the last page
    was loaded again and again, without end."""
    pages = [[1, 2], [3, 4], [5]]
    asked: list[int] = []

    def clamped(request: Request) -> Response:
        asked.append(int(request.query_params.get("page", "1")))
        if len(asked) > 10:
            return JSONResponse({"error": "the test stops the listing here"}, status_code=400)
        rows = [{"id": i} for i in pages[min(asked[-1], len(pages)) - 1]]
        return JSONResponse({"page": asked[-1], "data": rows})

    base_url = serve(clamped)
    load(base_url, tmp_path, paginator={"type": "page_number"}, runtime={"batch_size": 2})
    assert ids(tmp_path) == [1, 2, 3, 4, 5]
    assert asked == [1, 2, 3, 4]
    assert "page 4 of /items repeats the page before it" in caplog.text


def test_a_child_page_repeating_the_one_before_is_not_loaded_again_despite_include(
    tmp_path: Path,
) -> None:
    """The records compared are the page's as parsed, not with the parent's columns added."""
    pages = [[1, 2], [3]]

    async def parents(request: Request) -> Response:
        return JSONResponse([{"id": 7}])

    async def children(request: Request) -> Response:
        page = int(request.query_params.get("page", "1"))
        rows = [{"id": i} for i in pages[min(page, len(pages)) - 1]]
        return JSONResponse({"page": page, "data": rows})

    app = Starlette(routes=[Route("/parents", parents), Route("/children/{p}", children)])
    with serve_app(app) as base_url:
        recipe = {
            "name": "edges",
            "source": {
                "type": "rest",
                "client": {"base_url": base_url},
                "resource": {
                    "path": "/children/{p}",
                    "paginator": {"type": "page_number", "max_pages": 6},
                    "parent": {
                        "path": "/parents",
                        "paginator": "single_page",
                        "fields": {"p": "id"},
                        "include": {"parent_id": "id"},
                    },
                },
            },
            "destination": {
                "type": "duckdb",
                "database": str(tmp_path / "out.duckdb"),
                "table": "items",
            },
            "runtime": {"retries": 0},
        }
        local_runner(tmp_path / "state")(recipe)
    assert ids(tmp_path) == [1, 2, 3]


def test_an_empty_page_with_a_next_cursor_does_not_end_the_listing(
    serve: Callable[[Handler], str], tmp_path: Path
) -> None:
    pages = {"": ([1, 2], "b"), "b": ([], "c"), "c": ([3, 4], None)}

    def filtered(request: Request) -> Response:
        rows, following = pages[request.query_params.get("cursor", "")]
        return JSONResponse({"results": [{"id": i} for i in rows], "next_cursor": following})

    base_url = serve(filtered)
    load(base_url, tmp_path, paginator={"type": "cursor"})
    assert ids(tmp_path) == [1, 2, 3, 4]

    (tmp_path / "out.duckdb").unlink()
    load(base_url, tmp_path / "again", paginator={"type": "cursor", "stop_on_empty_page": True})
    assert ids(tmp_path / "again") == [1, 2]  # asked for: the empty page ends it


def test_line_separators_inside_json_lines_strings_are_text(
    serve: Callable[[Handler], str], tmp_path: Path
) -> None:
    names = ["a\u2028b", "c\u0085d", "e\u2029f"]
    body = "\n".join(
        json.dumps({"id": i, "name": n}, ensure_ascii=False) for i, n in enumerate(names)
    )

    base_url = serve(lambda request: Response(body, media_type="application/x-ndjson"))
    load(base_url, tmp_path, format="jsonl", paginator="single_page")
    with duckdb.connect(str(tmp_path / "out.duckdb")) as con:
        assert [r[0] for r in con.execute("select name from items order by id").fetchall()] == names


def test_a_cursor_that_changes_type_between_pages_is_a_clear_error(
    serve: Callable[[Handler], str], tmp_path: Path
) -> None:
    pages = [
        [{"id": 1, "at": "2024-01-01T00:00:00Z"}],
        [{"id": 2, "at": "yesterday"}],
    ]

    def listing(request: Request) -> Response:
        page = int(request.query_params.get("page", "1"))
        return JSONResponse({"data": pages[page - 1] if page <= len(pages) else []})

    base_url = serve(listing)
    recipe_resource = {"paginator": {"type": "page_number"}}
    with pytest.raises(DataLoaderError, match=r"cursor column 'at' .* changed type"):
        local_runner(tmp_path / "state")(
            {
                "name": "edges",
                "source": {
                    "type": "rest",
                    "client": {"base_url": base_url},
                    "resource": {"path": "/items", **recipe_resource},
                    "incremental": {"cursor_column": "at"},
                },
                "destination": {
                    "type": "duckdb",
                    "database": str(tmp_path / "out.duckdb"),
                    "table": "items",
                },
                "runtime": {"batch_size": 1},
            }
        )


def test_inclusive_false_sends_the_value_just_below_the_committed_cursor(
    demo_api: DemoApi, tmp_path: Path
) -> None:
    recipe = {
        "name": "strict",
        "source": {
            "type": "rest",
            "client": {"base_url": demo_api.base_url},
            "resource": {
                "path": "/offset/items",
                "paginator": {"type": "offset", "limit": 100},
                "incremental": {"param": "since", "inclusive": False},
            },
            "incremental": {"cursor_column": "updated_at"},
        },
        "destination": {
            "type": "duckdb",
            "database": str(tmp_path / "out.duckdb"),
            "table": "items",
        },
    }
    run = local_runner(tmp_path / "state")
    run(recipe)
    latest = max(record["updated_at"] for record in demo_api.records)
    demo_api.reset_log()
    run(recipe)
    sent = {request.query["since"] for request in demo_api.requests}
    seconds, micros = latest[:-1].split(".")
    assert sent == {f"{seconds}.{int(micros) - 1:06d}Z"}


def test_an_empty_page_naming_itself_as_the_next_ends_the_listing(
    serve: Callable[[Handler], str], tmp_path: Path
) -> None:
    """A cursor API with nothing more for now answers an empty page and the same cursor."""
    pages = {"": ([1, 2], "b"), "b": ([], "b")}
    calls: list[str] = []

    def polling(request: Request) -> Response:
        cursor = request.query_params.get("cursor", "")
        calls.append(cursor)
        rows, following = pages[cursor]
        return JSONResponse({"results": [{"id": i} for i in rows], "next_cursor": following})

    load(serve(polling), tmp_path, paginator={"type": "cursor"})
    assert ids(tmp_path) == [1, 2]
    assert calls == ["", "b"]


def test_the_cursor_parameter_in_each_format_and_just_below_it() -> None:
    from datetime import UTC, datetime

    from dataloader.state.nanotimestamp import NanoTimestamp
    from dataloader_rest.config import IncrementalParams
    from dataloader_rest.connector import _format, _just_below, _minus

    def settings(kind: str) -> IncrementalParams:
        return IncrementalParams(param="since", format=kind, inclusive=False)  # type: ignore[arg-type]

    nanos = NanoTimestamp.fromisoformat("2024-01-05T10:00:00.123456789+00:00", "UTC")
    assert _format(nanos, settings("iso")) == "2024-01-05T10:00:00.123456789Z"
    assert _format(nanos, settings("unix")) == 1704448800
    assert _format(_just_below(nanos, settings("iso")), settings("iso")).endswith(".123456788Z")
    assert _format(_minus(nanos, 60), settings("iso")) == "2024-01-05T09:59:00.123456789Z"
    moment = datetime(2024, 1, 5, 10, tzinfo=UTC)
    # A strict parameter written as a date: the day before reads the rest of the day.
    assert _format(_just_below(moment, settings("date")), settings("date")) == "2024-01-04"
    assert _format(_just_below(moment, settings("unix")), settings("unix")) == 1704448799
    assert _format(_just_below(moment, settings("iso")), settings("iso")) == (
        "2024-01-05T09:59:59.999999Z"
    )


def test_two_identical_pages_of_a_link_listing_are_both_loaded(
    serve: Callable[[Handler], str], tmp_path: Path
) -> None:
    """Records without ids (heartbeats) may repeat a page: only a paginator that counts
    pages itself takes a repeated page for an API answering past its end."""
    pages = [[{"msg": "beat"}] * 2, [{"msg": "beat"}] * 2, [{"msg": "disk full"}]]

    def logs(request: Request) -> Response:
        page = int(request.query_params.get("page", "1"))
        headers = {}
        if page < len(pages):
            headers["Link"] = f'<{request.url.include_query_params(page=page + 1)}>; rel="next"'
        return JSONResponse(pages[page - 1], headers=headers)

    load(serve(logs), tmp_path, paginator="link_header")
    with duckdb.connect(str(tmp_path / "out.duckdb")) as con:
        assert con.execute("select count(*) from items").fetchone() == (5,)


def test_a_modified_time_strategy_is_refused(demo_api: DemoApi, tmp_path: Path) -> None:
    recipe = {
        "name": "mtime",
        "source": {
            "type": "rest",
            "client": {"base_url": demo_api.base_url},
            "resource": {"path": "/offset/items", "paginator": {"type": "offset"}},
            "incremental": {"strategy": "modified_time"},
        },
        "destination": {
            "type": "duckdb",
            "database": str(tmp_path / "out.duckdb"),
            "table": "items",
        },
    }
    with pytest.raises(DataLoaderError, match="by a cursor field only"):
        local_runner(tmp_path / "state")(recipe)


def test_a_finished_newest_first_read_does_not_stop_a_later_full_read(
    demo_api: DemoApi, tmp_path: Path
) -> None:
    """The last page's `complete` marker of a cursor read is no full read's."""
    recipe: dict[str, Any] = {
        "name": "switch",
        "source": {
            "type": "rest",
            "client": {"base_url": demo_api.base_url},
            "resource": {
                "path": "/offset/items",
                "paginator": {"type": "offset", "limit": 50},
                "incremental": {"param": "since", "order": "desc"},
            },
            "incremental": {"cursor_column": "updated_at"},
        },
        "destination": {
            "type": "duckdb",
            "database": str(tmp_path / "out.duckdb"),
            "table": "items",
        },
    }
    run = local_runner(tmp_path / "state")
    assert run(recipe).rows_written == 250
    del recipe["source"]["incremental"], recipe["source"]["resource"]["incremental"]
    recipe["destination"]["write_mode"] = "overwrite"
    assert run(recipe).rows_written == 250
    assert ids(tmp_path) == sorted(r["id"] for r in demo_api.records)


def test_bytes_a_csv_page_cannot_be_decoded_in_fail_that_page_and_lose_nothing(
    serve: Callable[[Handler], str], tmp_path: Path
) -> None:
    """A Windows-1252 export served as UTF-8 became `Caf\ufffd` without a word; now the page
    fails naming the encoding and the byte, and a re-run once it is fixed loads every row."""
    pages = ["id,name\n1,a\n2,b\n", "id,name\n3,c\n4,d\n", "id,name\n5,Café\n6,e\n"]
    encoding = {"page 3": "cp1252"}

    def export(request: Request) -> Response:
        page = int(request.query_params.get("page", "1"))
        text = pages[page - 1] if page <= len(pages) else "id,name\n"
        charset = encoding.get(f"page {page}", "utf-8")
        return Response(text.encode(charset), media_type="text/csv")

    base_url = serve(export)
    options = {"format": "csv", "paginator": {"type": "page_number"}}
    runtime = {"batch_size": 2, "commit_interval_seconds": 1e-9}
    with pytest.raises(DataLoaderError) as failed:
        load(base_url, tmp_path, runtime=runtime, **options)
    message = str(failed.value)
    assert "page 3 of /items" in message and "/items" in message
    assert "not valid utf-8" in message and "byte 13 (e9)" in message
    assert failed.value.context["offset"] == 13
    with duckdb.connect(str(tmp_path / "out.duckdb")) as con:
        names = con.execute("select name from items order by id").fetchall()
    assert names == [("a",), ("b",), ("c",), ("d",)][: len(names)]  # a prefix, no U+FFFD

    encoding.clear()  # the API fixed: the re-run resumes and loads every row once
    load(base_url, tmp_path, runtime=runtime, **options)
    with duckdb.connect(str(tmp_path / "out.duckdb")) as con:
        rows = con.execute("select id, name from items order by id").fetchall()
    assert rows == [("1", "a"), ("2", "b"), ("3", "c"), ("4", "d"), ("5", "Café"), ("6", "e")]
