"""Write modes into Postgres: append, atomic overwrite, merge (both statement paths, de-duplication
inside a batch), schema evolution, schema-qualified targets, and state committed with the data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from dataloader import (
    State,
)
from dataloader_postgres import PostgresConnector

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def make_source(pg: Any, rows: list[tuple[Any, ...]], table: str = "src") -> None:
    """(Re)create `table (id, name, amount, updated_at)` holding `rows`."""
    pg.execute(f"DROP TABLE IF EXISTS {table}")
    pg.execute(
        f"CREATE TABLE {table} (id int, name text, amount numeric(12,2), updated_at timestamptz)"
    )
    if rows:
        pg.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s)", rows)


def rows_of(pg: Any, table: str, order: str = "id, updated_at, name") -> list[tuple[Any, ...]]:
    return pg.query(f"SELECT id, name, amount, updated_at FROM {table} ORDER BY {order}")


def record_sql(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement `PostgresConnector._execute` runs, in order."""
    statements: list[str] = []
    original = PostgresConnector._execute

    def recording(self: PostgresConnector, sql: str, params: Any = None) -> Any:
        statements.append(sql)
        return original(self, sql, params)

    monkeypatch.setattr(PostgresConnector, "_execute", recording)
    return statements


class CommitFailed(Exception):
    pass


def fail_save_state(monkeypatch: pytest.MonkeyPatch, *, after: int = 0) -> list[State]:
    """`_save_state` succeeds `after` times, then raises `CommitFailed` (inside the commit)."""
    calls: list[State] = []
    original = PostgresConnector._save_state

    def failing(self: PostgresConnector, state: State) -> None:
        calls.append(state.copy_deep())
        if len(calls) > after:
            raise CommitFailed("disk on fire")
        original(self, state)

    monkeypatch.setattr(PostgresConnector, "_save_state", failing)
    return calls


def staging_tables(pg: Any, schema: str = "public") -> list[str]:
    return [name for name in pg.tables(schema) if name.startswith("_dl_stage_")]


V1 = [(i, f"v1-{i}", Decimal(f"{i}.25"), at(i)) for i in range(1, 8)]
V2 = [(i, f"v2-{i}", Decimal(f"{i}.50"), at(100 + i)) for i in range(3, 6)]


# -- append --------------------------------------------------------------------------------
def test_append_adds_every_run(pg: Any, run: Any) -> None:
    make_source(pg, V1)
    recipe = {
        "name": "append",
        "source": pg.source(table="src"),
        "destination": pg.destination("dst", "append"),
        "runtime": {"batch_size": 3},
    }
    assert run(recipe).rows_written == len(V1)
    assert run(recipe).rows_written == len(V1)
    assert rows_of(pg, "dst") == sorted(V1 + V1)
    assert pg.column_types("dst") == {
        "id": "integer",
        "name": "text",
        "amount": "numeric(12,2)",
        "updated_at": "timestamp with time zone",
    }


# -- overwrite -----------------------------------------------------------------------------
def test_overwrite_replaces_and_readers_see_the_old_table_until_commit(pg: Any, run: Any) -> None:
    pg.execute(
        "CREATE TABLE dst (id int, name text, amount numeric(12,2), updated_at timestamptz, "
        "loaded boolean DEFAULT true)"
    )
    pg.execute("CREATE INDEX dst_id ON dst (id)")
    make_source(pg, V1)
    recipe = {
        "name": "overwrite",
        "source": pg.source(table="src"),
        "destination": pg.destination("dst", "overwrite"),
        "runtime": {"batch_size": 2},
    }
    run(recipe)
    assert rows_of(pg, "dst") == V1
    assert pg.query("SELECT DISTINCT loaded FROM dst") == [(True,)], "defaults kept"
    assert pg.scalar("SELECT count(*) FROM pg_indexes WHERE tablename = 'dst'") == 1, "indexes kept"

    make_source(pg, V2)
    seen: list[tuple[int, list[str]]] = []

    def observe(result: Any) -> None:  # between batches, from another session
        seen.append((pg.scalar("SELECT count(*) FROM dst"), staging_tables(pg)))

    run(recipe, progress=observe)
    assert len(seen) == 2
    assert all(entry == (len(V1), []) for entry in seen), seen
    assert rows_of(pg, "dst") == V2
    assert staging_tables(pg) == []


def test_overwrite_with_failed_commit_keeps_the_old_table(
    pg: Any, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_source(pg, V1)
    recipe = {
        "name": "overwrite_fail",
        "source": pg.source(table="src"),
        "destination": pg.destination("dst", "overwrite"),
        "runtime": {"batch_size": 2},
    }
    run(recipe)
    make_source(pg, V2)
    calls = fail_save_state(monkeypatch)
    with pytest.raises(Exception, match="disk on fire"):
        run(recipe)
    assert len(calls) == 1
    assert rows_of(pg, "dst") == V1
    assert staging_tables(pg) == []

    monkeypatch.undo()
    # A committed stage labelled as this recipe's is dead: the next run drops it.
    label = '{"dataloader_stage": {"recipe": "overwrite_fail", "table": "dst", "run_id": "x"}}'
    pg.execute("CREATE TABLE _dl_stage_dst_20240101T000000_deadbeef (id int)")
    pg.execute(f"COMMENT ON TABLE _dl_stage_dst_20240101T000000_deadbeef IS '{label}'")
    run(recipe)
    assert rows_of(pg, "dst") == V2
    assert staging_tables(pg) == []


def test_overwrite_with_no_rows_empties_the_table(pg: Any, run: Any) -> None:
    make_source(pg, V1)
    recipe = {
        "name": "overwrite_empty",
        "source": pg.source(table="src"),
        "destination": pg.destination("dst", "overwrite"),
    }
    run(recipe)
    make_source(pg, [])
    run(recipe)
    assert rows_of(pg, "dst") == []


# -- merge ---------------------------------------------------------------------------------
MERGE_SEED = [(1, "old-1", Decimal("1.00"), at(-10)), (99, "zed", Decimal("9.99"), at(-10))]
MERGE_SRC = [
    (1, "new-1", Decimal("1.10"), at(1)),
    (2, "new-2", Decimal("2.20"), at(2)),
    (3, "new-3", Decimal("3.30"), at(3)),
]


def _merge_recipe(pg: Any, name: str, **source: Any) -> dict[str, Any]:
    return {
        "name": name,
        "source": pg.source(table="src", **source),
        "destination": pg.destination("dst", "merge", merge_keys=["id"]),
        "runtime": {"batch_size": 2},
    }


def test_merge_into_a_table_without_unique_key_updates_then_inserts(
    pg: Any, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_source(pg, MERGE_SEED, table="dst")  # created by the test: no primary key
    make_source(pg, MERGE_SRC)
    statements = record_sql(monkeypatch)
    run(_merge_recipe(pg, "merge_update"))
    assert rows_of(pg, "dst") == sorted(MERGE_SRC + MERGE_SEED[1:])
    assert any(s.startswith('UPDATE "dst"') and " FROM " in s for s in statements)
    assert any(s.startswith('INSERT INTO "dst"') and "NOT EXISTS" in s for s in statements)
    assert not any("ON CONFLICT" in s for s in statements if "_dataloader_state" not in s)

    make_source(pg, [(2, "newer-2", Decimal("2.22"), at(20)), (4, "new-4", Decimal(4), at(21))])
    run(_merge_recipe(pg, "merge_update"))
    assert [r[:2] for r in rows_of(pg, "dst")] == [
        (1, "new-1"),
        (2, "newer-2"),
        (3, "new-3"),
        (4, "new-4"),
        (99, "zed"),
    ]


def test_merge_into_a_table_it_creates_upserts_on_the_primary_key(
    pg: Any, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_source(pg, MERGE_SRC)
    statements = record_sql(monkeypatch)
    run(_merge_recipe(pg, "merge_upsert"))
    primary_key = pg.query(
        "SELECT array_agg(a.attname::text) FROM pg_index i JOIN pg_attribute a "
        "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = 'dst'::regclass AND i.indisprimary"
    )
    assert primary_key == [(["id"],)]
    make_source(pg, [(2, "newer-2", Decimal("2.22"), at(20)), (4, "new-4", Decimal(4), at(21))])
    statements.clear()
    run(_merge_recipe(pg, "merge_upsert"))
    assert [r[:2] for r in rows_of(pg, "dst")] == [
        (1, "new-1"),
        (2, "newer-2"),
        (3, "new-3"),
        (4, "new-4"),
    ]
    merges = [s for s in statements if s.startswith('INSERT INTO "dst"')]
    assert merges and all('ON CONFLICT ("id") DO UPDATE' in s for s in merges)
    assert not any(s.startswith("DELETE FROM") for s in statements)


@pytest.mark.parametrize("keyed", [True, False], ids=["on_conflict", "update_from"])
def test_merge_keeps_the_latest_row_of_a_key_within_one_batch(
    pg: Any, run: Any, keyed: bool
) -> None:
    if keyed:
        pg.execute(
            "CREATE TABLE dst (id int PRIMARY KEY, name text, amount numeric(12,2), "
            "updated_at timestamptz)"
        )
    else:
        make_source(pg, [], table="dst")
    make_source(
        pg,
        [
            (1, "first", Decimal(1), at(1)),
            (2, "only", Decimal(2), at(2)),
            (1, "third", Decimal(3), at(5)),
            (1, "second", Decimal(2), at(3)),
            (3, "x", Decimal(3), at(9)),
        ],
    )
    recipe = _merge_recipe(pg, "merge_dedup", incremental={"cursor_column": "updated_at"})
    recipe["runtime"] = {"batch_size": 100}
    run(recipe)
    assert [r[:2] for r in rows_of(pg, "dst")] == [(1, "third"), (2, "only"), (3, "x")]


def test_merge_dedup_prefers_the_higher_cursor_over_arrival_order(
    pg: Any, run: Any, rows_source: str
) -> None:
    batch = [
        {"id": 1, "name": "newer", "version": 3},
        {"id": 1, "name": "older", "version": 2},
        {"id": 2, "name": "two", "version": 1},
        {"id": 9, "name": "max", "version": 10},  # held back by the engine: the batch's max
    ]
    run(
        {
            "name": "merge_cursor_order",
            "source": {
                "type": rows_source,
                "batches": [batch],
                "incremental": {"cursor_column": "version"},
            },
            "destination": pg.destination("dst", "merge", merge_keys=["id"]),
        }
    )
    assert pg.query("SELECT id, name, version FROM dst ORDER BY id") == [
        (1, "newer", 3),
        (2, "two", 1),
        (9, "max", 10),
    ]


# -- schema evolution and placement --------------------------------------------------------
@pytest.mark.parametrize("mode", ["append", "merge"])
def test_new_source_columns_are_added_on_a_later_run(pg: Any, run: Any, mode: str) -> None:
    make_source(pg, V1[:3])
    extra = {"merge_keys": ["id"]} if mode == "merge" else {}
    recipe = {
        "name": f"evolve_{mode}",
        "source": pg.source(table="src"),
        "destination": pg.destination("dst", mode, **extra),
    }
    run(recipe)
    pg.execute('ALTER TABLE src ADD COLUMN "Extra Note" text, ADD COLUMN qty bigint')
    pg.execute("UPDATE src SET \"Extra Note\" = 'n' || id, qty = id * 10 WHERE id >= 2")
    pg.execute("INSERT INTO src VALUES (50, 'fifty', 50, %s, 'new', 500)", (at(50),))
    run(recipe)
    assert list(pg.column_types("dst").items())[-2:] == [("Extra Note", "text"), ("qty", "bigint")]
    got = pg.query('SELECT id, "Extra Note", qty FROM dst ORDER BY id, qty NULLS FIRST')
    if mode == "merge":
        assert got == [(1, None, None), (2, "n2", 20), (3, "n3", 30), (50, "new", 500)]
    else:
        assert got == [
            (1, None, None),
            (1, None, None),
            (2, None, None),
            (2, "n2", 20),
            (3, None, None),
            (3, "n3", 30),
            (50, "new", 500),
        ]


def test_schema_qualified_target_is_created_with_its_state_table(pg: Any, run: Any) -> None:
    make_source(pg, V1)
    recipe = {
        "name": "qualified",
        "source": pg.source(table="public.src", incremental={"cursor_column": "updated_at"}),
        "destination": pg.destination("analytics.orders", "append"),
        "runtime": {"batch_size": 3},
    }
    run(recipe)
    assert rows_of(pg, "analytics.orders") == V1
    assert pg.tables("analytics") == ["_dataloader_state", "orders"]
    assert not pg.exists("public._dataloader_state")
    state = pg.scalar("SELECT state FROM analytics._dataloader_state WHERE recipe = 'qualified'")
    assert State.from_dict(state).cursor_values == {"updated_at": V1[-1][3]}


# -- state commits with the data -----------------------------------------------------------
def _incremental_append(pg: Any) -> dict[str, Any]:
    return {
        "name": "committed",
        "source": pg.source(table="src", incremental={"cursor_column": "updated_at"}),
        "destination": pg.destination("dst", "append"),
        "runtime": {"batch_size": 2},
    }


def _committed_cursor(pg: Any) -> Any:
    rows = pg.query("SELECT state FROM _dataloader_state WHERE recipe = 'committed'")
    return State.from_dict(rows[0][0]).cursor_values.get("updated_at") if rows else None


def test_failed_state_write_adds_no_rows(
    pg: Any, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_source(pg, V1[:4])
    recipe = _incremental_append(pg)
    run(recipe)
    assert rows_of(pg, "dst") == V1[:4]
    assert _committed_cursor(pg) == V1[3][3]

    pg.executemany("INSERT INTO src VALUES (%s, %s, %s, %s)", V1[4:])
    calls = fail_save_state(monkeypatch)
    with pytest.raises(Exception, match="disk on fire"):
        run(recipe)
    assert len(calls) == 1
    assert rows_of(pg, "dst") == V1[:4], "the batch rolled back with its state"
    assert _committed_cursor(pg) == V1[3][3]

    monkeypatch.undo()
    run(recipe)
    assert rows_of(pg, "dst") == V1


def test_run_failing_mid_way_resumes_after_its_last_commit(
    pg: Any, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_source(pg, V1)
    recipe = _incremental_append(pg)
    fail_save_state(monkeypatch, after=2)
    with pytest.raises(Exception, match="disk on fire"):
        run(recipe)
    loaded = rows_of(pg, "dst")
    assert 0 < len(loaded) < len(V1)
    assert loaded == V1[: len(loaded)]
    assert _committed_cursor(pg) == loaded[-1][3], "the state describes exactly the rows loaded"
    monkeypatch.undo()
    run(recipe)
    assert rows_of(pg, "dst") == V1
