"""The `rest` source's keys: the client (where, how to authenticate, how fast) and the
resource (which path, how its records are found and paged, how it reads incrementally)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from dataloader import ConnectorConfig


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiKeyAuth(_Model):
    """An API key sent in a header (`X-API-Key: …`) or a query parameter (`?api_key=…`)."""

    type: Literal["api_key"]
    name: str = "X-API-Key"
    value: SecretStr
    location: Literal["header", "query"] = "header"


class BearerAuth(_Model):
    """`Authorization: Bearer <token>`."""

    type: Literal["bearer"]
    token: SecretStr


class BasicAuth(_Model):
    """HTTP basic authentication."""

    type: Literal["basic"]
    username: str
    password: SecretStr


class OAuth2ClientCredentials(_Model):
    """OAuth2's client credentials grant: a token fetched from `token_url`, cached, and
    fetched again `refresh_margin_seconds` before it expires (or when a request gets 401).

    :param client_auth: send the client id and secret as HTTP basic auth (`basic`, as RFC
        6749 prefers) or in the form body (`body`).
    :param extra: more form fields for the token request (`audience`, `resource`, …).
    """

    type: Literal["oauth2_client_credentials"]
    token_url: str
    client_id: str
    client_secret: SecretStr
    scope: str | None = None
    client_auth: Literal["basic", "body"] = "basic"
    extra: dict[str, str] = Field(default_factory=dict)
    refresh_margin_seconds: float = Field(default=60, ge=0)


Auth = Annotated[
    ApiKeyAuth | BearerAuth | BasicAuth | OAuth2ClientCredentials, Field(discriminator="type")
]


class RateLimit(_Model):
    """Client-side limits, kept whatever the server says.

    :param requests_per_second: the most requests started in any second (None: no limit).
    :param max_concurrent: the most requests in flight at once, and the size of the
        connection pool (the source itself sends one request at a time).
    :param max_retry_after: the longest `Retry-After` wait honoured, in seconds; a server
        asking for more fails the request.
    :param rate_limit_retries: how many 429/503 answers in a row one request may get
        before it fails (each waits as the server's `Retry-After` says, or backs off).
    """

    requests_per_second: float | None = Field(default=None, gt=0)
    max_concurrent: int = Field(default=4, ge=1, le=64)
    max_retry_after: float = Field(default=300, ge=0)
    rate_limit_retries: int = Field(default=20, ge=0)


class ClientConfig(_Model):
    """`source.client`: shared by every request of the source.

    :param base_url: the API's root; resource paths are relative to it.
    :param headers: sent with every request; their values are secrets (masked in every
        message), as an `Authorization` or API-key header carries a credential.
    :param params: query parameters sent with every request.
    :param timeout: seconds to connect, and between bytes of a response.
    :param http2: offer HTTP/2 (used when the server agrees on it over TLS).
    :param verify: check the server's TLS certificate (true), against the CA certificates
        of a PEM file (its path), or not at all (false).
    """

    base_url: str
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    auth: Auth | None = None
    timeout: float = Field(default=30, gt=0)
    http2: bool = True
    verify: bool | str = True
    rate_limit: RateLimit = Field(default_factory=RateLimit)


class PaginatorConfig(BaseModel):
    """`paginator:` — a `type` naming a registered paginator, and its options."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _paginator(value: Any) -> Any:
    return {"type": value} if isinstance(value, str) else value


class IncrementalParams(_Model):
    """How the committed cursor reaches the API (`source.incremental` says which field).

    :param param: the query parameter taking the lower bound (`since`, `updated_after`,
        `created[gte]`).
    :param end_param: the one taking `end_value`, if the API has one.
    :param format: how a time value is written: `iso` (RFC 3339), `date`, `unix` seconds,
        `unix_ms`, or `value` (as the record had it).
    :param order: the order the API lists records in: `asc` by the cursor (the cursor is
        committed with every batch), or `desc`/`any` (it is committed with the run's last
        commit, as the highest value read; a killed run resumes from its page checkpoint).
    :param inclusive: whether the API's parameter includes the bound (`>=`, the default).
        For a strict one (`>`) say false: the source then sends the value just below the
        committed one (one less for integers, one microsecond earlier for times), so that
        rows sharing the committed value and arriving later are read, and skipped if loaded.
    """

    param: str
    end_param: str | None = None
    format: Literal["iso", "date", "unix", "unix_ms", "value"] = "iso"
    order: Literal["asc", "desc", "any"] = "asc"
    inclusive: bool = True


class PageSource(_Model):
    """Where records come from: a path, its parameters, how pages and records are found."""

    path: str
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, Any] = Field(default_factory=dict)
    json_body: dict[str, Any] | None = Field(default=None, alias="json")
    data_selector: str | None = None
    format: Literal["json", "jsonl", "csv"] = "json"
    paginator: PaginatorConfig | None = None

    _coerce_paginator = field_validator("paginator", mode="before")(
        classmethod(lambda cls, value: _paginator(value))
    )


class ParentConfig(PageSource):
    """`resource.parent`: the resource whose records fill the child path's placeholders.

    :param fields: placeholder → the parent record's field (`repo: name` fills `{repo}`).
    :param include: a child column → the parent field copied into every child row
        (`_repo_id: id`).
    """

    fields: dict[str, str]
    include: dict[str, str] = Field(default_factory=dict)


class ResourceConfig(PageSource):
    """`source.resource`: the records this recipe loads."""

    incremental: IncrementalParams | None = None
    parent: ParentConfig | None = None


class RestConfig(ConnectorConfig):
    """The `rest` source."""

    client: ClientConfig
    resource: ResourceConfig
