"""A distributed run's staging in Postgres, the connector driven directly as the workers and
the driver drive it (no cluster): `stage_partition` in a connector created but not opened,
`commit_staged` and `discard_staged` in the driver's opened one.

What a worker staged is invisible in the table until the driver's commit, which commits it
with the state or not at all; an attempt nobody reported is never committed and is dropped by
`discard_staged`, which leaves another recipe's staging alone; the staged rows are the rows a
single-process write stores, value for value."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

import dataloader_postgres.connector as connector_module
from dataloader import ArrowBatch, ConnectorError, RunContext, State
from dataloader.partitions import Partition
from dataloader.schema.types import TYPE_TAG
from dataloader_postgres import PostgresConnector
from dataloader_postgres.config import PostgresConfig

RUN = "20240101T000000-00000001"
Driver = Callable[..., PostgresConnector]


def context(recipe: str, mode: str = "append", run_id: str = RUN) -> RunContext:
    return RunContext(
        recipe_name=recipe,
        run_id=run_id,
        started_at=datetime.now(UTC),
        role="destination",
        write_mode=mode,
    )


def stage(
    pg: Any,
    recipe: str,
    table: str,
    index: int,
    batches: list[pa.RecordBatch],
    *,
    attempt: str = "a",
    mode: str = "append",
    run_id: str = RUN,
    **keys: Any,
) -> dict[str, Any]:
    """What a worker does: stage `batches` as partition `index` through a destination created
    from the recipe's settings and never opened."""
    worker = PostgresConnector(PostgresConfig(**pg.settings(), table=table, **keys))
    staged = worker.stage_partition(
        context(recipe, mode, run_id),
        Partition(index=index, label=f"part {index}"),
        attempt,
        [ArrowBatch(batch) for batch in batches],
    )
    assert worker.conn is None  # its own connection, closed
    return staged


@pytest.fixture
def drivers(pg: Any) -> Iterator[Driver]:
    """`driver(recipe, table, mode)`: an opened destination after `begin`, as the driver holds
    it; closed at the end."""
    opened: list[PostgresConnector] = []

    def driver(recipe: str, table: str, mode: str = "append", **keys: Any) -> PostgresConnector:
        connector = PostgresConnector(PostgresConfig(**pg.settings(), table=table, **keys))
        connector.open(context(recipe, mode))
        connector.begin(State())
        opened.append(connector)
        return connector

    yield driver
    for connector in opened:
        connector.close()


def ids(*values: int) -> pa.RecordBatch:
    return pa.record_batch({"id": pa.array(values, pa.int64())})


def part_tables(pg: Any) -> list[str]:
    return [name for name in pg.tables() if name.startswith("_dl_part_")]


def stored_state(pg: Any, recipe: str) -> Any:
    if not pg.exists("_dataloader_state"):
        return None
    rows = pg.query("SELECT state FROM _dataloader_state WHERE recipe = %s", (recipe,))
    return rows[0][0] if rows else None


def committed(driver: PostgresConnector, staged: list[dict[str, Any]], **cursor: Any) -> None:
    state = State()
    state.cursor_values.update(cursor)
    parts = driver.staged_schemas(staged)
    schema = pa.unify_schemas([schema for _, schema in parts]) if parts else None
    driver.commit_staged(staged, state, schema)


def test_staged_rows_are_invisible_until_the_commit_which_saves_the_state(
    pg: Any, drivers: Driver
) -> None:
    driver = drivers("orders", "orders")
    staged = [
        stage(pg, "orders", "orders", 0, [ids(1, 2)]),
        stage(pg, "orders", "orders", 1, [ids(3)]),
    ]
    assert not pg.exists("orders")
    assert len(part_tables(pg)) == 2  # committed by the workers, unlogged
    assert pg.scalar(
        "SELECT bool_and(relpersistence = 'u') FROM pg_class WHERE relname LIKE '\\_dl\\_part\\_%'"
    )
    assert [name for name, _ in driver.staged_schemas(staged)] == [
        part["table"] for report in staged for part in report["tables"]
    ]
    assert all(schema == ids().schema for _, schema in driver.staged_schemas(staged))
    committed(driver, staged, id=3)
    assert pg.query("SELECT id FROM orders ORDER BY id") == [(1,), (2,), (3,)]
    assert stored_state(pg, "orders")["cursor_values"] == {"id": 3}
    driver.discard_staged()
    assert part_tables(pg) == []


def test_a_failed_commit_leaves_the_table_and_the_state_as_they_were(
    pg: Any, drivers: Driver
) -> None:
    pg.execute("CREATE TABLE orders (id bigint PRIMARY KEY)")
    pg.execute("INSERT INTO orders VALUES (1)")
    first = drivers("orders", "orders")
    committed(first, [], id=1)
    first.close()
    driver = drivers("orders", "orders")
    # The second partition's rows collide with the first's on the key: its INSERT fails after
    # the first one's went in, in the same transaction.
    staged = [
        stage(pg, "orders", "orders", 0, [ids(5, 6)]),
        stage(pg, "orders", "orders", 1, [ids(6)]),
    ]
    with pytest.raises(ConnectorError, match="insert of the staged partitions"):
        committed(driver, staged, id=6)
    assert pg.query("SELECT id FROM orders") == [(1,)]
    assert stored_state(pg, "orders")["cursor_values"] == {"id": 1}


def test_a_reported_table_that_is_gone_fails_the_commit(pg: Any, drivers: Driver) -> None:
    driver = drivers("orders", "orders")
    staged = [
        stage(pg, "orders", "orders", 0, [ids(1)]),
        stage(pg, "orders", "orders", 1, [ids(2)]),
    ]
    pg.execute(f'DROP TABLE "{staged[1]["tables"][0]["table"]}"')
    with pytest.raises(ConnectorError, match="is gone; nothing was committed"):
        committed(driver, staged)
    assert not pg.exists("orders")
    assert stored_state(pg, "orders") is None


def test_an_unreported_attempt_is_never_committed_and_is_discarded(
    pg: Any, drivers: Driver
) -> None:
    driver = drivers("orders", "orders")
    stage(pg, "orders", "orders", 0, [ids(1, 2)], attempt="dead")  # its worker died after
    retried = stage(pg, "orders", "orders", 0, [ids(1, 2)], attempt="retried")
    other_run = stage(pg, "orders", "orders", 1, [ids(9)], run_id="20231231T000000-0000dead")
    assert len(part_tables(pg)) == 3
    assert other_run["tables"][0]["table"] != retried["tables"][0]["table"]
    committed(driver, [retried])
    assert pg.query("SELECT id FROM orders ORDER BY id") == [(1,), (2,)]
    driver.discard_staged()
    assert part_tables(pg) == []


def test_overwrite_replaces_the_rows_with_the_staged_ones(pg: Any, drivers: Driver) -> None:
    pg.execute("CREATE TABLE orders (id bigint PRIMARY KEY, note text DEFAULT 'kept')")
    pg.execute("COMMENT ON TABLE orders IS 'the orders'")
    pg.execute("INSERT INTO orders (id) VALUES (1), (2)")
    driver = drivers("orders", "orders", "overwrite")
    staged = [
        stage(pg, "orders", "orders", 0, [ids(10)], mode="overwrite"),
        stage(pg, "orders", "orders", 1, [ids(11, 12)], mode="overwrite"),
    ]
    assert pg.query("SELECT id FROM orders ORDER BY id") == [(1,), (2,)]
    committed(driver, staged)
    assert pg.query("SELECT id, note FROM orders ORDER BY id") == [
        (10, "kept"),
        (11, "kept"),
        (12, "kept"),
    ]
    assert pg.scalar("SELECT obj_description('orders'::regclass, 'pg_class')") == "the orders"
    driver.discard_staged()
    assert part_tables(pg) == []
    assert [name for name in pg.tables() if name.startswith("_dl_")] == []  # the stage too


def test_overwrite_of_a_referenced_table_fails_as_the_single_process_one(
    pg: Any, drivers: Driver
) -> None:
    """A table a foreign key points at is kept and its rows replaced (TRUNCATE), which
    Postgres refuses for a referenced table: the commit fails as a single-process overwrite's
    does, and leaves the rows and the state."""
    pg.execute("CREATE TABLE orders (id bigint PRIMARY KEY)")
    pg.execute("CREATE TABLE lines (order_id bigint REFERENCES orders (id))")
    pg.execute("INSERT INTO orders VALUES (1)")
    single = drivers("single", "orders", "overwrite")
    single.write_batch(ArrowBatch(ids(2)), State())
    with pytest.raises(ConnectorError) as refused:
        single.commit(State())
    single.close()
    driver = drivers("orders", "orders", "overwrite")
    staged = [stage(pg, "orders", "orders", 0, [ids(2)], mode="overwrite")]
    with pytest.raises(ConnectorError) as failed:
        committed(driver, staged, id=2)
    expected = "cannot truncate a table referenced in a foreign key constraint"
    assert expected in str(refused.value) and expected in str(failed.value)
    assert pg.query("SELECT id FROM orders") == [(1,)]
    assert stored_state(pg, "orders") is None
    driver.discard_staged()
    assert part_tables(pg) == []


def test_two_recipes_into_one_table_stage_apart(pg: Any, drivers: Driver) -> None:
    mine = stage(pg, "orders", "orders", 0, [ids(1)])
    theirs = stage(pg, "orders_backfill", "orders", 0, [ids(100)])
    long_theirs = stage(pg, "orders_eu", "orders_eu", 0, [ids(200)])
    assert mine["tables"][0]["table"] != theirs["tables"][0]["table"]
    driver = drivers("orders", "orders")
    driver.discard_staged()  # a run's start: this recipe's leftovers only
    assert sorted(part_tables(pg)) == sorted(
        [theirs["tables"][0]["table"], long_theirs["tables"][0]["table"]]
    )
    backfill = drivers("orders_backfill", "orders")
    committed(backfill, [theirs])
    assert pg.query("SELECT id FROM orders") == [(100,)]


def test_a_schema_change_within_a_partition_starts_a_new_table(pg: Any, drivers: Driver) -> None:
    wider = pa.record_batch({"id": pa.array([3], pa.int64()), "name": pa.array(["c"])})
    staged = stage(pg, "orders", "orders", 0, [ids(1), ids(2), wider, pa.record_batch(wider)])
    assert [len(staged["tables"]), staged["rows"]] == [2, 4]
    driver = drivers("orders", "orders")
    assert [schema for _, schema in driver.staged_schemas([staged])] == [
        ids().schema,
        wider.schema,
    ]
    committed(driver, [staged])
    assert pg.query("SELECT id, name FROM orders ORDER BY id") == [
        (1, None),
        (2, None),
        (3, "c"),
        (3, "c"),
    ]


def test_names_of_long_tables_stay_within_63_bytes_and_apart(pg: Any) -> None:
    long = "ö" * 31  # 62 bytes, the most a table name may have
    first = stage(pg, "orders", long, 0, [ids(1)])["tables"][0]["table"]
    second = stage(pg, "orders", long, 1, [ids(2)])["tables"][0]["table"]
    retried = stage(pg, "orders", long, 1, [ids(2)], attempt="b")["tables"][0]["table"]
    assert len({first, second, retried}) == 3
    assert all(len(name.encode()) <= 63 for name in (first, second, retried))
    assert sorted(part_tables(pg)) == sorted([first, second, retried])


def test_discard_skips_a_table_another_session_locks(
    pg: Any, drivers: Driver, monkeypatch: pytest.MonkeyPatch, postgres_server: Any
) -> None:
    """A dead run's session still holding a staging table: the drop gives up after the lock
    timeout and leaves it to the next run, instead of waiting for ever."""
    monkeypatch.setattr(connector_module, "DISCARD_LOCK_TIMEOUT", 0.05)
    locked = stage(pg, "orders", "orders", 0, [ids(1)])["tables"][0]["table"]
    free = stage(pg, "orders", "orders", 1, [ids(2)])["tables"][0]["table"]
    holder = postgres_server.connect(pg.database)
    try:
        holder.cursor().execute(f'SELECT * FROM "{locked}"')  # its transaction stays open
        first = drivers("orders", "orders")
        first.discard_staged()
        first.close()
        assert part_tables(pg) == [locked]
    finally:
        holder.close()
    drivers("orders", "orders").discard_staged()
    assert free not in part_tables(pg) and part_tables(pg) == []


ODD_TEXT = 'héllo ✓ 𝄞 "quoted", comma\nnew line \\ back'


def typed_batch() -> pa.RecordBatch:
    json_field = pa.field("doc", pa.string(), metadata={TYPE_TAG: b"json"})
    return pa.RecordBatch.from_arrays(
        [
            pa.array([1, 2, 3], pa.int64()),
            pa.array(
                [Decimal("12345678901234567890.1234567890"), None, Decimal("-0.0000000001")],
                pa.decimal128(38, 10),
            ),
            pa.array(
                [
                    datetime(2024, 6, 1, 10, 0, 0, 123456, tzinfo=UTC),
                    None,
                    datetime(1, 1, 1, tzinfo=UTC),
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            pa.array([ODD_TEXT, None, ""]),
            pa.array([float("nan"), None, -0.0], pa.float64()),
            pa.array([b"\x00\xff\x01", None, b""], pa.binary()),
            pa.array(['{"a": [1, 2.50, null]}', None, '"x"']),
        ],
        schema=pa.schema(
            [
                pa.field("id", pa.int64()),
                pa.field("amount", pa.decimal128(38, 10)),
                pa.field("at", pa.timestamp("us", tz="UTC")),
                pa.field("name", pa.string()),
                pa.field("ratio", pa.float64()),
                pa.field("raw", pa.binary()),
                json_field,
            ]
        ),
    )


@pytest.mark.parametrize("codec", ["csv", "auto"])
@pytest.mark.parametrize("mode", ["append", "overwrite"])
def test_types_round_trip_as_the_single_process_write_stores_them(
    pg: Any, drivers: Driver, codec: str, mode: str
) -> None:
    single = drivers("single", "single", mode, codec=codec)
    single.write_batch(ArrowBatch(typed_batch()), State())
    single.commit(State())
    driver = drivers("split", "split", mode, codec=codec)
    staged = [
        stage(pg, "split", "split", 0, [typed_batch().slice(0, 2)], mode=mode, codec=codec),
        stage(pg, "split", "split", 1, [typed_batch().slice(2)], mode=mode, codec=codec),
    ]
    committed(driver, staged)
    assert pg.column_types("split") == pg.column_types("single")
    rows = "SELECT {0}::text FROM {0} ORDER BY id"
    assert pg.query(rows.format("split")) == pg.query(rows.format("single"))
    assert pg.scalar("SELECT ratio::text FROM split WHERE id = 1") == "NaN"


def test_a_staged_table_is_labelled_with_its_owner(pg: Any) -> None:
    name = stage(pg, "orders", "orders", 3, [ids(1)], attempt="x7")["tables"][0]["table"]
    label = json.loads(pg.scalar(f"SELECT obj_description('\"{name}\"'::regclass, 'pg_class')"))
    assert label == {
        "dataloader_partition": {
            "recipe": "orders",
            "table": "orders",
            "run_id": RUN,
            "partition": 3,
            "attempt": "x7",
            "part": 0,
        }
    }


def test_an_empty_partition_stages_no_table(pg: Any, drivers: Driver) -> None:
    staged = stage(pg, "orders", "orders", 0, [])
    assert staged["tables"] == [] and staged["rows"] == 0
    driver = drivers("orders", "orders", "overwrite")
    assert driver.staged_schemas([staged]) == []


def test_a_worker_whose_connection_is_lost_fails_transiently_and_leaves_nothing(
    pg: Any,
) -> None:
    """The server ends the worker's session between two batches: the error is one the engine
    tries again (judged through the connector), names no password, and the half-staged table
    went with the transaction."""
    from dataloader.engine.distributed import _transient

    def batches() -> Iterator[ArrowBatch]:
        yield ArrowBatch(ids(1, 2))
        (pid,) = pg.query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state = 'idle in transaction'"
        )[0]
        # Terminated and waited for: the next COPY meets a closed session.
        pg.execute("SELECT pg_terminate_backend(%s, 60000)", (pid,))
        yield ArrowBatch(ids(3))

    worker = PostgresConnector(PostgresConfig(**pg.settings(), table="orders"))
    with pytest.raises(ConnectorError, match="staging write failed") as raised:
        worker.stage_partition(context("orders"), Partition(index=0, label="all"), "a", batches())
    assert _transient(raised.value, (worker,))
    assert pg.settings()["password"] not in str(raised.value)
    assert worker.conn is None
    assert part_tables(pg) == []


def test_staged_text_is_cast_to_the_tables_types_as_copy_would_parse_it(
    pg: Any, drivers: Driver
) -> None:
    """Strings staged as `text` go into a `jsonb` or `numeric` column parsed as COPY parses
    them; into a `varchar(3)` through the assignment cast, which refuses a value too long
    (an explicit cast would cut it)."""
    pg.execute("CREATE TABLE orders (id bigint, doc jsonb, amount numeric(6, 2), code varchar(3))")
    rows = pa.record_batch(
        {
            "id": pa.array([1, 2], pa.int64()),
            "doc": pa.array(['{"b": 1, "a": [true]}', None]),
            "amount": pa.array(["12.5", "-0.01"]),
            "code": pa.array(["abc", None]),
        }
    )
    driver = drivers("orders", "orders")
    committed(driver, [stage(pg, "orders", "orders", 0, [rows])])
    assert pg.query("SELECT id, doc::text, amount::text, code FROM orders ORDER BY id") == [
        (1, '{"a": [true], "b": 1}', "12.50", "abc"),
        (2, None, "-0.01", None),
    ]
    driver.discard_staged()
    too_long = pa.record_batch({"id": pa.array([3], pa.int64()), "code": pa.array(["abcd"])})
    with pytest.raises(ConnectorError, match="too long for type character varying"):
        committed(driver, [stage(pg, "orders", "orders", 0, [too_long], run_id="r2")])
    assert pg.query("SELECT count(*) FROM orders") == [(2,)]
