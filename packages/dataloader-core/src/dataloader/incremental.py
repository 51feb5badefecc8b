"""Incremental reads: the cursor window a run reads, and batches cut at cursor boundaries.

A committed cursor value `c` means: every row with cursor <= c is in the destination. Batches
are therefore never committed in the middle of a run of equal cursor values: the trailing
rows that share a batch's highest cursor are held back and sent with the next batch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dataloader.batch import ArrowBatch
from dataloader.errors import EngineError
from dataloader.recipe.models import IncrementalConfig

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
    None: 1,
}


def parse_lag(lag: float | str) -> float:
    """Seconds (or plain units for numeric cursors) from `30`, `"90s"`, `"15m"`, `"2h"`, `"1d"`."""
    if isinstance(lag, (int, float)):
        return float(lag)
    match = _DURATION.match(lag)
    if not match:
        raise ValueError(
            f"lag {lag!r} is not a duration; expected e.g. 30, '90s', '15m', '2h', '1d'"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@dataclass(frozen=True)
class CursorWindow:
    """The cursor range one run reads: `lower < cursor <= upper` (either bound may be None)."""

    column: str
    lower: Any = None
    upper: Any = None

    def sql_conditions(self, quote: Any) -> tuple[list[str], list[Any]]:
        """WHERE conditions with `?` parameters, for SQL sources that push the window down."""
        conditions, params = [], []
        if self.lower is not None:
            conditions.append(f"{quote(self.column)} > ?")
            params.append(self.lower)
        if self.upper is not None:
            conditions.append(f"{quote(self.column)} <= ?")
            params.append(self.upper)
        return conditions, params


def window_for(incremental: IncrementalConfig, cursor_values: dict[str, Any]) -> CursorWindow:
    column = incremental.cursor_column
    assert column is not None
    lower = cursor_values.get(column, incremental.initial_value)
    if lower is not None and incremental.lag is not None and column in cursor_values:
        lower = _minus_lag(lower, parse_lag(incremental.lag))
    return CursorWindow(column, lower, incremental.end_value)


def _minus_lag(value: Any, lag: float) -> Any:
    if isinstance(value, datetime):
        return value - timedelta(seconds=lag)
    if isinstance(value, date):
        return value - timedelta(days=int(lag // 86400) or 1)
    if isinstance(value, Decimal):
        return value - Decimal(str(lag))
    if isinstance(value, int):
        return value - int(lag)
    if isinstance(value, float):
        return value - lag
    return value


def as_scalar(value: Any, arrow_type: pa.DataType) -> pa.Scalar:
    """`value` (a stored cursor, or a string from a recipe) as a scalar of the column's type."""
    if isinstance(value, pa.Scalar):
        return value.cast(arrow_type)
    if isinstance(value, str) and not (
        pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
    ):
        if pa.types.is_timestamp(arrow_type) and arrow_type.tz is not None:
            parsed = datetime.fromisoformat(value)
            return pa.scalar(
                parsed if parsed.tzinfo else parsed.replace(tzinfo=None),
                type=pa.timestamp("us", tz=arrow_type.tz if parsed.tzinfo else None),
            ).cast(arrow_type)
        return pa.scalar(value).cast(arrow_type)
    if (
        pa.types.is_timestamp(arrow_type)
        and isinstance(value, datetime)
        and (value.tzinfo is None) != (arrow_type.tz is None)
    ):
        raise EngineError(
            f"stored cursor {value.isoformat()} and column type {arrow_type} disagree on time zones",
            expected="a cursor column that keeps the same type between runs",
        )
    return pa.scalar(value, type=arrow_type)


class CursorTracker:
    """Filters batches to the window, checks ordering, and cuts batches at cursor boundaries."""

    def __init__(self, window: CursorWindow, *, source_name: str) -> None:
        self.window = window
        self.source_name = source_name
        self._previous_max: pa.Scalar | None = None

    def _column(self, batch: ArrowBatch) -> pa.Array:
        try:
            return batch.to_arrow().column(self.window.column)
        except KeyError:
            raise EngineError(
                f"cursor column {self.window.column!r} is not in the rows of source {self.source_name!r}",
                key="source.incremental.cursor_column",
                value=self.window.column,
                expected=f"one of {batch.columns}",
            ) from None

    def _in_window(self, batch: ArrowBatch) -> ArrowBatch:
        column = self._column(batch)
        nulls = pc.is_null(column)
        if pc.any(nulls).as_py():
            raise EngineError(
                f"cursor column {self.window.column!r} has null values; rows without a cursor cannot be loaded incrementally",
                key="source.incremental.cursor_column",
            )
        mask = None
        if self.window.lower is not None:
            mask = pc.greater(column, as_scalar(self.window.lower, column.type))
        if self.window.upper is not None:
            upper = pc.less_equal(column, as_scalar(self.window.upper, column.type))
            mask = upper if mask is None else pc.and_(mask, upper)
        if mask is None:
            return batch
        return batch.with_data(batch.to_arrow().filter(mask))

    def aligned(self, batches: Iterable[ArrowBatch]) -> Iterator[tuple[ArrowBatch, Any]]:
        """Yield `(batch, cursor_max)` where no cursor value spans two yielded batches."""
        held: ArrowBatch | None = None
        for raw in batches:
            if raw.row_count == 0:
                continue  # an empty batch may lack the cursor column or its type
            batch = self._in_window(raw)
            if batch.row_count == 0:
                continue
            column = self._column(batch)
            low, high = pc.min_max(column).values()
            if self._previous_max is not None and pc.less(low, self._previous_max).as_py():
                raise EngineError(
                    f"source {self.source_name!r} returned rows out of cursor order "
                    f"({low.as_py()!r} after {self._previous_max.as_py()!r})",
                    key="source.incremental.cursor_column",
                    expected="a source that reads ordered by the cursor column",
                )
            self._previous_max = high
            if held is not None:
                batch = (
                    batch.with_data(
                        pa.Table.from_batches([held.to_arrow(), batch.to_arrow()])
                        .combine_chunks()
                        .to_batches()[0]
                    )
                    if held.row_count
                    else batch
                )
                held = None
            column = self._column(batch)
            at_max = pc.equal(column, high)
            ready = batch.with_data(batch.to_arrow().filter(pc.invert(at_max)))
            held = batch.with_data(batch.to_arrow().filter(at_max))
            if ready.row_count:
                yield ready, pc.max(ready.to_arrow().column(self.window.column)).as_py()
        if held is not None and held.row_count:
            yield held, pc.max(held.to_arrow().column(self.window.column)).as_py()
