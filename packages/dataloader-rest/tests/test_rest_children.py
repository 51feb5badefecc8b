"""Parent → child resources of the `rest` source through the engine into DuckDB: a
GitHub-shaped org's repos, and each repo's issues under a path the repo's name fills in;
every issue once with its repo's id, a kill mid-way resumes without duplicates, `since` on
issues listed in any order, and the issues' labels normalized into a child table."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import duckdb
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dataloader import ConnectorError, LocalStateBackend, State
from dataloader.testing import local_runner
from dataloader_rest.testing import DemoApi, Killed, killed_at, serve_app

Runner = Callable[..., Any]
REPOS = "/github/orgs/acme/repos"


def issues_recipe(
    api: DemoApi, tmp_path: Path, *, incremental: bool = False, **sections: Any
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "path": "/github/repos/acme/{repo}/issues",
        "params": {"state": "all", "per_page": 5},
        "paginator": "link_header",
        "parent": {
            "path": REPOS,
            "params": {"per_page": 2},
            "paginator": "link_header",
            "fields": {"repo": "name"},
            "include": {"_repo_id": "id"},
        },
    }
    source: dict[str, Any] = {"type": "rest", "client": {"base_url": api.base_url}}
    if incremental:
        source["incremental"] = {"cursor_column": "updated_at"}
        resource["incremental"] = {"param": "since", "order": "any"}
    return {
        "name": "issues",
        "source": {**source, "resource": resource},
        "destination": {
            "type": "duckdb",
            "database": str(tmp_path / "out.duckdb"),
            "table": "issues",
        },
        "runtime": {"batch_size": 5, "commit_interval_seconds": 1e-9, "retries": 0},
        **sections,
    }


def all_issues(api: DemoApi) -> dict[int, int]:
    """Every issue's id → its repo's id."""
    repo_ids = {repo["full_name"]: repo["id"] for repo in api.github_repos}
    return {
        issue["id"]: repo_ids[name]
        for name, issues in api.github_issues.items()
        for issue in issues
    }


def loaded(tmp_path: Path) -> list[tuple[int, int]]:
    with duckdb.connect(str(tmp_path / "out.duckdb"), read_only=True) as con:
        return con.sql("SELECT id, _repo_id FROM issues ORDER BY id").fetchall()


def stored(tmp_path: Path) -> State:
    return State.from_dict(LocalStateBackend(tmp_path / "state").load("issues"))


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return local_runner(tmp_path / "state")


def test_every_issue_of_every_repo_loads_once_with_its_repo_id(
    demo_api: DemoApi, tmp_path: Path, run: Runner
) -> None:
    run(issues_recipe(demo_api, tmp_path))

    expected = all_issues(demo_api)
    assert len(expected) == 27
    assert loaded(tmp_path) == sorted(expected.items())
    paths = [request.path for request in demo_api.requests]
    assert paths.count(REPOS) == 2
    assert paths.count("/github/repos/acme/widgets/issues") == 5
    assert paths.count("/github/repos/acme/empty/issues") == 1
    # A full (not incremental) read keeps no checkpoint once it has finished.
    assert stored(tmp_path).watermarks == {}


@pytest.mark.parametrize("kill_at", [2, 4, 7, 8, 9])
def test_a_kill_mid_way_resumes_without_duplicates(
    kill_at: int,
    demo_api: DemoApi,
    tmp_path: Path,
    run: Runner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recipe = issues_recipe(demo_api, tmp_path, incremental=True)
    with killed_at(kill_at), pytest.raises(Killed):
        run(recipe)
    run_requests = [request.path for request in demo_api.requests]
    checkpoint = stored(tmp_path).watermarks.get("rest")

    demo_api.reset_log()
    run(recipe)

    assert loaded(tmp_path) == sorted(all_issues(demo_api).items())
    assert (checkpoint is None) == (kill_at == 2)
    if checkpoint is not None:
        # The resumed run reads the checkpointed parent page again, then the checkpointed
        # child page (or the next parent record's first page).
        first, second = demo_api.requests[:2]
        assert first.path == REPOS
        assert first.query.get("page") == _page(checkpoint["parent"]["request"])
        if checkpoint["request"] is not None:
            assert second.path == httpx.URL(checkpoint["request"]["url"]).path
            assert second.query.get("page") == _page(checkpoint["request"])
            assert second.path in run_requests
        else:
            assert "page" not in second.query


def _page(request: dict[str, Any]) -> str | None:
    """The `page` query parameter of a checkpointed request (in its URL or its params)."""
    page = request["params"].get("page", httpx.URL(request["url"]).params.get("page"))
    return None if page is None else str(page)


def test_since_on_issues_listed_in_any_order(
    demo_api: DemoApi, tmp_path: Path, run: Runner
) -> None:
    recipe = issues_recipe(demo_api, tmp_path, incremental=True)
    run(recipe)
    newest = max(
        issue["updated_at"] for issues in demo_api.github_issues.values() for issue in issues
    )
    state = stored(tmp_path)
    assert state.cursor_values["updated_at"] == datetime.fromisoformat(newest)

    late = {
        "id": 99_001,
        "number": 5,
        "title": "A new issue",
        "state": "open",
        "user": {"login": "hubot", "id": 480938},
        "labels": [],
        "created_at": "2030-01-01T00:00:00Z",
        "updated_at": "2030-01-01T00:00:00Z",
        "comments": 0,
    }
    with demo_api.lock:
        demo_api.github_issues["acme/gadgets"].append(late)
    demo_api.reset_log()
    second = run(recipe)

    assert second.rows_written == 1
    children = [r for r in demo_api.requests if r.path != REPOS]
    assert children and all(
        datetime.fromisoformat(r.query["since"].replace("Z", "+00:00"))
        == datetime.fromisoformat(newest).astimezone(UTC)
        for r in children
    )
    assert loaded(tmp_path)[-1] == (99_001, 701)
    assert len(loaded(tmp_path)) == 28


def test_issue_labels_normalize_into_a_child_table(
    demo_api: DemoApi, tmp_path: Path, run: Runner
) -> None:
    run(issues_recipe(demo_api, tmp_path, normalization={"enabled": True}))

    expected = sorted(
        (issue["id"], label["name"])
        for issues in demo_api.github_issues.values()
        for issue in issues
        for label in issue["labels"]
    )
    assert expected
    with duckdb.connect(str(tmp_path / "out.duckdb"), read_only=True) as con:
        labels = con.sql(
            "SELECT i.id, l.name FROM issues i JOIN issues__labels l "
            "ON l._dl_parent_id = i._dl_id ORDER BY 1, 2"
        ).fetchall()
        logins = con.sql("SELECT count(user__login) FROM issues").fetchall()
    assert labels == expected
    assert logins == [(27,)]


OWNERS = [{"id": 1, "name": "plain"}, {"id": 2, "name": "two words"}]
OWNERS += [{"id": 3, "name": "acme/widgets"}, {"id": 4, "name": "ada@example.com?x=1&y"}]


def owners_app(children: Callable[[str], list[dict[str, Any]]], seen: list[str]) -> Starlette:
    """`GET /owners` lists `OWNERS`; `GET /children?owner=…` and `GET /owners/<name>/children`
    answer `children(owner)`, noting in `seen` the owner as the app received it."""

    async def owners(request: Request) -> Response:
        return JSONResponse({"data": OWNERS})

    async def by_param(request: Request) -> Response:
        seen.append(request.query_params.get("owner", ""))
        return JSONResponse({"data": children(seen[-1])})

    async def by_path(request: Request) -> Response:
        raw = request.scope["raw_path"].decode()  # the segment as sent, not yet decoded
        seen.append(raw.removeprefix("/owners/").removesuffix("/children"))
        return JSONResponse({"data": children(unquote(seen[-1]))})

    return Starlette(
        routes=[
            Route("/owners", owners),
            Route("/children", by_param),
            Route("/owners/{name:path}/children", by_path),
        ]
    )


def owners_recipe(base_url: str, tmp_path: Path, **resource: Any) -> dict[str, Any]:
    parent = {"path": "/owners", "paginator": "single_page", "fields": {"owner": "name"}}
    return {
        "name": "children",
        "source": {
            "type": "rest",
            "client": {"base_url": base_url},
            "resource": {"paginator": "single_page", **resource, "parent": parent},
        },
        "destination": {
            "type": "duckdb",
            "database": str(tmp_path / "out.duckdb"),
            "table": "children",
        },
        "runtime": {"retries": 0},
    }


def test_a_parent_value_is_sent_as_it_is_in_a_query_parameter_and_encoded_in_the_path(
    tmp_path: Path, run: Runner
) -> None:
    """The client encodes a query parameter when it sends it: encoded by the source as
    well, `two words` reached the API as `two%20words` and the children were not found."""
    seen: list[str] = []
    names = [owner["name"] for owner in OWNERS]

    def children(owner: str) -> list[dict[str, Any]]:
        return [{"n": n, "owner": owner} for n in range(2)] if owner in names else []

    with serve_app(owners_app(children, seen)) as base_url:
        run(owners_recipe(base_url, tmp_path, path="/children", params={"owner": "{owner}"}))
        assert seen == names
        with duckdb.connect(str(tmp_path / "out.duckdb"), read_only=True) as con:
            rows = con.sql("SELECT owner, n FROM children ORDER BY ALL").fetchall()
        assert rows == sorted((name, n) for name in names for n in range(2))

        seen.clear()
        run(owners_recipe(base_url, tmp_path / "path", path="/owners/{owner}/children"))
        assert seen == [quote(name, safe="") for name in names]  # one path segment each


def test_an_include_naming_a_field_of_the_child_records_is_refused(
    tmp_path: Path, run: Runner
) -> None:
    """`include: {owner_id: id}` wrote the parent's id over the children's own `owner_id`."""

    def children(owner: str) -> list[dict[str, Any]]:
        return [{"n": 1, "owner_id": 999}]

    with serve_app(owners_app(children, [])) as base_url:
        recipe = owners_recipe(base_url, tmp_path, path="/owners/{owner}/children")
        parent = recipe["source"]["resource"]["parent"]
        parent["include"] = {"owner_id": "id"}
        with pytest.raises(ConnectorError) as failed:
            run(recipe)
        message = str(failed.value)
        assert "source.resource.parent.include" in message and "'owner_id'" in message
        assert "a column name the child records do not use" in message
        assert failed.value.context["key"] == "source.resource.parent.include"

        parent["include"] = {"parent_id": "id"}
        run(recipe)
    with duckdb.connect(str(tmp_path / "out.duckdb"), read_only=True) as con:
        rows = con.sql("SELECT parent_id, owner_id FROM children ORDER BY ALL").fetchall()
    assert rows == [(owner["id"], 999) for owner in OWNERS]
