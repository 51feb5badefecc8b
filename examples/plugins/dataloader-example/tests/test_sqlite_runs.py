"""Recipes into the SQLite destination, run by the engine: a source that drifts across runs is
widened and extended with every value exact and a history that explains each change, the
state commits with the rows in the destination, merge and overwrite keep their promises, and
rows breaking the contract are quarantined beside the data."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlite_support import Sql

from dataloader import EngineError, RunResult

Run = Callable[..., RunResult]


def recipe(database: Path, source: dict[str, Any], **destination: Any) -> dict[str, Any]:
    return {
        "name": "sales",
        "source": source,
        "destination": {
            "type": "sqlite",
            "database": str(database),
            "table": "sales",
            **destination,
        },
    }


def test_a_drifting_source_is_widened_and_extended_with_every_value_exact(
    run: Run, rows_source: str, database: Path, sql: Sql
) -> None:
    days: list[list[dict[str, Any]]] = [
        [{"id": i, "qty": 10 * i, "day": date(2024, 1, 1)} for i in (1, 2)],
        [
            {"id": 3, "qty": Decimal("6.5"), "day": date(2024, 1, 2)},
            {"id": 4, "qty": Decimal("12345678901234567.1"), "day": date(2024, 1, 2)},
        ],
        [{"id": 5, "qty": 7, "day": date(2024, 1, 3), "note": "late"}],
        [{"id": 6, "qty": 8, "day": datetime(2024, 1, 4, 6, 30)}],
    ]
    for rows in days:
        result = run(recipe(database, {"type": rows_source, "batches": [rows]}))
        assert result.rows_written == len(rows)

    data = sql.table(database, "sales")
    assert data.column("id").to_pylist() == [1, 2, 3, 4, 5, 6]
    assert data.column("qty").to_pylist() == [
        Decimal(10),
        Decimal(20),
        Decimal("6.5"),
        Decimal("12345678901234567.1"),  # a double would hold 12345678901234568
        Decimal(7),
        Decimal(8),
    ]
    assert data.column("note").to_pylist() == [None] * 4 + ["late", None]
    assert data.column("day").to_pylist()[::2] == [
        datetime(2024, 1, 1),
        datetime(2024, 1, 2),
        datetime(2024, 1, 3),
    ]
    assert data.column("day").to_pylist()[5] == datetime(2024, 1, 4, 6, 30)
    assert sql.declared(database, "sales") == {
        "id": "BIGINT",
        "qty": "DECIMAL_TEXT(20,1)",
        "day": "TIMESTAMP",
        "note": "TEXT",
    }

    state = sql.committed_state(database, "sales")
    assert state is not None
    versions = state.schema_history["versions"]
    changes = [
        (version["version"], c["kind"], c["column"], c["before"], c["after"], c["sample"])
        for version in versions
        for c in version["changes"]
    ]
    assert changes == [
        (1, "create", "id", None, "int", "1"),
        (1, "create", "qty", None, "int", "10"),
        (1, "create", "day", None, "date", "2024-01-01"),
        (2, "widen_type", "qty", "int", "decimal(20,1)", "6.5"),
        (3, "add_column", "note", None, "string", "late"),
        (4, "widen_type", "day", "date", "timestamp", "2024-01-04 06:30:00"),
    ]
    assert len({version["run_id"] for version in versions}) == 4


def test_the_state_commits_with_the_rows_and_the_next_run_resumes_from_it(
    run: Run, database: Path, sql: Sql, tmp_path: Path
) -> None:
    def sequence(stop: int) -> dict[str, Any]:
        return recipe(
            database,
            {"type": "sequence", "stop": stop, "incremental": {"cursor_column": "id"}},
            write_mode="append",
        )

    run(sequence(5))
    state = sql.committed_state(database, "sales")
    assert state is not None and state.cursor_values == {"id": 5}
    assert [c["column"] for c in state.schema_history["versions"][0]["changes"]] == ["id", "label"]

    for stored in (tmp_path / "state").iterdir():  # the destination's copy is the truth
        stored.unlink()
    result = run(sequence(8))

    assert result.rows_written == 3
    assert sql.table(database, "sales").column("id").to_pylist() == list(range(1, 9))
    state = sql.committed_state(database, "sales")
    assert state is not None and state.cursor_values == {"id": 8}


def test_a_merge_updates_stored_keys_and_inserts_new_ones(
    run: Run, rows_source: str, database: Path, sql: Sql
) -> None:
    def merge(*batches: list[dict[str, Any]]) -> dict[str, Any]:
        return recipe(
            database,
            {"type": rows_source, "batches": list(batches)},
            write_mode="merge",
            merge_keys=["id"],
        )

    run(merge([{"id": 1, "name": "a", "qty": 1}, {"id": 2, "name": "b", "qty": 2}]))
    run(
        merge(
            [{"id": 2, "qty": 20}, {"id": 3, "qty": 3}, {"id": 2, "qty": 21}],
            [{"id": 1, "name": "A", "qty": Decimal("1.5")}],
        )
    )

    assert sql.table(database, "sales").to_pydict() == {
        "id": [1, 2, 3],
        "name": ["A", "b", None],  # a row without `name` keeps the stored one
        "qty": [Decimal("1.5"), Decimal(21), Decimal(3)],  # the last row of a key wins
    }


def test_an_overwrite_replaces_table_and_shape_in_one_commit(
    run: Run, rows_source: str, database: Path, sql: Sql
) -> None:
    run(recipe(database, {"type": rows_source, "batches": [[{"id": 1, "qty": 1}]]}))

    run(
        recipe(
            database,
            {"type": rows_source, "batches": [[{"id": 7, "name": "x"}], [{"id": 8, "name": "y"}]]},
            write_mode="overwrite",
        )
    )

    assert sql.table(database, "sales").to_pydict() == {"id": [7, 8], "name": ["x", "y"]}
    assert sorted(name for name, _ in sql.ddl(database) if not name.startswith("sqlite_")) == [
        "_dataloader_state",
        "sales",
    ]


def test_rows_breaking_the_contract_are_quarantined_with_the_good_rows(
    run: Run, rows_source: str, database: Path, sql: Sql
) -> None:
    rows = [{"id": 1, "name": "a"}, {"id": 2, "name": None}, {"id": 3, "name": "c"}]
    source = {"type": rows_source, "batches": [rows]}
    contract = {
        "on_violation": "quarantine",
        "columns": [{"name": "name", "type": "string", "nullable": False}],
    }

    result = run({**recipe(database, source), "schema": contract})

    assert result.rows_written == 2 and result.rows_quarantined == 1
    assert sql.table(database, "sales").to_pydict() == {"id": [1, 3], "name": ["a", "c"]}
    assert sql.declared(database, "sales")["name"] == "TEXT"
    assert sql.query(
        database, "SELECT \"notnull\" FROM pragma_table_info('sales') WHERE name = 'name'"
    ) == [(1,)]
    quarantined = sql.table(database, "sales__quarantine").to_pylist()
    assert [(json.loads(q["row"]), q["rule"], q["run_id"]) for q in quarantined] == [
        ({"id": 2, "name": None}, "not_null", result.run_id)
    ]


def test_a_strict_contract_fails_before_any_row_is_written(
    run: Run, rows_source: str, database: Path, sql: Sql
) -> None:
    source = {"type": rows_source, "batches": [[{"id": 1, "qty": Decimal("6.5")}]]}
    contract = {
        "mode": "strict",
        "columns": [{"name": "id", "type": "int"}, {"name": "qty", "type": "int"}],
    }

    with pytest.raises(EngineError, match="qty"):
        run({**recipe(database, source), "schema": contract})

    assert "sales" not in {name for name, _ in sql.ddl(database)}
