"""The paginator API: how the REST source asks for one page after another.

A paginator is stateless: it turns the request of one page and that page's response into
the request of the next page, or None when there is none. Everything it needs to continue
travels in the `PageRequest` (its URL, query parameters, and a small JSON-safe `state`), so
the request of the next page is also the checkpoint a killed run resumes from.

A plugin adds a paginator through the `register_paginators` hook::

    class HeaderCursor(Paginator):
        name = "header_cursor"
        options_model = HeaderCursorOptions

        def next(self, request, response):
            token = response.headers.get(self.options.header)
            return request.with_params({self.options.param: token}) if token else None
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class PageRequest:
    """One page to fetch.

    :param url: absolute URL, or a path relative to the client's `base_url`.
    :param params: query parameters (a value of None leaves the parameter out).
    :param page: how many pages were fetched before this one (0 for the first).
    :param records: how many records the pages before this one held.
    :param state: what a paginator keeps between pages (JSON-safe).
    """

    url: str
    params: dict[str, Any] = field(default_factory=dict)
    page: int = 0
    records: int = 0
    state: dict[str, Any] = field(default_factory=dict)

    def with_params(self, params: dict[str, Any], **changes: Any) -> PageRequest:
        """A copy with `params` added (or replaced) and other fields changed."""
        return replace(self, params={**self.params, **params}, **changes)

    def to_checkpoint(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "params": dict(self.params),
            "page": self.page,
            "records": self.records,
            "state": dict(self.state),
        }

    @classmethod
    def from_checkpoint(cls, data: dict[str, Any]) -> PageRequest:
        return cls(
            str(data["url"]),
            dict(data.get("params") or {}),
            int(data.get("page", 0)),
            int(data.get("records", 0)),
            dict(data.get("state") or {}),
        )


@dataclass
class PageResponse:
    """One fetched page: the HTTP response, its parsed body (JSON bodies only) and how many
    records the data selector found in it."""

    response: httpx.Response
    body: Any
    records: int

    @property
    def headers(self) -> httpx.Headers:
        return self.response.headers


class PaginatorOptions(BaseModel):
    """Options every paginator takes: when to stop, besides the paginator's own signal.

    :param max_pages: stop after this many pages.
    :param total_path: a path into the body (`meta.total`) giving the number of records
        of the whole listing: stop once that many were read.
    :param stop_on_empty_page: stop at a page without records. By default (unset) only
        paginators with no next-page signal of their own stop there (`offset`,
        `page_number`); one that is given a next cursor, URL or link follows it, as some
        APIs answer an empty page (all filtered out) in the middle of a listing.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_pages: int | None = Field(default=None, gt=0)
    total_path: str | None = None
    stop_on_empty_page: bool | None = None


class Paginator:
    """Base of every paginator. Subclasses set `name` and `options_model` and implement
    `next`; `first` may set the first page's parameters (an offset of 0, a page size)."""

    name: ClassVar[str]
    options_model: ClassVar[type[PaginatorOptions]] = PaginatorOptions
    #: The paginator computes the next page itself (an offset, a page number) instead of
    #: being told it by the API; such a listing ends at a page that repeats the one before
    #: (an API answering past its end with its last page), which is not loaded again.
    counts_pages: ClassVar[bool] = False

    def __init__(self, options: PaginatorOptions) -> None:
        self.options = options

    def first(self, request: PageRequest) -> PageRequest:
        """The first page's request, from the resource's URL and parameters."""
        return request

    def next(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        """The next page's request after `response` answered `request`, or None at the end."""
        raise NotImplementedError
