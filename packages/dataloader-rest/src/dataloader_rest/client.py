"""The HTTP client of the `rest` source: one `httpx.Client` with auth, client-side rate
limits, `Retry-After` on 429/503, and backoff on other transient failures."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx

from dataloader import ConnectorError
from dataloader.logs import mask_secrets_in
from dataloader.recipe.models import RetryConfig
from dataloader.retry import backoff_delay
from dataloader.secrets import MASK, is_secret_key, mask_text
from dataloader_rest.auth import TokenError, build_auth
from dataloader_rest.config import ApiKeyAuth, ClientConfig
from dataloader_rest.ratelimit import RateLimiter, retry_after_seconds

log = logging.getLogger("dataloader.rest")

RATE_LIMITED = frozenset({429, 503})
TRANSIENT_STATUSES = frozenset({408, 500, 502, 504})
BODY_CHARS = 200
ERROR_KEY = "source.resource.path"

_TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class TransientHttpError(ConnectorError):
    """A request still failed after its retries, for a reason that may pass (a 5xx, 429,
    dropped connection or timeout): the engine may retry the run from its last commit."""

    def __init__(self, message: str, *, status: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.status = status


def is_transient(error: BaseException) -> bool:
    """Whether `error` from `RestClient.send` is worth retrying: connection and timeout
    errors, `TransientHttpError`, and a token endpoint's 5xx/429."""
    if isinstance(error, (TransientHttpError, *_TRANSIENT_ERRORS)):
        return True
    return isinstance(error, TokenError) and error.transient


class RestClient:
    """Sends the requests of one source.

    `send` waits for the rate limiter, retries 429/503 as `Retry-After` says (or with
    backoff) up to `rate_limit.rate_limit_retries` times, retries other transient failures
    with backoff up to `retries.attempts` times, and raises `ConnectorError` for any other
    non-2xx answer. Every wait goes through `sleep`. Safe to use from several threads.
    """

    def __init__(
        self,
        config: ClientConfig,
        retries: RetryConfig | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        mask_secrets_in("httpx")
        self.config = config
        self.retries = retries or RetryConfig()
        self._sleep = sleep
        limits = config.rate_limit
        self.limiter = RateLimiter(
            limits.requests_per_second, limits.max_concurrent, clock=clock, sleep=sleep
        )
        self.auth = build_auth(config.auth, clock=clock)
        self._secret_params: set[str] = set()
        if isinstance(config.auth, ApiKeyAuth) and config.auth.location == "query":
            self._secret_params.add(config.auth.name)
        self._http = httpx.Client(
            base_url=config.base_url,
            headers={name: value.get_secret_value() for name, value in config.headers.items()},
            params=_present(config.params),
            auth=self.auth,
            timeout=httpx.Timeout(config.timeout),
            http2=config.http2,
            verify=_verify(config.verify),
            limits=httpx.Limits(
                max_connections=limits.max_concurrent,
                max_keepalive_connections=limits.max_concurrent,
            ),
            follow_redirects=True,
        )

    @property
    def http(self) -> httpx.Client:
        """The underlying `httpx.Client` (its base URL resolves relative paths)."""
        return self._http

    def send(
        self,
        method: str,
        url: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """Send one request and return its 2xx response (body read), retrying as configured.

        :param url: absolute, or relative to `base_url`.
        :param params: query parameters; a value of None leaves the parameter out.
        :raises TransientHttpError: retries ran out on a transient failure.
        :raises ConnectorError: any other non-2xx answer, or a `Retry-After` too long.
        """
        method = method.upper()
        url, query = _split_query(url, params)
        shown = _Deferred(lambda: self.display_url(url, query))  # only messages need it
        limits = self.config.rate_limit
        failures = 0  # transient failures (5xx, dropped connections, timeouts)
        limited = 0  # 429/503 answers
        while True:
            try:
                with self.limiter.slot():
                    response = self._http.request(method, url, params=query, json=json)
            except (httpx.TransportError, TokenError) as exc:
                if isinstance(exc, TokenError) and not exc.transient:
                    raise
                if not is_transient(exc):
                    raise ConnectorError(
                        f"{method} {shown} failed: {_describe(exc)}", key=ERROR_KEY
                    ) from exc
                failures += 1
                reason = _describe(exc)
                if failures > self.retries.attempts:
                    raise TransientHttpError(
                        f"{method} {shown} failed after {self.retries.attempts} retries: {reason}",
                        key=ERROR_KEY,
                    ) from exc
                self._wait(
                    backoff_delay(self.retries, failures),
                    f"{method} {shown}: {reason}, retry {failures} of {self.retries.attempts}",
                )
                continue

            status = response.status_code
            if response.is_success:
                return response
            if status in RATE_LIMITED:
                limited += 1
                if limited > limits.rate_limit_retries:
                    raise TransientHttpError(
                        f"{method} {shown} answered HTTP {status} "
                        f"{limits.rate_limit_retries + 1} times in a row{_body(response)}",
                        status=status,
                        key=ERROR_KEY,
                    )
                asked = retry_after_seconds(response.headers)
                if asked is not None and asked > limits.max_retry_after:
                    raise ConnectorError(
                        f"{method} {shown} answered HTTP {status} with Retry-After "
                        f"{asked:g}s, longer than rate_limit.max_retry_after "
                        f"({limits.max_retry_after:g}s)",
                        key="source.client.rate_limit.max_retry_after",
                    )
                delay = asked if asked is not None else backoff_delay(self.retries, limited)
                how = "as Retry-After asks" if asked is not None else "backing off"
                self._wait(
                    delay,
                    f"{method} {shown}: HTTP {status}, {how}, "
                    f"retry {limited} of {limits.rate_limit_retries}",
                )
                continue
            if status in TRANSIENT_STATUSES:
                failures += 1
                if failures > self.retries.attempts:
                    raise TransientHttpError(
                        f"{method} {shown} answered HTTP {status} after "
                        f"{self.retries.attempts} retries{_body(response)}",
                        status=status,
                        key=ERROR_KEY,
                    )
                self._wait(
                    backoff_delay(self.retries, failures),
                    f"{method} {shown}: HTTP {status}, retry {failures} of {self.retries.attempts}",
                )
                continue
            raise ConnectorError(
                f"{method} {shown} answered HTTP {status}{_body(response)}",
                key=ERROR_KEY,
                context={"status": status},
            )

    def display_url(
        self, url: str, params: dict[str, Any] | httpx.QueryParams | None = None
    ) -> str:
        """`url` with `params` (and the client's own), as an error may show it: the values
        of secret query parameters (the API key, any named like a secret) masked."""
        url, query = _split_query(url, params)
        full = self._http.build_request("GET", url, params=query).url
        if full.query:
            pairs = [
                (name, MASK if self._is_secret_param(name) else value)
                for name, value in full.params.multi_items()
            ]
            full = full.copy_with(params=pairs)
        text = str(full.copy_with(username=None, password=None))
        return mask_text(text.replace("%2A%2A%2A", MASK))

    def _is_secret_param(self, name: str) -> bool:
        return name in self._secret_params or is_secret_key(name)

    def _wait(self, seconds: float, message: str) -> None:
        log.warning("%s; waiting %.2fs", mask_text(message), seconds)
        self._sleep(seconds)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> RestClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _present(params: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in params.items() if value is not None}


def _split_query(
    url: str, params: dict[str, Any] | httpx.QueryParams | None
) -> tuple[str, httpx.QueryParams]:
    """`url` without its query, and that query with `params` merged over it (httpx replaces
    a URL's query with the `params` given with it, which would lose a next-page URL's)."""
    target = httpx.URL(url)
    extra = params if isinstance(params, httpx.QueryParams) else _present(params or {})
    query = target.params.merge(extra)
    return (str(target.copy_with(query=None)) if target.query else url), query


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TokenError):
        return exc.problem.message
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _body(response: httpx.Response) -> str:
    text = " ".join(response.text[:BODY_CHARS].split())
    return f": {text}" if text else ""


def _verify(setting: bool | str) -> bool | ssl.SSLContext:
    """httpx's `verify`: a CA bundle's path becomes an SSL context trusting it."""
    if isinstance(setting, bool):
        return setting
    try:
        return ssl.create_default_context(cafile=setting)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectorError(
            f"cannot read the CA certificates in {setting!r}: {exc}",
            key="source.client.verify",
            value=setting,
            expected="true, false, or the path of a PEM file of CA certificates",
        ) from None


class _Deferred:
    """Text made the first time it is formatted (a masked URL, for the rare message)."""

    __slots__ = ("_make", "_text")

    def __init__(self, make: Callable[[], str]) -> None:
        self._make = make
        self._text: str | None = None

    def __str__(self) -> str:
        if self._text is None:
            self._text = self._make()
        return self._text

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)
