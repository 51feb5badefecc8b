"""Incremental reads: the cursor window a run reads, and batches cut at cursor boundaries.

A committed cursor value `c` means: every row with cursor <= c is in the destination. Batches
are therefore never committed in the middle of a run of equal cursor values: the trailing
rows that share a batch's highest cursor are held back and sent with the next batch.

Cursor values are compared in Arrow's order everywhere: the window a SQL source pushes down,
its ORDER BY, the engine's re-check and the stored maximum. Text is compared by code point
(SQL sources order and filter it with a binary collation, not the column's linguistic one);
window bounds are typed values of the column's type, never strings a database interprets in
its session's time zone. A NULL or NaN cursor has no place in that order: such rows fail the
run, or with `on_missing_cursor: load` are loaded on every run without moving the cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dataloader.batch import ArrowBatch
from dataloader.durations import parse_duration
from dataloader.errors import EngineError
from dataloader.recipe.models import IncrementalConfig
from dataloader.state.nanotimestamp import NanoTimestamp

_UNITS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def parse_lag(lag: float | str) -> float:
    """Seconds (or plain units for numeric cursors) from `30`, `"90s"`, `"2h"`, `"PT1H"`, …"""
    return parse_duration(lag)


def is_text(arrow_type: pa.DataType) -> bool:
    return (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_string_view(arrow_type)
    )


def cursor_value(scalar: pa.Scalar) -> Any:
    """The Python value stored for a cursor: exact, whether or not pandas is installed."""
    if pa.types.is_timestamp(scalar.type) and scalar.type.unit == "ns" and scalar.is_valid:
        return NanoTimestamp(scalar.value, scalar.type.tz)
    return scalar.as_py()


@dataclass(frozen=True)
class CursorWindow:
    """The cursor range one run reads: `lower - lag < cursor <= upper` (either bound may be None).

    `lag` is subtracted in the column's own type (seconds for time cursors), when `lower` is
    a stored cursor (`lag_applies`), not an `initial_value`; `on_missing` says what happens to
    rows whose cursor is NULL or NaN (`fail` or `load`).
    """

    column: str
    lower: Any = None
    upper: Any = None
    lag: float | None = None
    on_missing: str = "fail"
    lag_applies: bool = True

    def bounds(self, arrow_type: pa.DataType) -> tuple[pa.Scalar | None, pa.Scalar | None]:
        """The bounds as scalars of the cursor column's type, `lag` applied to the lower one.

        :raises EngineError: a `lag` on a cursor type without a distance (text, binary, …).
        """
        if self.lag is not None and not _has_distance(arrow_type):
            raise EngineError(
                f"`lag` cannot move a cursor of type {arrow_type} back: only numbers, dates "
                "and timestamps have a distance",
                key="source.incremental.lag",
                value=self.lag,
                expected=f"no `lag` for the {arrow_type} cursor column {self.column!r}, or a "
                "numeric, date or timestamp cursor column",
            )
        lower = None if self.lower is None else as_scalar(self.lower, arrow_type)
        upper = None if self.upper is None else as_scalar(self.upper, arrow_type)
        if lower is not None and self.lag and self.lag_applies:
            lower = _minus_lag(lower, self.lag)
        return lower, upper

    def sql_cursor(self, quoted: str, arrow_type: pa.DataType, binary_collation: str) -> str:
        """The cursor column as SQL compares and orders it: text under `binary_collation`."""
        return f'{quoted} COLLATE "{binary_collation}"' if is_text(arrow_type) else quoted

    def sql_condition(
        self,
        quoted: str,
        arrow_type: pa.DataType,
        bind: Callable[[pa.Scalar], str],
        binary_collation: str,
    ) -> str | None:
        """The window as one SQL condition on the column `quoted`, or None to read everything.

        `bind(scalar)` gives the SQL for a bound value (a placeholder, or a literal). Rows with a
        NULL or NaN cursor are always part of the read, so that the engine sees them.
        """
        lower, upper = self.bounds(arrow_type)
        cursor = self.sql_cursor(quoted, arrow_type, binary_collation)
        parts = []
        if lower is not None:
            parts.append(f"{cursor} > {bind(lower)}")
        if upper is not None:
            parts.append(f"{cursor} <= {bind(upper)}")
        if not parts:
            return None
        missing = [f"{quoted} IS NULL"]
        if pa.types.is_floating(arrow_type):
            missing.append(f"{quoted} = 'NaN'")
        return f"(({' AND '.join(parts)}) OR {' OR '.join(missing)})"


def window_for(incremental: IncrementalConfig, cursor_values: dict[str, Any]) -> CursorWindow:
    column = incremental.cursor_column
    assert column is not None
    lower = cursor_values.get(column, incremental.initial_value)
    return CursorWindow(
        column,
        lower,
        incremental.end_value,
        lag=None if incremental.lag is None else parse_lag(incremental.lag),
        on_missing=incremental.on_missing_cursor,
        lag_applies=column in cursor_values,  # never before the first committed cursor
    )


def _has_distance(arrow_type: pa.DataType) -> bool:
    return (
        pa.types.is_timestamp(arrow_type)
        or pa.types.is_date(arrow_type)
        or pa.types.is_decimal(arrow_type)
        or pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
    )


def _minus_lag(value: pa.Scalar, lag: float) -> pa.Scalar:
    """`value` moved back by `lag` (seconds for times and dates, units for numbers)."""
    kind = value.type
    if pa.types.is_timestamp(kind):
        step = round(lag * _UNITS_PER_SECOND[kind.unit])
        return pc.subtract(value, pa.scalar(step, pa.duration(kind.unit)))
    if pa.types.is_date(kind):
        days = int(lag // 86400) or 1
        return pa.scalar(value.as_py() - timedelta(days=days), kind)
    if pa.types.is_decimal(kind):
        step = Decimal(1).scaleb(-kind.scale)
        moved = (value.as_py() - Decimal(str(lag))).quantize(step, rounding=ROUND_FLOOR)
        return pa.scalar(moved, kind)
    if pa.types.is_integer(kind):
        return pa.scalar(value.as_py() - int(lag), kind)
    return pa.scalar(value.as_py() - lag, kind)  # floating: `_has_distance` allows no other


def as_scalar(value: Any, arrow_type: pa.DataType) -> pa.Scalar:
    """`value` (a stored cursor, or a string from a recipe) as a scalar of the column's type.

    A timestamp written without an offset for a column with a time zone is UTC.
    """
    if isinstance(value, pa.Scalar):
        return value.cast(arrow_type)
    if isinstance(value, NanoTimestamp):
        if pa.types.is_timestamp(arrow_type) and (value.tz is None) != (arrow_type.tz is None):
            raise EngineError(
                f"stored cursor {value.isoformat()} and column type {arrow_type} disagree on time zones",
                expected="a cursor column that keeps the same type between runs",
            )
        return pa.scalar(value.nanos, pa.timestamp("ns", value.tz)).cast(arrow_type)
    if isinstance(value, str) and not is_text(arrow_type):
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


def missing_cursor_mask(column: pa.Array) -> pa.Array:
    """True where the cursor is NULL or NaN: rows with no place in the cursor order."""
    missing = pc.is_null(column)
    if pa.types.is_floating(column.type):
        missing = pc.or_(missing, pc.is_nan(column))
    return pc.fill_null(missing, True)


class CursorTracker:
    """Filters batches to the window, checks ordering, and cuts batches at cursor boundaries."""

    def __init__(self, window: CursorWindow, *, source_name: str) -> None:
        self.window = window
        self.source_name = source_name
        self._previous_max: pa.Scalar | None = None
        self._bounds: dict[pa.DataType, tuple[pa.Scalar | None, pa.Scalar | None]] = {}

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

    def _missing_error(self, column: pa.Array, missing: pa.Array) -> EngineError:
        count = pc.sum(missing).as_py()
        nulls = column.null_count
        nans = count - nulls
        return EngineError(
            f"cursor column {self.window.column!r} of source {self.source_name!r} has "
            f"{count} row{'s' if count != 1 else ''} without a cursor value in a batch of "
            f"{len(column)} ({nulls} NULL, {nans} NaN); such rows have no place in the cursor "
            "order, and nothing of this batch was written",
            key="source.incremental.cursor_column",
            value=self.window.column,
            expected="cursor values in every row (give them one at the source, or leave them "
            "out with the source's `where:`/`query:`), or `source.incremental.on_missing_cursor: "
            "load` with `write_mode: merge` to load them on every run without moving the cursor",
        )

    def _split(self, batch: ArrowBatch) -> tuple[ArrowBatch, ArrowBatch | None]:
        """`(rows in the window, rows without a cursor value)`; fails on the latter by default."""
        column = self._column(batch)
        missing = missing_cursor_mask(column)
        without = None
        if pc.any(missing).as_py():
            if self.window.on_missing != "load":
                raise self._missing_error(column, missing)
            table = batch.to_arrow()
            without = batch.with_data(table.filter(missing))
            batch = batch.with_data(table.filter(pc.invert(missing)))
            column = self._column(batch)
        if column.type not in self._bounds:
            self._bounds[column.type] = self.window.bounds(column.type)
        lower, upper = self._bounds[column.type]
        mask = None
        if lower is not None:
            mask = pc.greater(column, lower)
        if upper is not None:
            below = pc.less_equal(column, upper)
            mask = below if mask is None else pc.and_(mask, below)
        if mask is not None:
            batch = batch.with_data(batch.to_arrow().filter(mask))
        return batch, without

    def aligned(self, batches: Iterable[ArrowBatch]) -> Iterator[tuple[ArrowBatch, Any]]:
        """Yield `(batch, cursor_max)` where no cursor value spans two yielded batches.

        Rows without a cursor value (`on_missing_cursor: load`) are yielded as they come, with
        a `cursor_max` of None: they never move the cursor.
        """
        held: ArrowBatch | None = None
        for raw in batches:
            if raw.row_count == 0:
                continue  # an empty batch may lack the cursor column or its type
            batch, without = self._split(raw)
            if without is not None:
                yield without, None
            if batch.row_count == 0:
                continue
            column = self._column(batch)
            low, high = pc.min_max(column).values()
            if self._previous_max is not None and pc.less(low, self._previous_max).as_py():
                raise EngineError(
                    f"source {self.source_name!r} returned rows out of cursor order "
                    f"({cursor_value(low)!r} after {cursor_value(self._previous_max)!r})",
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
                yield ready, cursor_value(pc.max(ready.to_arrow().column(self.window.column)))
        if held is not None and held.row_count:
            yield held, cursor_value(pc.max(held.to_arrow().column(self.window.column)))
