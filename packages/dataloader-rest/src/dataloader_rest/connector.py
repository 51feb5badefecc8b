"""The `rest` source: pages of an HTTP API as Arrow batches, one batch per page.

Each batch carries a checkpoint (`state.watermarks["rest"]`): the request to resume from,
and for a child resource the parent page and record it belongs to. A killed run resumes
there; a finished run leaves `request: None`, so the next one starts afresh from the
committed cursor.

Two orders, as the resource's `incremental.order` says:
- `asc` (records listed by the cursor, oldest first): a batch's checkpoint is its own page's
  request, so a resumed run reads that page again and the engine's cursor window drops what
  was loaded (the engine may hold a page's last rows back until the next page is read);
- `desc`/`any`, and every child resource: the engine commits the cursor at the end
  (`reads_in_cursor_order` is False) and a batch's checkpoint is the next page's request;
  so is it under a full read (no cursor), where a page read again would load twice.
A batch whose checkpoint names the next page is a whole page, whatever `batch_size` says.
There the last page's checkpoint says `complete`, so that a run killed before its last
commit (which moves the cursor, or clears a full read's checkpoint) only finishes instead of
reading everything again.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from dataloader import ArrowBatch, BaseConnector, Capabilities, ConnectorError
from dataloader.context import RunContext
from dataloader.incremental import PENDING_CURSOR, window_for
from dataloader.registry import get_registry
from dataloader.state.model import State
from dataloader.state.nanotimestamp import NanoTimestamp
from dataloader_rest.bodies import BodyError, parse_body, records_from
from dataloader_rest.client import RestClient, is_transient
from dataloader_rest.config import (
    ApiKeyAuth,
    IncrementalParams,
    PageSource,
    ParentConfig,
    RestConfig,
)
from dataloader_rest.pages import PageRequest, PageResponse, Paginator
from dataloader_rest.paginators import should_stop
from dataloader_rest.raw import (
    JsonRecords,
    RawRecords,
    Records,
    accelerator,
    leaves_records,
    record_keys,
    same_records,
    split_page,
    table_of,
)
from dataloader_rest.records import json_text, records_to_table
from dataloader_rest.selectors import SelectorError, select

log = logging.getLogger("dataloader.rest")

CHECKPOINT_KEY = "rest"
GROUP_RECORDS = 10_000  # records of consecutive pages sent as one batch, at most
GROUP_SECONDS = 5.0  # …or what came within this long, so that slow APIs commit as they go
_RESUME_REFUSED = {400, 404, 410, 422}


class RestConnector(BaseConnector):
    """Reads one resource of a REST API (see `dataloader_rest.config`)."""

    name: ClassVar[str] = "rest"
    config_model = RestConfig
    capabilities = Capabilities(read=True, incremental=True, resumable=True)

    def __init__(self, config: RestConfig) -> None:
        super().__init__(config)
        self.config: RestConfig = config
        self._client: RestClient | None = None

    def open(self, context: RunContext) -> None:
        super().open(context)
        self._paginators = {
            "resource": _paginator(self.config.resource, "source.resource.paginator"),
        }
        if self.config.resource.parent is not None:
            self._paginators["parent"] = _paginator(
                self.config.resource.parent, "source.resource.parent.paginator"
            )
        self._client = RestClient(self.config.client, context.retries)
        self._native: JsonRecords | None = accelerator()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def is_transient(self, error: BaseException) -> bool:
        return is_transient(error)

    def reads_in_cursor_order(self) -> bool:
        resource = self.config.resource
        order = resource.incremental.order if resource.incremental is not None else "asc"
        return order == "asc" and resource.parent is None

    # -- reading -------------------------------------------------------------------------
    def read_batches(self, state: State) -> Iterator[ArrowBatch]:
        self._check_strategy()
        resource = self.config.resource
        params = {**resource.params, **self._window_params(state)}
        saved = state.watermarks.get(CHECKPOINT_KEY) or {}
        if self._finishing(saved, state):
            # Every page was committed, but not the run's last commit (which moves an
            # unordered read's cursor, or clears a full read's checkpoint): finish that run.
            log.info(f"every page of {resource.path} was read before; finishing that run")
        elif resource.parent is None:
            first = PageRequest(resource.path, params)
            resume = saved.get("request")
            yield from self._resource_pages(first, resume)
        else:
            yield from self._children(resource.parent, params, saved)
        yield ArrowBatch(records_to_table([]), {"checkpoint": self._done()})

    def _resource_pages(
        self,
        first: PageRequest,
        resume: dict[str, Any] | None,
        include: dict[str, Any] | None = None,
        position: dict[str, Any] | None = None,
        finished: dict[str, Any] | None = None,
    ) -> Iterator[ArrowBatch]:
        """The resource's pages from `first` (or from the checkpointed request `resume`), as
        batches with their checkpoints. Under a parent record, `position` is where that
        record is, and `finished` where the read goes on once its pages are all read."""
        resource = self.config.resource
        by_next_page = self._checkpoints_next_page()
        start = None
        if resume is not None:
            start = PageRequest.from_checkpoint(resume)
            log.info(f"resuming {resource.path} at page {start.page + 1}")
        group: list[Records] = []  # the records of pages not yet sent, page by page
        grouped = 0  # …how many
        group_start: PageRequest | None = None
        started = 0.0
        target = min(self._batch_size, GROUP_RECORDS)

        def send(request: PageRequest, following: PageRequest | None) -> Iterator[ArrowBatch]:
            """The group as batches, ending with the page `request`, followed by `following`."""
            assert group_start is not None
            if not by_next_page:  # the group's first page is read again on resume
                checkpoint = {"request": self._saved(group_start)}
            elif following is not None:
                checkpoint = {"parent": position, "request": self._saved(following)}
            elif finished is not None:
                checkpoint = {"parent": finished, "request": None}
            else:  # the last page: a run killed from here on only has to finish
                checkpoint = {
                    "request": None,
                    "parent": None,
                    "complete": True,
                    "read": self._read_kind(),
                }
            checkpoint.setdefault("complete", False)
            metadata = {"checkpoint": {CHECKPOINT_KEY: checkpoint}, "page": request.page + 1}
            table = table_of(group, self._native)
            if by_next_page:
                # The checkpoint names the next page: pages cut into several batches, killed
                # between two of them, would resume past the rows not yet committed.
                yield ArrowBatch(table, metadata)
                return
            for part in _cut(table, self._batch_size):
                yield ArrowBatch(part, metadata)

        request: PageRequest | None = None
        pages = self._walk(resource, "resource", first, start, raw=not include)
        for request, records, following in pages:
            for name, value in (include or {}).items():
                assert not isinstance(records, RawRecords)
                for record in records:
                    if name in record:
                        raise _included_twice(name, request, record)
                    record[name] = value
            if group_start is None:
                group_start, started = request, time.monotonic()
            group.append(records)
            grouped += _count(records)
            # Pages go out in groups of about `target` records: a batch per small page costs
            # the engine and the destination more than the page itself.
            full = grouped >= target or time.monotonic() - started >= GROUP_SECONDS
            if following is None or full:
                yield from send(request, following)
                group, grouped, group_start = [], 0, None
        if group_start is not None and request is not None:  # the listing ended early
            yield from send(request, None)

    def _children(
        self, parent: ParentConfig, params: dict[str, Any], saved: dict[str, Any]
    ) -> Iterator[ArrowBatch]:
        """For each parent record, the resource's pages under the path its fields fill in."""
        resource = self.config.resource
        where = saved.get("parent")
        start = PageRequest.from_checkpoint(where["request"]) if where else None
        skip = int(where.get("index", 0)) if where else 0
        resume = saved.get("request") if where else None
        first_parent = PageRequest(parent.path, dict(parent.params))
        for request, records, following in self._walk(parent, "parent", first_parent, start):
            assert not isinstance(records, RawRecords)
            for index, record in enumerate(records):
                if index < skip:
                    continue
                values = {
                    placeholder: _field(record, path, "source.resource.parent.fields")
                    for placeholder, path in parent.fields.items()
                }
                include = {
                    column: _field(record, path, "source.resource.parent.include")
                    for column, path in parent.include.items()
                }
                first = PageRequest(
                    _fill(resource.path, values, "source.resource.path", quoted=True),
                    {
                        k: _fill(v, values, "source.resource.params", quoted=False)
                        for k, v in params.items()
                    },
                )
                here = {"request": self._saved(request), "index": index}
                if index + 1 < len(records):
                    after = {"request": self._saved(request), "index": index + 1}
                elif following is not None:
                    after = {"request": self._saved(following), "index": 0}
                else:
                    after = None
                yield from self._resource_pages(first, resume, include, here, after)
                resume = None
            skip = 0

    def _walk(
        self,
        source: PageSource,
        role: str,
        first: PageRequest,
        start: PageRequest | None,
        raw: bool = False,
    ) -> Iterator[tuple[PageRequest, Records, PageRequest | None]]:
        """`(request, records, next request or None)` for each page of `source`; with `raw`,
        JSON records the accelerator can take stay text (`RawRecords`)."""
        assert self._client is not None
        paginator = self._paginators[role]
        request = start if start is not None else paginator.first(first)
        selector = source.data_selector
        resuming = start is not None
        previous: bytes | None = None  # the last page's body
        # …and its records (parsed ones copied: `include` adds to the records yielded)
        previous_records: Records | None = None
        native = self._native if raw and source.format == "json" else None
        while request is not None:
            try:
                response = self._client.send(
                    source.method, request.url, request.params, json=source.json_body
                )
            except ConnectorError as exc:
                status = exc.context.get("status")
                if resuming and status in _RESUME_REFUSED:
                    request = self._resume_refused(paginator, first, exc)
                    resuming = False
                    continue
                raise
            resuming = False
            keys = record_keys(selector) if native is not None else None
            if keys is not None and not leaves_records(paginator, request, keys):
                keys = None
            split = split_page(native, response, keys) if native and keys is not None else None
            records: Records
            if split is not None:
                body, records = split
            else:
                try:
                    body = parse_body(response, source.format)
                except BodyError as exc:
                    raise _on_page(exc, request, source) from None
                try:
                    records, selector = records_from(body, source.format, selector)
                except SelectorError as exc:
                    raise _shape_error(response, source, body, exc) from None
                records = self._as_text(native, response, records, selector, paginator, request)
            count = _count(records)
            if (
                count
                and paginator.counts_pages
                and previous_records is not None
                and (response.content == previous or same_records(records, previous_records))
            ):
                # Records alike in a body not alike: the API echoes the page asked for.
                log.warning(
                    f"page {request.page + 1} of {source.path} repeats the page before it (an "
                    "API that answers past its last page with the last one): its records are "
                    "not loaded again, and the listing ends there"
                )
                return
            if paginator.counts_pages:
                previous = response.content
                previous_records = (
                    records
                    if isinstance(records, RawRecords)
                    else [dict(record) for record in records]
                )
            page = PageResponse(response, body, count)
            following = None
            if not should_stop(paginator.options, request, page, request.records + count):
                following = paginator.next(request, page)
                if following is not None and not count and _same_page(following, request):
                    # An empty page pointing at itself: the API has nothing more for now.
                    log.info(
                        f"page {request.page + 1} of {source.path} is empty and names "
                        "itself as the next page: the listing ends there"
                    )
                    following = None
                if following is not None:
                    following = _counted(following, request, count)
            yield request, records, following
            request = following

    @staticmethod
    def _as_text(
        native: JsonRecords | None,
        response: httpx.Response,
        records: list[dict[str, Any]],
        selector: str | None,
        paginator: Paginator,
        request: PageRequest,
    ) -> Records:
        """A first page's parsed records as text, once its selector is known (the rest of
        its body stays parsed whole: the paginator may be choosing from it)."""
        keys = record_keys(selector) if native is not None and records else None
        if native is None or keys is None or not leaves_records(paginator, request, keys):
            return records
        split = split_page(native, response, keys)
        if split is None or split[1].count != len(records):
            return records
        return split[1]

    def _check_strategy(self) -> None:
        incremental = self.context.incremental if self.context is not None else None
        if incremental is not None and incremental.strategy != "cursor":
            raise ConnectorError(
                f"the rest source reads incrementally by a cursor field only, not by "
                f"{incremental.strategy!r}",
                key="source.incremental.strategy",
                value=incremental.strategy,
                expected="`strategy: cursor` with a `cursor_column`, or no `incremental`",
            )

    def _has_cursor(self) -> bool:
        incremental = self.context.incremental if self.context is not None else None
        return incremental is not None and incremental.strategy == "cursor"

    def _checkpoints_next_page(self) -> bool:
        """Whether a batch's checkpoint names the page after its own: when the records are
        not listed in cursor order, or the run has no cursor (a page read again could not
        be told from a new one). Otherwise it names its own page, which a resumed run reads
        again and the engine's cursor window drops what was loaded of it."""
        return not (self._has_cursor() and self.reads_in_cursor_order())

    def _finishing(self, saved: dict[str, Any], state: State) -> bool:
        """Whether the last run read every page but was killed before its last commit: that
        commit clears a full read's checkpoint, and commits an unordered read's pending
        cursor (`PENDING_CURSOR` goes from the watermarks)."""
        if not (saved.get("complete") and self._checkpoints_next_page()):
            return False
        if saved.get("read") != self._read_kind():
            return False  # written by a read of another kind (the recipe changed since)
        return not self._has_cursor() or PENDING_CURSOR in state.watermarks

    def _read_kind(self) -> str:
        """What a `complete` checkpoint was written by: a full read, or a cursor read."""
        return "cursor" if self._has_cursor() else "full"

    def _done(self) -> dict[str, Any]:
        """The checkpoint of a read that has read every page (see `_finishing`)."""
        return {
            CHECKPOINT_KEY: {
                "request": None,
                "parent": None,
                "complete": self._checkpoints_next_page(),
                "read": self._read_kind(),
            }
        }

    def _resume_refused(
        self, paginator: Paginator, first: PageRequest, error: ConnectorError
    ) -> PageRequest:
        if not self._checkpoints_next_page() or (self.context and self.context.merge_keys):
            log.warning(
                f"the API refused the checkpointed page ({error.problem.message}); reading "
                "again from the committed cursor (rows loaded already are skipped)"
            )
            return paginator.first(first)
        raise ConnectorError(
            "the API refused the page this run was to resume from, and this resource is not "
            "listed in cursor order, so reading it again from the start would load rows twice",
            key="source.resource.incremental.order",
            expected="`write_mode: merge` (rows read twice are kept once), or `--full-refresh`",
        ) from error

    def _saved(self, request: PageRequest) -> dict[str, Any]:
        """`request` as its checkpoint keeps it: without the API key of `auth` (an API may
        echo it in its next links), which the client adds to every request anyway."""
        saved = request.to_checkpoint()
        auth = self.config.client.auth
        if isinstance(auth, ApiKeyAuth) and auth.location == "query":
            saved["params"].pop(auth.name, None)
            url = httpx.URL(saved["url"])
            if auth.name in url.params:
                saved["url"] = str(url.copy_remove_param(auth.name))
        return saved

    @property
    def _batch_size(self) -> int:
        return self.context.batch_size if self.context is not None else 10_000

    def _window_params(self, state: State) -> dict[str, Any]:
        """The query parameters carrying the committed cursor (and `end_value`)."""
        settings = self.config.resource.incremental
        incremental = self.context.incremental if self.context is not None else None
        if settings is None or incremental is None or incremental.strategy != "cursor":
            return {}
        window = window_for(incremental, state.cursor_values, state.cursor_boundaries)
        params: dict[str, Any] = {}
        lower = window.lower
        if lower is not None and window.lag and window.lag_applies:
            lower = _minus(lower, window.lag)
        elif lower is not None and window.lag_applies and not settings.inclusive:
            lower = _just_below(lower, settings)  # a strict `>` reads the rows at the value
        if lower is not None:
            params[settings.param] = _format(lower, settings)
        if settings.end_param is not None and window.upper is not None:
            params[settings.end_param] = _format(window.upper, settings)
        return params


def _paginator(source: PageSource, key: str) -> Paginator:
    config = source.paginator
    name = config.type if config is not None else "auto"
    registry = get_registry()
    try:
        registration = registry.paginator(name)
    except Exception as exc:
        raise ConnectorError(
            f"no paginator named {name!r}",
            key=f"{key}.type",
            value=name,
            expected=f"one of {', '.join(registry.names('paginator'))}",
        ) from exc
    options = config.options() if config is not None else {}
    try:
        validated = registration.config_model.model_validate(options)
    except ValueError as exc:
        raise ConnectorError(
            f"paginator {name!r}: {exc}", key=key, expected="the paginator's documented keys"
        ) from None
    return registration.create(validated)


def _count(records: Records) -> int:
    return records.count if isinstance(records, RawRecords) else len(records)


def _counted(following: PageRequest, request: PageRequest, records: int) -> PageRequest:
    return replace(following, page=request.page + 1, records=request.records + records)


def _same_page(following: PageRequest, request: PageRequest) -> bool:
    return following.url == request.url and following.params == request.params


def _cut(table: Any, size: int) -> Iterator[Any]:
    if table.num_rows <= size:
        yield table
        return
    for offset in range(0, table.num_rows, size):
        yield table.slice(offset, size)


def _field(record: dict[str, Any], path: str, key: str) -> Any:
    try:
        return select(record, path)
    except SelectorError:
        raise ConnectorError(
            f"a parent record has no field {path!r}",
            key=key,
            value=path,
            expected=f"one of {sorted(record)}",
        ) from None


def _fill(template: Any, values: dict[str, Any], key: str, *, quoted: bool) -> Any:
    """`template` with the parent's `values` in its placeholders: URL-encoded (`/`
    included) when `quoted` (a path), as they are otherwise (a query parameter, which the
    client encodes when it sends it: encoded here too, the API would get `a%20b`)."""
    if not isinstance(template, str) or "{" not in template:
        return template
    filled = {
        name: quote(str(value), safe="") if quoted else str(value) for name, value in values.items()
    }
    try:
        return template.format_map(filled)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConnectorError(
            f"{template!r} names a placeholder no parent field fills ({exc})",
            key=key,
            value=template,
            expected=f"placeholders among {sorted(values)}",
        ) from None


def _included_twice(name: str, request: PageRequest, record: dict[str, Any]) -> ConnectorError:
    return ConnectorError(
        f"`include` would write the parent's value over the child records' own {name!r} "
        f"(the records of page {request.page + 1} of {httpx.URL(request.url).path} have one)",
        key="source.resource.parent.include",
        value=name,
        expected=f"a column name the child records do not use (they have {sorted(record)})",
    )


def _on_page(error: BodyError, request: PageRequest, source: PageSource) -> BodyError:
    """`error` naming the page (the URL it names leaves the query out, secrets and all)."""
    problem = error.problem
    return BodyError(
        f"page {request.page + 1} of {source.path}: {problem.message}",
        key=problem.key,
        expected=problem.expected,
        context={**error.context, "page": request.page + 1},
    )


def _shape_error(
    response: httpx.Response, source: PageSource, body: Any, error: SelectorError
) -> ConnectorError:
    sample = body if not isinstance(body, dict) else {k: body[k] for k in list(body)[:8]}
    text = json_text(sample)
    if len(text) > 300:
        text = text[:300] + "…"
    return ConnectorError(
        f"the response of {response.request.method} {response.request.url.path} has changed "
        f"shape: {error}. A sample of the body: {text}",
        key="source.resource.data_selector",
        value=source.data_selector,
        expected="a data_selector that finds the records in every page",
    )


def _minus(value: Any, lag: float) -> Any:
    if isinstance(value, NanoTimestamp):
        return replace(value, nanos=value.nanos - round(lag * 1_000_000_000))
    if isinstance(value, datetime):
        return value - timedelta(seconds=lag)
    if isinstance(value, date):
        return value - timedelta(days=max(1, int(lag // 86400)))
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value - int(lag)
    if isinstance(value, float):
        return value - lag
    if isinstance(value, Decimal):
        return value - Decimal(str(lag))
    return value


_TIME_STEP = {  # the smallest step of a time as each `format` writes it, in nanoseconds
    "iso": 1_000,
    "value": 1_000,
    "unix": 1_000_000_000,
    "unix_ms": 1_000_000,
    "date": 86_400_000_000_000,
}


def _just_below(value: Any, settings: IncrementalParams) -> Any:
    """The value just below `value` as the API is sent it (`format`): what a strict (`>`)
    parameter takes to read the rows at `value` as well."""
    step = _TIME_STEP[settings.format]
    if isinstance(value, NanoTimestamp):
        return replace(value, nanos=value.nanos - (1 if settings.format == "iso" else step))
    if isinstance(value, datetime):
        return value - timedelta(microseconds=step // 1_000)
    if isinstance(value, date):
        return value - timedelta(days=1)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value - 1
    if isinstance(value, Decimal):
        return value - Decimal(1).scaleb(value.as_tuple().exponent)
    if isinstance(value, float):
        return math.nextafter(value, -math.inf)
    log.warning(
        f"`inclusive: false`: a {type(value).__name__} cursor has no value just below "
        f"{value!r}; rows that arrive later with that value will not be read"
    )
    return value


def _format(value: Any, settings: IncrementalParams) -> Any:
    """A cursor value as the API takes it."""
    kind = settings.format
    if isinstance(value, NanoTimestamp):
        if kind in ("iso", "value"):
            text = value.isoformat()  # all nine digits: the API's own precision
            return text[:-6] + "Z" if text.endswith("+00:00") else text
        seconds = value.nanos // 1_000_000_000
        if kind == "unix":
            return seconds
        if kind == "unix_ms":
            return value.nanos // 1_000_000
        return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)).date().isoformat()
    if isinstance(value, datetime):
        if kind == "unix":
            return math.floor(value.timestamp())
        if kind == "unix_ms":
            return math.floor(value.timestamp() * 1000)
        if kind == "date":
            return value.date().isoformat()
        if kind == "iso":
            text = value.isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, date) and kind in ("iso", "date"):
        return value.isoformat()
    return value
