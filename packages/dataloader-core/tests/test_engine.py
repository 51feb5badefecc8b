"""The engine: cursor alignment of incremental batches, run metrics, run history and the lock."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dataloader import (
    ArrowBatch,
    EngineError,
    LocalStateBackend,
    Recipe,
    RunResult,
    State,
    StateError,
    run_recipe,
)
from dataloader.incremental import CursorTracker, CursorWindow, parse_lag, window_for
from dataloader.recipe import IncrementalConfig


def batch(values: list[Any], column: str = "c", **extra: list[Any]) -> ArrowBatch:
    return ArrowBatch(pa.RecordBatch.from_pydict({column: values, **extra}))


def aligned(
    batches: list[list[Any]], lower: Any = None, upper: Any = None
) -> list[tuple[list[Any], Any]]:
    tracker = CursorTracker(CursorWindow("c", lower, upper), source_name="test")
    return [
        (out.to_arrow().column("c").to_pylist(), cursor_max)
        for out, cursor_max in tracker.aligned(batch(values) for values in batches)
    ]


# -- CursorTracker.aligned ------------------------------------------------------------------


def test_ties_at_a_batch_boundary_are_held_back_to_the_next_batch() -> None:
    assert aligned([[1, 2, 2], [2, 3]]) == [([1], 1), ([2, 2, 2], 2), ([3], 3)]


def test_a_value_spanning_several_batches_is_sent_once_as_a_whole() -> None:
    assert aligned([[5, 5], [5, 5], [5], [6, 7]]) == [([5, 5, 5, 5, 5, 6], 6), ([7], 7)]


def test_distinct_values_lose_only_the_last_row_of_each_batch_to_the_next() -> None:
    assert aligned([[1, 2, 3], [4, 5]]) == [([1, 2], 2), ([3, 4], 4), ([5], 5)]


def test_alignment_never_splits_a_cursor_value_and_loses_no_row() -> None:
    generator = random.Random(20240517)
    for _ in range(200):
        values = sorted(generator.choices(range(12), k=generator.randint(1, 40)))
        cuts = sorted(generator.sample(range(1, len(values)), k=min(len(values) - 1, 4)))
        batches = [values[a:b] for a, b in zip([0, *cuts], [*cuts, len(values)], strict=True)]

        out = aligned(batches)

        assert [v for rows, _ in out for v in rows] == values
        assert all(rows and cursor_max == max(rows) for rows, cursor_max in out)
        maxima = [cursor_max for _, cursor_max in out]
        assert maxima == sorted(set(maxima)), f"a value spans batches: {batches} -> {out}"
        for (rows, _), (next_rows, _) in itertools.pairwise(out):
            assert max(rows) < min(next_rows)


def test_source_out_of_cursor_order_raises_engine_error() -> None:
    with pytest.raises(EngineError, match=r"out of cursor order \(2 after 4\)") as raised:
        aligned([[3, 4], [2, 5]])
    # Earlier commits may have moved the cursor past rows a plain re-run would skip.
    assert "re-run with --full-refresh" in str(raised.value)


def test_equal_values_across_batches_are_not_out_of_order() -> None:
    assert aligned([[1, 4], [4, 4, 6]]) == [([1], 1), ([4, 4, 4], 4), ([6], 6)]


def test_null_cursor_values_raise_engine_error_naming_the_column() -> None:
    with pytest.raises(
        EngineError, match="'c' of source 'test' has 1 row without a cursor"
    ) as raised:
        aligned([[1, 2], [3, None]])

    assert raised.value.context["key"] == "source.incremental.cursor_column"


def test_missing_cursor_column_raises_engine_error_naming_it() -> None:
    tracker = CursorTracker(CursorWindow("updated_at"), source_name="test")

    with pytest.raises(EngineError, match="'updated_at' is not in the rows"):
        list(tracker.aligned([batch([1], column="id")]))


def test_window_lower_bound_is_exclusive_and_upper_inclusive() -> None:
    assert aligned([[1, 2, 3], [4, 5, 6]], lower=2, upper=5) == [([3, 4], 4), ([5], 5)]


def test_empty_and_filtered_out_batches_are_skipped() -> None:
    tracker = CursorTracker(CursorWindow("c", lower=1), source_name="test")
    batches = [
        ArrowBatch.from_pylist([]),  # no columns at all
        batch([1, 1]),  # filtered out by the window
        ArrowBatch(pa.RecordBatch.from_pydict({"c": pa.array([], pa.null())})),
        batch([2]),
    ]

    out = [(b.to_arrow().column("c").to_pylist(), m) for b, m in tracker.aligned(batches)]

    assert out == [([2], 2)]


def test_all_null_cursor_column_raises_engine_error_naming_the_column() -> None:
    tracker = CursorTracker(CursorWindow("c", lower=1), source_name="test")
    nulls = ArrowBatch(pa.RecordBatch.from_pydict({"c": pa.array([None, None], pa.null())}))

    with pytest.raises(EngineError, match="'c' of source 'test' has 2 rows without a cursor"):
        list(tracker.aligned([nulls]))


def test_window_bounds_given_as_strings_are_parsed_to_the_column_type() -> None:
    stamps = [datetime(2024, 1, day, 12, 0, 0, 500, tzinfo=UTC) for day in (1, 2, 3)]
    tracker = CursorTracker(
        CursorWindow("c", "2024-01-01T12:00:00.000500+00:00", "2024-01-03T00:00:00Z"),
        source_name="test",
    )
    data = ArrowBatch(
        pa.RecordBatch.from_pydict({"c": pa.array(stamps, pa.timestamp("us", "UTC"))})
    )

    out = list(tracker.aligned([data]))

    assert [(b.to_arrow().column("c").to_pylist(), m) for b, m in out] == [([stamps[1]], stamps[1])]


def test_naive_stored_cursor_against_a_zoned_column_raises_engine_error() -> None:
    tracker = CursorTracker(CursorWindow("c", datetime(2024, 1, 1)), source_name="test")
    data = ArrowBatch(
        pa.RecordBatch.from_pydict(
            {"c": pa.array([datetime(2024, 1, 2, tzinfo=UTC)], pa.timestamp("us", "UTC"))}
        )
    )

    with pytest.raises(EngineError, match="disagree on time zones"):
        list(tracker.aligned([data]))


def test_rows_travel_with_their_cursor_when_held_back() -> None:
    tracker = CursorTracker(CursorWindow("c"), source_name="test")
    batches = [batch([1, 2], id=["a", "b"]), batch([2, 3], id=["c", "d"])]

    out = [b.to_arrow().to_pylist() for b, _ in tracker.aligned(batches)]

    assert out == [
        [{"c": 1, "id": "a"}],
        [{"c": 2, "id": "b"}, {"c": 2, "id": "c"}],
        [{"c": 3, "id": "d"}],
    ]


@pytest.mark.parametrize(
    ("lag", "stored", "expected"),
    [
        ("2h", datetime(2024, 1, 1, 12, tzinfo=UTC), datetime(2024, 1, 1, 10, tzinfo=UTC)),
        ("90s", datetime(2024, 1, 1, 12, tzinfo=UTC), datetime(2024, 1, 1, 11, 58, 30, tzinfo=UTC)),
        (5, 100, 95),
    ],
)
def test_lag_moves_the_lower_bound_back_from_the_stored_cursor(
    lag: Any, stored: Any, expected: Any
) -> None:
    incremental = IncrementalConfig(cursor_column="c", lag=lag, initial_value=0)
    arrow_type = pa.scalar(stored).type

    assert window_for(incremental, {"c": stored}).bounds(arrow_type)[0].as_py() == expected
    # no lag before the first committed cursor
    assert window_for(incremental, {}).bounds(arrow_type)[0] == pa.scalar(0).cast(arrow_type)


def test_unparseable_lag_is_rejected() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_lag("soon")


# -- RunResult and the run loop ---------------------------------------------------------------


@pytest.fixture
def duckdb_db(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


def sequence_recipe(
    database: Path, stop: int, *, batch_size: int = 10, incremental: bool = False, **extra: Any
) -> Recipe:
    source: dict[str, Any] = {"type": "sequence", "stop": stop}
    if incremental:
        source["incremental"] = {"cursor_column": "id"}
    return Recipe.model_validate(
        {
            "name": "numbers",
            "source": source,
            "destination": {"type": "duckdb", "database": str(database), "table": "numbers"},
            "runtime": {"batch_size": batch_size},
            **extra,
        }
    )


def table_rows(database: Path, sql: str) -> list[tuple[Any, ...]]:
    import duckdb

    con = duckdb.connect(str(database), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_run_result_counts_rows_batches_and_stages(duckdb_db: Path, tmp_path: Path) -> None:
    progress: list[int] = []

    result = run_recipe(
        sequence_recipe(duckdb_db, 25),
        LocalStateBackend(tmp_path / "state"),
        progress=lambda r: progress.append(r.rows_written),
    )

    assert result.status == "success"
    assert (result.rows_read, result.rows_written, result.batches) == (25, 25, 3)
    assert result.commits == 1  # not resumable: one commit for the whole run
    for stage in ("read", "transform", "write"):
        assert (result.stages[stage].rows, result.stages[stage].batches) == (25, 3), stage
    assert result.stages["commit"].batches == 1
    assert result.stages["write"].bytes == result.bytes_written > 0
    assert result.duration_seconds >= sum(s.seconds for s in result.stages.values()) > 0
    assert progress == [10, 20, 25]
    assert table_rows(duckdb_db, "SELECT count(*), min(id), max(id) FROM numbers") == [(25, 1, 25)]


def test_incremental_run_groups_small_batches_into_commits_of_batch_size_rows(
    duckdb_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = LocalStateBackend(tmp_path / "state")
    saved: list[dict[str, Any]] = []
    save = backend.save
    monkeypatch.setattr(
        backend, "save", lambda name, state: (saved.append(state), save(name, state))
    )

    result = run_recipe(sequence_recipe(duckdb_db, 25, incremental=True), backend)

    # Each batch's last id is held back for the next: [1-9] [10-19] [20-24] [25]. A commit
    # waits for 10 rows (batch_size): after 19 rows, then the 6 left at the end.
    assert (result.rows_written, result.batches, result.commits) == (25, 4, 2)
    assert result.stages["commit"].batches == 2
    assert [State.from_dict(s).cursor_values for s in saved[:2]] == [{"id": 19}, {"id": 25}]


def test_commit_interval_commits_whatever_is_staged(duckdb_db: Path, tmp_path: Path) -> None:
    backend = LocalStateBackend(tmp_path / "state")
    recipe = sequence_recipe(duckdb_db, 25, incremental=True)
    recipe = recipe.model_copy(
        update={"runtime": recipe.runtime.model_copy(update={"commit_interval_seconds": 1e-9})}
    )

    result = run_recipe(recipe, backend)

    assert (result.rows_written, result.batches, result.commits) == (25, 4, 4)
    assert State.from_dict(backend.load("numbers")).cursor_values == {"id": 25}

    again = run_recipe(sequence_recipe(duckdb_db, 30, incremental=True), backend)

    assert (again.rows_read, again.batches) == (5, 2)
    assert table_rows(duckdb_db, "SELECT count(*), count(DISTINCT id) FROM numbers") == [(30, 30)]


def test_transform_stage_counts_the_rows_it_keeps(duckdb_db: Path, tmp_path: Path) -> None:
    recipe = sequence_recipe(
        duckdb_db,
        20,
        transform={
            "steps": [
                {"type": "filter", "expression": "id > 15"},
                {"type": "upper_case", "columns": ["label"]},
            ]
        },
    )

    result = run_recipe(recipe, LocalStateBackend(tmp_path / "state"))

    assert (result.stages["read"].rows, result.stages["transform"].rows) == (20, 5)
    assert result.rows_read == 20
    assert result.rows_written == result.stages["write"].rows == 5
    assert table_rows(duckdb_db, "SELECT label FROM numbers ORDER BY id") == [
        (f"ROW-{i}",) for i in range(16, 21)
    ]


def test_run_history_records_success_and_failure(
    duckdb_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataloader_duckdb import DuckDBConnector

    backend = LocalStateBackend(tmp_path / "state")
    result = run_recipe(sequence_recipe(duckdb_db, 3), backend)

    def broken(self: Any, batch: Any, state: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(DuckDBConnector, "write_batch", broken)
    with pytest.raises(EngineError, match="disk full"):
        run_recipe(sequence_recipe(duckdb_db, 3), backend)

    history = State.from_dict(backend.load("numbers")).checkpoints
    assert [run["status"] for run in history] == ["success", "failed"]
    assert history[0] == result.summary()
    assert "disk full" in history[1]["error"]
    assert table_rows(duckdb_db, "SELECT count(*) FROM numbers") == [(3,)]


def test_a_second_run_while_the_first_holds_the_lock_fails(duckdb_db: Path, tmp_path: Path) -> None:
    backend = LocalStateBackend(tmp_path / "state")

    with (
        LocalStateBackend(tmp_path / "state").lock("numbers"),
        pytest.raises(StateError, match="already running"),
    ):
        run_recipe(sequence_recipe(duckdb_db, 3), backend)

    assert run_recipe(sequence_recipe(duckdb_db, 3), backend).rows_written == 3


def test_run_result_summary_is_json_safe(duckdb_db: Path, tmp_path: Path) -> None:
    import json

    result: RunResult = run_recipe(sequence_recipe(duckdb_db, 2), LocalStateBackend(tmp_path))

    summary = json.loads(json.dumps(result.summary()))

    assert summary["rows_written"] == 2
    assert summary["stages"]["write"]["rows"] == 2
    assert result.rows_per_second > 0
