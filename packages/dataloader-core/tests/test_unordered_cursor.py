"""Sources that cannot read in cursor order (an API listing newest first): the engine keeps
the highest cursor value read, commits it as the cursor with the run's last commit only, and
meanwhile commits it beside the source's checkpoints, so that a killed run resumes from them
without losing or repeating a row. Also: a batch with no rows still carries its checkpoint."""

from __future__ import annotations

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
from dataloader.errors import DataLoaderError
from dataloader.incremental import PENDING_CURSOR
from dataloader.registry import unregister
from dataloader.testing import local_runner

SOURCE, SINK = "unordered_pages", "unordered_sink"


class PagesConfig(ConnectorConfig):
    """`pages`: lists of rows, one batch each; `ordered`: whether they come in cursor order;
    `fail_at`: raise before yielding that page (0-based) — a killed run."""

    pages: list[list[dict[str, Any]]]
    ordered: bool = False
    fail_at: int | None = None


class Killed(Exception):
    pass


class PagesSource(BaseConnector):
    """Yields its pages from the one after the last committed (`watermarks["page"]`), each
    with a checkpoint naming the next page, then an empty batch marking the read complete."""

    config_model = PagesConfig
    capabilities = Capabilities(read=True, incremental=True, resumable=True)

    def reads_in_cursor_order(self) -> bool:
        return self.config.ordered

    def read_batches(self, state: State) -> Iterator[ArrowBatch]:
        start = state.watermarks.get("next_page") or 0
        for index in range(start, len(self.config.pages)):
            if index == self.config.fail_at:
                raise Killed(f"killed before page {index}")
            rows = self.config.pages[index]
            yield ArrowBatch(pa.Table.from_pylist(rows), {"checkpoint": {"next_page": index + 1}})
        yield ArrowBatch(pa.table({}), {"checkpoint": {"next_page": None}})


class SinkConfig(ConnectorConfig):
    table: str


class StagingSink(BaseConnector):
    """Rows become visible at `commit`, as in a real destination."""

    config_model = SinkConfig
    capabilities = Capabilities(write=True, write_modes=("append", "merge"))
    rows: ClassVar[list[dict[str, Any]]] = []

    def begin(self, state: Any) -> None:
        self._staged: list[dict[str, Any]] = []

    def write_batch(self, batch: Any, state: Any) -> None:
        self._staged.extend(batch.to_arrow().to_pylist())

    def commit(self, state: Any) -> None:
        StagingSink.rows.extend(self._staged)
        self._staged = []

    def abort(self) -> None:
        self._staged = []


@pytest.fixture(autouse=True)
def _plugins() -> Iterator[None]:
    register_connector(SOURCE)(PagesSource)
    register_connector(SINK)(StagingSink)
    StagingSink.rows = []
    try:
        yield
    finally:
        unregister("connector", SOURCE)
        unregister("connector", SINK)


@pytest.fixture
def load(tmp_path: Path) -> Callable[..., Any]:
    run = local_runner(tmp_path / "state")

    def _load(pages: list[list[dict[str, Any]]], **options: Any) -> Any:
        return run(
            {
                "name": "pages",
                "source": {
                    "type": SOURCE,
                    "pages": pages,
                    **options,
                    "incremental": {"cursor_column": "c"},
                },
                "destination": {"type": SINK, "table": "t"},
                "runtime": {
                    "batch_size": 2,
                    "commit_interval_seconds": 1e-9,
                    "retries": 0,
                },
            }
        )

    return _load


def stored(tmp_path: Path) -> State:
    return State.from_dict(LocalStateBackend(tmp_path / "state").load("pages"))


def ids() -> list[int]:
    return sorted(row["id"] for row in StagingSink.rows)


def newest_first(*spec: tuple[int, int]) -> list[list[dict[str, Any]]]:
    """Pages of two rows `(id, cursor)`, as given (the caller lists them newest first)."""
    rows = [{"id": id_, "c": c} for id_, c in spec]
    return [rows[i : i + 2] for i in range(0, len(rows), 2)]


def test_an_unordered_read_commits_the_highest_cursor_at_the_end(
    load: Callable[..., Any], tmp_path: Path
) -> None:
    pages = newest_first((5, 50), (4, 40), (3, 40), (2, 20), (1, 10))
    result = load(pages)

    assert result.rows_written == 5 and ids() == [1, 2, 3, 4, 5]
    state = stored(tmp_path)
    assert state.cursor_values == {"c": 50}
    assert PENDING_CURSOR not in state.watermarks
    assert state.watermarks["next_page"] is None  # the read's completion was committed

    # The API now lists two new rows and one late row at the committed value, newest first;
    # the rows loaded before are listed again (the source's `since` is inclusive).
    StagingSink.rows = []
    again = newest_first((7, 70), (6, 50), (5, 50), (4, 40))
    assert load(again).rows_written == 2
    assert ids() == [6, 7]
    assert stored(tmp_path).cursor_values == {"c": 70}


def test_a_killed_unordered_read_resumes_from_its_checkpoint_and_its_pending_cursor(
    load: Callable[..., Any], tmp_path: Path
) -> None:
    pages = newest_first((6, 60), (5, 50), (4, 40), (3, 30), (2, 20), (1, 10))
    with pytest.raises(DataLoaderError):
        load(pages, fail_at=2)
    state = stored(tmp_path)
    assert ids() == [3, 4, 5, 6]
    assert state.cursor_values == {}  # not before the read is complete
    assert state.watermarks[PENDING_CURSOR]["value"] == 60
    assert state.watermarks["next_page"] == 2

    load(pages)
    assert ids() == [1, 2, 3, 4, 5, 6]
    assert stored(tmp_path).cursor_values == {"c": 60}


def test_rows_out_of_order_still_fail_a_source_that_says_it_reads_in_order(
    load: Callable[..., Any],
) -> None:
    with pytest.raises(DataLoaderError, match="out of cursor order"):
        load(newest_first((2, 20), (1, 10), (0, 5)), ordered=True)


def test_an_empty_batch_carries_its_checkpoint_in_an_ordered_read(
    load: Callable[..., Any], tmp_path: Path
) -> None:
    pages = [[{"id": 1, "c": 10}, {"id": 2, "c": 20}], [], [{"id": 3, "c": 30}]]
    load(pages, ordered=True)
    assert ids() == [1, 2, 3]
    state = stored(tmp_path)
    assert state.cursor_values == {"c": 30}
    assert state.watermarks["next_page"] is None
