"""Overwrite's staging tables when several recipes load into one database (separate processes
or `dataloader run -j N`): a run drops only the dead stages of its own recipe and table, never
another run's live one; stage names never collide, even for long table names; and the swap
keeps the table's own comment.

The interleavings are made by hand: connectors driven step by step, their transactions held
open, so each overlap is certain rather than likely."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from dataloader import ArrowBatch, RunContext, State
from dataloader_postgres import PostgresConnector
from dataloader_postgres.config import PostgresConfig

Destination = Callable[..., PostgresConnector]


@pytest.fixture
def destinations(pg: Any) -> Iterator[Destination]:
    """`destination(recipe, table)`: an opened Postgres overwrite destination, as one run of
    recipe `recipe` would drive it; closed (its transaction rolled back) at the end."""
    opened: list[PostgresConnector] = []

    def destination(recipe: str, table: str) -> PostgresConnector:
        connector = PostgresConnector(PostgresConfig(**pg.settings(), table=table))
        connector.open(
            RunContext(
                recipe_name=recipe,
                run_id=f"20240101T000000-{len(opened):08x}",
                started_at=datetime.now(UTC),
                role="destination",
                write_mode="overwrite",
            )
        )
        opened.append(connector)
        return connector

    yield destination
    for connector in opened:
        connector.close()


def overwrite_recipe(pg: Any, rows_source: str, name: str, table: str) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"type": rows_source, "batches": [[{"id": 10}, {"id": 11}]]},
        "destination": pg.destination(table, "overwrite"),
    }


def staging_tables(pg: Any) -> list[str]:
    return [name for name in pg.tables() if name.startswith("_dl_stage_")]


def leave_stage(pg: Any, name: str, recipe: str, table: str) -> None:
    """A committed staging table labelled as the stage of `recipe`'s run into `table`."""
    label = {"dataloader_stage": {"recipe": recipe, "table": table, "run_id": "x"}}
    pg.execute(f'CREATE TABLE "{name}" (id int)')
    pg.execute(f'INSERT INTO "{name}" VALUES (1), (2)')
    pg.execute(f'COMMENT ON TABLE "{name}" IS %s', (json.dumps(label),))


OTHER_RECIPES = [
    pytest.param("orders_eu", "orders_eu", id="another-table-whose-name-extends-this-one"),
    pytest.param("orders_backfill", "orders", id="another-recipe-into-the-same-table"),
]


@pytest.mark.parametrize(("live_recipe", "live_table"), OTHER_RECIPES)
def test_cleanup_leaves_the_labelled_stage_of_another_recipe_alone(
    pg: Any, run: Any, rows_source: str, live_recipe: str, live_table: str
) -> None:
    stage = f"_dl_stage_{live_table}_20240101T000000_0000beef"
    leave_stage(pg, stage, live_recipe, live_table)

    run(overwrite_recipe(pg, rows_source, "orders", "orders"))

    assert stage in staging_tables(pg)
    assert pg.query(f'SELECT id FROM "{stage}" ORDER BY id') == [(1,), (2,)]
    assert pg.query("SELECT id FROM orders ORDER BY id") == [(10,), (11,)]


@pytest.mark.parametrize(("live_recipe", "live_table"), OTHER_RECIPES)
def test_cleanup_leaves_the_live_stage_of_another_run_alone(
    pg: Any,
    run: Any,
    rows_source: str,
    destinations: Destination,
    live_recipe: str,
    live_table: str,
) -> None:
    live = destinations(live_recipe, live_table)
    live.begin(State())
    live.write_batch(ArrowBatch.from_pylist([{"id": 1}, {"id": 2}]), State())

    # Another recipe's whole run, cleanup included, happens while that stage is live.
    run(overwrite_recipe(pg, rows_source, "orders", "orders"))

    live.commit(State())
    assert pg.query(f"SELECT id FROM {live_table} ORDER BY id") == [(1,), (2,)]
    assert staging_tables(pg) == []


def test_the_stage_a_crashed_run_of_this_recipe_left_is_dropped(
    pg: Any, run: Any, rows_source: str
) -> None:
    leave_stage(pg, "_dl_stage_orders_20240101T000000_deadbeef", "orders", "orders")
    leave_stage(pg, "_dl_stage_orders_eu_20240101T000000_deadbeef", "orders_eu", "orders_eu")
    pg.execute("CREATE TABLE _dl_stage_orders_by_hand (id int)")  # no label: not ours

    run(overwrite_recipe(pg, rows_source, "orders", "orders"))

    assert staging_tables(pg) == [
        "_dl_stage_orders_by_hand",
        "_dl_stage_orders_eu_20240101T000000_deadbeef",
    ]
    assert pg.query("SELECT id FROM orders ORDER BY id") == [(10,), (11,)]


def test_stages_of_long_table_names_sharing_a_prefix_do_not_collide(
    pg: Any, destinations: Destination
) -> None:
    """Postgres cuts names at 63 bytes: a stage name must stay unique within them."""
    prefix = "customer_order_line_items_" + "x" * 30
    east, west = destinations("east", f"{prefix}_east"), destinations("west", f"{prefix}_west")
    east.begin(State())
    east.write_batch(ArrowBatch.from_pylist([{"id": 1}]), State())
    west.begin(State())
    # A colliding stage name would wait on east's open transaction: fail instead of hanging.
    west.conn.cursor().execute("SET lock_timeout = '5s'")
    west.write_batch(ArrowBatch.from_pylist([{"id": 2}]), State())

    west.commit(State())
    east.commit(State())
    assert pg.query(f'SELECT id FROM "{prefix}_east"') == [(1,)]
    assert pg.query(f'SELECT id FROM "{prefix}_west"') == [(2,)]
    assert staging_tables(pg) == []


def test_overwrite_swaps_in_atomically_and_keeps_the_tables_own_comment(
    pg: Any, run: Any, rows_source: str
) -> None:
    recipe = overwrite_recipe(pg, rows_source, "orders", "orders")
    recipe["source"]["batches"] = [[{"id": 10}], [{"id": 11}]]
    recipe["runtime"] = {"batch_size": 1}
    comment = "SELECT obj_description('orders'::regclass, 'pg_class')"
    run(recipe)
    assert pg.scalar(comment) is None

    pg.execute("COMMENT ON TABLE orders IS 'one row per order, isn''t it'")
    pg.execute("DELETE FROM orders WHERE id = 11")
    seen: list[tuple[Any, ...]] = []

    def observe(result: Any) -> None:  # between batches, from another session
        seen.append((pg.query("SELECT id FROM orders"), pg.scalar(comment), staging_tables(pg)))

    run(recipe, progress=observe)

    assert seen and all(entry == ([(10,)], "one row per order, isn't it", []) for entry in seen), (
        seen
    )
    assert pg.query("SELECT id FROM orders ORDER BY id") == [(10,), (11,)]
    assert pg.scalar(comment) == "one row per order, isn't it"


def test_overwrite_into_a_long_table_name_with_odd_characters(
    pg: Any, run: Any, rows_source: str
) -> None:
    table = 'Größte Bestellungen: 100% "alle" Länder, Regionen'
    assert 50 < len(table.encode()) <= 63
    quoted = '"' + table.replace('"', '""') + '"'
    recipe = overwrite_recipe(pg, rows_source, "odd", quoted)
    run(recipe)
    pg.execute(f"COMMENT ON TABLE {quoted} IS '100%'")
    run(recipe)

    assert pg.query(f"SELECT id FROM {quoted} ORDER BY id") == [(10,), (11,)]
    assert pg.scalar("SELECT obj_description(%s::regclass, 'pg_class')", (quoted,)) == "100%"
    assert staging_tables(pg) == []
