"""Authentication of the REST client: `build_auth` turns `client.auth` into an `httpx.Auth`.

API keys, bearer tokens and basic auth are set on every request. OAuth2 client credentials
fetch a token from the token URL through the same client (so its TLS, proxy and timeout
settings apply), cache it, fetch a new one `refresh_margin_seconds` before it expires, and
once more when a request is answered 401 (a token revoked early), retrying that request.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

import httpx

from dataloader import ConnectorError
from dataloader.secrets import register_secret
from dataloader_rest.config import (
    ApiKeyAuth,
    Auth,
    BasicAuth,
    BearerAuth,
    OAuth2ClientCredentials,
)

# Token endpoint answers worth asking again (the client's retry loop does).
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class TokenError(ConnectorError):
    """The token endpoint refused or failed to give a token. `status` is its HTTP status
    (None when its answer had no usable token)."""

    def __init__(self, message: str, *, status: int | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.status = status

    @property
    def transient(self) -> bool:
        return self.status in TRANSIENT_STATUSES


class ApiKeyHeaderAuth(httpx.Auth):
    """An API key in a request header."""

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self._value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self.name] = self._value
        yield request


class ApiKeyQueryAuth(httpx.Auth):
    """An API key in a query parameter."""

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self._value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.url = request.url.copy_set_param(self.name, self._value)
        yield request


class BearerTokenAuth(httpx.Auth):
    """`Authorization: Bearer <token>` with a fixed token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def _basic_header(username: str, password: str) -> str:
    pair = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


class OAuth2ClientCredentialsAuth(httpx.Auth):
    """OAuth2's client credentials grant, with the token cached and refreshed.

    Safe to share between threads: one thread fetches a token while the others wait for it.
    `clock` (monotonic seconds) decides when a cached token is due for refresh.
    """

    requires_response_body = True  # the token endpoint's answer is read in the flow

    def __init__(
        self, config: OAuth2ClientCredentials, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at: float | None = None  # None: no known expiry
        self.tokens_fetched = 0

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        # As httpx's own, but closing the inner flow at once when the request fails, so that
        # a lock held across a failed token request is released now, not when collected.
        flow = self.auth_flow(request)
        try:
            request = next(flow)
            while True:
                response = yield request
                response.read()
                try:
                    request = flow.send(response)
                except StopIteration:
                    return
        finally:
            flow.close()

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        raise RuntimeError("OAuth2ClientCredentialsAuth supports only the sync httpx.Client")
        yield request  # pragma: no cover - makes this an async generator

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = yield from self._current_token(request, stale=None)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            token = yield from self._current_token(request, stale=token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    def _current_token(
        self, request: httpx.Request, *, stale: str | None
    ) -> Generator[httpx.Request, httpx.Response, str]:
        """The cached token, or a new one when there is none, it is due for refresh or it is
        `stale` (refused by the server). A token another thread fetched meanwhile is used."""
        # The lock is held across the token request: the thread driving this generator is
        # the one that holds it, and httpx closes the generator (releasing it) on any error.
        with self._lock:
            if self._token is not None and self._token != stale and not self._due():
                return self._token
            response = yield self._token_request(request)
            self._store(response)
            assert self._token is not None
            return self._token

    def _due(self) -> bool:
        return self._refresh_at is not None and self._clock() >= self._refresh_at

    def _token_request(self, request: httpx.Request) -> httpx.Request:
        config = self.config
        secret = config.client_secret.get_secret_value()
        form: dict[str, str] = {"grant_type": "client_credentials"}
        if config.scope:
            form["scope"] = config.scope
        form.update(config.extra)
        headers = {"Accept": "application/json"}
        if config.client_auth == "basic":
            headers["Authorization"] = _basic_header(config.client_id, secret)
        else:
            form["client_id"] = config.client_id
            form["client_secret"] = secret
        return httpx.Request("POST", request.url.join(config.token_url), data=form, headers=headers)

    def _store(self, response: httpx.Response) -> None:
        url = self.config.token_url
        if not response.is_success:
            raise TokenError(
                f"the OAuth2 token endpoint {url} answered HTTP {response.status_code}"
                f"{_error_hint(response)}",
                status=response.status_code,
                key="source.client.auth.token_url",
            )
        try:
            body = response.json()
            token = body["access_token"]
            if not isinstance(token, str) or not token:
                raise TypeError("access_token is not a non-empty string")
            expires_in = body.get("expires_in")
            expires = None if expires_in is None else float(expires_in)
        except (ValueError, TypeError, KeyError) as exc:
            raise TokenError(
                f"the OAuth2 token endpoint {url} answered HTTP {response.status_code} "
                f"without a usable access_token ({type(exc).__name__})",
                status=None,
                key="source.client.auth.token_url",
            ) from None
        register_secret(token)
        self._token = token
        self._refresh_at = (
            None
            if expires is None
            else self._clock() + max(0.0, expires - self.config.refresh_margin_seconds)
        )
        self.tokens_fetched += 1


def _error_hint(response: httpx.Response) -> str:
    """The `error` code of an RFC 6749 error answer (never its other fields, which a server
    may fill with what it was sent)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    return f" ({error})" if isinstance(error, str) and error.isidentifier() else ""


def build_auth(
    config: Auth | None, *, clock: Callable[[], float] = time.monotonic
) -> httpx.Auth | None:
    """The `httpx.Auth` for `client.auth` (None without auth). Secret values are registered
    so that any message quoting them is masked."""
    if config is None:
        return None
    if isinstance(config, ApiKeyAuth):
        value = config.value.get_secret_value()
        register_secret(value)
        if config.location == "query":
            return ApiKeyQueryAuth(config.name, value)
        return ApiKeyHeaderAuth(config.name, value)
    if isinstance(config, BearerAuth):
        token = config.token.get_secret_value()
        register_secret(token)
        return BearerTokenAuth(token)
    if isinstance(config, BasicAuth):
        password = config.password.get_secret_value()
        register_secret(password)
        return httpx.BasicAuth(config.username, password)
    if isinstance(config, OAuth2ClientCredentials):
        register_secret(config.client_secret.get_secret_value())
        return OAuth2ClientCredentialsAuth(config, clock=clock)
    raise TypeError(f"unknown auth config {type(config).__name__}")
