"""The REST client against the demo API: Retry-After, retries, limits and errors."""

from __future__ import annotations

import logging
import socket
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from dataloader import ConnectorError
from dataloader.recipe.models import RetryConfig
from dataloader_rest.client import RestClient, TransientHttpError, is_transient
from dataloader_rest.config import ClientConfig
from dataloader_rest.testing import DemoApi

ITEMS = "/offset/items"
NO_JITTER = RetryConfig(attempts=3, initial_backoff=0.01, max_backoff=1, jitter=0)


class Recorder:
    """Records the waits asked for instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def make_client(
    api: DemoApi,
    sleep: Recorder,
    retries: RetryConfig | None = NO_JITTER,
    **options: Any,
) -> RestClient:
    config = ClientConfig.model_validate({"base_url": api.base_url, "http2": False, **options})
    return RestClient(config, retries, sleep=sleep)


def ids(response: httpx.Response) -> list[int]:
    return [row["id"] for row in response.json()["items"]]


def test_params_headers_and_none_left_out(demo_api: DemoApi) -> None:
    sleep = Recorder()
    options = {"headers": {"X-Trace": "t1"}, "params": {"limit": 3, "unused": None}}
    with make_client(demo_api, sleep, **options) as rest:
        response = rest.send("GET", ITEMS, {"offset": 2, "since": None})
    assert ids(response) == [3, 4, 5]
    (logged,) = demo_api.requests_to(ITEMS)
    assert logged.query == {"limit": "3", "offset": "2"}
    assert logged.headers["x-trace"] == "t1"
    assert sleep.waits == []


def test_url_query_kept_and_merged(demo_api: DemoApi) -> None:
    with make_client(demo_api, Recorder(), params={"limit": 9}) as rest:
        absolute = rest.send("GET", f"{demo_api.base_url}{ITEMS}?limit=2&offset=4")
        relative = rest.send("GET", f"{ITEMS}?limit=2&offset=4", {"offset": 6})
    assert ids(absolute) == [5, 6]
    assert ids(relative) == [7, 8]


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_honoured(
    demo_api: DemoApi, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    sleep = Recorder()
    if status == 429:
        demo_api.rate_limit_burst(3, retry_after="1")
    else:
        demo_api.unavailable(3, retry_after="1")
    with caplog.at_level(logging.WARNING, "dataloader.rest"), make_client(demo_api, sleep) as rest:
        response = rest.send("GET", ITEMS, {"limit": 2})
    assert ids(response) == [1, 2]
    assert sleep.waits == [1.0, 1.0, 1.0]
    assert len(demo_api.requests_to(ITEMS)) == 4
    warnings = [r for r in caplog.records if r.name == "dataloader.rest"]
    assert len(warnings) == 3
    assert all(f"HTTP {status}" in r.getMessage() for r in warnings)


def test_retry_after_http_date_honoured(demo_api: DemoApi) -> None:
    sleep = Recorder()
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=100)
    demo_api.rate_limit_burst(2, retry_after=format_datetime(when, usegmt=True))
    with make_client(demo_api, sleep) as rest:
        rest.send("GET", ITEMS)
    assert len(sleep.waits) == 2
    # the date has whole seconds; the wait is what remains of them when the answer came
    assert all(90 < wait <= 100 for wait in sleep.waits)


@pytest.mark.parametrize("status", [429, 503])
def test_backoff_without_retry_after(demo_api: DemoApi, status: int) -> None:
    sleep = Recorder()
    if status == 429:
        demo_api.rate_limit_burst(3, retry_after=None)
    else:
        demo_api.unavailable(3, retry_after=None)
    with make_client(demo_api, sleep) as rest:
        rest.send("GET", ITEMS)
    assert sleep.waits == pytest.approx([0.01, 0.02, 0.04])


def test_retry_after_longer_than_allowed_fails(demo_api: DemoApi) -> None:
    sleep = Recorder()
    demo_api.rate_limit_burst(1, retry_after="600")
    options = {"rate_limit": {"max_retry_after": 30}}
    with make_client(demo_api, sleep, **options) as rest, pytest.raises(ConnectorError) as caught:
        rest.send("GET", ITEMS)
    message = str(caught.value)
    assert "Retry-After 600s" in message and "max_retry_after (30s)" in message
    assert sleep.waits == []
    assert len(demo_api.requests_to(ITEMS)) == 1


def test_rate_limit_retries_exhausted(demo_api: DemoApi) -> None:
    sleep = Recorder()
    demo_api.rate_limit_burst(5, retry_after="1")
    options = {"rate_limit": {"rate_limit_retries": 2}}
    with (
        make_client(demo_api, sleep, **options) as rest,
        pytest.raises(TransientHttpError) as caught,
    ):
        rest.send("GET", ITEMS)
    assert caught.value.status == 429
    assert "3 times in a row" in str(caught.value)
    assert is_transient(caught.value)
    assert sleep.waits == [1.0, 1.0]
    assert len(demo_api.requests_to(ITEMS)) == 3


def test_dropped_connections_retried(demo_api: DemoApi) -> None:
    sleep = Recorder()
    demo_api.drop(2)
    with make_client(demo_api, sleep) as rest:
        response = rest.send("GET", ITEMS, {"limit": 1})
    assert ids(response) == [1]
    assert sleep.waits == pytest.approx([0.01, 0.02])
    assert len(demo_api.requests_to(ITEMS)) == 3


def test_slow_response_times_out_and_is_retried(demo_api: DemoApi) -> None:
    sleep = Recorder()
    demo_api.slow(1, seconds=5)
    with make_client(demo_api, sleep, timeout=0.3) as rest:
        response = rest.send("GET", ITEMS, {"limit": 1})
    assert ids(response) == [1]
    assert sleep.waits == pytest.approx([0.01])
    assert len(demo_api.requests_to(ITEMS)) == 2


def test_retries_exhausted(demo_api: DemoApi) -> None:
    sleep = Recorder()
    demo_api.drop(5)
    retries = RetryConfig(attempts=2, initial_backoff=0.01, jitter=0)
    with make_client(demo_api, sleep, retries) as rest, pytest.raises(TransientHttpError) as caught:
        rest.send("GET", ITEMS)
    assert "failed after 2 retries" in str(caught.value)
    assert "RemoteProtocolError" in str(caught.value)
    assert isinstance(caught.value.__cause__, httpx.RemoteProtocolError)
    assert is_transient(caught.value)
    assert caught.value.context["key"] == "source.resource.path"
    assert len(demo_api.requests_to(ITEMS)) == 3
    assert demo_api.pending_faults() == 2


def test_connection_refused_retried_then_fails() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleep = Recorder()
    config = ClientConfig(base_url=f"http://127.0.0.1:{port}", http2=False)
    with (
        RestClient(config, NO_JITTER, sleep=sleep) as rest,
        pytest.raises(TransientHttpError) as caught,
    ):
        rest.send("GET", ITEMS)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert sleep.waits == pytest.approx([0.01, 0.02, 0.04])


def test_other_status_fails_with_method_url_status_and_body(demo_api: DemoApi) -> None:
    sleep = Recorder()
    with make_client(demo_api, sleep) as rest, pytest.raises(ConnectorError) as caught:
        rest.send("GET", "/github/repos/acme/widgets/issues", {"state": "bogus", "page": 1})
    message = str(caught.value)
    assert message.startswith("source.resource.path: GET ")
    assert f"{demo_api.base_url}/github/repos/acme/widgets/issues?state=bogus&page=1" in message
    assert "HTTP 422" in message and "Validation Failed" in message
    assert not isinstance(caught.value, TransientHttpError)
    assert not is_transient(caught.value)
    assert sleep.waits == []


def test_error_masks_secret_query_values(demo_api: DemoApi) -> None:
    key = "query-key-that-is-secret"
    options = {
        "params": {"access_token": "another-secret-value"},
        "auth": {"type": "api_key", "name": "key", "value": key, "location": "query"},
    }
    with make_client(demo_api, Recorder(), **options) as rest:
        shown = rest.display_url("/nowhere", {"key": key, "page": 2})
        with pytest.raises(ConnectorError) as caught:
            rest.send("GET", "/github/orgs/nobody/repos", {"page": 2})
    assert shown == f"{demo_api.base_url}/nowhere?access_token=***&key=***&page=2"
    message = str(caught.value)
    assert "HTTP 404" in message and "/repos?access_token=***&page=2" in message
    assert key not in message and "another-secret-value" not in message
    (logged,) = demo_api.requests_to("/github/orgs/nobody/repos")
    assert logged.query == {"access_token": "another-secret-value", "key": key, "page": "2"}


def test_body_quoted_at_most_200_chars(demo_api: DemoApi) -> None:
    with make_client(demo_api, Recorder()) as rest, pytest.raises(ConnectorError) as caught:
        rest.send("GET", "/github/orgs/nobody/repos")
    assert str(caught.value).endswith('HTTP 404: {"error":"Not Found"}')


def test_requests_per_second_spacing_through_the_client(demo_api: DemoApi) -> None:
    now = [10.0]

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    waits: list[float] = []
    config = ClientConfig(
        base_url=demo_api.base_url, http2=False, rate_limit={"requests_per_second": 4}
    )
    with RestClient(config, sleep=sleep, clock=lambda: now[0]) as rest:
        for _ in range(4):
            rest.send("GET", ITEMS, {"limit": 1})
    assert waits == pytest.approx([0.25, 0.25, 0.25])


def test_concurrency_never_above_max(demo_api: DemoApi) -> None:
    lock = threading.Lock()
    in_flight = 0
    most = 0

    def started(request: httpx.Request) -> None:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)

    def finished(response: httpx.Response) -> None:
        nonlocal in_flight
        response.read()
        with lock:
            in_flight -= 1

    rest = make_client(demo_api, Recorder(), rate_limit={"max_concurrent": 2})
    rest.http.event_hooks = {"request": [started], "response": [finished]}
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                rest.send("GET", ITEMS, {"limit": 50})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    with rest:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
    assert errors == []
    assert 1 <= most <= 2
    assert len(demo_api.requests_to(ITEMS)) == 18


def test_post_json(demo_api: DemoApi) -> None:
    with make_client(demo_api, Recorder()) as rest, pytest.raises(ConnectorError) as caught:
        rest.send("post", "/oauth/token", json={"grant_type": "password"})
    message = str(caught.value)
    assert "POST " in message and "HTTP 400" in message and "unsupported_grant_type" in message
    (logged,) = demo_api.requests_to("/oauth/token")
    assert logged.method == "POST"
    assert logged.headers["content-type"] == "application/json"


def test_close() -> None:
    rest = RestClient(ClientConfig(base_url="http://127.0.0.1:9"))
    with rest:
        assert not rest.http.is_closed
    assert rest.http.is_closed


def test_is_transient() -> None:
    assert is_transient(httpx.ReadTimeout("slow"))
    assert is_transient(httpx.ConnectError("refused"))
    assert is_transient(httpx.RemoteProtocolError("dropped"))
    assert is_transient(TransientHttpError("gave up", status=503))
    assert not is_transient(ConnectorError("HTTP 404"))
    assert not is_transient(httpx.UnsupportedProtocol("ftp"))
    assert not is_transient(ValueError("x"))
