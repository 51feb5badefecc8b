"""Every auth scheme of the REST client against the demo API."""

from __future__ import annotations

import socket
import threading
from typing import Any

import httpx
import pytest

from dataloader import ConnectorError
from dataloader.recipe.models import RetryConfig
from dataloader_rest.auth import OAuth2ClientCredentialsAuth, TokenError, build_auth
from dataloader_rest.client import RestClient, TransientHttpError, is_transient
from dataloader_rest.config import ClientConfig
from dataloader_rest.testing import DemoApi


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def client(api: DemoApi, auth: dict[str, Any] | None, **options: Any) -> RestClient:
    config = ClientConfig.model_validate(
        {"base_url": api.base_url, "auth": auth, "http2": False, **options}
    )
    return RestClient(config, sleep=lambda seconds: None)


def get_items(rest: RestClient, path: str) -> list[dict[str, Any]]:
    response = rest.send("GET", path, {"limit": 5})
    return response.json()["items"]


def assert_refused(rest: RestClient, path: str, secret: str) -> ConnectorError:
    with pytest.raises(ConnectorError) as caught:
        rest.send("GET", path, {"limit": 5})
    message = str(caught.value)
    assert "401" in message and path in message
    assert secret not in message
    assert not is_transient(caught.value)
    return caught.value


def test_no_auth() -> None:
    assert build_auth(None) is None


@pytest.mark.parametrize("location", ["header", "query"])
def test_api_key(demo_api: DemoApi, location: str) -> None:
    name = "X-API-Key" if location == "header" else "api_key"
    auth = {"type": "api_key", "name": name, "value": demo_api.api_key, "location": location}
    with client(demo_api, auth) as rest:
        assert [row["id"] for row in get_items(rest, "/auth/apikey/items")] == [1, 2, 3, 4, 5]
    (logged,) = demo_api.requests_to("/auth/apikey/items")
    if location == "header":
        assert logged.headers["x-api-key"] == demo_api.api_key
        assert "api_key" not in logged.query
    else:
        assert logged.query["api_key"] == demo_api.api_key
        assert "x-api-key" not in logged.headers


@pytest.mark.parametrize("location", ["header", "query"])
def test_wrong_api_key(demo_api: DemoApi, location: str) -> None:
    wrong = "wrong-key-0123456789"
    name = "X-API-Key" if location == "header" else "api_key"
    auth = {"type": "api_key", "name": name, "value": wrong, "location": location}
    with client(demo_api, auth) as rest:
        error = assert_refused(rest, "/auth/apikey/items", wrong)
    assert error.context["status"] == 401


def test_bearer(demo_api: DemoApi) -> None:
    with client(demo_api, {"type": "bearer", "token": demo_api.bearer_token}) as rest:
        assert len(get_items(rest, "/auth/bearer/items")) == 5
    (logged,) = demo_api.requests_to("/auth/bearer/items")
    assert logged.headers["authorization"] == f"Bearer {demo_api.bearer_token}"


def test_wrong_bearer(demo_api: DemoApi) -> None:
    wrong = "not-the-bearer-token"
    with client(demo_api, {"type": "bearer", "token": wrong}) as rest:
        assert_refused(rest, "/auth/bearer/items", wrong)


def test_basic(demo_api: DemoApi) -> None:
    auth = {"type": "basic", "username": demo_api.basic_user, "password": demo_api.basic_password}
    with client(demo_api, auth) as rest:
        assert len(get_items(rest, "/auth/basic/items")) == 5


def test_wrong_basic_password(demo_api: DemoApi) -> None:
    wrong = "wrong-password-42"
    auth = {"type": "basic", "username": demo_api.basic_user, "password": wrong}
    with client(demo_api, auth) as rest:
        assert_refused(rest, "/auth/basic/items", wrong)


def oauth(api: DemoApi, **changes: Any) -> dict[str, Any]:
    return {
        "type": "oauth2_client_credentials",
        "token_url": f"{api.base_url}/oauth/token",
        "client_id": api.client_id,
        "client_secret": api.client_secret,
        **changes,
    }


def test_oauth_token_cached_across_requests(demo_api: DemoApi) -> None:
    auth = oauth(demo_api, scope="read:items", extra={"audience": "demo"})
    with client(demo_api, auth) as rest:
        for _ in range(5):
            assert len(get_items(rest, "/auth/oauth/items")) == 5
    assert demo_api.tokens_issued == 1
    assert demo_api.token_requests == [
        {"grant_type": "client_credentials", "scope": "read:items", "audience": "demo"}
    ]
    (token_request,) = demo_api.requests_to("/oauth/token")
    assert token_request.method == "POST"
    assert token_request.headers["authorization"].startswith("Basic ")
    assert len(demo_api.requests_to("/auth/oauth/items")) == 5


def test_oauth_client_secret_in_body_and_relative_token_url(demo_api: DemoApi) -> None:
    auth = oauth(demo_api, token_url="/oauth/token", client_auth="body")
    with client(demo_api, auth) as rest:
        assert len(get_items(rest, "/auth/oauth/items")) == 5
    assert demo_api.token_requests == [
        {"grant_type": "client_credentials", "client_id": demo_api.client_id}
    ]
    (token_request,) = demo_api.requests_to("/oauth/token")
    assert "authorization" not in token_request.headers


@pytest.mark.parametrize("client_auth", ["basic", "body"])
def test_oauth_wrong_secret(demo_api: DemoApi, client_auth: str) -> None:
    wrong = "wrong-client-secret-xyz"
    auth = oauth(demo_api, client_secret=wrong, client_auth=client_auth)
    with client(demo_api, auth) as rest, pytest.raises(TokenError) as caught:
        rest.send("GET", "/auth/oauth/items")
    message = str(caught.value)
    assert f"{demo_api.base_url}/oauth/token" in message
    assert "401" in message and "invalid_client" in message
    assert wrong not in message
    assert caught.value.status == 401
    assert not is_transient(caught.value)
    assert demo_api.requests_to("/auth/oauth/items") == []  # no request without a token


def test_oauth_token_refreshed_before_expiry(demo_api: DemoApi) -> None:
    clock = FakeClock()
    config = ClientConfig.model_validate(
        {
            "base_url": demo_api.base_url,
            "http2": False,
            "auth": oauth(demo_api, refresh_margin_seconds=60),
        }
    )
    with RestClient(config, sleep=lambda seconds: None, clock=clock) as rest:
        get_items(rest, "/auth/oauth/items")
        clock.now += demo_api.token_lifetime - 61  # still 1 s before the margin
        get_items(rest, "/auth/oauth/items")
        assert demo_api.tokens_issued == 1
        clock.now += 1  # now within the margin: refreshed before any 401
        get_items(rest, "/auth/oauth/items")
        assert demo_api.tokens_issued == 2
        get_items(rest, "/auth/oauth/items")
    assert demo_api.tokens_issued == 2
    tokens = {r.headers["authorization"] for r in demo_api.requests_to("/auth/oauth/items")}
    assert len(tokens) == 2
    assert len(demo_api.requests_to("/auth/oauth/items")) == 4  # never refused


def test_oauth_token_refetched_after_401(demo_api: DemoApi) -> None:
    with client(demo_api, oauth(demo_api)) as rest:
        get_items(rest, "/auth/oauth/items")
        demo_api.expire_tokens()
        assert len(get_items(rest, "/auth/oauth/items")) == 5
        get_items(rest, "/auth/oauth/items")
    assert demo_api.tokens_issued == 2
    first, refused, retried, third = demo_api.requests_to("/auth/oauth/items")
    assert refused.headers["authorization"] == first.headers["authorization"]
    assert retried.headers["authorization"] != refused.headers["authorization"]
    assert third.headers["authorization"] == retried.headers["authorization"]


def test_oauth_one_token_for_many_threads(demo_api: DemoApi) -> None:
    rest = client(demo_api, oauth(demo_api), rate_limit={"max_concurrent": 8})
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                get_items(rest, "/auth/oauth/items")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    with rest:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
    assert errors == []
    assert demo_api.tokens_issued == 1
    assert len(demo_api.requests_to("/auth/oauth/items")) == 24


def test_oauth_auth_object_counts_fetches(demo_api: DemoApi) -> None:
    with client(demo_api, oauth(demo_api)) as rest:
        get_items(rest, "/auth/oauth/items")
        assert isinstance(rest.auth, OAuth2ClientCredentialsAuth)
        assert rest.auth.tokens_fetched == 1


def test_oauth_unreachable_token_url_releases_the_lock(demo_api: DemoApi) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = ClientConfig.model_validate(
        {
            "base_url": demo_api.base_url,
            "http2": False,
            "auth": oauth(demo_api, token_url=f"http://127.0.0.1:{port}/oauth/token"),
        }
    )
    retries = RetryConfig(attempts=1, initial_backoff=0, jitter=0)
    errors: list[BaseException] = []

    def send_twice() -> None:
        with RestClient(config, retries, sleep=lambda seconds: None) as rest:
            for _ in range(2):  # the second would block on a lock left held by the first
                try:
                    rest.send("GET", "/auth/oauth/items")
                except TransientHttpError as exc:
                    errors.append(exc)

    thread = threading.Thread(target=send_twice, daemon=True)
    thread.start()
    thread.join(15)
    assert not thread.is_alive()
    assert len(errors) == 2
    assert all(isinstance(error.__cause__, httpx.ConnectError) for error in errors)
    assert demo_api.requests_to("/auth/oauth/items") == []
