"""Cursor semantics in the core: nanosecond cursors stored exactly (with or without pandas), NULL
and NaN cursors never dropped (`on_missing_cursor`), and `lag` as a checked duration."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from dataloader import (
    ArrowBatch,
    BaseConnector,
    Capabilities,
    ConnectorConfig,
    EngineError,
    LocalStateBackend,
    RecipeError,
    State,
    register_connector,
)
from dataloader.incremental import CursorTracker, CursorWindow, parse_lag
from dataloader.recipe import RecipeLoader
from dataloader.registry import Registry, unregister
from dataloader.state.codec import decode_value, encode_value
from dataloader.state.nanotimestamp import NanoTimestamp
from dataloader.testing import local_runner

BASE_NS = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z


def through_json(value: Any) -> Any:
    return decode_value(json.loads(json.dumps(encode_value(value))))


def run_tracker(window: CursorWindow, *columns: pa.Array) -> list[tuple[pa.Array, Any]]:
    """The tracker's output on batches of one column `c`: `(column, cursor_max)` pairs."""
    tracker = CursorTracker(window, source_name="test")
    batches = [ArrowBatch(pa.RecordBatch.from_arrays([column], ["c"])) for column in columns]
    return [
        (out.to_arrow().column("c"), cursor_max) for out, cursor_max in tracker.aligned(batches)
    ]


# -- nanosecond cursors -----------------------------------------------------------------------


@pytest.mark.parametrize("tz", [None, "UTC", "America/New_York"])
def test_nanosecond_cursor_max_is_exact_and_survives_the_state(tz: str | None) -> None:
    stamps = pa.array([BASE_NS + 1, BASE_NS + 2], pa.timestamp("ns", tz))

    out = run_tracker(CursorWindow("c"), stamps)

    assert [m for _, m in out] == [NanoTimestamp(BASE_NS + 1, tz), NanoTimestamp(BASE_NS + 2, tz)]
    stored = through_json(out[-1][1])
    assert stored == out[-1][1] and stored.tz == tz
    # The next run's window, from the stored value, excludes exactly what was loaded.
    assert run_tracker(CursorWindow("c", stored), stamps) == []
    later = pa.array([BASE_NS + 2, BASE_NS + 3], pa.timestamp("ns", tz))
    out = run_tracker(CursorWindow("c", stored), later)
    assert [(rows.cast(pa.int64()).to_pylist(), m) for rows, m in out] == [
        ([BASE_NS + 3], NanoTimestamp(BASE_NS + 3, tz))
    ]


def test_nanosecond_state_encoding_is_explicit_and_keeps_the_zone() -> None:
    value = NanoTimestamp(BASE_NS + 7, "Europe/Paris")

    assert encode_value(value) == {
        "$timestamp_ns": "2024-01-01T00:00:00.000000007+00:00",
        "tz": "Europe/Paris",
    }
    assert through_json(NanoTimestamp(-1)) == NanoTimestamp(-1)


class _PandasLikeTimestamp(datetime):
    """What pyarrow returns for a nanosecond timestamp when pandas is installed: a datetime
    subclass with a `nanosecond` attribute (stands in for pandas, installed or not)."""

    nanosecond = 7


def test_a_pandas_timestamp_is_stored_with_its_nanoseconds() -> None:
    value = _PandasLikeTimestamp(2024, 1, 1, 0, 0, 0, 0, tzinfo=UTC)

    assert through_json(value) == NanoTimestamp(BASE_NS + 7, "UTC")


class ParquetConfig(ConnectorConfig):
    path: str


class ParquetSource(BaseConnector):
    """Reads a whole Parquet file each run: the engine alone applies the cursor window."""

    config_model = ParquetConfig
    capabilities = Capabilities(read=True, incremental=True)

    def read_batches(self, state: State) -> Iterator[ArrowBatch]:
        for batch in pq.read_table(self.config.path).to_batches(max_chunksize=1):
            yield ArrowBatch(batch)


@pytest.fixture
def parquet_source() -> Iterator[str]:
    register_connector("test_parquet")(ParquetSource)
    try:
        yield "test_parquet"
    finally:
        unregister("connector", "test_parquet")


@pytest.mark.parametrize("tz", [None, "UTC"])
def test_nanosecond_cursor_from_parquet_loads_each_row_once(
    tmp_path: Path, parquet_source: str, sink: str, tz: str | None
) -> None:
    path = tmp_path / "ticks.parquet"

    def write(count: int) -> None:
        at = pa.array([BASE_NS + i for i in range(1, count + 1)], pa.timestamp("ns", tz))
        pq.write_table(pa.table({"id": list(range(1, count + 1)), "at": at}), path)

    run = local_runner(tmp_path / "state")
    recipe = {
        "name": "ticks",
        "source": {
            "type": parquet_source,
            "path": str(path),
            "incremental": {"cursor_column": "at"},
        },
        "destination": {"type": sink, "table": "ticks"},
    }
    write(2)

    assert run(recipe).rows_written == 2
    assert run(recipe).rows_written == 0
    write(3)
    assert run(recipe).rows_written == 1
    stored = State.from_dict(LocalStateBackend(tmp_path / "state").load("ticks"))
    assert stored.cursor_values["at"] == NanoTimestamp(BASE_NS + 3, tz)


# -- NULL and NaN cursor values ---------------------------------------------------------------


def test_nan_cursor_fails_by_default_naming_the_column_and_the_count() -> None:
    scores = pa.array([1.0, float("nan"), None, 3.0])

    with pytest.raises(EngineError) as raised:
        run_tracker(CursorWindow("c", lower=0.5), scores)

    message = str(raised.value)
    assert "'c'" in message and "2 rows without a cursor value" in message
    assert "(1 NULL, 1 NaN)" in message and "on_missing_cursor" in message


def test_on_missing_cursor_load_yields_nan_and_null_rows_without_a_cursor_max() -> None:
    window = CursorWindow("c", lower=1.5, on_missing="load")

    out = run_tracker(window, pa.array([1.0, 2.0, float("nan")]), pa.array([None, 2.0, 4.0]))

    assert [(rows.to_pylist(), m) for rows, m in out if m is not None] == [
        ([2.0, 2.0], 2.0),
        ([4.0], 4.0),
    ]
    without = [rows for rows, m in out if m is None]
    assert [len(rows) for rows in without] == [1, 1]
    assert pc.is_nan(without[0]).to_pylist() == [True] and without[1].null_count == 1


# -- lag --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lag", "seconds"),
    [("PT1H", 3600), ("P1D", 86400), ("PT1H30M", 5400), ("P1DT2H", 93600), ("PT0.5S", 0.5)],
)
def test_lag_accepts_iso_8601_durations(lag: str, seconds: float) -> None:
    assert parse_lag(lag) == seconds


@pytest.mark.parametrize("lag", ["soon", "P1M", "-5", -1])
def test_a_bad_lag_is_a_recipe_error_when_the_recipe_loads(
    write: Any, registry: Registry, lag: Any
) -> None:
    path = write(
        "orders.yaml",
        f"""
        name: orders
        source:
          type: sequence
          stop: 10
          incremental:
            cursor_column: id
            lag: {json.dumps(lag)}
        destination:
          type: memory_sink
          table: orders
        """,
    )

    with pytest.raises(RecipeError) as raised:
        RecipeLoader(registry=registry).load(path)

    assert f"{path}:source.incremental.lag" in str(raised.value)


def test_lag_on_a_text_cursor_is_an_error_naming_the_key_and_the_type() -> None:
    window = CursorWindow("c", lower="m", lag=10)

    with pytest.raises(EngineError) as raised:
        run_tracker(window, pa.array(["a", "z"]))

    assert raised.value.context["key"] == "source.incremental.lag"
    assert "string" in str(raised.value)
