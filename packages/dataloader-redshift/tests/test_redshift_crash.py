"""Runs that die part-way (a gate in the destination raises at a chosen batch, or inside a
commit just before the state row is written) and are run again must leave the table exactly
as one clean run does: no row lost, none duplicated. On the PostgreSQL stand-in, reading an
incremental `redshift` table whose cursor has ties in threes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dataloader import RunResult, register_connector

ROWS, BATCH = 60, 6


class Killed(Exception):
    """Raised by a gate: the run dies there."""


def recipe(warehouse: Any, mode: str, table: str) -> dict[str, Any]:
    return {
        "name": f"rs_crash_{table}",
        "source": {
            "type": "redshift",
            **warehouse.settings(),
            "table": "public.events",
            "incremental": {"cursor_column": "seq"},
        },
        "destination": {
            "type": "redshift",
            **warehouse.settings(),
            "table": f"dw.{table}",
            "write_mode": mode,
            **({"merge_keys": ["id"]} if mode == "merge" else {}),
        },
        "runtime": {"batch_size": BATCH},
    }


@pytest.fixture
def events(warehouse: Any) -> Any:
    warehouse.query("CREATE TABLE public.events (id bigint, seq int, payload varchar(20))")
    warehouse.query(
        "INSERT INTO public.events SELECT i, (i + 2) / 3, 'p' || i FROM generate_series(1, %s) i",
        (ROWS,),
    )
    return warehouse


def gated(stand_in: type[Any], where: str, at: int) -> type[Any]:
    """The stand-in, dying at its `at`-th batch written (`write`) or inside its `at`-th commit
    just before the state row (`commit`); only once per test."""
    counts = {"write": 0, "commit": 0}

    class Gated(stand_in):  # type: ignore[misc,valid-type]
        def write_batch(self, batch: Any, state: Any) -> None:
            if self.context is not None and self.context.role == "destination":
                counts["write"] += 1
                if where == "write" and counts["write"] == at:
                    raise Killed(f"killed at batch {at}")
            super().write_batch(batch, state)

        def _run(self, statement: Any) -> Any:
            if statement.sql.startswith("INSERT INTO") and "_dataloader_state" in statement.sql:
                counts["commit"] += 1
                if where == "commit" and counts["commit"] == at:
                    raise Killed(f"killed in commit {at}")
            return super()._run(statement)

    return Gated


@pytest.mark.parametrize("mode", ["append", "merge"])
@pytest.mark.parametrize(("where", "at"), [("write", 1), ("write", 5), ("commit", 3)])
def test_a_killed_run_then_a_rerun_equals_a_clean_run(
    events: Any,
    stand_in: type[Any],
    run: Callable[..., RunResult],
    mode: str,
    where: str,
    at: int,
) -> None:
    table = f"{mode}_{where}_{at}"
    register_connector("redshift")(gated(stand_in, where, at))
    with pytest.raises(Exception, match="killed"):
        run(recipe(events, mode, table))
    register_connector("redshift")(stand_in)
    run(recipe(events, mode, table))
    stored = events.query(f"SELECT id, seq, payload FROM dw.{table} ORDER BY id")
    expected = events.query("SELECT id, seq, payload FROM public.events ORDER BY id")
    assert stored == expected
    again = run(recipe(events, mode, table))  # nothing new: the table stays as it is
    assert again.rows_written <= 3
    assert events.query(f"SELECT count(*) FROM dw.{table}") == [(ROWS,)]
