"""A local demo REST API for tests, examples and benchmarks.

`serve_api()` starts a Starlette app under uvicorn on 127.0.0.1 (a free port) in a
background thread and yields its `DemoApi`: the records it serves, the credentials it
accepts, a log of the requests it got, and fault knobs (429, 503, dropped connections,
slow answers) that tests set between requests::

    with serve_api() as api:
        api.rate_limit_burst(2, retry_after="1")
        httpx.get(f"{api.base_url}/offset/items")  # 429

Needs the `testing` extra (starlette, uvicorn); it does not need pytest.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import csv
import hmac
import io
import json
import math
import random
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from dataloader import ConnectorError

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "DemoApi",
    "DemoServer",
    "Killed",
    "LoggedRequest",
    "create_app",
    "format_time",
    "killed_at",
    "make_customers",
    "make_records",
    "run_server",
    "serve_api",
    "serve_app",
]

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
START_TIMEOUT = 10.0

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_STRIPE_EPOCH = int(_EPOCH.timestamp())
_NAMES = ["Ada", "Zoë", "東京", "José", "Ørsted", "Łódź", "🚀 Rocket", "Ünal", "Bob", "Émilie"]
_CITIES = ["Berlin", "Zürich", "São Paulo", "東京", "Kraków", "Reykjavík", "Lagos"]
_TAGS = ["new", "vip", "red", "green", "blue", "beta"]
_CSV_COLUMNS = ["id", "name", "amount", "updated_at"]


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds: `2024-01-01T00:00:00.000001Z`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _github_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Clock:
    """Increasing timestamps from a seeded generator; `tie` may repeat the last one."""

    def __init__(self, rng: random.Random, start: datetime) -> None:
        self.rng = rng
        self.now = start
        self.started = False

    def next(self, *, tie_chance: float = 0.0) -> datetime:
        if self.started and self.rng.random() < tie_chance:
            return self.now
        if self.started:
            self.now += timedelta(
                seconds=self.rng.randint(1, 3600), microseconds=self.rng.randint(1, 999_999)
            )
        else:
            self.now += timedelta(microseconds=1)
            self.started = True
        return self.now


class _RecordFactory:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.clock = _Clock(self.rng, _EPOCH)
        self.next_id = 1

    def make(self, n: int) -> list[dict[str, Any]]:
        # A batch's first record never ties, so added records come after every earlier one.
        return [self._record(0.25 if i else 0.0) for i in range(n)]

    def _record(self, tie_chance: float) -> dict[str, Any]:
        rng = self.rng
        record_id = self.next_id
        self.next_id += 1
        address = (
            None
            if rng.random() < 0.2
            else {"city": rng.choice(_CITIES), "zip": f"{rng.randint(0, 99999):05d}"}
        )
        return {
            "id": record_id,
            "name": f"{rng.choice(_NAMES)} {record_id}",
            "amount": rng.randint(0, 1_000_000) / 100,
            "updated_at": format_time(self.clock.next(tie_chance=tie_chance)),
            "tags": rng.sample(_TAGS, rng.randint(0, 3)),
            "address": address,
        }


def make_records(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """`n` deterministic records with ids 1..n and `updated_at` increasing with the id
    (about a quarter share their predecessor's timestamp)."""
    return _RecordFactory(seed).make(n)


class _CustomerFactory:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed + 1_000_003)
        self.created = _STRIPE_EPOCH
        self.count = 0

    def make(self, n: int) -> list[dict[str, Any]]:
        return [self._customer() for _ in range(n)]

    def _customer(self) -> dict[str, Any]:
        rng = self.rng
        self.count += 1
        if self.count == 1 or rng.random() >= 0.2:
            self.created += rng.randint(1, 86_400)
        suffix = "".join(rng.choices(string.ascii_letters + string.digits, k=14))
        name = f"{rng.choice(_NAMES)} Customer {self.count}"
        address = (
            None
            if rng.random() < 0.3
            else {
                "city": rng.choice(_CITIES),
                "country": rng.choice(["DE", "CH", "BR", "JP", "PL"]),
                "line1": f"{rng.randint(1, 200)} Main St",
                "postal_code": f"{rng.randint(0, 99999):05d}",
            }
        )
        return {
            "id": f"cus_{suffix}",
            "object": "customer",
            "created": self.created,
            "email": f"customer{self.count}@example.com",
            "name": name,
            "metadata": {"plan": rng.choice(["free", "pro"])} if rng.random() < 0.5 else {},
            "address": address,
            "balance": rng.randint(-5000, 5000),
        }


def make_customers(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """`n` deterministic Stripe-shaped customers, `created` increasing (some ties)."""
    return _CustomerFactory(seed).make(n)


_GITHUB_ORG = "acme"
_GITHUB_REPOS = [("widgets", 23), ("gadgets", 4), ("empty", 0)]
_GITHUB_USERS = [("octocat", 583231), ("zoë-dev", 1001), ("hubot", 480938)]
_GITHUB_LABELS = ["bug", "enhancement", "question", "good first issue"]


def _make_github(seed: int) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Repos of the org `acme`, and each repo's issues (with their comments under
    the private key `_comments`)."""
    rng = random.Random(seed + 2_000_003)
    clock = _Clock(rng, _EPOCH)
    repos: list[dict[str, Any]] = []
    issues: dict[str, list[dict[str, Any]]] = {}
    issue_id = 10_000
    comment_id = 50_000
    for index, (name, count) in enumerate(_GITHUB_REPOS):
        full_name = f"{_GITHUB_ORG}/{name}"
        repo_issues: list[dict[str, Any]] = []
        for number in range(1, count + 1):
            issue_id += 1
            created = clock.next(tie_chance=0.1)
            updated = created + timedelta(seconds=rng.choice([0, 60, 3600, 86_400 * 3]))
            login, user_id = rng.choice(_GITHUB_USERS)
            comments: list[dict[str, Any]] = []
            for _ in range(rng.randint(0, 3)):
                comment_id += 1
                c_login, c_user_id = rng.choice(_GITHUB_USERS)
                at = _github_time(created + timedelta(minutes=rng.randint(1, 600)))
                comments.append(
                    {
                        "id": comment_id,
                        "body": f"Comment {comment_id} on #{number} ✓",
                        "user": {"login": c_login, "id": c_user_id},
                        "created_at": at,
                        "updated_at": at,
                    }
                )
            repo_issues.append(
                {
                    "id": issue_id,
                    "number": number,
                    "title": f"Issue {number} of {name}: {rng.choice(_NAMES)}",
                    "state": rng.choice(["open", "closed"]),
                    "user": {"login": login, "id": user_id},
                    "labels": [{"name": label} for label in rng.sample(_GITHUB_LABELS, 2)][
                        : rng.randint(0, 2)
                    ],
                    "created_at": _github_time(created),
                    "updated_at": _github_time(updated),
                    "comments": len(comments),
                    "_comments": comments,
                }
            )
        issues[full_name] = repo_issues
        repos.append(
            {
                "id": 700 + index,
                "name": name,
                "full_name": full_name,
                "updated_at": _github_time(_EPOCH + timedelta(days=index)),
            }
        )
    return repos, issues


@dataclass(frozen=True)
class LoggedRequest:
    """One request the demo API got (header names in lower case)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    http_version: str = "1.1"


@dataclass(frozen=True)
class _Fault:
    kind: Literal["rate_limit", "unavailable", "drop", "slow"]
    retry_after: str | None = None
    seconds: float = 0.0


class DemoApi:
    """The demo API's data, credentials, request log and fault knobs.

    Tests change it between requests; every method holds `lock`, so it is safe while the
    server's thread serves requests. Faults form one queue, taken one per request to a
    data endpoint (every endpoint except `/oauth/token`) in the order they were asked for.

    :param n: how many records (`records`) to start with.
    :param customers: how many Stripe-shaped customers to start with.
    :param seed: the seed of every generated value.
    """

    def __init__(self, n: int = 250, *, customers: int = 37, seed: int = 0) -> None:
        self.lock = threading.RLock()
        self.base_url = ""
        self._records = _RecordFactory(seed)
        self.records: list[dict[str, Any]] = self._records.make(n)
        self._customers = _CustomerFactory(seed)
        self.customers: list[dict[str, Any]] = self._customers.make(customers)
        self.github_repos, self.github_issues = _make_github(seed)
        self.requests: list[LoggedRequest] = []
        self.api_key = "demo-api-key"
        self.bearer_token = "demo-bearer-token"
        self.basic_user = "demo-user"
        self.basic_password = "demo-password"
        self.client_id = "demo-client"
        self.client_secret = "demo-client-secret"
        self.stripe_key = "sk_test_demo4eC39HqLyjWDarjtT1zdp7dc"
        self.token_lifetime = 3600
        self.tokens_issued = 0
        self.token_requests: list[dict[str, str]] = []
        self.shape_changed = False
        self._tokens: dict[str, float] = {}
        self._faults: deque[_Fault] = deque()

    # Data.

    def add_records(self, k: int) -> list[dict[str, Any]]:
        """Append `k` records with new ids and later `updated_at`; returns them."""
        with self.lock:
            new = self._records.make(k)
            self.records.extend(new)
            return copy.deepcopy(new)

    def update_record(self, record_id: int, **changes: Any) -> dict[str, Any]:
        """Apply `changes` to a record and move its `updated_at` past every other one."""
        with self.lock:
            for record in self.records:
                if record["id"] == record_id:
                    record.update(changes)
                    record["updated_at"] = format_time(self._records.clock.next())
                    return copy.deepcopy(record)
        raise KeyError(f"no record with id {record_id}")

    def ordered_records(self) -> list[dict[str, Any]]:
        """Every record in the list endpoints' order: ascending `(updated_at, id)`."""
        with self.lock:
            return copy.deepcopy(sorted(self.records, key=_record_key))

    def add_customers(self, k: int) -> list[dict[str, Any]]:
        """Add `k` customers created after every existing one; returns them."""
        with self.lock:
            new = self._customers.make(k)
            self.customers.extend(new)
            return copy.deepcopy(new)

    def change_shape(self, changed: bool = True) -> None:
        """Make `/shape/items` answer `{"rows": [...]}` instead of `{"items": ..., "total": ...}`."""
        with self.lock:
            self.shape_changed = changed

    # Request log.

    def reset_log(self) -> None:
        """Forget the requests logged so far."""
        with self.lock:
            self.requests.clear()

    def requests_to(self, path: str) -> list[LoggedRequest]:
        """The logged requests whose path is `path`."""
        with self.lock:
            return [request for request in self.requests if request.path == path]

    def _log(self, request: Request) -> None:
        logged = LoggedRequest(
            request.method,
            request.url.path,
            dict(request.query_params),
            {key.lower(): value for key, value in request.headers.items()},
            request.scope.get("http_version", "1.1"),
        )
        with self.lock:
            self.requests.append(logged)

    # Faults.

    def rate_limit_burst(self, n: int, retry_after: str | None = "1") -> None:
        """The next `n` data requests get 429 with this `Retry-After` (seconds or an HTTP
        date; None sends no header)."""
        self._add_faults(n, _Fault("rate_limit", retry_after=retry_after))

    def unavailable(self, n: int, retry_after: str | None = "1") -> None:
        """The next `n` data requests get 503 with this `Retry-After`."""
        self._add_faults(n, _Fault("unavailable", retry_after=retry_after))

    def drop(self, n: int) -> None:
        """The next `n` data requests get a response cut short: headers announcing a body,
        part of it, then the connection closed (httpx raises `RemoteProtocolError`)."""
        self._add_faults(n, _Fault("drop"))

    def slow(self, n: int, seconds: float) -> None:
        """The next `n` data responses start only after `seconds` (or when the client
        disconnects), so a client with a shorter read timeout gets `ReadTimeout`."""
        self._add_faults(n, _Fault("slow", seconds=seconds))

    def pending_faults(self) -> int:
        """How many faults are still waiting for a request."""
        with self.lock:
            return len(self._faults)

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def _add_faults(self, n: int, fault: _Fault) -> None:
        with self.lock:
            self._faults.extend([fault] * n)

    def _take_fault(self) -> _Fault | None:
        with self.lock:
            return self._faults.popleft() if self._faults else None

    # OAuth tokens.

    def expire_tokens(self) -> None:
        """Make every token issued so far invalid."""
        with self.lock:
            self._tokens.clear()

    def _issue_token(self, form: dict[str, str]) -> str:
        token = secrets.token_urlsafe(24)
        with self.lock:
            self._tokens[token] = time.time() + self.token_lifetime
            self.tokens_issued += 1
            self.token_requests.append({k: v for k, v in form.items() if k != "client_secret"})
        return token

    def _token_valid(self, token: str) -> bool:
        with self.lock:
            expiry = self._tokens.get(token)
        return expiry is not None and time.time() < expiry


def _record_key(record: dict[str, Any]) -> tuple[str, int]:
    # Every `updated_at` has the same fixed-width UTC format, so text order is time order.
    return (record["updated_at"], record["id"])


# Request helpers.


class _HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _int_param(request: Request, name: str, default: int, minimum: int = 0) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _HttpError(400, f"{name} must be an integer") from None
    if value < minimum:
        raise _HttpError(400, f"{name} must be at least {minimum}")
    return value


def _page_size(request: Request, name: str) -> int:
    return min(_int_param(request, name, DEFAULT_PAGE_SIZE, minimum=1), MAX_PAGE_SIZE)


def _parse_time(text: str, name: str) -> datetime:
    try:
        if len(text) == 10:
            value = datetime.combine(date.fromisoformat(text), datetime.min.time())
        else:
            value = datetime.fromisoformat(text)
    except ValueError:
        raise _HttpError(400, f"{name} must be an RFC 3339 time") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _time_bound(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    return None if raw is None or raw == "" else _parse_time(raw, name)


def _listing(api: DemoApi, request: Request) -> list[dict[str, Any]]:
    """Records within `since`/`until` (both inclusive), ascending `(updated_at, id)`;
    the dicts are the live records: copy them under `api.lock` before they leave."""
    since = _time_bound(request, "since")
    until = _time_bound(request, "until")
    low = format_time(since) if since else None
    high = format_time(until) if until else None
    with api.lock:
        return sorted(
            (
                record
                for record in api.records
                if (low is None or record["updated_at"] >= low)
                and (high is None or record["updated_at"] <= high)
            ),
            key=_record_key,
        )


def _offset_page(api: DemoApi, request: Request) -> tuple[list[dict[str, Any]], int]:
    offset = _int_param(request, "offset", 0)
    limit = _page_size(request, "limit")
    with api.lock:
        listing = _listing(api, request)
        return copy.deepcopy(listing[offset : offset + limit]), len(listing)


def _numbered_page(
    api: DemoApi, request: Request, rows: list[dict[str, Any]] | None = None
) -> tuple[list[dict[str, Any]], int, int]:
    """A `page`/`per_page` page (pages start at 1): its rows, the page and the last page."""
    page = _int_param(request, "page", 1, minimum=1)
    per_page = _page_size(request, "per_page")
    with api.lock:
        listing = _listing(api, request) if rows is None else rows
        last = math.ceil(len(listing) / per_page)
        return copy.deepcopy(listing[(page - 1) * per_page : page * per_page]), page, last


def _encode_cursor(record_id: int) -> str:
    return base64.urlsafe_b64encode(str(record_id).encode()).decode()


def _after_cursor(api: DemoApi, request: Request, name: str) -> tuple[list[dict[str, Any]], bool]:
    """The page after the record the opaque cursor `name` names, and whether more follow."""
    limit = _page_size(request, "limit")
    token = request.query_params.get(name)
    with api.lock:
        listing = _listing(api, request)
        if token:
            try:
                record_id = int(base64.urlsafe_b64decode(token.encode()).decode())
            except (ValueError, binascii.Error):
                raise _HttpError(400, f"invalid {name}") from None
            last = next((r for r in api.records if r["id"] == record_id), None)
            if last is None:
                raise _HttpError(400, f"invalid {name}")
            key = _record_key(last)
            listing = [record for record in listing if _record_key(record) > key]
        return copy.deepcopy(listing[:limit]), len(listing) > limit


def _link_header(request: Request, page: int, last: int) -> str | None:
    if last < 1:
        return None
    links = []
    if page < last:
        links.append((page + 1, "next"))
    links.append((last, "last"))
    if page > 1:
        links.extend([(1, "first"), (min(page - 1, last), "prev")])
    return ", ".join(
        f'<{request.url.include_query_params(page=number)}>; rel="{rel}"' for number, rel in links
    )


def _link_response(request: Request, rows: list[dict[str, Any]], page: int, last: int) -> Response:
    link = _link_header(request, page, last)
    return JSONResponse(rows, headers={"Link": link} if link else None)


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (ValueError, binascii.Error):
        return None
    return (user, password) if sep else None


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _unauthorized(scheme: str) -> _HttpError:
    return _HttpError(401, "unauthorized", {"WWW-Authenticate": scheme})


# Endpoints. Each takes the current DemoApi and the request.


def _offset_items(api: DemoApi, request: Request) -> Response:
    rows, total = _offset_page(api, request)
    return JSONResponse({"items": rows, "total": total})


def _page_items(api: DemoApi, request: Request) -> Response:
    rows, page, last = _numbered_page(api, request)
    return JSONResponse({"data": rows, "page": page, "total_pages": last})


def _cursor_items(api: DemoApi, request: Request) -> Response:
    rows, more = _after_cursor(api, request, "cursor")
    next_cursor = _encode_cursor(rows[-1]["id"]) if more else None
    return JSONResponse({"results": rows, "next_cursor": next_cursor})


def _nexturl_items(api: DemoApi, request: Request) -> Response:
    rows, page, last = _numbered_page(api, request)
    following = str(request.url.include_query_params(page=page + 1)) if page < last else None
    return JSONResponse({"data": rows, "links": {"next": following}})


def _link_items(api: DemoApi, request: Request) -> Response:
    rows, page, last = _numbered_page(api, request)
    return _link_response(request, rows, page, last)


def _header_items(api: DemoApi, request: Request) -> Response:
    rows, more = _after_cursor(api, request, "after")
    headers = {"X-Next-Cursor": _encode_cursor(rows[-1]["id"])} if more else None
    return JSONResponse(rows, headers=headers)


def _jsonl_items(api: DemoApi, request: Request) -> Response:
    rows, _ = _offset_page(api, request)
    body = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return Response(body, media_type="application/x-ndjson")


def _csv_items(api: DemoApi, request: Request) -> Response:
    rows, _ = _offset_page(api, request)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    for row in rows:
        writer.writerow([row["id"], row["name"], f"{row['amount']:.2f}", row["updated_at"]])
    return Response(out.getvalue(), media_type="text/csv")


def _shape_items(api: DemoApi, request: Request) -> Response:
    rows, total = _offset_page(api, request)
    with api.lock:
        changed = api.shape_changed
    return JSONResponse({"rows": rows} if changed else {"items": rows, "total": total})


def _apikey_items(api: DemoApi, request: Request) -> Response:
    given = request.headers.get("x-api-key") or request.query_params.get("api_key")
    if not _same(given, api.api_key):
        raise _unauthorized("ApiKey")
    return _offset_items(api, request)


def _bearer_items(api: DemoApi, request: Request) -> Response:
    if not _same(_bearer(request), api.bearer_token):
        raise _unauthorized("Bearer")
    return _offset_items(api, request)


def _basic_items(api: DemoApi, request: Request) -> Response:
    given = _basic(request)
    if given is None or not (
        _same(given[0], api.basic_user) and _same(given[1], api.basic_password)
    ):
        raise _unauthorized('Basic realm="demo"')
    return _offset_items(api, request)


def _oauth_items(api: DemoApi, request: Request) -> Response:
    token = _bearer(request)
    if token is None or not api._token_valid(token):
        raise _unauthorized('Bearer error="invalid_token"')
    return _offset_items(api, request)


async def _oauth_token(api: DemoApi, request: Request) -> Response:
    form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    if form.get("grant_type") != "client_credentials":
        return JSONResponse({"error": "unsupported_grant_type"}, 400)
    given = _basic(request) or (form.get("client_id"), form.get("client_secret"))
    if not (_same(given[0], api.client_id) and _same(given[1], api.client_secret)):
        return JSONResponse(
            {"error": "invalid_client"}, 401, headers={"WWW-Authenticate": 'Basic realm="token"'}
        )
    token = api._issue_token(form)
    body: dict[str, Any] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": api.token_lifetime,
    }
    if form.get("scope"):
        body["scope"] = form["scope"]
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def _github_repos(api: DemoApi, request: Request) -> Response:
    org = request.path_params["org"]
    repos = [repo for repo in api.github_repos if repo["full_name"].startswith(f"{org}/")]
    if not repos:
        raise _HttpError(404, "Not Found")
    rows, page, last = _numbered_page(api, request, repos)
    return _link_response(request, rows, page, last)


def _github_repo_issues(api: DemoApi, request: Request) -> list[dict[str, Any]]:
    full_name = f"{request.path_params['owner']}/{request.path_params['repo']}"
    issues = api.github_issues.get(full_name)
    if issues is None:
        raise _HttpError(404, "Not Found")
    return issues


def _github_issues(api: DemoApi, request: Request) -> Response:
    issues = _github_repo_issues(api, request)
    state = request.query_params.get("state", "open")
    sort = request.query_params.get("sort", "created")
    direction = request.query_params.get("direction", "desc")
    if state not in ("open", "closed", "all") or sort not in ("created", "updated", "comments"):
        raise _HttpError(422, "Validation Failed")
    if direction not in ("asc", "desc"):
        raise _HttpError(422, "Validation Failed")
    since = _time_bound(request, "since")
    selected = [
        issue
        for issue in issues
        if (state == "all" or issue["state"] == state)
        and (since is None or _parse_time(issue["updated_at"], "updated_at") >= since)
    ]
    field = {"created": "created_at", "updated": "updated_at", "comments": "comments"}[sort]
    selected.sort(key=lambda issue: (issue[field], issue["number"]), reverse=direction == "desc")
    public = [{k: v for k, v in issue.items() if k != "_comments"} for issue in selected]
    rows, page, last = _numbered_page(api, request, public)
    return _link_response(request, rows, page, last)


def _github_comments(api: DemoApi, request: Request) -> Response:
    issues = _github_repo_issues(api, request)
    try:
        number = int(request.path_params["number"])
    except ValueError:
        raise _HttpError(404, "Not Found") from None
    issue = next((issue for issue in issues if issue["number"] == number), None)
    if issue is None:
        raise _HttpError(404, "Not Found")
    rows, page, last = _numbered_page(api, request, issue["_comments"])
    return _link_response(request, rows, page, last)


def _stripe_customers(api: DemoApi, request: Request) -> Response:
    given = _bearer(request)
    if given is None and (basic := _basic(request)) is not None:
        given = basic[0]
    if not _same(given, api.stripe_key):
        body = {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}
        return JSONResponse(body, 401, headers={"WWW-Authenticate": 'Bearer realm="Stripe"'})
    limit = _page_size(request, "limit")
    bounds = {op: _int_param(request, f"created[{op}]", -1) for op in ("gt", "gte", "lt", "lte")}
    with api.lock:
        ordered = sorted(
            enumerate(api.customers), key=lambda pair: (pair[1]["created"], pair[0]), reverse=True
        )
        listing = [
            customer
            for _, customer in ordered
            if (bounds["gt"] < 0 or customer["created"] > bounds["gt"])
            and (bounds["gte"] < 0 or customer["created"] >= bounds["gte"])
            and (bounds["lt"] < 0 or customer["created"] < bounds["lt"])
            and (bounds["lte"] < 0 or customer["created"] <= bounds["lte"])
        ]
        starting_after = request.query_params.get("starting_after")
        if starting_after:
            index = next(
                (i for i, customer in enumerate(listing) if customer["id"] == starting_after),
                None,
            )
            if index is None:
                body = {
                    "error": {
                        "type": "invalid_request_error",
                        "message": "No such customer",
                        "param": "starting_after",
                    }
                }
                return JSONResponse(body, 400)
            listing = listing[index + 1 :]
        rows = copy.deepcopy(listing[:limit])
    return JSONResponse(
        {"object": "list", "data": rows, "has_more": len(listing) > limit, "url": "/v1/customers"}
    )


Handler = Callable[[DemoApi, Request], Response | Awaitable[Response]]


class _DroppedResponse(Response):
    """Announces a body, sends part of it, and returns: the server then closes the
    connection mid-response, which is what a client sees of a dropped connection."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"items": [', "more_body": True})


async def _wait_unless_disconnected(request: Request, seconds: float) -> None:
    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    with suppress(TimeoutError):
        await asyncio.wait_for(disconnected(), timeout=seconds)


async def _apply_fault(fault: _Fault, request: Request) -> Response | None:
    """The response a fault gives instead of the endpoint's, or None to go on to it."""
    if fault.kind == "slow":
        await _wait_unless_disconnected(request, fault.seconds)
        return None
    if fault.kind == "drop":
        return _DroppedResponse()
    status, error = (429, "rate limited") if fault.kind == "rate_limit" else (503, "unavailable")
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
    return JSONResponse({"error": error}, status, headers=headers)


def _endpoint(
    get_api: Callable[[], DemoApi], handler: Handler, *, faults: bool = True
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        api = get_api()
        api._log(request)
        if faults and (fault := api._take_fault()) is not None:
            replaced = await _apply_fault(fault, request)
            if replaced is not None:
                return replaced
        try:
            result = handler(api, request)
            return await result if isinstance(result, Awaitable) else result
        except _HttpError as exc:
            return JSONResponse({"error": exc.message}, exc.status, headers=exc.headers)

    return endpoint


def create_app(get_api: Callable[[], DemoApi]) -> Starlette:
    """The demo API as a Starlette app; `get_api` gives the `DemoApi` each request uses."""
    data_routes: list[tuple[str, Handler]] = [
        ("/offset/items", _offset_items),
        ("/page/items", _page_items),
        ("/cursor/items", _cursor_items),
        ("/nexturl/items", _nexturl_items),
        ("/link/items", _link_items),
        ("/header/items", _header_items),
        ("/jsonl/items", _jsonl_items),
        ("/csv/items", _csv_items),
        ("/shape/items", _shape_items),
        ("/auth/apikey/items", _apikey_items),
        ("/auth/bearer/items", _bearer_items),
        ("/auth/basic/items", _basic_items),
        ("/auth/oauth/items", _oauth_items),
        ("/github/orgs/{org}/repos", _github_repos),
        ("/github/repos/{owner}/{repo}/issues", _github_issues),
        ("/github/repos/{owner}/{repo}/issues/{number}/comments", _github_comments),
        ("/stripe/v1/customers", _stripe_customers),
    ]
    routes = [Route(path, _endpoint(get_api, handler)) for path, handler in data_routes]
    routes.append(
        Route("/oauth/token", _endpoint(get_api, _oauth_token, faults=False), methods=["POST"])
    )
    return Starlette(routes=routes)


class DemoServer:
    """A running demo API server; `install` swaps the `DemoApi` it serves."""

    def __init__(self, api: DemoApi) -> None:
        self._api = api
        self._lock = threading.Lock()
        self.base_url = ""

    @property
    def api(self) -> DemoApi:
        with self._lock:
            return self._api

    def install(self, api: DemoApi) -> DemoApi:
        """Serve `api` from now on (its `base_url` is set); returns it."""
        api.base_url = self.base_url
        with self._lock:
            self._api = api
        return api


@contextmanager
def run_server(api: DemoApi | None = None) -> Iterator[DemoServer]:
    """Run the demo API on 127.0.0.1 (a free port) in a daemon thread until the block ends.

    :raises RuntimeError: when the server does not start within `START_TIMEOUT` seconds.
    """
    handle = DemoServer(api or DemoApi())
    with serve_app(create_app(lambda: handle.api)) as base_url:
        handle.base_url = base_url
        handle.install(handle.api)
        yield handle


@contextmanager
def serve_app(app: Any, port: int = 0) -> Iterator[str]:
    """Serve the ASGI `app` under uvicorn on 127.0.0.1 (`port`, or a free one) in a daemon
    thread while the block runs; yields its base URL, `http://127.0.0.1:<port>`.

    :raises RuntimeError: when the server does not start within `START_TIMEOUT` seconds.
    """
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="demo-api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the demo API server stopped during start-up (see its log)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the demo API server did not start within {START_TIMEOUT:g} s")
        thread.join(0.01)
    try:
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT)


@contextmanager
def serve_api(api: DemoApi | None = None) -> Iterator[DemoApi]:
    """Serve `api` (a new `DemoApi()` by default) while the block runs; yields it with
    `base_url` set to `http://127.0.0.1:<port>`."""
    with run_server(api) as server:
        yield server.api


class Killed(ConnectorError):
    """What `killed_at` raises: not transient, so the run stops at once, as if killed."""


@contextmanager
def killed_at(call: int) -> Iterator[None]:
    """The `call`-th request (1-based) any `rest` source sends while the block runs fails
    with `Killed`: a kill placed by a gate, at a known point of a run, never after a sleep."""
    from dataloader_rest.client import RestClient

    send = RestClient.send
    calls = 0

    def gated(self: RestClient, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == call:
            raise Killed(f"killed at request {call}")
        return send(self, *args, **kwargs)

    RestClient.send = gated  # type: ignore[method-assign]
    try:
        yield
    finally:
        RestClient.send = send  # type: ignore[method-assign]
