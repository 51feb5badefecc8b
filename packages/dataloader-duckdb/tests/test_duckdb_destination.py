"""DuckDB as a destination: write modes, merge de-duplication, schema evolution."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dataloader import RunResult

Run = Callable[..., RunResult]


def rows_recipe(
    source: str,
    dest_db: Path,
    batches: list[list[dict[str, Any]]],
    *,
    name: str = "load",
    table: str = "target",
    write_mode: str = "append",
    merge_keys: list[str] | None = None,
    incremental: dict[str, Any] | None = None,
) -> dict[str, Any]:
    src: dict[str, Any] = {"type": source, "batches": batches}
    if incremental is not None:
        src["incremental"] = incremental
    dst: dict[str, Any] = {
        "type": "duckdb",
        "database": str(dest_db),
        "table": table,
        "write_mode": write_mode,
    }
    if merge_keys is not None:
        dst["merge_keys"] = merge_keys
    return {"name": name, "source": src, "destination": dst}


def test_append_adds_rows_on_every_run(run: Run, rows_source: str, dest_db: Path, sql: Any) -> None:
    recipe = rows_recipe(rows_source, dest_db, [[{"id": 1}, {"id": 2}], [{"id": 3}]])

    first = run(recipe)
    run(recipe)

    assert first.rows_written == 3
    assert sql.query(dest_db, "SELECT id, count(*) FROM target GROUP BY id ORDER BY id") == [
        (1, 2),
        (2, 2),
        (3, 2),
    ]


def test_overwrite_replaces_the_previous_rows(
    run: Run, rows_source: str, dest_db: Path, sql: Any
) -> None:
    run(rows_recipe(rows_source, dest_db, [[{"id": 1}, {"id": 2}]], write_mode="overwrite"))

    result = run(
        rows_recipe(rows_source, dest_db, [[{"id": 7}], [{"id": 8}]], write_mode="overwrite")
    )

    assert result.rows_written == 2
    assert sql.query(dest_db, "SELECT id FROM target ORDER BY id") == [(7,), (8,)]
    assert not [name for name in sql.tables(dest_db) if "_dl_stage_" in name]


def test_overwrite_with_no_rows_empties_the_table(
    run: Run, rows_source: str, dest_db: Path, sql: Any
) -> None:
    run(rows_recipe(rows_source, dest_db, [[{"id": 1}]], write_mode="overwrite"))

    run(rows_recipe(rows_source, dest_db, [], write_mode="overwrite"))

    assert sql.query(dest_db, "SELECT count(*) FROM target") == [(0,)]


def test_merge_updates_matching_keys_and_inserts_new_ones(
    run: Run, rows_source: str, dest_db: Path, sql: Any
) -> None:
    run(
        rows_recipe(
            rows_source,
            dest_db,
            [[{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]],
            write_mode="merge",
            merge_keys=["id"],
        )
    )

    run(
        rows_recipe(
            rows_source,
            dest_db,
            [[{"id": 2, "v": "B"}, {"id": 3, "v": "C"}]],
            write_mode="merge",
            merge_keys=["id"],
        )
    )

    assert sql.query(dest_db, "SELECT id, v FROM target ORDER BY id") == [
        (1, "a"),
        (2, "B"),
        (3, "C"),
    ]


def test_merge_on_composite_keys(run: Run, rows_source: str, dest_db: Path, sql: Any) -> None:
    first = [{"region": "eu", "id": 1, "v": 1}, {"region": "us", "id": 1, "v": 2}]
    second = [{"region": "us", "id": 1, "v": 20}, {"region": "eu", "id": 2, "v": 3}]
    for batches in ([first], [second]):
        run(
            rows_recipe(
                rows_source, dest_db, batches, write_mode="merge", merge_keys=["region", "id"]
            )
        )

    assert sql.query(dest_db, "SELECT region, id, v FROM target ORDER BY region, id") == [
        ("eu", 1, 1),
        ("eu", 2, 3),
        ("us", 1, 20),
    ]


def test_merge_without_cursor_keeps_the_last_occurrence_of_a_key_in_a_batch(
    run: Run, rows_source: str, dest_db: Path, sql: Any
) -> None:
    batch = [{"id": 1, "v": "first"}, {"id": 2, "v": "only"}, {"id": 1, "v": "last"}]

    run(rows_recipe(rows_source, dest_db, [batch], write_mode="merge", merge_keys=["id"]))

    assert sql.query(dest_db, "SELECT id, v FROM target ORDER BY id") == [
        (1, "last"),
        (2, "only"),
    ]


def test_merge_with_cursor_keeps_the_latest_cursor_of_a_key_in_a_batch(
    run: Run, rows_source: str, dest_db: Path, sql: Any
) -> None:
    # Rows at the batch's highest cursor (id 2) are held back to the next batch, so the batch
    # merged first holds both versions of id 1, the newer one first.
    batch = [
        {"id": 1, "ts": 2, "v": "newer"},
        {"id": 1, "ts": 1, "v": "older"},
        {"id": 2, "ts": 3, "v": "other"},
    ]

    result = run(
        rows_recipe(
            rows_source,
            dest_db,
            [batch],
            write_mode="merge",
            merge_keys=["id"],
            incremental={"cursor_column": "ts"},
        )
    )

    assert result.batches == 2
    assert sql.query(dest_db, "SELECT id, v FROM target ORDER BY id") == [
        (1, "newer"),
        (2, "other"),
    ]


@pytest.mark.parametrize("write_mode", ["append", "merge"])
def test_columns_new_in_a_later_run_are_added_to_the_table(
    run: Run, rows_source: str, dest_db: Path, sql: Any, write_mode: str
) -> None:
    keys = ["id"] if write_mode == "merge" else None
    run(
        rows_recipe(
            rows_source, dest_db, [[{"id": 1, "a": "x"}]], write_mode=write_mode, merge_keys=keys
        )
    )

    run(
        rows_recipe(
            rows_source,
            dest_db,
            [[{"id": 2, "a": "y", "b": 2.5, "New Col": "n"}]],
            write_mode=write_mode,
            merge_keys=keys,
        )
    )

    assert sql.query(dest_db, 'SELECT id, a, b, "New Col" FROM target ORDER BY id') == [
        (1, "x", None, None),
        (2, "y", 2.5, "n"),
    ]


def test_columns_missing_from_a_later_run_are_null(
    run: Run, rows_source: str, dest_db: Path, sql: Any
) -> None:
    run(rows_recipe(rows_source, dest_db, [[{"id": 1, "a": "x", "b": 1}]]))

    run(rows_recipe(rows_source, dest_db, [[{"b": 2, "id": 2}]]))

    assert sql.query(dest_db, "SELECT id, a, b FROM target ORDER BY id") == [
        (1, "x", 1),
        (2, None, 2),
    ]


def test_merge_leaves_columns_the_rows_do_not_carry_untouched(
    run: Run, rows_source: str, dest_db: Path, sql: Any
) -> None:
    merge = {"write_mode": "merge", "merge_keys": ["id"]}
    run(rows_recipe(rows_source, dest_db, [[{"id": 1, "name": "a", "note": "keep"}]], **merge))

    run(
        rows_recipe(
            rows_source, dest_db, [[{"id": 1, "name": "b"}, {"id": 2, "name": "c"}]], **merge
        )
    )
    run(rows_recipe(rows_source, dest_db, [[{"id": 1}, {"id": 3}]], **merge))  # keys only

    assert sql.query(dest_db, "SELECT id, name, note FROM target ORDER BY id") == [
        (1, "b", "keep"),
        (2, "c", None),
        (3, None, None),
    ]


def test_merge_key_missing_from_rows_fails_naming_it(
    run: Run, rows_source: str, dest_db: Path
) -> None:
    from dataloader import ConnectorError

    recipe = rows_recipe(
        rows_source, dest_db, [[{"id": 1}]], write_mode="merge", merge_keys=["order_id"]
    )

    with pytest.raises(ConnectorError, match="order_id"):
        run(recipe)


def test_full_refresh_replaces_an_appended_table(
    run: Run, rows_source: str, dest_db: Path, sql: Any
) -> None:
    recipe = rows_recipe(rows_source, dest_db, [[{"id": 1}, {"id": 2}]])
    run(recipe)
    run(recipe)

    run(recipe, full_refresh=True)

    assert sql.query(dest_db, "SELECT id FROM target ORDER BY id") == [(1,), (2,)]


def test_a_run_time_error_names_the_recipe_file_that_set_its_key(
    rows_source: str, dest_db: Path, tmp_path: Path
) -> None:
    import json

    from dataloader import EngineError, LocalStateBackend, from_yaml, run_recipe

    batches = [[{"id": 1, "at": 1}, {"id": 2, "at": None}]]
    parent = tmp_path / "parent.yaml"
    parent.write_text(json.dumps(rows_recipe(rows_source, dest_db, batches, name="parent")))
    child = tmp_path / "child.yaml"
    child.write_text(
        "extends: parent.yaml\nname: child\nsource: {incremental: {cursor_column: at}}\n"
    )

    with pytest.raises(EngineError) as raised:  # a NULL cursor, found by the engine
        run_recipe(from_yaml(child), LocalStateBackend(tmp_path / ".state"))

    problem = raised.value.problem
    assert problem.key is not None and problem.key.startswith("source.incremental")
    assert problem.file == str(child)
    assert str(raised.value).startswith(f"{child}:{problem.key}: ")


def test_a_write_that_fails_reports_its_own_cause_not_the_aborted_transaction(
    run: Run, rows_source: str, dest_db: Path, sql: Any
) -> None:
    from dataloader import ConnectorError

    # A rule the engine's schema check does not know, so the insert itself fails.
    sql.execute(dest_db, "CREATE TABLE target (id BIGINT, u INTEGER CHECK (u > 0))")
    recipe = rows_recipe(rows_source, dest_db, [[{"id": 1, "u": -5}]])

    with pytest.raises(ConnectorError) as raised:
        run(recipe)

    assert "CHECK constraint" in str(raised.value)  # DuckDB's own error
    assert "aborted" not in str(raised.value)


@pytest.mark.parametrize("columns", ["all", "some"])
def test_merge_of_rows_with_columns_named_like_the_sql_aliases(
    run: Run, rows_source: str, dest_db: Path, sql: Any, columns: str
) -> None:
    first = [{"id": 1, "s": {"a": 1}, "t": "x", "other": 1}]
    second = [{"id": 1, "s": {"a": 2}, "t": "y"} | ({"other": 2} if columns == "all" else {})]
    for rows in (first, second):
        run(rows_recipe(rows_source, dest_db, [rows], write_mode="merge", merge_keys=["id"]))

    assert sql.query(dest_db, "SELECT id, s, t, other FROM target") == [
        (1, {"a": 2}, "y", 2 if columns == "all" else 1)
    ]
