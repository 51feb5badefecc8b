"""The `rest` source through the engine into DuckDB: every pagination style loads every
record once, every auth scheme works (and a wrong secret never shows), faults (429 bursts,
503, dropped and slow responses) are retried to a complete load, a response that changes
shape fails clearly, and nested records normalize into child tables."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from dataloader.cli.app import cli
from dataloader.testing import local_runner
from dataloader_rest import connector
from dataloader_rest.client import RestClient
from dataloader_rest.testing import DemoApi

Runner = Callable[..., Any]


def recipe(
    api: DemoApi,
    tmp_path: Path,
    resource: dict[str, Any],
    *,
    client: dict[str, Any] | None = None,
    table: str = "items",
    **sections: Any,
) -> dict[str, Any]:
    """A recipe loading `resource` of the demo API into DuckDB under `tmp_path`."""
    return {
        "name": table,
        "source": {
            "type": "rest",
            "client": {"base_url": api.base_url, **(client or {})},
            "resource": resource,
        },
        "destination": {"type": "duckdb", "database": str(tmp_path / "out.duckdb"), "table": table},
        **sections,
    }


def rows(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(tmp_path / "out.duckdb"), read_only=True) as con:
        return con.sql(sql).fetchall()


def ids(tmp_path: Path, table: str = "items") -> list[Any]:
    return [row[0] for row in rows(tmp_path, f"SELECT id FROM {table} ORDER BY id")]


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return local_runner(tmp_path / "state")


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the source's client asks for; none is actually waited."""
    asked: list[float] = []
    monkeypatch.setattr(connector, "RestClient", functools.partial(RestClient, sleep=asked.append))
    return asked


ALL = list(range(1, 251))


# -- pagination ---------------------------------------------------------------------------

PAGINATED = {
    "offset": (
        {"path": "/offset/items", "data_selector": "items", "paginator": {"type": "offset"}},
        {"limit": 40},
    ),
    "page_number": (
        {
            "path": "/page/items",
            "data_selector": "data",
            "paginator": {
                "type": "page_number",
                "page_size_param": "per_page",
                "page_size": 30,
                "total_pages_path": "total_pages",
            },
        },
        {},
    ),
    "cursor": (
        {
            "path": "/cursor/items",
            "params": {"limit": 25},
            "data_selector": "results",
            "paginator": {"type": "cursor", "cursor_path": "next_cursor"},
        },
        {},
    ),
    "next_url": (
        {
            "path": "/nexturl/items",
            "params": {"per_page": 50},
            "data_selector": "data",
            "paginator": {"type": "next_url", "next_url_path": "links.next"},
        },
        {},
    ),
    "link_header": (
        {"path": "/link/items", "params": {"per_page": 20}, "paginator": "link_header"},
        {},
    ),
    "auto_cursor": ({"path": "/cursor/items", "params": {"limit": 30}}, {}),
    "auto_link": ({"path": "/link/items", "params": {"per_page": 30}}, {}),
    "auto_next_url": ({"path": "/nexturl/items", "params": {"per_page": 30}}, {}),
}


@pytest.mark.parametrize("style", sorted(PAGINATED))
def test_each_pagination_style_loads_every_record_once(
    style: str, demo_api: DemoApi, tmp_path: Path, run: Runner
) -> None:
    resource, options = PAGINATED[style]
    if options:
        resource = {**resource, "paginator": {**resource["paginator"], **options}}
    result = run(recipe(demo_api, tmp_path, resource))

    assert result.rows_written == 250
    assert ids(tmp_path) == ALL
    assert len(demo_api.requests) >= 2


@pytest.mark.parametrize(("body", "limit"), [("jsonl", 40), ("csv", 60)])
def test_jsonl_and_csv_bodies_load_every_record_once(
    body: str, limit: int, demo_api: DemoApi, tmp_path: Path, run: Runner
) -> None:
    resource = {
        "path": f"/{body}/items",
        "format": body,
        "paginator": {"type": "offset", "limit": limit},
    }
    run(recipe(demo_api, tmp_path, resource))

    loaded = rows(tmp_path, "SELECT id, name, updated_at FROM items")
    assert sorted(int(row[0]) for row in loaded) == ALL
    by_id = {int(row[0]): row for row in loaded}
    for record in demo_api.records[:5]:
        assert by_id[record["id"]][1] == record["name"]
    # Offset pages until an empty page: one request more than the pages holding records.
    assert len(demo_api.requests) == math.ceil(250 / limit) + 1


def test_stripe_customers_page_with_starting_after_newest_first(
    demo_api: DemoApi, tmp_path: Path, run: Runner
) -> None:
    resource = {
        "path": "/stripe/v1/customers",
        "params": {"limit": 10},
        "data_selector": "data",
        "paginator": "starting_after",
    }
    client = {"auth": {"type": "bearer", "token": demo_api.stripe_key}}
    run(recipe(demo_api, tmp_path, resource, client=client, table="customers"))

    assert sorted(ids(tmp_path, "customers")) == sorted(c["id"] for c in demo_api.customers)
    assert rows(tmp_path, "SELECT count(*) FROM customers") == [(37,)]
    pages = demo_api.requests_to("/stripe/v1/customers")
    assert len(pages) == 4
    assert "starting_after" not in pages[0].query
    assert all(request.query.get("starting_after", "").startswith("cus_") for request in pages[1:])


def test_max_pages_stops_a_recipe_after_that_many_pages(
    demo_api: DemoApi, tmp_path: Path, run: Runner
) -> None:
    resource = {
        "path": "/offset/items",
        "data_selector": "items",
        "paginator": {"type": "offset", "limit": 10, "max_pages": 3},
    }
    run(recipe(demo_api, tmp_path, resource))

    assert ids(tmp_path) == list(range(1, 31))
    assert len(demo_api.requests) == 3


def test_total_path_stops_at_the_announced_total_without_an_empty_page(
    demo_api: DemoApi, tmp_path: Path, run: Runner
) -> None:
    resource = {
        "path": "/offset/items",
        "data_selector": "items",
        "paginator": {"type": "offset", "limit": 50, "total_path": "total"},
    }
    run(recipe(demo_api, tmp_path, resource))

    assert ids(tmp_path) == ALL
    assert [r.query["offset"] for r in demo_api.requests] == ["0", "50", "100", "150", "200"]


# -- auth ---------------------------------------------------------------------------------


def good_auth(api: DemoApi) -> dict[str, dict[str, Any]]:
    return {
        "apikey_header": {"type": "api_key", "value": api.api_key},
        "apikey_query": {
            "type": "api_key",
            "name": "api_key",
            "location": "query",
            "value": api.api_key,
        },
        "bearer": {"type": "bearer", "token": api.bearer_token},
        "basic": {"type": "basic", "username": api.basic_user, "password": api.basic_password},
        "oauth": {
            "type": "oauth2_client_credentials",
            "token_url": f"{api.base_url}/oauth/token",
            "client_id": api.client_id,
            "client_secret": api.client_secret,
        },
    }


AUTH_PATHS = {
    "apikey_header": "/auth/apikey/items",
    "apikey_query": "/auth/apikey/items",
    "bearer": "/auth/bearer/items",
    "basic": "/auth/basic/items",
    "oauth": "/auth/oauth/items",
}
SECRET_KEYS = {
    "apikey_header": "value",
    "apikey_query": "value",
    "bearer": "token",
    "basic": "password",
    "oauth": "client_secret",
}
WRONG = "Wr0ng-S3cret-value-xyz"


def auth_resource(scheme: str) -> dict[str, Any]:
    return {
        "path": AUTH_PATHS[scheme],
        "data_selector": "items",
        "paginator": {"type": "offset", "limit": 100},
    }


@pytest.mark.parametrize("scheme", sorted(AUTH_PATHS))
def test_each_auth_scheme_loads_through_a_recipe(
    scheme: str, demo_api: DemoApi, tmp_path: Path, run: Runner
) -> None:
    client = {"auth": good_auth(demo_api)[scheme]}
    run(recipe(demo_api, tmp_path, auth_resource(scheme), client=client))

    assert ids(tmp_path) == ALL


@pytest.mark.parametrize("scheme", sorted(AUTH_PATHS))
def test_wrong_credentials_fail_naming_the_url_and_status_not_the_secret(
    scheme: str,
    demo_api: DemoApi,
    tmp_path: Path,
    run: Runner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    auth = {**good_auth(demo_api)[scheme], SECRET_KEYS[scheme]: WRONG}
    caplog.set_level(logging.DEBUG)
    with pytest.raises(Exception) as failed:
        run(
            recipe(
                demo_api,
                tmp_path,
                auth_resource(scheme),
                client={"auth": auth},
                runtime={"retries": 0},
            )
        )

    message = str(failed.value)
    assert "401" in message
    if scheme == "oauth":
        # The token URL is a key named like a secret, so the error masks it and names the key.
        assert "source.client.auth.token_url" in message
    else:
        assert AUTH_PATHS[scheme] in message
    assert WRONG not in message
    # httpx itself logs every request URL at INFO (query parameters included) under the
    # `httpx` logger, which the CLI does not show; the project's own logs never hold it.
    ours = [r for r in caplog.records if r.name.startswith("dataloader")]
    assert ours and all(WRONG not in r.getMessage() for r in ours)
    assert not (tmp_path / "out.duckdb").exists() or not rows(
        tmp_path, "SELECT table_name FROM information_schema.tables WHERE table_name = 'items'"
    )


def test_cli_validate_and_render_never_show_a_secret_from_the_environment(
    demo_api: DemoApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REST_TEST_KEY", WRONG)
    path = tmp_path / "apikey.yaml"
    path.write_text(
        "name: apikey\n"
        "source:\n"
        "  type: rest\n"
        "  client:\n"
        f"    base_url: {demo_api.base_url}\n"
        "    auth:\n"
        "      type: api_key\n"
        "      name: api_key\n"
        "      location: query\n"
        "      value: \"{{ env_var('REST_TEST_KEY') }}\"\n"
        "  resource:\n"
        "    path: /auth/apikey/items\n"
        "    data_selector: items\n"
        "destination:\n"
        "  type: duckdb\n"
        f"  database: {tmp_path / 'out.duckdb'}\n"
        "  table: items\n"
        "runtime:\n"
        "  retries: 0\n",
        encoding="utf-8",
    )
    runner = CliRunner()

    validated = runner.invoke(cli, ["validate", str(path)])
    rendered = runner.invoke(cli, ["render", str(path)])
    failed = runner.invoke(
        cli, ["--log-level", "debug", "run", str(path), "--state-dir", str(tmp_path / "s")]
    )

    assert validated.exit_code == 0, validated.output
    assert rendered.exit_code == 0, rendered.output
    assert "api_key" in rendered.output
    assert failed.exit_code != 0
    assert "401" in failed.output and "/auth/apikey/items" in failed.output
    for result in (validated, rendered, failed):
        assert WRONG not in result.output
        assert WRONG not in (result.stderr if result.stderr_bytes is not None else "")


# -- faults -------------------------------------------------------------------------------


def offset_resource(limit: int = 50) -> dict[str, Any]:
    return {
        "path": "/offset/items",
        "data_selector": "items",
        "paginator": {"type": "offset", "limit": limit},
    }


def test_bursts_of_429_with_retry_after_seconds_and_dates_are_waited_out(
    demo_api: DemoApi, tmp_path: Path, run: Runner, sleeps: list[float]
) -> None:
    demo_api.rate_limit_burst(3, retry_after="7")
    demo_api.rate_limit_burst(2, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    demo_api.rate_limit_burst(1, retry_after=None)
    run(recipe(demo_api, tmp_path, offset_resource()))

    assert ids(tmp_path) == ALL
    assert demo_api.pending_faults() == 0
    assert sleeps[:3] == [7, 7, 7]
    assert sleeps[3:5] == [0, 0]  # a date in the past: retry at once
    assert len(sleeps) == 6 and sleeps[5] > 0  # no Retry-After: back off
    assert len(demo_api.requests) == 6 + 6


def test_503_dropped_and_slow_responses_are_retried_to_a_complete_load(
    demo_api: DemoApi, tmp_path: Path, run: Runner, sleeps: list[float]
) -> None:
    demo_api.unavailable(2, retry_after="2")
    demo_api.drop(2)
    demo_api.slow(1, seconds=5)
    run(
        recipe(
            demo_api,
            tmp_path,
            offset_resource(),
            client={"timeout": 0.3},
            runtime={"retries": {"attempts": 5}},
        )
    )

    assert ids(tmp_path) == ALL
    assert demo_api.pending_faults() == 0
    assert sleeps[:2] == [2, 2]
    assert len(sleeps) == 5


# -- shape changes and nested records -----------------------------------------------------


def test_a_changed_response_shape_fails_clearly_and_keeps_what_was_committed(
    demo_api: DemoApi, tmp_path: Path, run: Runner
) -> None:
    resource = {
        "path": "/shape/items",
        "data_selector": "items",
        "paginator": {"type": "offset", "limit": 50},
    }
    sections = {"runtime": {"batch_size": 50, "commit_interval_seconds": 1e-9, "retries": 0}}
    run(
        recipe(demo_api, tmp_path, {**resource, "paginator": {**resource["paginator"]}}, **sections)
    )
    assert ids(tmp_path) == ALL

    demo_api.change_shape()
    with pytest.raises(Exception) as failed:
        run(recipe(demo_api, tmp_path, resource, **sections))

    message = str(failed.value)
    assert "/shape/items" in message
    assert "data_selector" in message and "items" in message
    assert "rows" in message  # the sample of the body
    assert ids(tmp_path) == ALL


def test_a_shape_change_between_pages_keeps_the_pages_committed_before_it(
    demo_api: DemoApi, tmp_path: Path, run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    send = RestClient.send

    def change_after_two_pages(self: RestClient, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            demo_api.change_shape()
        return send(self, *args, **kwargs)

    monkeypatch.setattr(RestClient, "send", change_after_two_pages)
    resource = {
        "path": "/shape/items",
        "paginator": {"type": "offset", "limit": 50},
    }
    sections = {"runtime": {"batch_size": 50, "commit_interval_seconds": 1e-9, "retries": 0}}
    with pytest.raises(Exception) as failed:
        run(recipe(demo_api, tmp_path, resource, **sections))

    message = str(failed.value)
    assert "/shape/items" in message and "items" in message and "rows" in message
    # The engine may hold the last page read back; what it committed is a prefix, once.
    loaded = ids(tmp_path)
    assert loaded == list(range(1, len(loaded) + 1))
    assert len(loaded) >= 50


def test_nested_records_normalize_into_child_tables(
    demo_api: DemoApi, tmp_path: Path, run: Runner
) -> None:
    run(
        recipe(
            demo_api,
            tmp_path,
            offset_resource(100),
            normalization={"enabled": True},
        )
    )

    assert ids(tmp_path) == ALL
    tags = rows(tmp_path, "SELECT count(*) FROM items__tags")[0][0]
    assert tags == sum(len(record["tags"]) for record in demo_api.records)
    cities = rows(tmp_path, "SELECT count(address__city) FROM items")[0][0]
    assert cities == sum(1 for record in demo_api.records if record["address"])
    joined = rows(
        tmp_path,
        "SELECT i.id, list_sort(list(t.value)) FROM items i JOIN items__tags t "
        "ON t._dl_parent_id = i._dl_id GROUP BY i.id ORDER BY i.id",
    )
    expected = [(r["id"], sorted(r["tags"])) for r in demo_api.ordered_records() if r["tags"]]
    assert joined == sorted(expected)
