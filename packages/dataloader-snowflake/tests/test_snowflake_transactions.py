"""Data and state commit together: a failure after the COPY and before COMMIT leaves neither,
and the staging table and staged files of the failed attempt are gone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import snowflake.connector

from dataloader import ArrowBatch, ConnectorError, State, register_connector
from dataloader.connectors import BaseConnector, Capabilities, ConnectorConfig
from dataloader.registry import unregister
from dataloader_snowflake.connector import SnowflakeConnector
from dataloader_snowflake.testing import FakeSnowflake


def recipe(db: FakeSnowflake, source: dict[str, Any], **destination: Any) -> dict[str, Any]:
    return {
        "name": "sf_tx",
        "source": source,
        "destination": {"type": "snowflake", **db.settings(), "table": "items", **destination},
    }


def public_tables(db: FakeSnowflake) -> list[str]:
    rows = db.query(
        "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = 'PUBLIC'"
    )
    return sorted(name for (name,) in rows)


@pytest.mark.parametrize("mode", ["append", "overwrite", "merge"])
def test_a_failure_inside_the_commit_leaves_neither_rows_nor_state(
    snowflake_db: FakeSnowflake,
    rows_source: str,
    run: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    keys: dict[str, Any] = {"write_mode": mode}
    if mode == "merge":
        keys["merge_keys"] = ["id"]
    first = {"type": rows_source, "batches": [[{"id": 1, "v": "old"}]]}
    run(recipe(snowflake_db, first, **keys))
    [(state_before,)] = snowflake_db.query("SELECT STATE FROM _DATALOADER_STATE")
    save = SnowflakeConnector._save_state

    def save_then_fail(self: SnowflakeConnector, state: State) -> None:
        save(self, state)  # rows moved and state written, inside the open transaction
        raise snowflake.connector.errors.OperationalError(msg="connection lost before COMMIT")

    monkeypatch.setattr(SnowflakeConnector, "_save_state", save_then_fail)
    second = {"type": rows_source, "batches": [[{"id": 1, "v": "new"}, {"id": 2, "v": "two"}]]}
    with pytest.raises(ConnectorError, match="connection lost before COMMIT"):
        run(recipe(snowflake_db, second, **keys))
    assert snowflake_db.query('SELECT "id", "v" FROM "items"') == [(1, "old")]
    assert snowflake_db.query("SELECT STATE FROM _DATALOADER_STATE") == [(state_before,)]
    assert public_tables(snowflake_db) == ["_DATALOADER_STATE", "items"]  # no stage left

    monkeypatch.setattr(SnowflakeConnector, "_save_state", save)
    run(recipe(snowflake_db, second, **keys))
    rows = snowflake_db.query('SELECT "id", "v" FROM "items" ORDER BY "id", "v"')
    expected = {
        "append": [(1, "new"), (1, "old"), (2, "two")],
        "overwrite": [(1, "new"), (2, "two")],
        "merge": [(1, "new"), (2, "two")],
    }
    assert rows == expected[mode]


class FailingConfig(ConnectorConfig):
    pass


class FailingAfterOneBatch(BaseConnector):
    """Yields one batch (staged and copied by the destination), then fails."""

    config_model = FailingConfig
    capabilities = Capabilities(read=True)

    def read_batches(self, state: State) -> Iterator[ArrowBatch]:
        yield ArrowBatch.from_pylist([{"id": 1, "v": "staged"}])
        raise ConnectorError("source failed after one batch", key="source")


def test_a_source_failure_after_the_copy_leaves_nothing(
    snowflake_db: FakeSnowflake, run: Callable[..., Any]
) -> None:
    register_connector("dl_sf_failing")(FailingAfterOneBatch)
    try:
        with pytest.raises(ConnectorError, match="after one batch"):
            run(recipe(snowflake_db, {"type": "dl_sf_failing"}))
    finally:
        unregister("connector", "dl_sf_failing")
    tables = public_tables(snowflake_db)
    assert "items" not in tables
    assert not [name for name in tables if name.startswith("_dl_stage_")]


def test_begin_drops_a_stage_a_killed_run_of_the_recipe_left(
    snowflake_db: FakeSnowflake, rows_source: str, run: Callable[..., Any]
) -> None:
    from dataloader.sql import stage_label

    label = stage_label("sf_tx", "items", "dead-run").replace("'", "''")
    snowflake_db.execute(f"CREATE TABLE \"_dl_stage_items_dead\" (x INT) COMMENT = '{label}'")
    other = stage_label("another_recipe", "items", "r").replace("'", "''")
    snowflake_db.execute(f"CREATE TABLE \"_dl_stage_items_other\" (x INT) COMMENT = '{other}'")
    run(recipe(snowflake_db, {"type": rows_source, "batches": [[{"id": 1, "v": "a"}]]}))
    assert public_tables(snowflake_db) == ["_DATALOADER_STATE", "_dl_stage_items_other", "items"]
