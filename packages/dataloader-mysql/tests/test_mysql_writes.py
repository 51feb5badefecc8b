"""Write modes into MariaDB: append, overwrite (atomic swap), merge (upsert, de-duplication
inside a commit, `dedup_sort`), the unique key a merge needs, schema changes, and the state
committed with the data — also when a commit fails or a run is killed mid-overwrite."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from dataloader import State
from dataloader_mysql import MySQLConnector


def recipe(
    my: Any, source: str, batches: list[list[dict[str, Any]]], mode: str = "append", **dest: Any
) -> dict[str, Any]:
    return {
        "name": f"w_{mode}",
        "source": {"type": source, "batches": batches},
        "destination": my.destination("dst", mode, **dest),
    }


def test_append_adds_rows_and_commits_the_state_with_them(
    my: Any, run: Any, rows_source: str
) -> None:
    batches = [[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], [{"id": 3, "name": None}]]
    run(recipe(my, rows_source, batches))
    run(recipe(my, rows_source, batches))
    assert my.scalar("SELECT count(*) FROM dst") == 6
    assert my.query("SELECT id, name FROM dst WHERE id = 3") == [(3, None), (3, None)]
    state = my.state("w_append")
    assert state is not None and state["last_commit"]["final"] is True
    assert my.tables() == ["_dataloader_state", "dst"]  # no stage left behind


def test_overwrite_replaces_the_table_and_leaves_no_stage(
    my: Any, run: Any, rows_source: str
) -> None:
    run(recipe(my, rows_source, [[{"id": i, "v": "old"} for i in range(5)]], "overwrite"))
    run(recipe(my, rows_source, [[{"id": 9, "v": "new"}], [{"id": 10, "v": "new"}]], "overwrite"))
    assert my.query("SELECT id, v FROM dst ORDER BY id") == [(9, "new"), (10, "new")]
    assert my.tables() == ["_dataloader_state", "dst"]
    assert my.query("SELECT pending, pending_run FROM _dataloader_state") == [(None, None)]
    assert my.state("w_overwrite") is not None


def test_merge_upserts_keeps_the_latest_row_per_key_and_adds_the_key(
    my: Any, run: Any, rows_source: str
) -> None:
    first = [[{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]]
    run(recipe(my, rows_source, first, "merge", merge_keys=["id"]))
    second = [[{"id": 2, "v": "b1"}, {"id": 3, "v": "c"}], [{"id": 2, "v": "b2"}]]
    run(recipe(my, rows_source, second, "merge", merge_keys=["id"]))
    assert my.query("SELECT id, v FROM dst ORDER BY id") == [(1, "a"), (2, "b2"), (3, "c")]
    assert (
        my.scalar(
            "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = 'dst' AND INDEX_NAME = 'PRIMARY' AND COLUMN_NAME = 'id'"
        )
        == 1
    )


def test_merge_with_dedup_sort_keeps_a_stored_row_that_wins(
    my: Any, run: Any, rows_source: str
) -> None:
    keys = {"merge_keys": ["id"], "dedup_sort": {"column": "version"}}
    first = [[{"id": 1, "version": 5, "v": "five"}, {"id": 2, "version": 1, "v": "one"}]]
    run(recipe(my, rows_source, first, "merge", **keys))
    second = [[{"id": 1, "version": 3, "v": "three"}, {"id": 2, "version": 4, "v": "four"}]]
    second.append([{"id": 2, "version": 2, "v": "two"}])  # loses to version 4 of this run
    run(recipe(my, rows_source, second, "merge", **keys))
    assert my.query("SELECT id, version, v FROM dst ORDER BY id") == [
        (1, 5, "five"),
        (2, 4, "four"),
    ]


def test_merge_into_a_table_without_a_unique_key_on_the_merge_keys_fails_clearly(
    my: Any, run: Any, rows_source: str
) -> None:
    my.execute("CREATE TABLE dst (id INT, v TEXT)")
    with pytest.raises(
        Exception, match=r"no PRIMARY KEY or UNIQUE index on the merge keys \['id'\]"
    ):
        run(recipe(my, rows_source, [[{"id": 1, "v": "a"}]], "merge", merge_keys=["id"]))
    assert my.scalar("SELECT count(*) FROM dst") == 0


def test_new_columns_are_added_to_the_table(my: Any, run: Any, rows_source: str) -> None:
    run(recipe(my, rows_source, [[{"id": 1}]]))
    run(recipe(my, rows_source, [[{"id": 2, "extra": "x"}]]))
    assert my.query("SELECT id, extra FROM dst ORDER BY id") == [(1, None), (2, "x")]


class CommitFailed(Exception):
    pass


def test_a_failure_between_load_and_commit_leaves_neither_rows_nor_state(
    my: Any, run: Any, rows_source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(recipe(my, rows_source, [[{"id": 1}]]))
    before = my.state("w_append")
    seen: list[int] = []

    def failing(self: MySQLConnector, state: State, *, pending: bool = False) -> None:
        # Inside the commit's transaction, after the rows were moved into the table.
        seen.append(self._rows("SELECT count(*) FROM dst")[0][0])
        raise CommitFailed("killed between the rows and the state")

    monkeypatch.setattr(MySQLConnector, "_save_state", failing)
    with pytest.raises(Exception, match="killed between the rows and the state"):
        run(recipe(my, rows_source, [[{"id": 2}, {"id": 3}]]))
    monkeypatch.undo()
    assert seen == [3]  # the rows were in the transaction …
    assert my.query("SELECT id FROM dst") == [(1,)]  # … and went with it
    assert my.state("w_append") == before
    assert my.tables() == ["_dataloader_state", "dst"]


def overwrite_connector(my: Any, run_id: str) -> MySQLConnector:
    from dataloader.context import RunContext

    config = MySQLConnector.config_model(**my.settings(), table="dst")
    connector = MySQLConnector(config)
    context = RunContext(
        recipe_name="w_overwrite",
        run_id=run_id,
        started_at=datetime.now(),
        role="destination",
        write_mode="overwrite",
    )
    connector.open(context)
    return connector


@pytest.mark.parametrize("killed_after", ["pending state", "rename"])
def test_an_overwrite_killed_mid_commit_keeps_table_and_state_together(
    my: Any, run: Any, rows_source: str, monkeypatch: pytest.MonkeyPatch, killed_after: str
) -> None:
    """The kill points of an overwrite's commit: after the pending state is committed (the old
    table is still in place: the old state counts), and after the atomic RENAME (the new table
    is in place: the pending state counts). The next run's `begin` settles it either way."""
    run(recipe(my, rows_source, [[{"id": 1}]], "overwrite"))
    old = my.state("w_overwrite")
    original = MySQLConnector._execute

    class Killed(BaseException):
        pass

    def killing(self: MySQLConnector, sql: str, params: Any = None) -> Any:
        if killed_after == "pending state" and sql.startswith("RENAME TABLE"):
            raise Killed
        result = original(self, sql, params)
        if killed_after == "rename" and sql.startswith("RENAME TABLE"):
            raise Killed
        return result

    monkeypatch.setattr(MySQLConnector, "_execute", killing)
    with pytest.raises(Killed):
        run(recipe(my, rows_source, [[{"id": 2}, {"id": 3}]], "overwrite"))
    monkeypatch.undo()
    [(pending_run,)] = my.query("SELECT pending_run FROM _dataloader_state")
    assert pending_run is not None
    connector = overwrite_connector(my, "inspect")
    try:
        loaded = connector.load_state()
        assert loaded is not None
        ids = [row[0] for row in my.query("SELECT id FROM dst ORDER BY id")]
        if killed_after == "pending state":
            assert ids == [1]
            assert loaded.progress() == State.from_dict(old).progress()
        else:
            assert ids == [2, 3]
            assert loaded.last_commit["run_id"] != old["last_commit"]["run_id"]
        connector.begin(loaded)  # settles the pending state, drops what the kill left
        assert connector.load_state() == loaded
        assert my.query("SELECT pending, pending_run FROM _dataloader_state") == [(None, None)]
    finally:
        connector.close()
    assert my.tables() == ["_dataloader_state", "dst"]


def test_a_second_run_of_the_recipe_is_refused_while_one_holds_the_lock(my: Any) -> None:
    holder = overwrite_connector(my, "one")
    try:
        other = overwrite_connector(my, "two")
        try:
            with pytest.raises(Exception, match="another run of recipe 'w_overwrite'"):
                other.begin(State())
        finally:
            other.close()
    finally:
        holder.close()
    again = overwrite_connector(my, "three")  # the lock went with `close`
    try:
        again.begin(State())
    finally:
        again.close()


def test_a_full_refresh_of_a_merge_recipe_keeps_one_row_per_key(
    my: Any, run: Any, rows_source: str
) -> None:
    batches = [[{"id": 1, "v": "a"}, {"id": 2, "v": "b"}], [{"id": 1, "v": "a2"}]]
    run(recipe(my, rows_source, [[{"id": 7, "v": "gone"}]], "merge", merge_keys=["id"]))
    run(recipe(my, rows_source, batches, "merge", merge_keys=["id"]), full_refresh=True)
    assert my.query("SELECT id, v FROM dst ORDER BY id") == [(1, "a2"), (2, "b")]
    assert my.tables() == ["_dataloader_state", "dst"]


def test_an_overwrite_of_nothing_empties_the_table(my: Any, run: Any, rows_source: str) -> None:
    run(recipe(my, rows_source, [[{"id": 1}]], "overwrite"))
    run(recipe(my, rows_source, [], "overwrite"))
    assert my.scalar("SELECT count(*) FROM dst") == 0
