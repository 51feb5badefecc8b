"""The Postgres destination's lock on its recipe: two runs of one recipe never load into one
database at once, whatever state backend (or host) each uses. A destination that cannot take
the lock still reads the state (`show-state`), but refuses to begin a load or reset the state."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dataloader import (
    ArrowBatch,
    ConnectorError,
    LocalStateBackend,
    RecipeLoader,
    State,
    register_connector,
    run_recipe,
)
from dataloader.context import RunContext
from dataloader.registry import unregister
from dataloader.testing import RowsSource
from dataloader_postgres.config import PostgresConfig
from dataloader_postgres.connector import PostgresConnector

Opener = Callable[..., PostgresConnector]
REFUSED = "another run of recipe 'orders' is loading into this database"


@pytest.fixture
def opened(pg: Any) -> Iterator[Opener]:
    """`opened(recipe, table)`: a Postgres destination opened as a run of `recipe` opens it;
    closed at the end if the test has not closed it."""
    connectors: list[PostgresConnector] = []

    def _open(recipe: str = "orders", table: str = "orders") -> PostgresConnector:
        connector = PostgresConnector(PostgresConfig(**pg.settings(), table=table))
        connector.open(
            RunContext(
                recipe_name=recipe,
                run_id=f"20240101T000000-{len(connectors):08x}",
                started_at=datetime.now(UTC),
                role="destination",
            )
        )
        connectors.append(connector)
        return connector

    yield _open
    for connector in connectors:
        connector.close()


def load_one(connector: PostgresConnector, rows: list[dict[str, Any]]) -> None:
    connector.begin(State())
    connector.write_batch(ArrowBatch.from_pylist(rows), State())
    connector.commit(State(cursor_values={"id": rows[-1]["id"]}))


def test_a_second_destination_of_the_recipe_refuses_to_load(pg: Any, opened: Opener) -> None:
    first, second = opened(), opened()
    first.begin(State())

    with pytest.raises(ConnectorError, match=REFUSED) as caught:
        second.begin(State())

    assert caught.value.problem.key == "destination"
    assert pg.server.password not in str(caught.value)
    assert "_dataloader_state" in str(caught.value)
    load_one(first, [{"id": 1}])  # the holder is not disturbed
    assert pg.query("SELECT id FROM orders") == [(1,)]


def test_a_destination_without_the_lock_still_reads_the_state(opened: Opener) -> None:
    load_one(opened(), [{"id": 1}, {"id": 2}])
    reader = opened()  # the run's destination holds the lock

    state = reader.load_state()

    assert state is not None
    assert state.cursor_values == {"id": 2}
    with pytest.raises(ConnectorError, match=REFUSED):
        reader.reset_state()


def test_the_lock_is_free_again_once_the_holder_closes(pg: Any, opened: Opener) -> None:
    first = opened()
    load_one(first, [{"id": 1}])
    first.close()

    load_one(opened(), [{"id": 2}])  # as a retry reopening its destination does

    assert pg.query("SELECT id FROM orders ORDER BY id") == [(1,), (2,)]


def test_two_recipes_load_at_once(pg: Any, opened: Opener) -> None:
    orders, refunds = opened("orders", "orders"), opened("refunds", "refunds")
    orders.begin(State())
    refunds.begin(State())
    load_one(orders, [{"id": 1}])
    load_one(refunds, [{"id": 2}])
    assert pg.query("SELECT id FROM orders") == [(1,)]
    assert pg.query("SELECT id FROM refunds") == [(2,)]


def test_the_lock_is_per_state_table(pg: Any, opened: Opener) -> None:
    """One recipe name into two schemas keeps two states, so two locks; `orders` and
    `public.orders` share one state table, so one lock."""
    pg.execute("CREATE SCHEMA eu")
    first = opened("orders", "orders")
    first.begin(State())
    opened("orders", "eu.orders").begin(State())
    with pytest.raises(ConnectorError, match=REFUSED):
        opened("orders", "public.orders").begin(State())


class Gate:
    """Holds the first read of a run until released; later reads pass."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self._first = threading.Lock()

    def pass_through(self) -> None:
        if self._first.acquire(blocking=False):
            self.entered.set()
            assert self.release.wait(timeout=60), "the test never released the first run"


@pytest.fixture
def gated_source() -> Iterator[tuple[str, Gate]]:
    gate = Gate()

    class GatedRows(RowsSource):
        def read_batches(self, state: State) -> Iterator[ArrowBatch]:
            gate.pass_through()
            yield from super().read_batches(state)

    name = "dl_pg_test_gated_rows"
    register_connector(name)(GatedRows)
    try:
        yield name, gate
    finally:
        unregister("connector", name)


def test_two_runs_with_separate_state_load_the_rows_once(
    pg: Any, write_recipe: Callable[[dict[str, Any]], Path], tmp_path: Path, gated_source: Any
) -> None:
    source, gate = gated_source
    recipe = RecipeLoader().load(
        write_recipe(
            {
                "name": "orders",
                "source": {
                    "type": source,
                    "batches": [[{"id": 1}, {"id": 2}]],
                    "incremental": {"strategy": "cursor", "cursor_column": "id"},
                },
                "destination": pg.destination("orders"),
            }
        )
    )
    outcome: dict[str, Any] = {}

    def first_run() -> None:
        try:
            outcome["result"] = run_recipe(recipe, LocalStateBackend(tmp_path / "host-a"))
        except BaseException as exc:
            outcome["error"] = exc
            gate.entered.set()

    thread = threading.Thread(target=first_run)
    thread.start()
    try:
        assert gate.entered.wait(timeout=60)
        assert "error" not in outcome, outcome.get("error")
        with pytest.raises(ConnectorError, match=REFUSED):
            run_recipe(recipe, LocalStateBackend(tmp_path / "host-b"))
    finally:
        gate.release.set()
        thread.join()

    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].rows_written == 2
    later = run_recipe(recipe, LocalStateBackend(tmp_path / "host-b"))  # resumes from the table
    assert later.rows_written == 0
    assert pg.query("SELECT id FROM orders ORDER BY id") == [(1,), (2,)]
