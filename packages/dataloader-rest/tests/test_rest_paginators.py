"""The built-in paginators, walked over fake listings built in memory, and `should_stop`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from dataloader_rest.bodies import parse_body, records_from
from dataloader_rest.pages import PageRequest, PageResponse, Paginator, PaginatorOptions
from dataloader_rest.paginators import (
    BUILTIN_PAGINATORS,
    AutoOptions,
    AutoPaginator,
    CursorOptions,
    CursorPaginator,
    LinkHeaderOptions,
    LinkHeaderPaginator,
    NextUrlOptions,
    NextUrlPaginator,
    OffsetOptions,
    OffsetPaginator,
    PageNumberOptions,
    PageNumberPaginator,
    PaginationError,
    SinglePagePaginator,
    StartingAfterOptions,
    StartingAfterPaginator,
    detect_paginator,
    find_link,
    parse_link_header,
    should_stop,
)
from dataloader_rest.selectors import SelectorError
from dataloader_rest.testing import DemoApi

BASE = "https://api.example.com"
ITEMS = [{"id": number} for number in range(1, 24)]  # 23 records

Server = Callable[[httpx.Request], httpx.Response]


def reply(
    request: httpx.Request, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(200, json=body, headers=headers, request=request)


def walk(
    paginator: Paginator,
    server: Server,
    url: str = f"{BASE}/items",
    params: dict[str, Any] | None = None,
    *,
    start: PageRequest | None = None,
    limit: int = 50,
) -> tuple[list[Any], list[PageRequest]]:
    """Every record the paginator reaches, and the requests it made (as the source's page
    loop will: `next` after each page unless `should_stop`)."""
    request: PageRequest | None = start or paginator.first(PageRequest(url, dict(params or {})))
    records: list[Any] = []
    requests: list[PageRequest] = []
    while request is not None:
        assert len(requests) < limit, "the paginator does not stop"
        requests.append(request)
        query = {key: value for key, value in request.params.items() if value is not None}
        # httpx replaces a URL's query with `params` (even {}): a next URL keeps its own.
        response = server(httpx.Request("GET", request.url, params=query or None))
        page, _ = records_from(response.json(), "json")
        records.extend(page)
        page_response = PageResponse(response, response.json(), len(page))
        if should_stop(paginator.options, request, page_response, request.records + len(page)):
            break
        request = paginator.next(request, page_response)
    return records, requests


def ids(records: list[dict[str, Any]]) -> list[int]:
    return [record["id"] for record in records]


# --- offset --------------------------------------------------------------------------------


def offset_server(cap: int) -> Server:
    def serve(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        limit = min(int(request.url.params.get("limit", 5)), cap)
        return reply(request, {"data": ITEMS[offset : offset + limit], "total": len(ITEMS)})

    return serve


def test_offset_advances_by_the_records_read_not_the_limit() -> None:
    paginator = OffsetPaginator(OffsetOptions(limit=10))
    records, requests = walk(paginator, offset_server(cap=7))
    assert ids(records) == list(range(1, 24))
    assert [r.params["offset"] for r in requests] == [0, 7, 14, 21, 23]
    assert all(r.params["limit"] == 10 for r in requests)
    assert [r.page for r in requests] == [0, 1, 2, 3, 4]
    assert [r.records for r in requests] == [0, 7, 14, 21, 23]


def test_offset_custom_params_and_initial_offset() -> None:
    seen: list[httpx.QueryParams] = []

    def serve(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params)
        skip = int(request.url.params["skip"])
        return reply(request, ITEMS[skip : skip + 4])

    options = OffsetOptions(offset_param="skip", limit_param=None, initial_offset=20)
    records, _ = walk(OffsetPaginator(options), serve)
    assert ids(records) == [21, 22, 23]
    assert "limit" not in seen[0]


def test_offset_stops_at_total_without_an_empty_request() -> None:
    options = OffsetOptions(limit=10, total_path="total")
    records, requests = walk(OffsetPaginator(options), offset_server(cap=10))
    assert ids(records) == list(range(1, 24))
    assert len(requests) == 3


def test_offset_never_loops_on_an_empty_page() -> None:
    options = OffsetOptions(limit=10, stop_on_empty_page=False)
    records, requests = walk(OffsetPaginator(options), offset_server(cap=10))
    assert len(records) == 23
    assert len(requests) == 4


def test_offset_resumes_from_a_checkpoint() -> None:
    paginator = OffsetPaginator(OffsetOptions(limit=10))
    _, requests = walk(paginator, offset_server(cap=10), limit=50)
    checkpoint = requests[1].to_checkpoint()
    resumed, _ = walk(
        paginator, offset_server(cap=10), start=PageRequest.from_checkpoint(checkpoint)
    )
    assert ids(resumed) == list(range(11, 24))


# --- page number ---------------------------------------------------------------------------


def page_server(size_param: str = "per_page", first: int = 1) -> Server:
    def serve(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"]) - first
        size = int(request.url.params.get(size_param, 10))
        pages = -(-len(ITEMS) // size)
        rows = ITEMS[page * size : (page + 1) * size]
        return reply(request, {"results": rows, "meta": {"total_pages": pages}})

    return serve


def test_page_number_until_an_empty_page() -> None:
    options = PageNumberOptions(page_size_param="per_page", page_size=5)
    records, requests = walk(PageNumberPaginator(options), page_server())
    assert ids(records) == list(range(1, 24))
    assert [r.params["page"] for r in requests] == [1, 2, 3, 4, 5, 6]
    assert requests[0].params["per_page"] == 5


def test_page_number_stops_after_total_pages() -> None:
    options = PageNumberOptions(
        page_size_param="per_page", page_size=5, total_pages_path="meta.total_pages"
    )
    records, requests = walk(PageNumberPaginator(options), page_server())
    assert ids(records) == list(range(1, 24))
    assert [r.params["page"] for r in requests] == [1, 2, 3, 4, 5]


def test_page_number_from_zero() -> None:
    options = PageNumberOptions(initial_page=0, total_pages_path="meta.total_pages")
    records, requests = walk(PageNumberPaginator(options), page_server(first=0))
    assert ids(records) == list(range(1, 24))
    assert [r.params["page"] for r in requests] == [0, 1, 2]


def test_page_number_options_are_checked() -> None:
    with pytest.raises(ValidationError, match="set both or neither"):
        PageNumberOptions(page_size=10)
    with pytest.raises(ValidationError, match="set both or neither"):
        PageNumberOptions(page_size_param="size")
    with pytest.raises(ValidationError, match="extra"):
        PageNumberOptions(page_parameter="p")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        OffsetOptions(limit=0)


# --- cursor --------------------------------------------------------------------------------


def cursor_server(end: Any = None, path: tuple[str, ...] = ("meta", "next")) -> Server:
    def serve(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("cursor", "c0")[1:])
        rows = ITEMS[start : start + 10]
        nxt = f"c{start + 10}" if start + 10 < len(ITEMS) else end
        body: dict[str, Any] = {"items": rows}
        if nxt is not ...:
            node = body
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = nxt
        return reply(request, body)

    return serve


@pytest.mark.parametrize("end", [None, "", ...], ids=["null", "empty", "missing"])
def test_cursor_until_no_cursor(end: Any) -> None:
    paginator = CursorPaginator(CursorOptions(cursor_path="meta.next"))
    records, requests = walk(paginator, cursor_server(end))
    assert ids(records) == list(range(1, 24))
    assert [r.params.get("cursor") for r in requests] == [None, "c10", "c20"]


def test_cursor_default_path_and_custom_param() -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        after = int(request.url.params.get("after", 0))
        rows = ITEMS[after : after + 10]
        nxt = after + 10 if after + 10 < len(ITEMS) else None
        return reply(request, {"data": rows, "next_cursor": nxt})

    records, requests = walk(CursorPaginator(CursorOptions(cursor_param="after")), serve)
    assert ids(records) == list(range(1, 24))
    assert [r.params.get("after") for r in requests] == [None, 10, 20]


def test_cursor_that_does_not_move_is_an_error() -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        return reply(request, {"data": ITEMS[:2], "next_cursor": "same"})

    with pytest.raises(PaginationError, match="did not change"):
        walk(CursorPaginator(CursorOptions()), serve)


def test_cursor_path_into_a_list_body_is_an_error() -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        return reply(request, [{"id": 1}])

    with pytest.raises(SelectorError, match="not an object"):
        walk(CursorPaginator(CursorOptions()), serve)


# --- starting_after ------------------------------------------------------------------------

CUSTOMERS = [{"id": f"cus_{number:03d}", "n": number} for number in range(1, 24)]


def stripe_server(request: httpx.Request) -> httpx.Response:
    after = request.url.params.get("starting_after")
    limit = int(request.url.params.get("limit", 10))
    start = 0 if after is None else [c["id"] for c in CUSTOMERS].index(after) + 1
    rows = CUSTOMERS[start : start + limit]
    body = {"object": "list", "url": "/v1/customers", "has_more": start + limit < len(CUSTOMERS)}
    return reply(request, {**body, "data": rows})


def test_starting_after_walks_a_stripe_list() -> None:
    paginator = StartingAfterPaginator(StartingAfterOptions())
    records, requests = walk(paginator, stripe_server, f"{BASE}/v1/customers", {"limit": 10})
    assert [r["n"] for r in records] == list(range(1, 24))
    assert [r.params.get("starting_after") for r in requests] == [None, "cus_010", "cus_020"]
    assert all(r.params["limit"] == 10 for r in requests)


def test_starting_after_with_records_path_and_nested_id() -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        after = int(request.url.params.get("after", 0))
        rows = [{"ref": {"id": n}} for n in range(after + 1, min(after + 10, 23) + 1)]
        return reply(request, {"page": {"rows": rows}, "more": after + 10 < 23, "tags": [{}]})

    options = StartingAfterOptions(
        param="after", id_field="ref.id", has_more_path="more", records_path="page.rows"
    )
    request = PageRequest(f"{BASE}/x")
    seen = []
    while request is not None:
        response = serve(httpx.Request("GET", request.url, params=request.params))
        body = response.json()
        seen += [row["ref"]["id"] for row in body["page"]["rows"]]
        request = StartingAfterPaginator(options).next(
            request, PageResponse(response, body, len(body["page"]["rows"]))
        )
    assert seen == list(range(1, 24))


def test_starting_after_missing_has_more_is_an_error() -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        return reply(request, {"data": CUSTOMERS[:3]})

    with pytest.raises(SelectorError, match="has no key 'has_more'"):
        walk(StartingAfterPaginator(StartingAfterOptions()), serve)


def test_starting_after_without_has_more_runs_to_an_empty_page() -> None:
    options = StartingAfterOptions(has_more_path=None)
    records, requests = walk(StartingAfterPaginator(options), stripe_server, params={"limit": 10})
    assert len(records) == 23
    assert len(requests) == 4


# --- next URL ------------------------------------------------------------------------------


def next_url_server(style: str) -> Server:
    def serve(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", 1))
        rows = ITEMS[(page - 1) * 10 : page * 10]
        nxt = None
        if page * 10 < len(ITEMS):
            relative = f"/items?page={page + 1}&filter=a%20b"
            nxt = relative if style == "relative" else f"{BASE}{relative}"
        return reply(request, {"data": rows, "links": {"next": nxt}})

    return serve


@pytest.mark.parametrize("style", ["relative", "absolute"])
def test_next_url_follows_the_body(style: str) -> None:
    paginator = NextUrlPaginator(NextUrlOptions(next_url_path="links.next"))
    records, requests = walk(paginator, next_url_server(style), params={"filter": "a b"})
    assert ids(records) == list(range(1, 24))
    assert requests[0].params == {"filter": "a b"}
    assert [r.url for r in requests[1:]] == [
        f"{BASE}/items?page=2&filter=a%20b",
        f"{BASE}/items?page=3&filter=a%20b",
    ]
    assert all(r.params == {} for r in requests[1:])


def test_next_url_relative_to_the_page_path() -> None:
    request = PageRequest(f"{BASE}/v2/items")
    response = reply(httpx.Request("GET", f"{BASE}/v2/items?x=1"), {"next": "items?page=2"})
    following = NextUrlPaginator(NextUrlOptions()).next(
        request, PageResponse(response, response.json(), 1)
    )
    assert following is not None
    assert following.url == f"{BASE}/v2/items?page=2"


def test_next_url_that_does_not_move_is_an_error() -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        return reply(request, {"data": ITEMS[:1], "next": str(request.url)})

    with pytest.raises(PaginationError, match="URL of this page"):
        walk(NextUrlPaginator(NextUrlOptions()), serve)


# --- Link header ---------------------------------------------------------------------------


def link_server(request: httpx.Request) -> httpx.Response:
    page = int(request.url.params.get("page", 1))
    rows = ITEMS[(page - 1) * 10 : page * 10]
    links = ['</items?page=1&per_page=10>; rel="first"']
    if page * 10 < len(ITEMS):
        links.append(f"<{BASE}/items?page={page + 1}&per_page=10>; rel=next")
    links.append('</items?page=3&per_page=10>; rel="last"')
    return reply(request, rows, {"Link": ", ".join(links)})


def test_link_header_walks_the_pages() -> None:
    paginator = LinkHeaderPaginator(LinkHeaderOptions())
    records, requests = walk(paginator, link_server, params={"per_page": 10})
    assert ids(records) == list(range(1, 24))
    assert [r.url for r in requests[1:]] == [
        f"{BASE}/items?page=2&per_page=10",
        f"{BASE}/items?page=3&per_page=10",
    ]


def test_link_header_relative_and_custom_rel() -> None:
    request = PageRequest(f"{BASE}/a/b")
    response = reply(
        httpx.Request("GET", f"{BASE}/a/b"), [{"id": 1}], {"Link": '<c?p=2>; rel="older"'}
    )
    page = PageResponse(response, response.json(), 1)
    assert LinkHeaderPaginator(LinkHeaderOptions()).next(request, page) is None
    following = LinkHeaderPaginator(LinkHeaderOptions(rel="older")).next(request, page)
    assert following is not None
    assert following.url == f"{BASE}/a/c?p=2"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('<https://x/2>; rel="next"', "https://x/2"),
        ("<https://x/2>; rel=next", "https://x/2"),
        ('<https://x/2>;rel="next"', "https://x/2"),
        ('<https://x/2> ; REL = "Next"', "https://x/2"),
        ('<https://x/1>; rel="prev", <https://x/3>; rel="next"', "https://x/3"),
        ('<https://x/3>; rel="next last"', "https://x/3"),
        ('<https://x/3>; rel="last  next"', "https://x/3"),
        ('<https://x/1>; rel="prev",<https://x/3>;rel="next"', "https://x/3"),
        ('<https://x/a;b=c,d?q=1,2>; rel="next"', "https://x/a;b=c,d?q=1,2"),
        (
            '<https://x/1>; title="a, <b>; c=d"; rel="prev", <https://x/2>; rel="next"',
            "https://x/2",
        ),
        ('<https://x/2>; title="x=y"; rel="next"', "https://x/2"),
        ('<https://x/2>; title="say \\"hi\\""; rel="next"', "https://x/2"),
        ('<https://x/2>; rel="next"; rel="prev"', "https://x/2"),  # the first rel counts
        ('<https://x/2>; rel="prev"; rel="next"', None),
        ('<https://x/2>; rel="nextpage"', None),
        ('<https://x/2>; anchor="#a"', None),
        ("", None),
        ("garbage", None),
    ],
)
def test_find_link_edge_cases(header: str, expected: str | None) -> None:
    assert find_link(httpx.Headers({"Link": header}), "next") == expected


def test_several_link_headers() -> None:
    headers = httpx.Headers(
        [("Link", '<https://x/1>; rel="prev"'), ("Link", "<https://x/3>; rel=next")]
    )
    assert find_link(headers, "next") == "https://x/3"
    assert find_link(headers, "PREV") == "https://x/1"


def test_parse_link_header_params() -> None:
    links = parse_link_header(
        '<https://x/1>; rel="prev"; Title="A, b"; hreflang=en, junk, <https://x/2>; rel=next'
    )
    assert links == [
        ("https://x/1", {"rel": "prev", "title": "A, b", "hreflang": "en"}),
        ("https://x/2", {"rel": "next"}),
    ]


def test_httpx_links_is_not_enough() -> None:
    """Why the header is parsed here: httpx keys a link by its whole `rel`."""
    response = httpx.Response(200, headers={"Link": '<https://x/3>; rel="next last"'})
    assert "next" not in response.links
    assert find_link(response.headers, "next") == "https://x/3"


# --- single page and auto ------------------------------------------------------------------


def test_single_page() -> None:
    records, requests = walk(
        SinglePagePaginator(PaginatorOptions()), offset_server(cap=100), params={"offset": 0}
    )
    assert len(records) == 5
    assert len(requests) == 1


def test_auto_picks_link_header(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="dataloader.rest"):
        records, requests = walk(AutoPaginator(AutoOptions()), link_server)
    assert ids(records) == list(range(1, 24))
    assert requests[-1].state["auto"] == {"type": "link_header", "options": {}}
    assert "auto pagination picked link_header" in caplog.text


@pytest.mark.parametrize("style", ["relative", "absolute"])
def test_auto_picks_next_url(style: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="dataloader.rest"):
        records, _ = walk(AutoPaginator(AutoOptions()), next_url_server(style))
    assert ids(records) == list(range(1, 24))
    assert "picked next_url next_url_path='links.next'" in caplog.text


def test_auto_picks_cursor(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="dataloader.rest"):
        records, requests = walk(
            AutoPaginator(AutoOptions()), cursor_server(path=("cursor", "next"))
        )
    assert ids(records) == list(range(1, 24))
    assert [r.params.get("cursor") for r in requests] == [None, "c10", "c20"]
    assert "picked cursor cursor_path='cursor.next' cursor_param='cursor'" in caplog.text
    assert caplog.text.count("picked") == 1


def test_auto_picks_starting_after_for_a_stripe_list() -> None:
    records, _ = walk(AutoPaginator(AutoOptions()), stripe_server, params={"limit": 10})
    assert [r["n"] for r in records] == list(range(1, 24))


def test_auto_single_page(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="dataloader.rest"):
        records, requests = walk(AutoPaginator(AutoOptions()), cursor_server(path=("other",)))
    assert len(records) == 10
    assert len(requests) == 1
    assert "picked single_page" in caplog.text


def test_auto_single_page_warns_when_more_pages_are_announced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        return reply(request, {"data": ITEMS[:5], "has_more": True})

    with caplog.at_level(logging.INFO, logger="dataloader.rest"):
        records, _ = walk(AutoPaginator(AutoOptions()), serve)
    assert len(records) == 5
    assert any(r.levelno == logging.WARNING and "has_more" in r.message for r in caplog.records)


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        ({"next": "https://x/2"}, {}, ("next_url", {"next_url_path": "next"})),
        ({"next_url": "/items?page=2"}, {}, ("next_url", {"next_url_path": "next_url"})),
        (
            {"links": {"next": {"href": "/p/2"}}},
            {},
            ("next_url", {"next_url_path": "links.next.href"}),
        ),
        (
            {"_links": {"next": {"href": "/p/2"}}},
            {},
            ("next_url", {"next_url_path": "_links.next.href"}),
        ),
        (
            {"@odata.nextLink": "https://x/2"},
            {},
            ("next_url", {"next_url_path": "$['@odata.nextLink']"}),
        ),
        ({"next": "abc"}, {}, ("single_page", {})),
        (
            {"next": None, "next_cursor": "abc"},
            {},
            ("cursor", {"cursor_path": "next_cursor", "cursor_param": "cursor"}),
        ),
        (
            {"nextPageToken": "t"},
            {},
            ("cursor", {"cursor_path": "nextPageToken", "cursor_param": "pageToken"}),
        ),
        (
            {"response_metadata": {"next_cursor": "dXNl"}},
            {},
            ("cursor", {"cursor_path": "response_metadata.next_cursor", "cursor_param": "cursor"}),
        ),
        ({"next_cursor": ""}, {}, ("single_page", {})),
        ({"next_cursor": None}, {}, ("single_page", {})),
        ({"cursor": "abc"}, {}, ("single_page", {})),
        ({"next": "https://x/2"}, {"Link": '<https://x/2>; rel="next"'}, ("link_header", {})),
        ([{"id": 1}], {"Link": '<https://x/9>; rel="last"'}, ("single_page", {})),
    ],
)
def test_detect_paginator(body: Any, headers: dict[str, str], expected: tuple[str, dict]) -> None:
    response = reply(httpx.Request("GET", f"{BASE}/items"), body, headers)
    assert detect_paginator(PageResponse(response, body, 1)) == expected


def test_auto_keeps_its_pick_across_a_resume(caplog: pytest.LogCaptureFixture) -> None:
    server = cursor_server(path=("meta", "next_cursor"))
    _, requests = walk(AutoPaginator(AutoOptions()), server)
    checkpoint = requests[1].to_checkpoint()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dataloader.rest"):
        resumed, _ = walk(
            AutoPaginator(AutoOptions()),
            server,
            start=PageRequest.from_checkpoint(checkpoint),
        )
    assert ids(resumed) == list(range(11, 24))
    assert "picked" not in caplog.text


def test_auto_custom_cursor_param() -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        after = int(request.url.params.get("from", 0))
        nxt = after + 10 if after + 10 < 23 else None
        return reply(request, {"data": ITEMS[after : after + 10], "nextCursor": nxt})

    records, _ = walk(AutoPaginator(AutoOptions(cursor_param="from")), serve)
    assert ids(records) == list(range(1, 24))


# --- should_stop ---------------------------------------------------------------------------


def page_of(body: Any, records: int) -> PageResponse:
    return PageResponse(reply(httpx.Request("GET", f"{BASE}/x"), body), body, records)


def test_should_stop_on_an_empty_page() -> None:
    request = PageRequest("/x", page=3, records=30)
    assert should_stop(
        PaginatorOptions(stop_on_empty_page=True), request, page_of({"data": []}, 0), 30
    )
    # Unset: the paginator's own signal decides (an empty page may have a next cursor).
    assert not should_stop(PaginatorOptions(), request, page_of({"data": []}, 0), 30)
    assert not should_stop(PaginatorOptions(stop_on_empty_page=False), request, page_of({}, 0), 30)
    assert not should_stop(PaginatorOptions(), request, page_of({}, 10), 40)


def test_should_stop_at_max_pages() -> None:
    options = PaginatorOptions(max_pages=3)
    assert not should_stop(options, PageRequest("/x", page=1), page_of({}, 10), 20)
    assert should_stop(options, PageRequest("/x", page=2), page_of({}, 10), 30)
    with pytest.raises(ValidationError):
        PaginatorOptions(max_pages=0)


def test_should_stop_at_the_total() -> None:
    options = PaginatorOptions(total_path="meta.total")
    request = PageRequest("/x", page=1, records=10)
    assert not should_stop(options, request, page_of({"meta": {"total": 25}}, 10), 20)
    assert should_stop(options, request, page_of({"meta": {"total": 20}}, 10), 20)
    assert should_stop(options, request, page_of({"meta": {"total": "15"}}, 10), 20)
    assert not should_stop(options, request, page_of({"meta": {"total": None}}, 10), 20)
    with pytest.raises(SelectorError, match="has no key 'total'"):
        should_stop(options, request, page_of({"meta": {}}, 10), 20)
    with pytest.raises(PaginationError, match="not a number"):
        should_stop(options, request, page_of({"meta": {"total": "many"}}, 10), 20)


def test_builtin_paginators() -> None:
    names = [paginator.name for paginator in BUILTIN_PAGINATORS]
    assert names == [
        "offset",
        "page_number",
        "cursor",
        "starting_after",
        "next_url",
        "link_header",
        "single_page",
        "auto",
    ]
    for paginator in BUILTIN_PAGINATORS:
        assert issubclass(paginator.options_model, PaginatorOptions)
        assert paginator.options_model.model_config.get("extra") == "forbid"
        paginator(paginator.options_model())  # every option has a default


# --- against the demo API over 127.0.0.1 ---------------------------------------------------


LIVE: list[tuple[str, Paginator, dict[str, Any], str]] = [
    ("/offset/items", OffsetPaginator(OffsetOptions(limit=30)), {}, "json"),
    (
        "/page/items",
        PageNumberPaginator(
            PageNumberOptions(
                page_size_param="per_page", page_size=30, total_pages_path="total_pages"
            )
        ),
        {},
        "json",
    ),
    ("/cursor/items", CursorPaginator(CursorOptions()), {"limit": 30}, "json"),
    ("/nexturl/items", NextUrlPaginator(NextUrlOptions(next_url_path="links.next")), {}, "json"),
    ("/link/items", LinkHeaderPaginator(LinkHeaderOptions()), {"per_page": 30}, "json"),
    ("/jsonl/items", OffsetPaginator(OffsetOptions(limit=30)), {}, "jsonl"),
    ("/csv/items", OffsetPaginator(OffsetOptions(limit=30)), {}, "csv"),
    ("/cursor/items", AutoPaginator(AutoOptions()), {"limit": 30}, "json"),
    ("/nexturl/items", AutoPaginator(AutoOptions()), {}, "json"),
    ("/link/items", AutoPaginator(AutoOptions()), {"per_page": 30}, "json"),
]


def walk_live(
    client: httpx.Client, paginator: Paginator, path: str, params: dict[str, Any], format: str
) -> tuple[list[dict[str, Any]], int]:
    """Every record of a demo listing, fetched with plain httpx, and the number of pages."""
    request: PageRequest | None = paginator.first(PageRequest(path, dict(params)))
    records: list[dict[str, Any]] = []
    selector: str | None = None  # the first page's detected path serves the later ones
    pages = 0
    while request is not None:
        pages += 1
        assert pages < 100, "the paginator does not stop"
        response = client.get(request.url, params=request.params or None)
        response.raise_for_status()
        body = parse_body(response, format)  # type: ignore[arg-type]
        page, selector = records_from(body, format, selector)  # type: ignore[arg-type]
        records.extend(page)
        page_response = PageResponse(response, body, len(page))
        if should_stop(paginator.options, request, page_response, request.records + len(page)):
            break
        request = paginator.next(request, page_response)
    return records, pages


@pytest.mark.parametrize(
    ("path", "paginator", "params", "format"),
    LIVE,
    ids=[f"{path}-{paginator.name}" for path, paginator, _, _ in LIVE],
)
def test_walk_the_demo_api(
    demo_api: DemoApi, path: str, paginator: Paginator, params: dict[str, Any], format: str
) -> None:
    with httpx.Client(base_url=demo_api.base_url) as client:
        records, pages = walk_live(client, paginator, path, params, format)
    got = [int(record["id"]) for record in records]
    assert sorted(got) == list(range(1, 251))
    assert len(got) == len(set(got))
    assert pages >= 9  # 250 records in pages of 30


@pytest.mark.parametrize(
    "paginator",
    [StartingAfterPaginator(StartingAfterOptions()), AutoPaginator(AutoOptions())],
    ids=["starting_after", "auto"],
)
def test_walk_the_demo_stripe_customers(demo_api: DemoApi, paginator: Paginator) -> None:
    headers = {"Authorization": f"Bearer {demo_api.stripe_key}"}
    with httpx.Client(base_url=demo_api.base_url, headers=headers) as client:
        records, pages = walk_live(client, paginator, "/stripe/v1/customers", {"limit": 10}, "json")
    assert sorted(record["id"] for record in records) == sorted(
        customer["id"] for customer in demo_api.customers
    )
    assert len({record["id"] for record in records}) == len(demo_api.customers) == 37
    assert pages == 4
