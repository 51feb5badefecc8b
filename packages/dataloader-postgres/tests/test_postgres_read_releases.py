"""A read ends its transaction when its rows are read, so the locks it took do not hold up a
write to the same tables in the same run (Postgres → Postgres in one database)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.parametrize("parallelism", [1, 2])
def test_a_table_overwritten_from_itself_is_replaced_by_its_own_rows(
    pg: Any, run: Any, monkeypatch: pytest.MonkeyPatch, parallelism: int
) -> None:
    # Were the source's transaction still open at the commit, the DROP would wait on its lock:
    # with a lock timeout the test fails instead of hanging.
    monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=20s")
    pg.execute("CREATE TABLE items (id bigint, name text)")
    pg.execute("INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 500) AS g")
    recipe = {
        "name": "self_overwrite",
        "source": pg.source(query="SELECT id, name || '!' AS name FROM items WHERE id <= 300"),
        "destination": pg.destination("items", "overwrite"),
        "runtime": {"parallelism": parallelism, "retries": 0},
    }
    if parallelism > 1:
        recipe["source"]["partition_column"] = "id"
    result = run(recipe)
    assert result.rows_written == 300
    assert pg.query("SELECT count(*), min(id), max(id), min(name) FROM items") == [
        (300, 1, 300, "n1!")
    ]
