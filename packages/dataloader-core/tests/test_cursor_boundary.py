"""The cursor boundary across runs, for any source the engine's cursor tracker filters: a run
reads `cursor >= last`, skips the rows it finds among the fingerprints committed with `last`,
and keeps the state small when many rows share one value."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pytest

from dataloader import (
    ArrowBatch,
    BaseConnector,
    Capabilities,
    ConnectorConfig,
    LocalStateBackend,
    State,
    register_connector,
)
from dataloader.incremental import (
    FINGERPRINT_SIZE,
    Boundary,
    CursorTracker,
    CursorWindow,
    row_fingerprints,
)
from dataloader.registry import unregister
from dataloader.testing import RowsSource, local_runner

SOURCE, SINK = "boundary_rows", "boundary_sink"


class CollectConfig(ConnectorConfig):
    table: str


class CollectSink(BaseConnector):
    """Keeps every written row, across runs (the engine creates a new instance per run)."""

    config_model = CollectConfig
    capabilities = Capabilities(write=True, write_modes=("append", "merge"))
    rows: ClassVar[list[dict[str, Any]]] = []

    def write_batch(self, batch: Any, state: Any) -> None:
        CollectSink.rows.extend(batch.to_arrow().to_pylist())


@pytest.fixture(autouse=True)
def _plugins() -> Iterator[None]:
    register_connector(SOURCE)(RowsSource)
    register_connector(SINK)(CollectSink)
    CollectSink.rows = []
    try:
        yield
    finally:
        unregister("connector", SOURCE)
        unregister("connector", SINK)


@pytest.fixture
def load(tmp_path: Path) -> Callable[..., Any]:
    run = local_runner(tmp_path / "state")

    def _load(
        rows: list[dict[str, Any]], mode: str = "append", size: int = 3, **incremental: Any
    ) -> Any:
        destination: dict[str, Any] = {"type": SINK, "table": "t", "write_mode": mode}
        if mode == "merge":
            destination["merge_keys"] = ["id"]
        return run(
            {
                "name": "boundary",
                "source": {
                    "type": SOURCE,
                    "batches": [rows[i : i + size] for i in range(0, len(rows), size)],
                    "incremental": {"cursor_column": "c", **incremental},
                },
                "destination": destination,
                "runtime": {"batch_size": size, "commit_interval_seconds": 1e-9},
            }
        )

    return _load


def stored_document(tmp_path: Path) -> dict[str, Any]:
    return LocalStateBackend(tmp_path / "state").load("boundary")


def rows(*spec: tuple[int, int]) -> list[dict[str, Any]]:
    return [{"id": id_, "c": c, "v": "x"} for id_, c in spec]


# -- across runs ---------------------------------------------------------------------------


def test_rows_that_arrive_at_the_committed_value_are_loaded_once(
    load: Callable[..., Any], tmp_path: Path
) -> None:
    first = rows((1, 1), (2, 2), (3, 2), (4, 3), (5, 3))
    assert load(first).rows_written == 5
    boundary = stored_document(tmp_path)["cursor_boundaries"]["c"]
    assert boundary["value"] == 3 and boundary["rows"] == 2

    # Two rows stamped 3 commit late, and one row at 4; the source returns everything >= 3.
    second = first + rows((6, 3), (7, 3), (8, 4))
    assert load(second).rows_written == 3
    assert sorted(row["id"] for row in CollectSink.rows) == list(range(1, 9))
    assert load(second).rows_written == 0


def test_the_fingerprints_survive_the_state_document_and_name_the_value(tmp_path: Path) -> None:
    state = State(cursor_values={"c": 3})
    digests = row_fingerprints(pa.table({"c": [3, 3], "v": ["a", "b"]}))
    state.cursor_boundaries["c"] = Boundary(3, 2, b"".join(sorted(digests))).to_state()
    backend = LocalStateBackend(tmp_path)
    backend.save("r", state.to_dict())
    loaded = State.from_dict(json.loads(json.dumps(backend.load("r"))))

    boundary = Boundary.from_state(loaded.cursor_boundaries["c"], loaded.cursor_values["c"])
    assert boundary is not None and sorted(boundary.loaded()) == sorted(digests)
    # A boundary of another value (a state edited by hand) is not used: `cursor > value`.
    assert Boundary.from_state(loaded.cursor_boundaries["c"], 4) is None


# -- many rows at one value ----------------------------------------------------------------

MANY = 12_000
MANY_BATCH = 5_000


def test_many_rows_at_one_value_keep_the_state_small_and_append_says_what_it_skips(
    load: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = rows(*((i, 7) for i in range(MANY)))
    with caplog.at_level(logging.WARNING, logger="dataloader"):
        assert load(first, size=MANY_BATCH).rows_written == MANY
    assert "more than `source.incremental.max_boundary_rows` (10000)" in caplog.text
    assert "will NOT be loaded" in caplog.text
    document = stored_document(tmp_path)
    assert len(json.dumps(document["cursor_boundaries"])) < 200
    assert document["cursor_boundaries"]["c"] == {"value": 7, "rows": MANY, "reread": False}

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dataloader"):
        assert (
            load(first + rows((MANY, 7), (MANY + 1, 8)), size=MANY_BATCH).rows_written == 1
        )  # only the 8
    assert f"{MANY} rows at cursor value 7 were too many to fingerprint" in caplog.text


def test_many_rows_at_one_value_under_merge_are_read_again(
    load: Callable[..., Any], tmp_path: Path
) -> None:
    first = rows(*((i, 7) for i in range(MANY)))
    assert load(first, "merge", MANY_BATCH).rows_written == MANY
    assert stored_document(tmp_path)["cursor_boundaries"]["c"]["reread"] is True

    # Nothing is lost: every row at 7 is read again and merged, the new one among them.
    assert load(first + rows((MANY, 7)), "merge", MANY_BATCH).rows_written == MANY + 1
    assert load(first + rows((MANY, 7), (0, 9)), "merge", MANY_BATCH).rows_written == MANY + 2


def test_a_higher_limit_keeps_eight_bytes_per_row(load: Callable[..., Any], tmp_path: Path) -> None:
    first = rows(*((i, 7) for i in range(MANY)))
    assert load(first, size=MANY_BATCH, max_boundary_rows=MANY).rows_written == MANY
    boundary = State.from_dict(stored_document(tmp_path)).cursor_boundaries["c"]
    assert len(boundary["fingerprints"]) == MANY * FINGERPRINT_SIZE

    assert (
        load(first + rows((MANY, 7)), size=MANY_BATCH, max_boundary_rows=MANY + 1).rows_written == 1
    )


# -- lag -----------------------------------------------------------------------------------


def test_lag_reads_every_row_from_last_minus_lag_again(load: Callable[..., Any]) -> None:
    first = rows((1, 10), (2, 20), (3, 20))
    assert load(first, "merge", lag=5).rows_written == 3
    # (20 - 5, ∞): the rows at 20 are read again, loaded or not; merge keeps each once.
    assert load(rows((1, 10), (4, 18), (2, 20), (3, 20), (5, 20)), "merge", lag=5).rows_written == 4


# -- fingerprints --------------------------------------------------------------------------


def test_fingerprints_depend_on_every_value_and_not_on_the_column_order() -> None:
    table = pa.table({"c": [1, 1, 1], "v": ["a", "b", "a"], "x": [1.0, 1.0, 1.0]})
    reordered = table.select(["x", "v", "c"])
    digests = row_fingerprints(table)

    assert digests == row_fingerprints(reordered)
    assert digests[0] == digests[2] != digests[1]
    assert all(len(digest) == FINGERPRINT_SIZE for digest in digests)
    assert row_fingerprints(table.set_column(2, "x", pa.array([1.5, 1.0, 1.0])))[0] != digests[0]


def test_nanosecond_values_are_fingerprinted_exactly() -> None:
    base = 1_704_067_200_000_000_000
    stamps = pa.array([base + 1, base + 2], pa.timestamp("ns", "UTC"))
    nested = pa.array([[base + 1], [base + 2]], pa.list_(pa.timestamp("ns")))
    first, second = row_fingerprints(pa.table({"c": stamps, "n": nested}))
    assert first != second


def test_the_tracker_skips_each_loaded_row_once() -> None:
    # Two identical rows were loaded at 5; the source now has three, and a row at 6.
    loaded = row_fingerprints(pa.table({"c": [5], "v": ["same"]}))[0]
    window = CursorWindow("c", 5, boundary=Boundary(5, 2, loaded * 2))
    tracker = CursorTracker(window, source_name="test")
    data = pa.RecordBatch.from_pydict({"c": [5, 5, 5, 6], "v": ["same"] * 4})

    out = [
        (batch.to_arrow().to_pydict(), boundary.to_state())
        for batch, boundary in tracker.positions([ArrowBatch(data)])
    ]

    assert [rows for rows, _ in out] == [{"c": [5], "v": ["same"]}, {"c": [6], "v": ["same"]}]
    assert out[0][1] == {"value": 5, "rows": 3, "fingerprints": loaded * 3}
    assert out[1][1]["value"] == 6 and out[1][1]["rows"] == 1


def test_a_fingerprint_does_not_depend_on_what_the_batchs_types_add() -> None:
    """One record read twice, in other company: once in a batch where a neighbour has a
    field it lacks (a NULL column, a NULL struct field) and wider decimals, once alone."""
    from decimal import Decimal

    crowded = pa.Table.from_pylist(
        [
            {"id": 1, "c": 5, "amount": Decimal("12.3"), "address": {"city": "Oslo"}},
            {
                "id": 2,
                "c": 5,
                "amount": Decimal("1.25"),
                "address": {"city": "Rome", "zip": "1"},
                "note": "x",
            },
        ]
    )
    alone = pa.Table.from_pylist(
        [{"id": 1, "c": 5, "amount": Decimal("12.3"), "address": {"city": "Oslo"}}]
    )
    assert crowded.column("amount").to_pylist()[0] == Decimal("12.30")  # the scale it got
    assert row_fingerprints(crowded)[0] == row_fingerprints(alone)[0]
    changed = alone.set_column(2, "amount", pa.array([Decimal("12.4")]))
    assert row_fingerprints(changed)[0] != row_fingerprints(alone)[0]
    zero = pa.table({"id": [1], "v": pa.array([Decimal("0.00")])})
    assert row_fingerprints(zero) == row_fingerprints(pa.table({"id": [1], "v": [0]}))


def test_an_instant_as_text_and_as_a_timestamp_of_any_unit_is_one_value() -> None:
    """A page that keeps a column as text (a neighbour's value is no instant) beside one
    that reads it as timestamps, in microseconds or nanoseconds."""
    text = pa.table({"id": [1], "at": ["2024-02-01T01:00:00.5+01:00"]})
    micros = pa.table({"id": [1], "at": pa.array([1706745600500000], pa.timestamp("us", "UTC"))})
    nanos = micros.set_column(1, "at", micros.column("at").cast(pa.timestamp("ns", "UTC")))
    assert row_fingerprints(text) == row_fingerprints(micros) == row_fingerprints(nanos)
    later = pa.table({"id": [1], "at": ["2024-02-01T01:00:00.500000001+01:00"]})
    assert row_fingerprints(later) != row_fingerprints(text)
