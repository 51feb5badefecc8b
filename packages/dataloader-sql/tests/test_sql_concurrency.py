"""Two runs of one recipe at once, interleaved by hand. On SQLite each run has its own stage
and the run that commits second fails without committing (its state row is no longer the one
it started from), so no rows land twice. On MariaDB, whose DDL commits implicitly, a second
run is refused while the first holds the recipe's run lock, and a killed run's stage is
dropped by the next run (and no other recipe's)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from sql_support import Sqlite

from dataloader import ArrowBatch, State
from dataloader.context import RunContext
from dataloader.errors import ConnectorError
from dataloader_mysql.testing import MariaDBServer
from dataloader_sql import SqlConfig, SqlConnector


def opened(url: str, run_id: str, mode: str) -> SqlConnector:
    keys = ("id",) if mode == "merge" else ()
    connector = SqlConnector(SqlConfig(url=url, table="dst"))
    context = RunContext(
        recipe_name="twice",
        run_id=run_id,
        started_at=datetime.now(UTC),
        role="destination",
        write_mode=mode,
        merge_keys=keys,
    )
    connector.open(context)
    return connector


def marked(run_id: str) -> State:
    state = State()
    state.last_commit = {"run_id": run_id, "sequence": 1, "counts": {}}
    return state


def rows() -> ArrowBatch:
    return ArrowBatch(pa.record_batch({"id": pa.array([1, 2, 3], pa.int64())}), {})


def race(url: str, mode: str) -> None:
    first, second = opened(url, "a", mode), opened(url, "b", mode)
    try:
        for connector in (first, second):  # both start from the same (missing) state
            assert connector.load_state() is None
            connector.begin(State())
        first.write_batch(rows(), marked("a"))
        first.commit(marked("a"))
        second.write_batch(rows(), marked("b"))
        with pytest.raises(ConnectorError, match="another run of recipe 'twice'"):
            second.commit(marked("b"))
        if mode != "overwrite":  # the winner goes on committing from the state it wrote
            more = ArrowBatch(pa.record_batch({"id": pa.array([4], pa.int64())}), {})
            first.write_batch(more, marked("a"))
            state = marked("a")
            state.last_commit = {"run_id": "a", "sequence": 2, "counts": {}}
            first.commit(state)
    finally:
        first.close()
        second.close()


def count(url: str) -> list[tuple[Any, ...]]:
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return [
                tuple(row)
                for row in connection.exec_driver_sql(
                    "SELECT COUNT(*), COUNT(DISTINCT id) FROM dst"
                )
            ]
    finally:
        engine.dispose()


@pytest.mark.parametrize("mode", ["append", "merge", "overwrite"])
def test_sqlite_the_second_of_two_concurrent_runs_commits_nothing(
    sqlite_db: Sqlite, mode: str
) -> None:
    race(sqlite_db.url, mode)
    assert count(sqlite_db.url) == ([(3, 3)] if mode == "overwrite" else [(4, 4)])


def maria_stages(url: str) -> list[str]:
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            names = sa.inspect(connection).get_table_names()
    finally:
        engine.dispose()
    return sorted(name for name in names if name.startswith("_dl_stage_"))


@pytest.mark.parametrize("mode", ["append", "merge", "overwrite"])
def test_mariadb_a_second_run_while_one_writes_is_refused(
    mariadb_server: MariaDBServer, mariadb_database: str, mode: str
) -> None:
    url = mariadb_server.url(mariadb_database)
    first, second = opened(url, "a", mode), opened(url, "b", mode)
    try:
        assert first.load_state() is None and second.load_state() is None
        first.begin(State())
        first.write_batch(rows(), marked("a"))
        with pytest.raises(ConnectorError, match="another run of recipe 'twice' is loading"):
            second.begin(State())  # between `first`'s write and its commit
        assert maria_stages(url) != []  # `first`'s stage was left alone
        first.commit(marked("a"))
    finally:
        first.close()
        second.close()
    assert count(url) == [(3, 3)]
    third = opened(url, "c", mode)  # the lock went with `first`'s session
    try:
        third.load_state()
        third.begin(State())
        more = ArrowBatch(pa.record_batch({"id": pa.array([4], pa.int64())}), {})
        third.write_batch(more, marked("c"))
        third.commit(marked("c"))
    finally:
        third.close()
    assert count(url) == ([(1, 1)] if mode == "overwrite" else [(4, 4)])
    assert maria_stages(url) == []


@pytest.mark.parametrize("mode", ["append", "merge", "overwrite"])
def test_mariadb_a_killed_runs_stage_is_dropped_by_the_next_run_only(
    mariadb_server: MariaDBServer, mariadb_database: str, mode: str
) -> None:
    url = mariadb_server.url(mariadb_database)
    other = SqlConnector(SqlConfig(url=url, table="dst"))  # another recipe, into the same table
    other.open(
        RunContext(
            recipe_name="other",
            run_id="o",
            started_at=datetime.now(UTC),
            role="destination",
            write_mode="append",
        )
    )
    killed = opened(url, "k", mode)
    try:
        other.begin(State())
        other.write_batch(rows(), marked("o"))  # its stage stays: its run is live
        killed.begin(State())
        killed.write_batch(rows(), marked("k"))
        killed.conn.invalidate()  # the process is gone: the session ends, nothing cleaned up
        killed.conn = None
        assert len(maria_stages(url)) == 2
        following = opened(url, "f", mode)
        try:
            following.load_state()
            following.begin(State())
            assert len(maria_stages(url)) == 1  # the killed run's, dropped; `other`'s kept
            more = ArrowBatch(pa.record_batch({"id": pa.array([4], pa.int64())}), {})
            following.write_batch(more, marked("f"))
            following.commit(marked("f"))
        finally:
            following.close()
        assert count(url) == [(1, 1)]  # the killed run's rows are nowhere
        other.commit(marked("o"))
    finally:
        killed.close()
        other.close()
    assert count(url) == [(4, 4)]  # `other` appended its rows after
    assert maria_stages(url) == []


def test_a_state_table_another_run_just_created_is_no_error(
    sqlite_db: Sqlite, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = opened(sqlite_db.url, "a", "append"), opened(sqlite_db.url, "b", "append")
    try:
        first.begin(State())
        first.write_batch(rows(), marked("a"))
        first.commit(marked("a"))
        # `second` checked before `first` created the table: it creates it too.
        real = SqlConnector._exists
        monkeypatch.setattr(
            SqlConnector,
            "_exists",
            lambda self, table: False if table.name == "_dataloader_state" else real(self, table),
        )
        second.begin(State())
        monkeypatch.undo()
        assert sqlite_db.query("SELECT recipe FROM _dataloader_state") == [("twice",)]
        more = ArrowBatch(pa.record_batch({"id": pa.array([4], pa.int64())}), {})
        second.write_batch(more, marked("b"))
        second.commit(marked("b"))  # it began from the state `first` committed
    finally:
        first.close()
        second.close()
    assert count(sqlite_db.url) == [(4, 4)]
    [(state,)] = sqlite_db.query("SELECT state FROM _dataloader_state")
    assert '"b"' in state
