"""Schema handling of the Postgres destination: `describe` (types as the source reads them,
nullability, keys), `apply_schema` (create, add column, widen in place with every value kept)
inside the transaction of the data, overwrite fitting its stage, and the quarantine table
committed with the data.

The connector is driven step by step, as the engine drives it, so the state of the database
between a schema change and the commit can be looked at from another session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dataloader import ArrowBatch, RunContext, State
from dataloader.schema.history import current_columns
from dataloader.schema.plan import KEY_TAG, ColumnChange, SchemaPlan, key_of
from dataloader.schema.quarantine import quarantine_rows
from dataloader.schema.types import TYPE_TAG, type_name
from dataloader.testing import create_plan, described_shape, local_runner
from dataloader.testing import schema_field as field
from dataloader_postgres import PostgresConnector
from dataloader_postgres.config import PostgresConfig

Destination = Callable[..., PostgresConnector]


@pytest.fixture
def destination(pg: Any) -> Iterator[Destination]:
    """`destination(write_mode="append", table="dst", merge_keys=())`: an opened destination
    after `begin`, as one attempt of a run drives it; closed at the end."""
    opened: list[PostgresConnector] = []

    def open_destination(
        write_mode: str = "append", table: str = "dst", merge_keys: tuple[str, ...] = ()
    ) -> PostgresConnector:
        connector = PostgresConnector(PostgresConfig(**pg.settings(), table=table))
        connector.open(
            RunContext(
                recipe_name=f"schema-{len(opened)}",  # each its own lock
                run_id=f"20240101T000000-{len(opened):08x}",
                started_at=datetime.now(UTC),
                role="destination",
                write_mode=write_mode,  # type: ignore[arg-type]
                merge_keys=merge_keys,
            )
        )
        opened.append(connector)
        connector.begin(State())
        return connector

    yield open_destination
    for connector in opened:
        connector.close()


def create(*fields: pa.Field) -> SchemaPlan:
    return create_plan(pa.schema(fields))


def evolve(current: pa.Schema, *changes: tuple[str, pa.Field]) -> SchemaPlan:
    """The plan taking `current` to it with `changes` (`("add", field)` / `("widen", field)`)."""
    fields = {f.name: f for f in current}
    planned = []
    for kind, new in changes:
        before = fields[new.name].type if kind == "widen" else None
        fields[new.name] = new
        planned.append(
            ColumnChange(
                "widen_type" if kind == "widen" else "add_column", new.name, before, new.type, kind
            )
        )
    return SchemaPlan(False, pa.schema(list(fields.values())), tuple(planned))


def write(connector: PostgresConnector, schema: pa.Schema, rows: list[dict[str, Any]]) -> None:
    batch = pa.RecordBatch.from_pylist(rows, schema=pa.schema([schema.field(n) for n in rows[0]]))
    connector.write_batch(ArrowBatch(batch), State())


def in_transaction(connector: PostgresConnector, sql: str) -> list[tuple[Any, ...]]:
    """`sql`'s rows as the connector's own session sees them (its open transaction)."""
    cursor = connector.conn.cursor()
    cursor.execute(sql)
    return cursor.fetchall()


def described_now(destination: Destination) -> pa.Schema | None:
    """The table as a session of its own describes it, that session closed (its open
    transaction would hold a lock an overwrite's commit waits on)."""
    connector = destination()
    try:
        return connector.describe()
    finally:
        connector.close()


def same_shape(described: pa.Schema | None, planned: pa.Schema) -> None:
    """`described` has `planned`'s columns: names, types, nullability and tags."""
    assert described is not None
    assert [(f.name, f.type, f.nullable, f.metadata) for f in described] == [
        (f.name, f.type, f.nullable, f.metadata) for f in planned
    ]


# -- describe ------------------------------------------------------------------------------
def test_describe_is_none_for_a_missing_table(destination: Destination) -> None:
    assert destination().describe() is None


def test_describe_reads_types_as_the_source_does_with_nullability_and_keys(
    pg: Any, destination: Destination
) -> None:
    pg.execute(
        "CREATE TABLE dst (id integer PRIMARY KEY, code text UNIQUE, amount numeric(12,2) NOT NULL, "
        "a int, b int, big bigint, ratio double precision, at timestamptz, day date, "
        "doc jsonb, uid uuid, tags text[], UNIQUE (a, b))"
    )
    schema = destination().describe()
    assert schema is not None
    assert [(f.name, f.type, f.nullable) for f in schema] == [
        ("id", pa.int32(), False),
        ("code", pa.string(), True),
        ("amount", pa.decimal128(12, 2), False),
        ("a", pa.int32(), True),
        ("b", pa.int32(), True),
        ("big", pa.int64(), True),
        ("ratio", pa.float64(), True),
        ("at", pa.timestamp("us", tz="UTC"), True),
        ("day", pa.date32(), True),
        ("doc", pa.string(), True),
        ("uid", pa.string(), True),
        ("tags", pa.list_(pa.string()), True),
    ]
    keys = {f.name: f.metadata.get(KEY_TAG) for f in schema if f.metadata and KEY_TAG in f.metadata}
    # A unique pair is no key of either column alone.
    assert keys == {"id": b"primary", "code": b"unique"}
    assert schema.field("doc").metadata[TYPE_TAG] == b"jsonb"
    assert schema.field("uid").metadata[TYPE_TAG] == b"uuid"


def test_a_created_table_describes_as_planned(pg: Any, destination: Destination) -> None:
    plan = create(
        field("id", pa.int64(), nullable=False, key="primary"),
        field("email", pa.string(), key="unique"),
        field("qty", pa.int32()),
        field("price", pa.decimal128(20, 4), nullable=False),
        field("seen", pa.timestamp("us")),
        field("seen_tz", pa.timestamp("us", tz="UTC")),
        field("day", pa.date32()),
        field("payload", pa.string(), pg_type="jsonb"),
        field("uid", pa.string(), pg_type="uuid"),
        field("scores", pa.list_(pa.int64())),
        field("ok", pa.bool_()),
        field("raw", pa.binary()),
    )
    connector = destination()
    connector.apply_schema(plan)
    same_shape(connector.describe(), plan.target)
    connector.commit(State())
    same_shape(destination().describe(), plan.target)
    assert pg.column_types("dst")["payload"] == "jsonb"


# -- evolution -----------------------------------------------------------------------------
def test_a_column_is_added_and_the_rows_stay(pg: Any, destination: Destination) -> None:
    plan = create(field("id", pa.int64()))
    connector = destination()
    connector.apply_schema(plan)
    write(connector, plan.target, [{"id": 1}, {"id": 2}])
    connector.commit(State())

    connector = destination()
    current = connector.describe()
    assert current is not None
    added = evolve(current, ("add", field("note", pa.string())))
    connector.apply_schema(added)
    write(connector, added.target, [{"id": 3, "note": "new"}])
    connector.commit(State())
    assert pg.query("SELECT id, note FROM dst ORDER BY id") == [(1, None), (2, None), (3, "new")]
    same_shape(destination().describe(), added.target)


def test_int32_widens_to_int64_then_decimal_and_every_value_stays_exact(
    pg: Any, destination: Destination
) -> None:
    plan = create(field("id", pa.int32()), field("qty", pa.int32()))
    connector = destination()
    connector.apply_schema(plan)
    write(
        connector, plan.target, [{"id": 1, "qty": 2_147_483_647}, {"id": 2, "qty": -2_147_483_648}]
    )
    connector.commit(State())

    connector = destination()
    to_int64 = evolve(connector.describe(), ("widen", field("qty", pa.int64())))
    connector.apply_schema(to_int64)
    write(connector, to_int64.target, [{"id": 3, "qty": 9_223_372_036_854_775_807}])
    connector.commit(State())
    assert pg.column_types("dst")["qty"] == "bigint"

    connector = destination()
    to_decimal = evolve(connector.describe(), ("widen", field("qty", pa.decimal128(20, 1))))
    connector.apply_schema(to_decimal)
    write(connector, to_decimal.target, [{"id": 4, "qty": Decimal("1234567890123456789.5")}])
    connector.commit(State())

    assert pg.column_types("dst")["qty"] == "numeric(20,1)"
    assert pg.query("SELECT id, qty FROM dst ORDER BY id") == [
        (1, Decimal("2147483647.0")),
        (2, Decimal("-2147483648.0")),
        (3, Decimal("9223372036854775807.0")),
        (4, Decimal("1234567890123456789.5")),
    ]
    same_shape(destination().describe(), to_decimal.target)


def test_date_widens_to_timestamp_and_timestamp_to_timestamptz_as_utc(
    pg: Any, destination: Destination
) -> None:
    pg.execute("SET TimeZone = 'America/New_York'")  # the table's readers may be anywhere
    plan = create(field("day", pa.date32()), field("at", pa.timestamp("us")))
    connector = destination()
    connector.apply_schema(plan)
    write(connector, plan.target, [{"day": date(2024, 3, 1), "at": datetime(2024, 3, 1, 12, 30)}])
    connector.commit(State())

    connector = destination()
    widened = evolve(
        connector.describe(),
        ("widen", field("day", pa.timestamp("us"))),
        ("widen", field("at", pa.timestamp("us", tz="UTC"))),
    )
    connector.apply_schema(widened)
    connector.commit(State())
    assert pg.column_types("dst") == {
        "day": "timestamp without time zone",
        "at": "timestamp with time zone",
    }
    assert pg.query("SELECT day, at FROM dst") == [
        (datetime(2024, 3, 1), datetime(2024, 3, 1, 12, 30, tzinfo=UTC))
    ]


def test_the_merge_stage_follows_a_widened_key_and_value(pg: Any, destination: Destination) -> None:
    plan = create(field("id", pa.int32(), nullable=False, key="primary"), field("qty", pa.int32()))
    connector = destination("merge", merge_keys=("id",))
    connector.apply_schema(plan)
    write(connector, plan.target, [{"id": 1, "qty": 1}])
    # A later batch of the same transaction brings values int32 cannot hold.
    widened = evolve(
        plan.target,
        ("widen", field("id", pa.int64(), nullable=False, key="primary")),
        ("widen", field("qty", pa.int64())),
    )
    connector.apply_schema(widened)
    write(
        connector,
        widened.target,
        [{"id": 1, "qty": 5_000_000_000}, {"id": 5_000_000_000, "qty": 2}],
    )
    connector.commit(State())
    assert pg.query("SELECT id, qty FROM dst ORDER BY id") == [
        (1, 5_000_000_000),
        (5_000_000_000, 2),
    ]


# -- atomicity -----------------------------------------------------------------------------
def existing_table(pg: Any) -> None:
    pg.execute("CREATE TABLE dst (id integer, qty integer)")
    pg.execute("INSERT INTO dst VALUES (1, 10), (2, 20)")


@pytest.mark.parametrize("end", ["abort", "close"], ids=["abort", "connection-lost"])
def test_a_schema_change_not_committed_leaves_the_table_as_it_was(
    pg: Any, destination: Destination, end: str
) -> None:
    existing_table(pg)
    connector = destination()
    changed = evolve(
        connector.describe(),
        ("widen", field("qty", pa.int64())),
        ("add", field("note", pa.string())),
    )
    connector.apply_schema(changed)
    write(connector, changed.target, [{"id": 3, "qty": 5_000_000_000, "note": "x"}])
    connector.write_quarantine(quarantined(1))
    if end == "abort":
        connector.abort()
    else:
        connector.close()  # as when the process is killed: the server rolls back
    assert pg.column_types("dst") == {"id": "integer", "qty": "integer"}
    assert pg.query("SELECT id, qty FROM dst ORDER BY id") == [(1, 10), (2, 20)]
    assert not pg.exists("dst__quarantine")


def test_an_aborted_create_leaves_no_table_and_the_next_attempt_creates_it(
    pg: Any, destination: Destination
) -> None:
    connector = destination()
    # Without a plan (a batch's own columns), then with one: neither is remembered past abort.
    write(connector, pa.schema([field("id", pa.int64())]), [{"id": 1}])
    connector.abort()
    assert not pg.exists("dst")
    write(connector, pa.schema([field("id", pa.int64())]), [{"id": 2}])
    connector.commit(State())
    assert pg.query("SELECT id FROM dst") == [(2,)]


# -- quarantine ----------------------------------------------------------------------------
QUARANTINE = pa.schema(
    [
        field("row", pa.string(), pg_type="json"),
        field("rule", pa.string()),
        field("column", pa.string()),
        field("run_id", pa.string()),
        field("quarantined_at", pa.timestamp("us", tz="UTC")),
    ]
)


def quarantined(count: int) -> pa.Table:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    return pa.Table.from_pylist(
        [
            {
                "row": f'{{"id": {i}, "qty": "3.5"}}',
                "rule": "type",
                "column": "qty",
                "run_id": "r1",
                "quarantined_at": at,
            }
            for i in range(count)
        ],
        schema=QUARANTINE,
    )


def test_quarantined_rows_commit_with_the_data(pg: Any, destination: Destination) -> None:
    assert PostgresConnector.capabilities.quarantine
    existing_table(pg)
    connector = destination()
    write(connector, connector.describe(), [{"id": 3, "qty": 30}])
    connector.write_quarantine(quarantined(2))
    assert not pg.exists("dst__quarantine"), "invisible until the commit"
    connector.write_quarantine(quarantined(1))
    connector.commit(State())
    assert pg.scalar("SELECT count(*) FROM dst") == 3
    assert (
        pg.query('SELECT "row"->>\'qty\', rule, "column", run_id FROM dst__quarantine')
        == [("3.5", "type", "qty", "r1")] * 3
    )
    assert pg.column_types("dst__quarantine")["row"] == "jsonb"


def test_the_quarantine_row_is_jsonb_and_every_engine_made_row_is_stored(
    pg: Any, destination: Destination
) -> None:
    rejected = pa.table(
        {
            "id": [1, 2, 3],
            "note": ["nul\x00inside", "a backslash-u0000 as text: \\u0000", None],
            "ratio": [float("nan"), 1.5, float("inf")],
            "raw": [b"\x00\xff", None, b""],
            "tags": [["a"], [], None],
        }
    )
    connector = destination()
    connector.write_quarantine(quarantine_rows([(rejected, "type", "note")], "r1"))
    connector.commit(State())
    assert pg.column_types("dst__quarantine")["row"] == "jsonb"
    assert pg.query(
        """SELECT "row"->'id', "row"->>'note', "row"->>'ratio', "row"->>'raw', "row"->'tags'
        FROM dst__quarantine ORDER BY ("row"->>'id')::int"""
    ) == [
        (1, "nul\\u0000inside", "nan", "00ff", ["a"]),  # jsonb holds no NUL: kept as its escape
        (2, "a backslash-u0000 as text: \\u0000", "1.5", None, []),
        (3, None, "inf", "", None),
    ]


# -- overwrite -----------------------------------------------------------------------------
def test_overwrite_applies_the_plan_to_the_stage(pg: Any, destination: Destination) -> None:
    pg.execute("CREATE TABLE dst (id integer, qty integer, loaded boolean DEFAULT true)")
    pg.execute("INSERT INTO dst (id, qty) VALUES (1, 10)")
    connector = destination("overwrite")
    plan = create(field("id", pa.int64()), field("qty", pa.decimal128(20, 1)))
    connector.apply_schema(plan)
    write(connector, plan.target, [{"id": 7, "qty": Decimal("1234567890123456789.5")}])
    added = evolve(plan.target, ("add", field("note", pa.string())))
    connector.apply_schema(added)
    write(connector, added.target, [{"id": 8, "qty": Decimal("1.5"), "note": "late"}])
    # Until the commit, the table is untouched; the run's own session sees the stage, labelled
    # as before, with the plan's columns and the old table's other ones.
    assert pg.column_types("dst") == {"id": "integer", "qty": "integer", "loaded": "boolean"}
    stages = in_transaction(
        connector,
        "SELECT relname, format_type(atttypid, atttypmod), obj_description(attrelid, 'pg_class') "
        "FROM pg_attribute JOIN pg_class ON pg_class.oid = attrelid "
        "WHERE relname LIKE '\\_dl\\_stage\\_dst%' AND attnum > 0 ORDER BY attnum",
    )
    assert len({name for name, _, _ in stages}) == 1
    assert [type_name for _, type_name, _ in stages] == [
        "bigint",
        "numeric(20,1)",
        "boolean",
        "text",
    ]
    assert all("dataloader_stage" in comment for _, _, comment in stages)
    connector.commit(State())
    assert pg.query("SELECT id, qty, loaded, note FROM dst ORDER BY id") == [
        (7, Decimal("1234567890123456789.5"), True, None),
        (8, Decimal("1.5"), True, "late"),
    ]
    assert [name for name in pg.tables() if name.startswith("_dl_stage_")] == []


def test_overwrite_keeps_a_wider_type_the_table_already_has(
    pg: Any, destination: Destination
) -> None:
    pg.execute("CREATE TABLE dst (id bigint, at timestamptz)")
    connector = destination("overwrite")
    plan = create(field("id", pa.int32()), field("at", pa.timestamp("us")))
    connector.apply_schema(plan)
    write(connector, plan.target, [{"id": 1, "at": datetime(2024, 1, 1, 8)}])
    connector.commit(State())
    assert pg.column_types("dst") == {"id": "bigint", "at": "timestamp with time zone"}
    assert pg.query("SELECT id, at FROM dst") == [(1, datetime(2024, 1, 1, 8, tzinfo=UTC))]


def test_overwrite_of_a_table_views_depend_on_widens_it_in_place(
    pg: Any, destination: Destination
) -> None:
    pg.execute("CREATE TABLE dst (id integer, qty integer)")
    pg.execute("INSERT INTO dst VALUES (1, 10)")
    pg.execute("CREATE VIEW dst_ids AS SELECT id FROM dst")
    connector = destination("overwrite")
    plan = create(field("id", pa.int32()), field("qty", pa.int64()), field("note", pa.string()))
    connector.apply_schema(plan)
    write(connector, plan.target, [{"id": 2, "qty": 5_000_000_000, "note": "n"}])
    connector.commit(State())
    assert pg.column_types("dst") == {"id": "integer", "qty": "bigint", "note": "text"}
    assert pg.query("SELECT id, qty, note FROM dst") == [(2, 5_000_000_000, "n")]
    assert pg.query("SELECT id FROM dst_ids") == [(2,)]


@pytest.mark.parametrize("this_run", [0, 2])
def test_overwrite_replaces_the_quarantine_with_the_table(
    pg: Any, destination: Destination, this_run: int
) -> None:
    existing_table(pg)
    earlier = destination()
    earlier.write_quarantine(quarantined(3))
    earlier.commit(State())
    connector = destination("overwrite")
    write(connector, connector.describe(), [{"id": 9, "qty": 90}])
    connector.write_quarantine(quarantined(this_run))
    assert pg.scalar("SELECT count(*) FROM dst__quarantine") == 3, "the old rows until the commit"
    connector.commit(State())
    assert pg.query("SELECT id, qty FROM dst") == [(9, 90)]
    assert pg.scalar("SELECT count(*) FROM dst__quarantine") == this_run


def test_an_aborted_overwrite_keeps_the_quarantine(pg: Any, destination: Destination) -> None:
    existing_table(pg)
    earlier = destination()
    earlier.write_quarantine(quarantined(3))
    earlier.commit(State())
    connector = destination("overwrite")
    connector.write_quarantine(quarantined(1))
    connector.abort()
    assert pg.scalar("SELECT count(*) FROM dst__quarantine") == 3
    # The next attempt replaces it again.
    write(connector, pa.schema([field("id", pa.int32())]), [{"id": 9}])
    connector.commit(State())
    assert pg.scalar("SELECT count(*) FROM dst__quarantine") == 0


def test_overwrite_describes_the_table_its_stage_copies(pg: Any, destination: Destination) -> None:
    pg.execute("CREATE TABLE dst (id integer PRIMARY KEY, c text, qty numeric(21,1) NOT NULL)")
    pg.execute("INSERT INTO dst VALUES (1, 'x', 1.5)")
    table = described_now(destination)
    assert table is not None
    connector = destination("overwrite")
    assert described_shape(connector.describe()) == described_shape(table)
    # A plan against it applies to the stage, and a batch of its types without `c` fits it:
    # the stage, and the table it becomes, are the described table with the planned column.
    planned = evolve(table, ("add", field("note", pa.string())))
    connector.apply_schema(planned)
    write(connector, planned.target.remove(1), [{"id": 2, "qty": Decimal("3.5"), "note": "n"}])
    assert described_shape(connector.describe()) == described_shape(planned.target)
    connector.commit(State())
    assert described_shape(described_now(destination)) == described_shape(planned.target)
    assert pg.query("SELECT id, c, qty, note FROM dst") == [(2, None, Decimal("3.5"), "n")]


# -- through the engine --------------------------------------------------------------------
def test_an_overwrite_records_the_schema_of_the_stage_it_swaps_in(
    pg: Any, rows_source: str, state_dir: Path, destination: Destination
) -> None:
    pg.execute("CREATE TABLE dst (id bigint, c text, qty numeric(21,1))")
    pg.execute("INSERT INTO dst VALUES (1, 'x', 12345678901234567890.5)")
    run = local_runner(state_dir)
    recipe = {
        "name": "refresh",
        "source": {"type": rows_source, "batches": []},
        "destination": pg.destination("dst", "overwrite"),
    }
    for qty in (5, 7):  # the first run finds the table, the second one its own
        recipe["source"]["batches"] = [[{"id": 2, "qty": qty}]]
        assert run(recipe).rows_written == 1
        assert pg.query("SELECT id, c, qty FROM dst") == [(2, None, Decimal(f"{qty}.0"))]
        assert pg.column_types("dst")["qty"] == "numeric(21,1)"
        state = State.from_dict(
            pg.scalar("SELECT state FROM _dataloader_state WHERE recipe = 'refresh'")
        )
        recorded = [
            (c["name"], c["type"], c["nullable"], c["key"])
            for c in current_columns(state.schema_history)
        ]
        table = described_now(destination)
        assert table is not None
        assert recorded == [(f.name, type_name(f.type), f.nullable, key_of(f)) for f in table]


def test_a_contract_creates_its_keys_and_quarantines_with_the_data(
    pg: Any, run: Any, rows_source: str, destination: Destination
) -> None:
    recipe = {
        "name": "contract",
        "source": {
            "type": rows_source,
            "batches": [[{"id": 1, "qty": 5}, {"id": 2, "qty": None}], [{"id": 3, "qty": None}]],
        },
        "destination": pg.destination("dst"),
        "schema": {
            "on_violation": "quarantine",
            "columns": [
                {"name": "id", "type": "int", "nullable": False, "primary_key": True},
                {"name": "qty", "type": "int", "nullable": False},
            ],
        },
    }
    result = run(recipe)
    assert (result.rows_written, result.rows_quarantined) == (1, 2)
    assert pg.query("SELECT id, qty FROM dst") == [(1, 5)]
    assert pg.query('SELECT "row"::text, "column" FROM dst__quarantine ORDER BY 1') == [
        ('{"id": 2, "qty": null}', "qty"),
        ('{"id": 3, "qty": null}', "qty"),
    ]
    same_shape(
        destination().describe(),
        pa.schema(
            [
                field("id", pa.int64(), nullable=False, key="primary"),
                field("qty", pa.int64(), nullable=False),
            ]
        ),
    )
