"""The Postgres state backend's advisory lock when its connection drops (the server terminates
it): the holder notices at its next save, takes the lock again when it is free and the state
is as it left it, and fails when another run got the lock or changed the state meanwhile."""

from __future__ import annotations

from typing import Any

import pytest

from dataloader import State, StateError
from dataloader_postgres.state import PostgresStateBackend, PostgresStateConfig


def document(rows: int) -> dict[str, Any]:
    return State(checkpoints=[{"run_id": f"r{rows}", "rows_written": rows}]).to_dict()


def backend(pg: Any) -> PostgresStateBackend:
    return PostgresStateBackend(PostgresStateConfig(**pg.settings()))


def terminate_lock_holder(pg: Any, recipe: str) -> None:
    """End the server session that holds the recipe's advisory lock, as a lost connection would
    (waiting until it has ended: only then is its lock free)."""
    rows = pg.query(
        "SELECT pg_terminate_backend(pid, 60000) FROM pg_locks, "
        "(SELECT hashtextextended(%s, 0) AS k) AS lock_key "
        "WHERE locktype = 'advisory' AND granted "
        "AND classid::bigint = (k >> 32) & 4294967295 AND objid::bigint = k & 4294967295",
        (f"dataloader:{recipe}",),
    )
    assert rows == [(True,)], "exactly one session held the lock"


def test_a_dropped_lock_taken_by_another_run_fails_the_next_save(pg: Any) -> None:
    first, second = backend(pg), backend(pg)
    with first.lock("orders"):
        first.save("orders", document(1))
        terminate_lock_holder(pg, "orders")
        with second.lock("orders"):  # the lock was free: another run takes it
            with pytest.raises(StateError, match="lost the lock") as caught:
                first.save("orders", document(99))
            assert "orders" in str(caught.value)
            assert pg.server.password not in str(caught.value)
            assert backend(pg).load("orders") == document(1)
            second.save("orders", document(2))
    assert backend(pg).load("orders") == document(2)


def test_a_dropped_lock_is_taken_again_when_it_is_still_free(pg: Any) -> None:
    first, second = backend(pg), backend(pg)
    with first.lock("orders"):
        first.save("orders", document(1))
        terminate_lock_holder(pg, "orders")
        first.save("orders", document(2))  # nobody took it: the save takes it again
        with pytest.raises(StateError, match="already running"), second.lock("orders"):
            pytest.fail("two holders of one lock")
        terminate_lock_holder(pg, "orders")  # the new lock session is the one to end now
        first.delete("orders")
    with second.lock("orders"):  # released with its holder
        pass
    assert backend(pg).load("orders") == {}


def test_a_dropped_lock_whose_state_changed_meanwhile_fails_the_next_save(pg: Any) -> None:
    first, second = backend(pg), backend(pg)
    with first.lock("orders"):
        first.save("orders", document(1))
        terminate_lock_holder(pg, "orders")
        with second.lock("orders"):  # a whole run in between, while the first was cut off
            second.save("orders", document(2))
        with pytest.raises(StateError, match="lost the lock"):
            first.save("orders", document(99))
    assert backend(pg).load("orders") == document(2)
    with second.lock("orders"):  # the failed save left no lock behind
        pass
