"""The demo API of `dataloader_rest.testing`, exercised with plain httpx over 127.0.0.1:
every paginated endpoint lists every record once, auth accepts and rejects, and each
fault knob does what it says."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from dataloader_rest.testing import DemoApi, make_customers, make_records, serve_api


@pytest.fixture
def client(demo_api: DemoApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo_api.base_url, timeout=10) as client:
        yield client


def _ids(rows: list[dict[str, Any]]) -> list[int]:
    return [int(row["id"]) for row in rows]


def _expected_ids(api: DemoApi) -> list[int]:
    return _ids(api.ordered_records())


def _walk_offset(client: httpx.Client, path: str = "/offset/items", **params: Any) -> list[Any]:
    rows: list[Any] = []
    while True:
        body = client.get(path, params={**params, "offset": len(rows), "limit": 25}).json()
        rows.extend(body["items"])
        if len(rows) >= body["total"]:
            return rows


def _walk_page(client: httpx.Client) -> list[Any]:
    rows: list[Any] = []
    page = 1
    while True:
        body = client.get("/page/items", params={"page": page, "per_page": 30}).json()
        rows.extend(body["data"])
        if page >= body["total_pages"]:
            return rows
        page += 1


def _walk_cursor(client: httpx.Client) -> list[Any]:
    rows: list[Any] = []
    params: dict[str, Any] = {"limit": 40}
    while True:
        body = client.get("/cursor/items", params=params).json()
        rows.extend(body["results"])
        if body["next_cursor"] is None:
            return rows
        params["cursor"] = body["next_cursor"]


def _walk_nexturl(client: httpx.Client) -> list[Any]:
    rows: list[Any] = []
    url: str | None = "/nexturl/items"
    while url is not None:
        body = client.get(url).json()
        rows.extend(body["data"])
        url = body["links"]["next"]
    return rows


def _walk_link(client: httpx.Client, url: str = "/link/items?per_page=100") -> list[Any]:
    rows: list[Any] = []
    next_url: str | None = url
    while next_url is not None:
        response = client.get(next_url)
        rows.extend(response.json())
        next_url = response.links.get("next", {}).get("url")
    return rows


def _walk_header(client: httpx.Client) -> list[Any]:
    rows: list[Any] = []
    params: dict[str, Any] = {}
    while True:
        response = client.get("/header/items", params=params)
        rows.extend(response.json())
        token = response.headers.get("X-Next-Cursor")
        if token is None:
            return rows
        params["after"] = token


def _walk_lines(client: httpx.Client, path: str, parse: Callable[[str], list[Any]]) -> list[Any]:
    rows: list[Any] = []
    while True:
        page = parse(client.get(path, params={"offset": len(rows), "limit": 100}).text)
        if not page:
            return rows
        rows.extend(page)


def _parse_jsonl(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines()]


def _parse_csv(text: str) -> list[Any]:
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == ["id", "name", "amount", "updated_at"]
    return list(reader)


WALKERS: dict[str, Callable[[httpx.Client], list[Any]]] = {
    "offset": _walk_offset,
    "page": _walk_page,
    "cursor": _walk_cursor,
    "nexturl": _walk_nexturl,
    "link": _walk_link,
    "header": _walk_header,
    "jsonl": lambda client: _walk_lines(client, "/jsonl/items", _parse_jsonl),
    "csv": lambda client: _walk_lines(client, "/csv/items", _parse_csv),
}


def test_records_are_deterministic_with_ties_and_non_ascii() -> None:
    records = make_records(250)
    assert records == make_records(250)
    assert records != make_records(250, seed=1)
    assert _ids(records) == list(range(1, 251))
    stamps = [record["updated_at"] for record in records]
    assert stamps == sorted(stamps)
    assert stamps[0] == "2024-01-01T00:00:00.000001Z"
    assert len(set(stamps)) < len(stamps)
    assert all(len(stamp) == 27 and stamp.endswith("Z") for stamp in stamps)
    assert any(not name.isascii() for name in (record["name"] for record in records))
    assert any(record["address"] is None for record in records)
    assert any(record["tags"] == [] for record in records)
    assert all(round(record["amount"], 2) == record["amount"] for record in records)


@pytest.mark.parametrize("kind", list(WALKERS))
def test_pagination_walks_every_record_once(
    kind: str, demo_api: DemoApi, client: httpx.Client
) -> None:
    rows = WALKERS[kind](client)
    assert _ids(rows) == _expected_ids(demo_api)
    if kind != "csv":
        assert rows == demo_api.ordered_records()


def test_since_and_until_are_inclusive(demo_api: DemoApi, client: httpx.Client) -> None:
    ordered = demo_api.ordered_records()
    since, until = ordered[40]["updated_at"], ordered[120]["updated_at"]
    rows = _walk_offset(client, since=since, until=until)
    assert _ids(rows) == [r["id"] for r in ordered if since <= r["updated_at"] <= until]
    assert rows[0]["updated_at"] == since and rows[-1]["updated_at"] == until
    # Other RFC 3339 spellings of one instant select the same records.
    offset_form = since.replace("Z", "+00:00")
    assert _ids(_walk_offset(client, since=offset_form, until=until)) == _ids(rows)
    assert client.get("/offset/items", params={"since": "yesterday"}).status_code == 400


def test_added_and_updated_records_come_last(demo_api: DemoApi, client: httpx.Client) -> None:
    last_stamp = demo_api.ordered_records()[-1]["updated_at"]
    added = demo_api.add_records(3)
    assert _ids(added) == [251, 252, 253]
    assert all(record["updated_at"] > last_stamp for record in added)
    updated = demo_api.update_record(7, name="Renamed ✓")
    rows = _walk_cursor(client)
    assert _ids(rows)[-4:] == [251, 252, 253, 7]
    assert rows[-1] == updated and updated["name"] == "Renamed ✓"
    assert len(rows) == 253
    since = client.get("/offset/items", params={"since": added[0]["updated_at"]}).json()
    assert _ids(since["items"]) == [251, 252, 253, 7]


def test_page_sizes_default_to_10_and_stop_at_100(client: httpx.Client) -> None:
    assert len(client.get("/offset/items").json()["items"]) == 10
    assert len(client.get("/offset/items", params={"limit": 500}).json()["items"]) == 100
    assert client.get("/offset/items", params={"limit": 0}).status_code == 400
    assert client.get("/page/items", params={"page": 0}).status_code == 400
    assert client.get("/cursor/items", params={"cursor": "not a token!"}).status_code == 400


def test_link_header_has_last_and_no_next_on_last_page(client: httpx.Client) -> None:
    response = client.get("/link/items", params={"per_page": 100, "page": 3})
    assert len(response.json()) == 50
    assert "next" not in response.links
    assert response.links["last"]["url"].endswith("page=3")
    assert response.links["last"]["url"].startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    ("path", "good", "bad"),
    [
        ("/auth/apikey/items", {"headers": {"X-API-Key": "demo-api-key"}}, {}),
        (
            "/auth/apikey/items",
            {"params": {"api_key": "demo-api-key"}},
            {"params": {"api_key": "wrong"}},
        ),
        (
            "/auth/bearer/items",
            {"headers": {"Authorization": "Bearer demo-bearer-token"}},
            {"headers": {"Authorization": "Bearer wrong"}},
        ),
        (
            "/auth/basic/items",
            {"auth": ("demo-user", "demo-password")},
            {"auth": ("demo-user", "wrong")},
        ),
    ],
)
def test_static_auth(
    path: str, good: dict[str, Any], bad: dict[str, Any], client: httpx.Client
) -> None:
    assert client.get(path, **bad).status_code == 401
    response = client.get(path, **good)
    assert response.status_code == 200
    assert response.json()["total"] == 250


def test_oauth_client_credentials(demo_api: DemoApi, client: httpx.Client) -> None:
    assert client.get("/auth/oauth/items").status_code == 401
    by_basic = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "read"},
        auth=(demo_api.client_id, demo_api.client_secret),
    ).json()
    assert by_basic["token_type"] == "Bearer" and by_basic["expires_in"] == 3600
    by_body = client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": demo_api.client_id,
            "client_secret": demo_api.client_secret,
        },
    ).json()
    assert demo_api.tokens_issued == 2
    assert demo_api.token_requests[0] == {"grant_type": "client_credentials", "scope": "read"}
    assert all("client_secret" not in form for form in demo_api.token_requests)
    for token in (by_basic["access_token"], by_body["access_token"]):
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/auth/oauth/items", headers=headers).status_code == 200
    demo_api.expire_tokens()
    headers = {"Authorization": f"Bearer {by_basic['access_token']}"}
    assert client.get("/auth/oauth/items", headers=headers).status_code == 401
    wrong = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=("demo-client", "x")
    )
    assert wrong.status_code == 401 and "demo-client-secret" not in wrong.text
    assert client.post("/oauth/token", data={"grant_type": "password"}).status_code == 400
    assert demo_api.tokens_issued == 2


def test_github_repos_issues_and_comments(demo_api: DemoApi, client: httpx.Client) -> None:
    repos = _walk_link(client, "/github/orgs/acme/repos?per_page=2")
    assert [repo["full_name"] for repo in repos] == ["acme/widgets", "acme/gadgets", "acme/empty"]
    counts = {}
    for repo in repos:
        url = f"/github/repos/{repo['full_name']}/issues?state=all&sort=updated&direction=asc"
        issues = _walk_link(client, url)
        counts[repo["name"]] = len(issues)
        stamps = [issue["updated_at"] for issue in issues]
        assert stamps == sorted(stamps)
        for issue in issues:
            path = f"/github/repos/{repo['full_name']}/issues/{issue['number']}/comments"
            assert len(_walk_link(client, path)) == issue["comments"]
    assert counts == {"widgets": 23, "gadgets": 4, "empty": 0}
    assert sum(issue["comments"] for issue in demo_api.github_issues["acme/widgets"]) > 0
    # GitHub's defaults: open issues only, newest first; `since` keeps later updates.
    open_issues = _walk_link(client, "/github/repos/acme/widgets/issues")
    assert {issue["state"] for issue in open_issues} == {"open"}
    assert len(open_issues) < 23
    cut = sorted(issue["updated_at"] for issue in demo_api.github_issues["acme/widgets"])[10]
    since = _walk_link(client, f"/github/repos/acme/widgets/issues?state=all&since={cut}")
    assert len(since) >= 13 and all(issue["updated_at"] >= cut for issue in since)
    assert client.get("/github/orgs/nobody/repos").status_code == 404


def test_stripe_customers_newest_first(demo_api: DemoApi, client: httpx.Client) -> None:
    assert client.get("/stripe/v1/customers").status_code == 401
    headers = {"Authorization": f"Bearer {demo_api.stripe_key}"}

    def walk(**params: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while True:
            query = {"limit": 10, **params}
            if rows:
                query["starting_after"] = rows[-1]["id"]
            body = client.get("/stripe/v1/customers", params=query, headers=headers).json()
            assert body["object"] == "list" and body["url"] == "/v1/customers"
            rows.extend(body["data"])
            if not body["has_more"]:
                return rows

    rows = walk()
    assert len(rows) == 37 and len({row["id"] for row in rows}) == 37
    assert sorted(rows, key=lambda row: row["id"]) == sorted(
        make_customers(37), key=lambda row: row["id"]
    )
    created = [row["created"] for row in rows]
    assert created == sorted(created, reverse=True)
    added = demo_api.add_customers(2)
    assert [row["id"] for row in walk()[:2]] == [added[1]["id"], added[0]["id"]]
    bound = created[5]
    assert {row["id"] for row in walk(**{"created[gte]": bound})} == {
        row["id"] for row in demo_api.customers if row["created"] >= bound
    }
    unknown = client.get(
        "/stripe/v1/customers", params={"starting_after": "cus_nope"}, headers=headers
    )
    assert unknown.status_code == 400


def test_shape_change(demo_api: DemoApi, client: httpx.Client) -> None:
    assert set(client.get("/shape/items").json()) == {"items", "total"}
    demo_api.change_shape()
    assert set(client.get("/shape/items").json()) == {"rows"}


def test_rate_limit_and_unavailable(demo_api: DemoApi, client: httpx.Client) -> None:
    http_date = "Wed, 21 Oct 2015 07:28:00 GMT"
    demo_api.rate_limit_burst(2, retry_after="3")
    demo_api.unavailable(1, retry_after=http_date)
    # Faults are counted across data endpoints and skip the token endpoint.
    first = client.get("/page/items")
    token = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(demo_api.client_id, demo_api.client_secret),
    )
    second = client.get("/offset/items")
    third = client.get("/link/items")
    assert (first.status_code, first.headers["Retry-After"]) == (429, "3")
    assert token.status_code == 200
    assert (second.status_code, second.headers["Retry-After"]) == (429, "3")
    assert (third.status_code, third.headers["Retry-After"]) == (503, http_date)
    assert demo_api.pending_faults() == 0
    assert client.get("/offset/items").status_code == 200


def test_drop_closes_the_connection_mid_response(demo_api: DemoApi, client: httpx.Client) -> None:
    demo_api.drop(2)
    for _ in range(2):
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/cursor/items")
    assert client.get("/cursor/items").status_code == 200


def test_slow_response_outlasts_a_short_read_timeout(
    demo_api: DemoApi, client: httpx.Client
) -> None:
    demo_api.slow(1, 60)
    with pytest.raises(httpx.ReadTimeout):
        client.get("/offset/items", timeout=httpx.Timeout(10, read=0.2))
    demo_api.slow(1, 0.01)
    assert client.get("/offset/items").status_code == 200
    assert demo_api.pending_faults() == 0


def test_request_log(demo_api: DemoApi, client: httpx.Client) -> None:
    client.get("/offset/items", params={"limit": 5}, headers={"X-Trace": "abc"})
    [logged] = demo_api.requests
    assert (logged.method, logged.path, logged.query) == ("GET", "/offset/items", {"limit": "5"})
    assert logged.headers["x-trace"] == "abc"
    demo_api.reset_log()
    assert demo_api.requests == []


def test_serve_api_runs_and_stops_its_own_server() -> None:
    api = DemoApi(12, customers=0)
    with serve_api(api) as served:
        assert served is api
        assert api.base_url.startswith("http://127.0.0.1:")
        body = httpx.get(f"{api.base_url}/offset/items", params={"limit": 50}).json()
        assert _ids(body["items"]) == list(range(1, 13))
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{api.base_url}/offset/items")
