"""Write modes into SQLite through the `sql` connector: append, overwrite (readers see the old
rows until the commit), merge (the row read last wins, in a batch and across batches), added
columns, the state committed in the data's transaction, and stages that never outlive a run."""

from __future__ import annotations

from typing import Any

import pytest
from sql_support import Sqlite

from dataloader import State
from dataloader.errors import ConnectorError, EngineError
from dataloader_sql import SqlConnector


def rows(n: int, version: str, start: int = 1) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"{version}-{i}"} for i in range(start, start + n)]


def recipe(
    name: str, source: str, batches: list[Any], destination: dict[str, Any], **runtime: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"type": source, "batches": batches},
        "destination": destination,
        "runtime": {"batch_size": 2, **runtime},
    }


def stages(db: Sqlite) -> list[str]:
    return [name for name in db.tables() if name.startswith("_dl_stage_")]


def test_append_adds_every_run(run: Any, rows_source: str, sqlite_db: Sqlite) -> None:
    loaded = recipe("append", rows_source, [rows(3, "a")], sqlite_db.destination("t"))
    assert run(loaded).rows_written == 3
    assert run(loaded).rows_written == 3
    assert sqlite_db.query("SELECT id, count(*) FROM t GROUP BY id") == [(1, 2), (2, 2), (3, 2)]
    assert stages(sqlite_db) == []


def test_overwrite_replaces_and_readers_see_the_old_rows_until_commit(
    run: Any, rows_source: str, sqlite_db: Sqlite
) -> None:
    first = recipe("ow", rows_source, [rows(5, "a")], sqlite_db.destination("t", "overwrite"))
    run(first)
    seen: list[int] = []

    def observe(result: Any) -> None:  # between batches, from another connection
        seen.append(sqlite_db.query("SELECT count(*) FROM t")[0][0])

    second = recipe(
        "ow",
        rows_source,
        [rows(2, "b", 10), rows(1, "b", 12)],
        sqlite_db.destination("t", "overwrite"),
    )
    run(second, progress=observe)
    assert seen and set(seen) == {5}
    assert sqlite_db.query("SELECT id, name FROM t ORDER BY id") == [
        (10, "b-10"),
        (11, "b-11"),
        (12, "b-12"),
    ]
    assert stages(sqlite_db) == []


def test_overwrite_with_no_rows_empties_the_table(
    run: Any, rows_source: str, sqlite_db: Sqlite
) -> None:
    run(recipe("ow", rows_source, [rows(3, "a")], sqlite_db.destination("t", "overwrite")))
    run(recipe("ow", rows_source, [], sqlite_db.destination("t", "overwrite")))
    assert sqlite_db.query("SELECT count(*) FROM t") == [(0,)]


def test_merge_keeps_the_row_read_last_per_key(
    run: Any, rows_source: str, sqlite_db: Sqlite
) -> None:
    destination = sqlite_db.destination("t", "merge", merge_keys=["id"])
    run(recipe("m", rows_source, [rows(4, "a")], destination))
    batches = [
        [{"id": 2, "name": "b-2"}, {"id": 2, "name": "c-2"}],  # twice in one batch
        [{"id": 5, "name": "b-5"}],
        [{"id": 5, "name": "c-5"}, {"id": 3, "name": "c-3"}],  # again in a later batch
    ]
    assert run(recipe("m", rows_source, batches, destination, batch_size=10)).status == "success"
    assert sqlite_db.query("SELECT id, name FROM t ORDER BY id") == [
        (1, "a-1"),
        (2, "c-2"),
        (3, "c-3"),
        (4, "a-4"),
        (5, "c-5"),
    ]
    assert sqlite_db.query("SELECT name FROM pragma_table_info('t') WHERE pk > 0") == [("id",)]
    assert stages(sqlite_db) == []


def test_merge_on_two_keys_and_an_added_column(
    run: Any, rows_source: str, sqlite_db: Sqlite
) -> None:
    destination = sqlite_db.destination("t", "merge", merge_keys=["k1", "k2"])
    run(
        recipe(
            "m2",
            rows_source,
            [[{"k1": 1, "k2": "x", "v": 1}, {"k1": 1, "k2": "y", "v": 2}]],
            destination,
        )
    )
    later = [[{"k1": 1, "k2": "y", "v": 3, "extra": "new"}]]
    run(recipe("m2", rows_source, later, destination))
    assert sqlite_db.query("SELECT k1, k2, v, extra FROM t ORDER BY k2") == [
        (1, "x", 1, None),
        (1, "y", 3, "new"),
    ]


class CommitFailed(Exception):
    pass


@pytest.mark.parametrize("mode", ["append", "merge", "overwrite"])
def test_a_failure_between_write_and_commit_leaves_neither_rows_nor_state(
    run: Any, rows_source: str, sqlite_db: Sqlite, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    keys = {"merge_keys": ["id"]} if mode == "merge" else {}
    destination = sqlite_db.destination("t", mode, **keys)
    # Overwrite reads everything: its state holds no cursor, only the run's record.
    cursor = (
        {}
        if mode == "overwrite"
        else {"incremental": {"strategy": "cursor", "cursor_column": "id"}}
    )
    first = recipe("s", rows_source, [rows(2, "a")], destination)
    first["source"].update(cursor)
    assert run(first).status == "success"
    [(saved,)] = sqlite_db.query("SELECT state FROM _dataloader_state WHERE recipe = 's'")

    original = SqlConnector._save_state

    def failing(self: SqlConnector, state: State) -> None:
        original(self, state)  # the state row is written, then the commit fails
        raise CommitFailed("disk on fire")

    monkeypatch.setattr(SqlConnector, "_save_state", failing)
    second = recipe("s", rows_source, [rows(3, "b", 3)], destination)
    second["source"].update(cursor)
    with pytest.raises(EngineError, match="disk on fire"):
        run(second)
    assert sqlite_db.query("SELECT id, name FROM t ORDER BY id") == [(1, "a-1"), (2, "a-2")]
    assert sqlite_db.query("SELECT state FROM _dataloader_state WHERE recipe = 's'") == [(saved,)]
    assert stages(sqlite_db) == []

    monkeypatch.setattr(SqlConnector, "_save_state", original)
    assert run(second).status == "success"
    expected = [(1, "a-1"), (2, "a-2"), (3, "b-3"), (4, "b-4"), (5, "b-5")]
    if mode == "overwrite":
        expected = expected[2:]
    assert sqlite_db.query("SELECT id, name FROM t ORDER BY id") == expected


@pytest.mark.parametrize("mode", ["merge", "overwrite"])
def test_a_stage_never_outlives_the_commit_nor_a_killed_run(sqlite_db: Sqlite, mode: str) -> None:
    from datetime import UTC, datetime

    import pyarrow as pa

    from dataloader import ArrowBatch
    from dataloader.context import RunContext
    from dataloader_sql import SqlConfig

    def opened(run_id: str) -> SqlConnector:
        connector = SqlConnector(SqlConfig(url=sqlite_db.url, table="t"))
        keys = ("id",) if mode == "merge" else ()
        context = RunContext(
            recipe_name="m",
            run_id=run_id,
            started_at=datetime.now(UTC),
            role="destination",
            write_mode=mode,
            merge_keys=keys,
        )
        connector.open(context)
        connector.begin(State())
        return connector

    batch = ArrowBatch(pa.record_batch({"id": pa.array([1, 2], pa.int64())}), {})
    killed = opened("killed")
    killed.write_batch(batch, State())
    killed.conn.invalidate()  # the process is gone: its connection closes, nothing cleaned up
    killed.conn = None
    killed.close()
    assert stages(sqlite_db) == []
    done = opened("done")
    try:
        done.write_batch(batch, State())
        done.commit(State())
        assert stages(sqlite_db) == []  # dropped in the commit's transaction, before `close`
    finally:
        done.close()
    assert sqlite_db.query("SELECT id FROM t ORDER BY id") == [(1,), (2,)]


def test_schema_qualified_tables_and_odd_names(
    run: Any, rows_source: str, sqlite_db: Sqlite
) -> None:
    odd = [{"id": 1, "a b": "x", 'q"uote': "y", "100%": "z"}]
    run(
        recipe(
            "odd",
            rows_source,
            [odd],
            sqlite_db.destination('main."my table"', "merge", merge_keys=["id"]),
        )
    )
    assert sqlite_db.query('SELECT "id", "a b", "q""uote", "100%" FROM "my table"') == [
        (1, "x", "y", "z")
    ]


def test_a_full_refresh_of_a_merge_recipe_keeps_one_row_per_key(
    run: Any, rows_source: str, sqlite_db: Sqlite
) -> None:
    destination = sqlite_db.destination("t", "merge", merge_keys=["id"])
    run(recipe("fr", rows_source, [rows(3, "a")], destination))
    batches = [[{"id": 7, "name": "b-7"}, {"id": 7, "name": "c-7"}], [{"id": 8, "name": "b-8"}]]
    assert (
        run(recipe("fr", rows_source, batches, destination), full_refresh=True).status == "success"
    )
    assert sqlite_db.query("SELECT id, name FROM t ORDER BY id") == [(7, "c-7"), (8, "b-8")]
    assert sqlite_db.query("SELECT name FROM pragma_table_info('t') WHERE pk > 0") == [("id",)]


def test_dedup_sort_is_refused_with_the_key_named(
    run: Any, rows_source: str, sqlite_db: Sqlite
) -> None:
    destination = sqlite_db.destination(
        "t", "merge", merge_keys=["id"], dedup_sort={"column": "name"}
    )
    with pytest.raises(ConnectorError, match=r"destination.dedup_sort: .*read last wins"):
        run(recipe("ds", rows_source, [rows(2, "a")], destination))
    assert "t" not in sqlite_db.tables()
