"""Kill and resume: a run of the `rest` source stopped mid-way (the k-th request fails with
a non-transient error: a gate, not a timer) resumes at its checkpointed page, and every
record is loaded exactly once, for listings in cursor order (`asc`) and newest first
(`desc`); a finished run leaves no page to resume from."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dataloader import ConnectorError, LocalStateBackend, State
from dataloader.testing import local_runner
from dataloader_rest.testing import DemoApi, Killed, killed_at

Runner = Callable[..., Any]
RUNTIME = {"batch_size": 20, "commit_interval_seconds": 1e-9, "retries": 0}


def stored(tmp_path: Path, name: str) -> State:
    return State.from_dict(LocalStateBackend(tmp_path / "state").load(name))


def column(tmp_path: Path, sql: str) -> list[Any]:
    with duckdb.connect(str(tmp_path / "out.duckdb"), read_only=True) as con:
        return [row[0] for row in con.sql(sql).fetchall()]


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return local_runner(tmp_path / "state")


def items_recipe(api: DemoApi, tmp_path: Path) -> dict[str, Any]:
    return {
        "name": "items",
        "source": {
            "type": "rest",
            "client": {"base_url": api.base_url},
            "incremental": {"cursor_column": "updated_at"},
            "resource": {
                "path": "/offset/items",
                "data_selector": "items",
                "paginator": {"type": "offset", "limit": 20},
                "incremental": {"param": "since"},
            },
        },
        "destination": {
            "type": "duckdb",
            "database": str(tmp_path / "out.duckdb"),
            "table": "items",
        },
        "runtime": RUNTIME,
    }


def customers_recipe(api: DemoApi, tmp_path: Path) -> dict[str, Any]:
    return {
        "name": "customers",
        "source": {
            "type": "rest",
            "client": {
                "base_url": api.base_url,
                "auth": {"type": "bearer", "token": api.stripe_key},
            },
            "incremental": {"cursor_column": "created"},
            "resource": {
                "path": "/stripe/v1/customers",
                "params": {"limit": 5},
                "data_selector": "data",
                "paginator": "starting_after",
                "incremental": {"param": "created[gte]", "format": "unix", "order": "desc"},
            },
        },
        "destination": {
            "type": "duckdb",
            "database": str(tmp_path / "out.duckdb"),
            "table": "customers",
        },
        "runtime": {**RUNTIME, "batch_size": 5},
    }


@pytest.mark.parametrize("kill_at", [2, 5, 13])
def test_an_ascending_listing_resumes_at_its_checkpointed_page(
    kill_at: int,
    demo_api: DemoApi,
    tmp_path: Path,
    run: Runner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recipe = items_recipe(demo_api, tmp_path)
    with killed_at(kill_at), pytest.raises(Killed):
        run(recipe)
    checkpoint = stored(tmp_path, "items").watermarks["rest"]["request"]
    assert checkpoint is not None
    committed = column(tmp_path, "SELECT id FROM items ORDER BY id")
    assert committed == list(range(1, len(committed) + 1))
    assert len(committed) >= 20 * (kill_at - 2)

    demo_api.reset_log()
    run(recipe)

    assert column(tmp_path, "SELECT id FROM items ORDER BY id") == list(range(1, 251))
    first = demo_api.requests[0]
    assert first.query["offset"] == str(checkpoint["params"]["offset"])
    assert first.query["offset"] == str(20 * (kill_at - 2))
    assert stored(tmp_path, "items").watermarks["rest"]["request"] is None


@pytest.mark.parametrize("kill_at", [2, 4, 7])
def test_a_newest_first_listing_resumes_at_its_checkpointed_page(
    kill_at: int,
    demo_api: DemoApi,
    tmp_path: Path,
    run: Runner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recipe = customers_recipe(demo_api, tmp_path)
    with killed_at(kill_at), pytest.raises(Killed):
        run(recipe)
    state = stored(tmp_path, "customers")
    checkpoint = state.watermarks["rest"]["request"]
    assert checkpoint["params"]["starting_after"].startswith("cus_")
    assert state.cursor_values == {}  # committed only with the run's last commit
    committed = column(tmp_path, "SELECT id FROM customers")
    assert len(committed) == len(set(committed)) == 5 * (kill_at - 1)

    demo_api.reset_log()
    run(recipe)

    loaded = column(tmp_path, "SELECT id FROM customers")
    assert sorted(loaded) == sorted(c["id"] for c in demo_api.customers)
    assert len(loaded) == 37
    first = demo_api.requests[0]
    assert first.query["starting_after"] == checkpoint["params"]["starting_after"]
    assert "created[gte]" not in first.query
    state = stored(tmp_path, "customers")
    assert state.watermarks["rest"]["request"] is None
    assert state.cursor_values == {"created": max(c["created"] for c in demo_api.customers)}


def test_a_finished_run_leaves_no_request_to_resume_from(
    demo_api: DemoApi, tmp_path: Path, run: Runner
) -> None:
    recipe = items_recipe(demo_api, tmp_path)
    run(recipe)

    assert stored(tmp_path, "items").watermarks["rest"]["request"] is None
    demo_api.add_records(3)
    demo_api.reset_log()
    run(recipe)
    assert demo_api.requests[0].query["offset"] == "0"
    assert "since" in demo_api.requests[0].query
    assert column(tmp_path, "SELECT count(*) FROM items") == [253]


def test_a_kill_after_resume_resumes_again_without_duplicates(
    demo_api: DemoApi, tmp_path: Path, run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = items_recipe(demo_api, tmp_path)
    for kill_at in (4, 3, 5):
        with killed_at(kill_at), pytest.raises(Killed):
            run(recipe)
    run(recipe)

    assert column(tmp_path, "SELECT id FROM items ORDER BY id") == list(range(1, 251))


@contextmanager
def write_fails_at(monkeypatch: pytest.MonkeyPatch, call: int) -> Iterator[None]:
    """The destination's `call`-th `write_batch` (1-based) fails while the block runs: a run
    killed between two batches of one page."""
    from dataloader_duckdb.connector import DuckDBConnector

    write = DuckDBConnector.write_batch
    calls = 0

    def gated(self: DuckDBConnector, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == call:
            raise Killed(f"killed at write {call}")
        return write(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(DuckDBConnector, "write_batch", gated)
        yield


@pytest.mark.parametrize("kill_at", [2, 3, 4])
def test_a_page_larger_than_a_batch_is_never_committed_in_part_when_newest_first(
    kill_at: int,
    demo_api: DemoApi,
    tmp_path: Path,
    run: Runner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The checkpoint of a listing newest first names the next page, so a page is one
    batch: cut into batches of 5, a run killed between two of them resumed past the rows
    not yet committed (they were lost)."""
    recipe = customers_recipe(demo_api, tmp_path)
    recipe["source"]["resource"]["params"] = {"limit": 10}  # pages of 10, batch_size 5
    with write_fails_at(monkeypatch, kill_at), pytest.raises(Killed):
        run(recipe)
    committed = column(tmp_path, "SELECT id FROM customers")
    assert len(committed) == len(set(committed)) == 10 * (kill_at - 1)

    run(recipe)

    loaded = column(tmp_path, "SELECT id FROM customers")
    assert sorted(loaded) == sorted(c["id"] for c in demo_api.customers)


def test_an_ascending_page_larger_than_a_batch_resumes_at_that_page(
    demo_api: DemoApi, tmp_path: Path, run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = items_recipe(demo_api, tmp_path)
    recipe["source"]["resource"]["paginator"]["limit"] = 50  # pages of 50, batch_size 20
    with write_fails_at(monkeypatch, 5), pytest.raises(Killed):
        run(recipe)

    run(recipe)

    assert column(tmp_path, "SELECT id FROM items ORDER BY id") == list(range(1, 251))


def test_a_refused_ascending_checkpoint_reads_again_from_the_committed_cursor(
    demo_api: DemoApi,
    tmp_path: Path,
    run: Runner,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    recipe = items_recipe(demo_api, tmp_path)
    recipe["source"]["resource"].update(
        {"path": "/cursor/items", "params": {"limit": 20}, "paginator": "cursor"}
    )
    recipe["source"]["resource"].pop("data_selector")
    with killed_at(5), pytest.raises(Killed):
        run(recipe)
    checkpoint = stored(tmp_path, "items").watermarks["rest"]["request"]
    cursor = checkpoint["params"]["cursor"]
    gone = int(base64.urlsafe_b64decode(cursor).decode())
    with demo_api.lock:  # the record the cursor names is deleted: the API answers 400
        demo_api.records = [r for r in demo_api.records if r["id"] != gone]

    demo_api.reset_log()
    run(recipe)

    loaded = column(tmp_path, "SELECT id FROM items ORDER BY id")
    assert len(loaded) == len(set(loaded))
    assert [i for i in loaded if i != gone] == [i for i in range(1, 251) if i != gone]
    first, second = demo_api.requests[:2]
    assert first.query["cursor"] == cursor
    assert "cursor" not in second.query and "since" in second.query
    assert "refused the checkpointed page" in caplog.text


@pytest.mark.parametrize(
    "mode",
    ["append", "merge"],
)
def test_a_refused_newest_first_checkpoint_fails_unless_merging(
    mode: str,
    demo_api: DemoApi,
    tmp_path: Path,
    run: Runner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recipe = customers_recipe(demo_api, tmp_path)
    if mode == "merge":
        recipe["destination"].update({"write_mode": "merge", "merge_keys": ["id"]})
    with killed_at(3), pytest.raises(Killed):
        run(recipe)
    gone = stored(tmp_path, "customers").watermarks["rest"]["request"]["params"]["starting_after"]
    with demo_api.lock:
        demo_api.customers = [c for c in demo_api.customers if c["id"] != gone]

    if mode == "append":
        with pytest.raises(ConnectorError) as refused:
            run(recipe)
        assert "resume from" in str(refused.value)
        assert "incremental.order" in str(refused.value)
        assert len(column(tmp_path, "SELECT id FROM customers")) == 10
        return
    run(recipe)
    loaded = column(tmp_path, "SELECT id FROM customers")
    assert len(loaded) == len(set(loaded))
    assert set(loaded) == {c["id"] for c in demo_api.customers} | {gone}


@contextmanager
def commit_fails_at(monkeypatch: pytest.MonkeyPatch, call: int) -> Iterator[list[int]]:
    """The destination's `call`-th `commit` (1-based) fails while the block runs; yields the
    count of commits so far (one item)."""
    from dataloader_duckdb.connector import DuckDBConnector

    commit = DuckDBConnector.commit
    calls = [0]

    def gated(self: DuckDBConnector, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == call:
            raise Killed(f"killed at commit {call}")
        return commit(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(DuckDBConnector, "commit", gated)
        yield calls


def test_a_newest_first_run_killed_at_its_last_commit_reads_nothing_again(
    demo_api: DemoApi, tmp_path: Path, run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every page committed, the run's last commit (the one moving the cursor) lost: the
    last page's checkpoint must not look like a finished run's, which starts over."""
    (tmp_path / "probe").mkdir()
    with commit_fails_at(monkeypatch, 0) as commits:  # counts the commits of a whole run
        local_runner(tmp_path / "probe")(customers_recipe(demo_api, tmp_path / "probe"))
    last = commits[0]

    recipe = customers_recipe(demo_api, tmp_path)
    with commit_fails_at(monkeypatch, last), pytest.raises(Killed):
        run(recipe)
    assert len(column(tmp_path, "SELECT id FROM customers")) == 37

    demo_api.reset_log()
    run(recipe)

    loaded = column(tmp_path, "SELECT id FROM customers")
    assert len(loaded) == len(set(loaded)) == 37
    assert demo_api.requests == []
    state = stored(tmp_path, "customers")
    assert state.cursor_values == {"created": max(c["created"] for c in demo_api.customers)}
    assert state.watermarks["rest"]["request"] is None

    demo_api.add_customers(3)
    run(recipe)
    assert len(column(tmp_path, "SELECT id FROM customers")) == 40


@pytest.mark.parametrize("kill_at", [2, 4, 13])
def test_a_full_read_killed_mid_way_resumes_without_duplicates(
    kill_at: int,
    demo_api: DemoApi,
    tmp_path: Path,
    run: Runner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a cursor, a page read again cannot be told from a new one: the checkpoint
    names the next page."""
    recipe = items_recipe(demo_api, tmp_path)
    del recipe["source"]["incremental"], recipe["source"]["resource"]["incremental"]
    with killed_at(kill_at), pytest.raises(Killed):
        run(recipe)
    assert len(column(tmp_path, "SELECT id FROM items")) == 20 * (kill_at - 1)

    demo_api.reset_log()
    run(recipe)

    assert column(tmp_path, "SELECT id FROM items ORDER BY id") == list(range(1, 251))
    assert demo_api.requests[0].query["offset"] == str(20 * (kill_at - 1))
    assert stored(tmp_path, "items").watermarks == {}


def test_a_full_read_killed_at_its_last_commit_reads_nothing_again(
    demo_api: DemoApi, tmp_path: Path, run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = items_recipe(demo_api, tmp_path)
    del recipe["source"]["incremental"], recipe["source"]["resource"]["incremental"]
    (tmp_path / "probe").mkdir()
    probe = {**recipe, "destination": {**recipe["destination"]}}
    probe["destination"]["database"] = str(tmp_path / "probe" / "out.duckdb")
    with commit_fails_at(monkeypatch, 0) as commits:  # counts the commits of a whole run
        local_runner(tmp_path / "probe")(probe)
    last = commits[0]

    with commit_fails_at(monkeypatch, last), pytest.raises(Killed):
        run(recipe)
    assert len(column(tmp_path, "SELECT id FROM items")) == 250
    assert stored(tmp_path, "items").watermarks["rest"]["complete"] is True

    demo_api.reset_log()
    run(recipe)

    assert column(tmp_path, "SELECT id FROM items ORDER BY id") == list(range(1, 251))
    assert demo_api.requests == []
    assert stored(tmp_path, "items").watermarks == {}
    run(recipe)  # the next full read reads everything again
    assert len(column(tmp_path, "SELECT id FROM items")) == 500
