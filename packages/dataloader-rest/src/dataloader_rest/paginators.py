"""The built-in paginators: offset, page number, cursor, Stripe's `starting_after`, a next
URL in the body, the `Link` header, a single page, and `auto`, which picks one of these from
the first response. `should_stop` applies the stop conditions every paginator shares."""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx
from pydantic import Field, model_validator

from dataloader.errors import ConnectorError
from dataloader_rest.pages import PageRequest, PageResponse, Paginator, PaginatorOptions
from dataloader_rest.selectors import SelectorError, find_records, select

logger = logging.getLogger("dataloader.rest")


class PaginationError(ConnectorError):
    """A response cannot be paged on: a cursor or next page that does not move."""


def _following(request: PageRequest, response: PageResponse, **changes: Any) -> PageRequest:
    """The request after `request`, counting the page and its records."""
    params = changes.pop("params", {})
    return request.with_params(
        params, page=request.page + 1, records=request.records + response.records, **changes
    )


def _response_url(request: PageRequest, response: PageResponse) -> str:
    """The absolute URL `response` answered (relative URLs of the body are joined to it)."""
    try:
        return str(response.response.request.url)
    except RuntimeError:  # a response built without its request
        return request.url


def _join(base: str, url: str) -> str:
    return str(httpx.URL(base).join(url)) if base else url


def should_stop(
    options: PaginatorOptions,
    request: PageRequest,
    response: PageResponse,
    records_so_far: int,
) -> bool:
    """Whether the listing ends after `response`, whatever the paginator says.

    :param records_so_far: the records read so far, this page's included.
    :returns: True at an empty page (with `stop_on_empty_page: true`), once `records_so_far`
        reaches the total at `total_path` (a null total is ignored), or after `max_pages`
        pages.
    """
    if options.stop_on_empty_page is True and response.records == 0:
        return True
    if options.max_pages is not None and request.page + 1 >= options.max_pages:
        return True
    if options.total_path is not None:
        total = select(response.body, options.total_path)
        if total is not None:
            try:
                count = int(total)
            except (TypeError, ValueError):
                raise PaginationError(
                    f"the total at {options.total_path!r} is not a number: {total!r}"
                ) from None
            if records_so_far >= count:
                return True
    return False


# --- offset --------------------------------------------------------------------------------


class OffsetOptions(PaginatorOptions):
    """`?offset=…&limit=…`.

    :param limit_param: None sends no page size (the server's default applies).
    """

    offset_param: str = "offset"
    limit_param: str | None = "limit"
    limit: int = Field(default=100, gt=0)
    initial_offset: int = Field(default=0, ge=0)


class OffsetPaginator(Paginator):
    """Offset and limit: the next offset is this one plus the records this page held (a
    server may cap the page below `limit`). Stops at an empty page."""

    name = "offset"
    counts_pages = True
    options_model = OffsetOptions
    options: OffsetOptions

    def first(self, request: PageRequest) -> PageRequest:
        params: dict[str, Any] = {self.options.offset_param: self.options.initial_offset}
        if self.options.limit_param is not None:
            params[self.options.limit_param] = self.options.limit
        return request.with_params(params)

    def next(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        if response.records == 0:  # the offset cannot move
            return None
        offset = int(request.params.get(self.options.offset_param) or 0)
        return _following(
            request, response, params={self.options.offset_param: offset + response.records}
        )


# --- page number ---------------------------------------------------------------------------


class PageNumberOptions(PaginatorOptions):
    """`?page=1`, `?page=2`, …

    :param page_size_param: the parameter taking `page_size` (both or neither).
    :param total_pages_path: a path into the body giving the number of pages: stop after it.
    """

    page_param: str = "page"
    initial_page: int = Field(default=1, ge=0)
    page_size_param: str | None = None
    page_size: int | None = Field(default=None, gt=0)
    total_pages_path: str | None = None

    @model_validator(mode="after")
    def _page_size_pair(self) -> PageNumberOptions:
        if (self.page_size_param is None) != (self.page_size is None):
            raise ValueError("page_size_param and page_size go together: set both or neither")
        return self


class PageNumberPaginator(Paginator):
    """Page numbers from `initial_page` on. Stops after the page count at
    `total_pages_path`, or at an empty page (when nothing else could stop it, an empty page
    stops it even without `stop_on_empty_page`)."""

    name = "page_number"
    counts_pages = True
    options_model = PageNumberOptions
    options: PageNumberOptions

    def first(self, request: PageRequest) -> PageRequest:
        params: dict[str, Any] = {self.options.page_param: self.options.initial_page}
        if self.options.page_size_param is not None:
            params[self.options.page_size_param] = self.options.page_size
        return request.with_params(params)

    def next(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        options = self.options
        page = int(request.params.get(options.page_param, options.initial_page))
        if options.total_pages_path is not None:
            total_pages = select(response.body, options.total_pages_path)
            if total_pages is not None and page - options.initial_page + 1 >= int(total_pages):
                return None
        if response.records == 0:
            other_stop = options.total_pages_path or options.total_path or options.max_pages
            if options.stop_on_empty_page or not other_stop:
                return None
        return _following(request, response, params={options.page_param: page + 1})


# --- cursor --------------------------------------------------------------------------------


class CursorOptions(PaginatorOptions):
    """A token in the body (`next_cursor`, `meta.next`) sent back as a parameter."""

    cursor_path: str = "next_cursor"
    cursor_param: str = "cursor"


class CursorPaginator(Paginator):
    """The next page's `cursor_param` is the value at `cursor_path`; a missing, null or
    empty value ends the listing."""

    name = "cursor"
    options_model = CursorOptions
    options: CursorOptions

    def next(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        cursor = select(response.body, self.options.cursor_path, default=None)
        if cursor is None or cursor == "":
            return None
        if response.records and cursor == request.params.get(self.options.cursor_param):
            raise PaginationError(
                f"the cursor at {self.options.cursor_path!r} did not change from one page "
                "to the next: the listing would never end"
            )
        return _following(request, response, params={self.options.cursor_param: cursor})


# --- starting_after ------------------------------------------------------------------------


class StartingAfterOptions(PaginatorOptions):
    """Stripe's lists: `?starting_after=<the last record's id>` while `has_more`.

    :param id_field: the record's id (a path, `id` or `meta.id`).
    :param has_more_path: the body's flag that more pages follow; None pages on until an
        empty page.
    :param records_path: where the page's records are; None finds them (`find_records`).
    """

    param: str = "starting_after"
    id_field: str = "id"
    has_more_path: str | None = "has_more"
    records_path: str | None = None


class StartingAfterPaginator(Paginator):
    """The next page starts after the last record of this one, while `has_more` is true."""

    name = "starting_after"
    options_model = StartingAfterOptions
    options: StartingAfterOptions

    def next(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        options = self.options
        if options.has_more_path is not None and not select(response.body, options.has_more_path):
            return None
        if options.records_path is not None:
            records = select(response.body, options.records_path)
        else:
            records = find_records(response.body)[0]
        if not records:
            return None
        last = select(records[-1], options.id_field)
        if last is None or last == "":
            raise PaginationError(
                f"the last record of the page has no {options.id_field!r} to continue after"
            )
        if last == request.params.get(options.param):
            raise PaginationError(
                f"the page after {options.param}={last!r} ended with that same record: "
                "the listing would never end"
            )
        return _following(request, response, params={options.param: last})


# --- next URL ------------------------------------------------------------------------------


class NextUrlOptions(PaginatorOptions):
    """The next page's URL in the body (`next`, `links.next`, `$['@odata.nextLink']`)."""

    next_url_path: str = "next"


class NextUrlPaginator(Paginator):
    """Follows the URL at `next_url_path` (relative ones are joined to the page's URL) with
    no parameters of its own: the URL holds them. A missing, null or empty URL ends it."""

    name = "next_url"
    options_model = NextUrlOptions
    options: NextUrlOptions

    def next(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        url = select(response.body, self.options.next_url_path, default=None)
        if url is None or url == "":
            return None
        if not isinstance(url, str):
            raise PaginationError(
                f"the next URL at {self.options.next_url_path!r} is not a string: "
                f"{type(url).__name__}"
            )
        return _next_url(request, response, url)


def _next_url(request: PageRequest, response: PageResponse, url: str) -> PageRequest:
    current = _response_url(request, response)
    target = _join(current, url)
    if target == current and response.records:
        raise PaginationError(
            "the next page's URL is the URL of this page: the listing would never end"
        )
    return PageRequest(
        target,
        {},
        page=request.page + 1,
        records=request.records + response.records,
        state=dict(request.state),
    )


# --- Link header ---------------------------------------------------------------------------

_SPACE = " \t"
_TOKEN_END = re.compile(r"[;,=\s]")
_VALUE_END = re.compile(r"[;,]")


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The quoted string opening at `text[start]` and the position after it."""
    value: list[str] = []
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == "\\" and position + 1 < len(text):
            value.append(text[position + 1])
            position += 2
            continue
        if char == '"':
            return "".join(value), position + 1
        value.append(char)
        position += 1
    return "".join(value), position


def parse_link_header(value: str) -> list[tuple[str, dict[str, str]]]:
    """The links of a `Link` header (RFC 8288): `(target, params)` pairs, params' names in
    lower case, the first occurrence of a name kept.

    httpx's `Response.links` is not used: it keys a link by its whole `rel` (`"prev next"`),
    keeps the case of `rel` values, and cuts a parameter whose value holds `=`, a URL
    holding `;`, or a quoted value holding `,`.
    """
    links: list[tuple[str, dict[str, str]]] = []
    position = 0
    length = len(value)
    while position < length:
        start = value.find("<", position)
        if start < 0:
            break
        end = value.find(">", start)
        if end < 0:
            break
        target = value[start + 1 : end].strip()
        params: dict[str, str] = {}
        position = end + 1
        while position < length:
            while position < length and value[position] in _SPACE:
                position += 1
            if position >= length or value[position] == ",":
                position += 1
                break
            if value[position] != ";":  # junk after the link: skip to the next one
                comma = value.find(",", position)
                position = length if comma < 0 else comma + 1
                break
            position += 1
            while position < length and value[position] in _SPACE:
                position += 1
            match = _TOKEN_END.search(value, position)
            stop = match.start() if match else length
            name = value[position:stop].strip().lower()
            position = stop
            while position < length and value[position] in _SPACE:
                position += 1
            item = ""
            if position < length and value[position] == "=":
                position += 1
                while position < length and value[position] in _SPACE:
                    position += 1
                if position < length and value[position] == '"':
                    item, position = _quoted(value, position)
                else:
                    match = _VALUE_END.search(value, position)
                    stop = match.start() if match else length
                    item = value[position:stop].strip()
                    position = stop
            if name:
                params.setdefault(name, item)
        links.append((target, params))
    return links


def find_link(headers: httpx.Headers, rel: str) -> str | None:
    """The target of the first link of relation `rel` in the `Link` headers, or None."""
    wanted = rel.lower()
    for header in headers.get_list("link"):
        for target, params in parse_link_header(header):
            if wanted in params.get("rel", "").lower().split():
                return target
    return None


class LinkHeaderOptions(PaginatorOptions):
    """`Link: <https://api.example.com/items?page=2>; rel="next"` (GitHub, GitLab, …).

    :param rel: the relation of the next page's link.
    """

    rel: str = "next"


class LinkHeaderPaginator(Paginator):
    """Follows the `Link` header's link of relation `rel` (relative ones joined to the
    page's URL); none ends the listing."""

    name = "link_header"
    options_model = LinkHeaderOptions
    options: LinkHeaderOptions

    def next(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        url = find_link(response.headers, self.options.rel)
        if not url:
            return None
        return _next_url(request, response, url)


# --- single page ---------------------------------------------------------------------------


class SinglePagePaginator(Paginator):
    """One request, no pages after it."""

    name = "single_page"
    options_model = PaginatorOptions

    def next(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        return None


# --- auto ----------------------------------------------------------------------------------

# Body fields holding the next page's URL, in the order they are looked for.
NEXT_URL_PATHS: tuple[str, ...] = (
    "next",
    "next_url",
    "nextUrl",
    "next_page_url",
    "links.next",
    "links.next.href",
    "_links.next.href",
    "_links.next",
    "paging.next",
    "pagination.next",
    "pagination.next_url",
    "meta.next",
    "$['@odata.nextLink']",
)
# Body fields holding a cursor token, and the parameter it goes back in (None: the
# `cursor_param` option).
CURSOR_PATHS: tuple[tuple[str, str | None], ...] = (
    ("next_cursor", None),
    ("nextCursor", None),
    ("cursor.next", None),
    ("cursors.next", None),
    ("meta.next_cursor", None),
    ("meta.cursor.next", None),
    ("pagination.next_cursor", None),
    ("response_metadata.next_cursor", None),
    ("paging.cursors.after", "after"),
    ("next_page_token", "page_token"),
    ("nextPageToken", "pageToken"),
)


class AutoOptions(PaginatorOptions):
    """`auto`: which paginator follows is decided at the first response.

    :param cursor_param: the parameter a detected cursor is sent back in, when the field
        it was found in does not say (`nextPageToken` goes back as `pageToken`).
    """

    cursor_param: str = "cursor"


def _looks_like_url(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    return value.startswith(("http://", "https://", "/", "?")) or (
        "?" in value and "=" in value and " " not in value
    )


def _found(body: Any, path: str) -> Any:
    try:
        return select(body, path, default=None)
    except SelectorError:  # a path that does not fit this body's shape is no signal
        return None


def detect_paginator(
    response: PageResponse, cursor_param: str = "cursor"
) -> tuple[str, dict[str, Any]]:
    """The paginator (name and options) a first page's response asks for."""
    if find_link(response.headers, "next"):
        return "link_header", {}
    body = response.body
    if isinstance(body, dict):
        for path in NEXT_URL_PATHS:
            if _looks_like_url(_found(body, path)):
                return "next_url", {"next_url_path": path}
        for path, param in CURSOR_PATHS:
            token = _found(body, path)
            if isinstance(token, (str, int)) and not isinstance(token, bool) and token != "":
                return "cursor", {"cursor_path": path, "cursor_param": param or cursor_param}
        if body.get("object") == "list" and body.get("has_more") is True:
            return "starting_after", {}
        if body.get("has_more") is True or body.get("hasMore") is True:
            logger.warning(
                "rest: the response says more pages follow (has_more) but no paginator was "
                "recognised; only the first page is read: set `paginator`"
            )
    return "single_page", {}


class AutoPaginator(Paginator):
    """Picks at the first response: a `Link` rel=next header → `link_header`; a body field
    holding a URL (`next`, `links.next`, `_links.next.href`, …) → `next_url`; a body field
    holding a token (`next_cursor`, `cursor.next`, `nextPageToken`, …) → `cursor`; a Stripe
    list with `has_more` → `starting_after`; otherwise a single page. The pick travels in
    the request's state, so a resumed run keeps it."""

    name = "auto"
    options_model = AutoOptions
    options: AutoOptions

    def _delegate(self, name: str, options: dict[str, Any]) -> Paginator:
        for cls in BUILTIN_PAGINATORS:
            if cls.name == name:
                return cls(cls.options_model(**options))
        raise PaginationError(f"the checkpoint names an unknown paginator {name!r}")

    def next(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        picked = request.state.get("auto")
        if picked is None:
            name, options = detect_paginator(response, self.options.cursor_param)
            logger.info(
                "rest: auto pagination picked %s%s",
                name,
                "".join(f" {key}={value!r}" for key, value in options.items()),
            )
            picked = {"type": name, "options": options}
            request = PageRequest(
                request.url,
                dict(request.params),
                request.page,
                request.records,
                {**request.state, "auto": picked},
            )
        return self._delegate(picked["type"], picked["options"]).next(request, response)


BUILTIN_PAGINATORS: list[type[Paginator]] = [
    OffsetPaginator,
    PageNumberPaginator,
    CursorPaginator,
    StartingAfterPaginator,
    NextUrlPaginator,
    LinkHeaderPaginator,
    SinglePagePaginator,
    AutoPaginator,
]
