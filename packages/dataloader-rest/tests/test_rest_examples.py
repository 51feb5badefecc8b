"""The REST example recipes (`examples/recipes/*_to_duckdb.yaml` with `type: rest`) run
against the demo API, their base URL from `DEMO_API_URL`, and load what it serves; and
`dataloader demo-api` serves it until Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from dataloader import LocalStateBackend, RunResult, from_yaml, run_recipe
from dataloader_rest.testing import DemoApi

RECIPES = Path(__file__).resolve().parents[3] / "examples" / "recipes"


@pytest.fixture
def warehouse(tmp_path: Path, demo_api: DemoApi, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The examples' environment: the demo API's URL and keys, a warehouse in tmp_path."""
    path = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("DEMO_API_URL", demo_api.base_url)
    monkeypatch.setenv("DATALOADER_WAREHOUSE", str(path))
    monkeypatch.setenv("STRIPE_API_KEY", demo_api.stripe_key)
    monkeypatch.setenv("GITHUB_TOKEN", "demo")
    yield path


def run_example(name: str, state: Path) -> RunResult:
    result = run_recipe(from_yaml(RECIPES / f"{name}.yaml"), LocalStateBackend(state))
    assert result.status == "success", result
    return result


def rows(database: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def test_github_issues_of_every_repo_load_once(
    warehouse: Path, demo_api: DemoApi, tmp_path: Path
) -> None:
    issues = {
        issue["id"]: (repo, issue)
        for repo, repo_issues in demo_api.github_issues.items()
        for issue in repo_issues
    }
    labels = sum(len(issue["labels"]) for _, issue in issues.values())

    first = run_example("github_issues_to_duckdb", tmp_path / "state")

    assert first.rows_written == len(issues) == 27
    loaded = rows(warehouse, "SELECT id, repo, number FROM github_issues ORDER BY id")
    assert loaded == [(i, repo, issue["number"]) for i, (repo, issue) in sorted(issues.items())]
    assert rows(warehouse, "SELECT count(*) FROM github_issues__labels") == [(labels,)]
    # Every repo's issues were asked for, the repo without issues too.
    asked = {request.path for request in demo_api.requests if request.path.endswith("/issues")}
    assert asked == {f"/github/repos/{repo}/issues" for repo in demo_api.github_issues}

    demo_api.reset_log()
    again = run_example("github_issues_to_duckdb", tmp_path / "state")

    assert rows(warehouse, "SELECT count(*), count(DISTINCT id) FROM github_issues") == [(27, 27)]
    assert again.rows_written < first.rows_written
    since = {r.query.get("since") for r in demo_api.requests if r.path.endswith("/issues")}
    latest = max(issue["updated_at"] for _, issue in issues.values())
    assert since == {latest}  # the committed cursor, as GitHub's inclusive `since`


def test_stripe_customers_load_newest_first_and_then_only_the_new_ones(
    warehouse: Path, demo_api: DemoApi, tmp_path: Path
) -> None:
    first = run_example("stripe_customers_to_duckdb", tmp_path / "state")

    assert first.rows_written == len(demo_api.customers) == 37
    expected = sorted(customer["id"] for customer in demo_api.customers)
    assert [r[0] for r in rows(warehouse, "SELECT id FROM stripe_customers ORDER BY id")] == (
        expected
    )

    added = demo_api.add_customers(5)
    demo_api.reset_log()
    run_example("stripe_customers_to_duckdb", tmp_path / "state")

    total = rows(warehouse, "SELECT count(*), count(DISTINCT id) FROM stripe_customers")
    assert total == [(42, 42)]
    newest = max(customer["created"] for customer in demo_api.customers[:37])
    asked = demo_api.requests_to("/stripe/v1/customers")
    assert asked[0].query["created[gte]"] == str(newest)
    assert {c["id"] for c in added} <= {
        r[0] for r in rows(warehouse, "SELECT id FROM stripe_customers")
    }


def test_demo_api_command_serves_until_interrupted() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "dataloader", "demo-api", "--port", "0", "--records", "7"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("demo API at http://127.0.0.1:"), first
        base_url = first.split()[3]
        banner = [process.stdout.readline() for _ in range(8)]
        assert all(len(line.rstrip("\n")) <= 80 for line in [first, *banner])
        assert f"  export DEMO_API_URL={base_url}\n" in banner

        response = httpx.get(f"{base_url}/offset/items", params={"limit": 100})
        assert response.status_code == 200
        assert [item["id"] for item in response.json()["items"]] == list(range(1, 8))

        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "stopping the demo API" in out


def test_docs_name_every_key_and_paginator_option() -> None:
    """docs/rest.md names every key of the source's config and every built-in paginator's
    options, so a key added to the code without its documentation fails here."""
    from pydantic import BaseModel

    from dataloader_rest import config
    from dataloader_rest.paginators import BUILTIN_PAGINATORS

    text = (RECIPES.parents[1] / "docs" / "rest.md").read_text(encoding="utf-8")
    models: list[type[BaseModel]] = [
        config.ClientConfig,
        config.RateLimit,
        config.ApiKeyAuth,
        config.BearerAuth,
        config.BasicAuth,
        config.OAuth2ClientCredentials,
        config.IncrementalParams,
        config.ParentConfig,
    ]
    missing = [
        f"{model.__name__}.{field.alias or name}"
        for model in models
        for name, field in model.model_fields.items()
        if f"`{field.alias or name}`" not in text and f" {field.alias or name}:" not in text
    ]
    for paginator in BUILTIN_PAGINATORS:
        if f"`{paginator.name}`" not in text:
            missing.append(paginator.name)
        missing.extend(
            f"{paginator.name}.{name}"
            for name in paginator.options_model.model_fields
            if f"`{name}`" not in text
        )
    assert missing == []
