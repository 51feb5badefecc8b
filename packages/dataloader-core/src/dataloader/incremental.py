"""Incremental reads: the cursor window a run reads, and batches cut at cursor boundaries.

A committed cursor value `c` means: every row with cursor < c is in the destination, and so are
the rows at `c` whose fingerprints the state keeps with it (the `Boundary`). Batches are
therefore never committed in the middle of a run of equal cursor values: the trailing rows that
share a batch's highest cursor are held back and sent with the next batch. The next run reads
`cursor >= c` and drops the rows at `c` it finds among the fingerprints, so a row that arrives
later with the cursor value `c` (a transaction that commits late, a batch stamping many rows with
one time) is loaded, and a row loaded before is not loaded again.

Cursor values are compared in Arrow's order everywhere: the window a SQL source pushes down,
its ORDER BY, the engine's re-check and the stored maximum. Text is compared by code point
(SQL sources order and filter it with a binary collation, not the column's linguistic one);
window bounds are typed values of the column's type, never strings a database interprets in
its session's time zone. A NULL or NaN cursor has no place in that order: such rows fail the
run, or with `on_missing_cursor: load` are loaded on every run without moving the cursor.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
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
from dataloader.state.codec import encode_value
from dataloader.state.nanotimestamp import NanoTimestamp

log = logging.getLogger("dataloader.incremental")

FINGERPRINT_SIZE = 8  # bytes of one row's digest
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


def row_fingerprints(table: pa.Table | pa.RecordBatch) -> list[bytes]:
    """An 8-byte digest of each row: its non-null values, each with its column's name.

    Equal rows give equal digests, whatever the column order or the batch they came in; a row
    whose value changed in any column gives another one. What a batch's inferred types add
    does not count, so that a record read again in other company (an API page) is
    recognised: a NULL equals an absent column or struct field, and a number is its value
    (`12`, `12.0` and `12.00` as decimals are one number). Costs one Python step per row: it
    is only computed for the rows at one cursor value.
    """
    names = sorted(table.column_names)
    columns = [_exact_values(table.column(name)) for name in names]
    digests = []
    for row in zip(*columns, strict=True):
        fields = tuple(
            (name, _canonical(value))
            for name, value in zip(names, row, strict=True)
            if value is not None
        )
        digest = hashlib.blake2b(digest_size=FINGERPRINT_SIZE)
        digest.update(repr(fields).encode("utf-8", "backslashreplace"))
        digests.append(digest.digest())
    return digests


_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$"
)


def _instant_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 instant (`…Z` or `…+02:00`)."""
    match = _RFC3339.match(text)
    assert match is not None
    whole, fraction, zone = match.groups()
    moment = datetime.fromisoformat(f"{whole}{'+00:00' if zone == 'Z' else zone}")
    nanos = int((fraction or "").ljust(9, "0"))
    return int(moment.timestamp()) * 1_000_000_000 + nanos


def _canonical(value: Any) -> Any:
    """`value` with what its Arrow type added taken out: NULL struct fields dropped, numbers
    as their normalized decimal text (a float keeps its own repr: floats are not decimals),
    RFC 3339 text as the instant it names (a timestamp column's value is one)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _canonical(v)) for k, v in value.items() if v is not None))
    if isinstance(value, list):
        return tuple(_canonical(item) for item in value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str) and _RFC3339.match(value):
        return ("instant", _instant_ns(value))  # as a timestamp column holds it
    if isinstance(value, int | Decimal):
        number = Decimal(value)
        if number.is_finite():
            return ("number", "0" if number == 0 else str(number.normalize()))
    return value


def _exact_values(column: pa.Array | pa.ChunkedArray) -> list[Any]:
    """The column as Python values that keep every bit: times (nested ones too) as integers,
    a timestamp column's in nanoseconds whatever its unit."""
    exact = _times_as_integers(column.type)
    if exact == column.type:
        return column.to_pylist()
    values = column.cast(exact).to_pylist()
    if pa.types.is_timestamp(column.type):
        scale = 1_000_000_000 // _UNITS_PER_SECOND[column.type.unit]
        kind = "instant" if column.type.tz is not None else "timestamp"
        values = [None if value is None else (kind, value * scale) for value in values]
    return values


def _times_as_integers(kind: pa.DataType) -> pa.DataType:
    """`kind` with every time, date64, duration and timestamp in it replaced by int64."""
    if (
        pa.types.is_timestamp(kind)
        or pa.types.is_duration(kind)
        or pa.types.is_time(kind)
        or pa.types.is_date64(kind)
    ):
        return pa.int64()
    if pa.types.is_map(kind):
        return pa.map_(_times_as_integers(kind.key_type), _times_as_integers(kind.item_type))
    if pa.types.is_struct(kind):
        return pa.struct([field.with_type(_times_as_integers(field.type)) for field in kind])
    if pa.types.is_fixed_size_list(kind):
        item = kind.value_field
        return pa.list_(item.with_type(_times_as_integers(item.type)), kind.list_size)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        item = kind.value_field
        maker = pa.list_ if pa.types.is_list(kind) else pa.large_list
        return maker(item.with_type(_times_as_integers(item.type)))
    return kind


@dataclass(frozen=True)
class Boundary:
    """The committed cursor value and the rows loaded at it, as the state keeps them.

    :param value: the committed cursor value.
    :param rows: how many rows with that value are loaded.
    :param fingerprints: their digests (`row_fingerprints`), sorted, repeats kept; None when
        there were more rows than `source.incremental.max_boundary_rows`.
    :param reread: without fingerprints, whether the next run reads the rows at `value` again
        (merge: the destination keeps them once) or reads strictly after `value` (append).
    """

    value: Any
    rows: int
    fingerprints: bytes | None = None
    reread: bool = False

    @property
    def inclusive(self) -> bool:
        """Whether the next run reads `cursor >= value` (else `cursor > value`)."""
        return self.fingerprints is not None or self.reread

    def loaded(self) -> Counter[bytes]:
        """The fingerprints as a multiset: how many loaded rows have each."""
        data = self.fingerprints or b""
        return Counter(
            data[start : start + FINGERPRINT_SIZE]
            for start in range(0, len(data), FINGERPRINT_SIZE)
        )

    def to_state(self) -> dict[str, Any]:
        kept: dict[str, Any] = (
            {"fingerprints": self.fingerprints}
            if self.fingerprints is not None
            else {"reread": self.reread}
        )
        return {"value": self.value, "rows": self.rows, **kept}

    @classmethod
    def from_state(cls, data: Mapping[str, Any] | None, value: Any) -> Boundary | None:
        """The stored boundary, if it is the one of the committed cursor `value` (a state
        written before boundaries existed, or edited by hand, has none: `cursor > value`)."""
        if not isinstance(data, Mapping) or "value" not in data:
            return None
        if encode_value(data["value"]) != encode_value(value):
            return None
        fingerprints = data.get("fingerprints")
        return cls(
            data["value"],
            int(data.get("rows", 0)),
            bytes(fingerprints) if fingerprints is not None else None,
            bool(data.get("reread", False)),
        )


@dataclass(frozen=True)
class CursorWindow:
    """The cursor range one run reads: `lower - lag < cursor <= upper` (either bound may be None);
    `lower <= cursor` when no `lag` moves `lower` and the `boundary` stored with it says the rows
    at `lower` are fingerprinted (or to be read again).

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
    boundary: Boundary | None = None

    def lower_bound(self, arrow_type: pa.DataType) -> tuple[pa.Scalar | None, bool]:
        """The lower bound as `bounds` gives it, and whether rows equal to it are read."""
        lower = self.bounds(arrow_type)[0]
        moved = (
            lower is not None
            and self.lag_applies
            and bool(self.lag)
            and pc.less(lower, as_scalar(self.lower, arrow_type)).as_py()
        )
        inclusive = self.boundary is not None and self.boundary.inclusive and not moved
        return lower, inclusive

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

    def sql_cursor(
        self, quoted: str, arrow_type: pa.DataType, binary_collation: str | None = None
    ) -> str:
        """The cursor column as SQL compares and orders it: text under `binary_collation`
        (written `COLLATE "<name>"`; None: as the column is)."""
        if binary_collation is None or not is_text(arrow_type):
            return quoted
        return f'{quoted} COLLATE "{binary_collation}"'

    def sql_condition(
        self,
        quoted: str,
        arrow_type: pa.DataType,
        bind: Callable[[pa.Scalar], str],
        binary_collation: str | None = None,
        *,
        compared: str | None = None,
        nan: str | None = "'NaN'",
    ) -> str | None:
        """The window as one SQL condition on the column `quoted`, or None to read everything:
        `((<compared> >[=] <lower> AND <compared> <= <upper>) OR <quoted> IS NULL OR <quoted>
        = <nan>)`, the bounds present, the NaN test on floating-point cursors only.

        Rows with a NULL or NaN cursor are always part of the read, so that the engine sees
        them.

        :param bind: the SQL for a bound value (a placeholder, or a literal); called once per
            bound present, the lower one first.
        :param binary_collation: the collation text is compared under, as `sql_cursor` writes
            it; unused when `compared` is given.
        :param compared: the SQL of the expression the bounds are compared with, when the
            dialect writes it otherwise (`CONVERT(x USING utf8mb4) COLLATE utf8mb4_bin`, a
            cast); default: `sql_cursor(quoted, arrow_type, binary_collation)`.
        :param nan: the dialect's NaN literal, or None for a dialect without NaN (MySQL and
            MariaDB would read `= 'NaN'` as `= 0`): then no NaN test.
        """
        lower, upper = self.bounds(arrow_type)
        inclusive = self.lower_bound(arrow_type)[1]
        cursor = (
            compared
            if compared is not None
            else self.sql_cursor(quoted, arrow_type, binary_collation)
        )
        parts = []
        if lower is not None:
            parts.append(f"{cursor} {'>=' if inclusive else '>'} {bind(lower)}")
        if upper is not None:
            parts.append(f"{cursor} <= {bind(upper)}")
        if not parts:
            return None
        missing = [f"{quoted} IS NULL"]
        if nan is not None and pa.types.is_floating(arrow_type):
            missing.append(f"{quoted} = {nan}")
        return f"(({' AND '.join(parts)}) OR {' OR '.join(missing)})"


def window_for(
    incremental: IncrementalConfig,
    cursor_values: Mapping[str, Any],
    cursor_boundaries: Mapping[str, Any] | None = None,
) -> CursorWindow:
    """The window a run reads, from the committed `State.cursor_values` and
    `State.cursor_boundaries` (an `initial_value` is exclusive: it has no boundary)."""
    column = incremental.cursor_column
    assert column is not None
    stored = column in cursor_values
    lower = cursor_values[column] if stored else incremental.initial_value
    boundary = Boundary.from_state((cursor_boundaries or {}).get(column), lower) if stored else None
    return CursorWindow(
        column,
        lower,
        incremental.end_value,
        lag=None if incremental.lag is None else parse_lag(incremental.lag),
        on_missing=incremental.on_missing_cursor,
        lag_applies=stored,  # never before the first committed cursor
        boundary=boundary,
    )


def _same_clock(a: pa.DataType, b: pa.DataType) -> bool:
    """Timestamps of one zone in two units (an API page with nanoseconds, the next without):
    Arrow compares them as instants."""
    return pa.types.is_timestamp(a) and pa.types.is_timestamp(b) and a.tz == b.tz


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
    """Filters batches to the window, drops the rows already loaded at the committed cursor
    value, checks ordering, cuts batches at cursor boundaries, and gives the `Boundary` to
    commit with each batch.

    :param merge: the destination merges: past `max_boundary_rows` rows at one value, the next
        run reads them again (the merge keeps them once) instead of reading after them.
    :param max_boundary_rows: the most rows at one cursor value whose fingerprints are kept.
    :param ordered: the source reads in cursor order (`aligned`, `positions`); False for one
        that cannot (`unordered`).
    """

    def __init__(
        self,
        window: CursorWindow,
        *,
        source_name: str,
        merge: bool = False,
        max_boundary_rows: int = 10_000,
        ordered: bool = True,
    ) -> None:
        self.window = window
        self.source_name = source_name
        self.merge = merge
        self.max_boundary_rows = max_boundary_rows
        self.ordered = ordered
        self._previous_max: pa.Scalar | None = None
        self._cursor_type: pa.DataType | None = None
        self._bounds: dict[pa.DataType, tuple[pa.Scalar | None, pa.Scalar | None, bool]] = {}
        stored = window.boundary
        if stored is None and window.lag_applies and window.lower is not None:
            stored = Boundary(window.lower, 0)  # a state without fingerprints: read after it
        self._stored = self._boundary = stored
        self._loaded = stored.loaded() if stored is not None else Counter()
        # A boundary to read again under a destination that no longer merges: read after it.
        self._reread_refused = stored is not None and stored.reread and not merge
        # Whether the read skips the loaded rows at the stored value (not under a moving `lag`).
        self._skipping = stored is not None and stored.fingerprints is not None

    def _column(self, batch: ArrowBatch) -> pa.Array:
        try:
            column = batch.to_arrow().column(self.window.column)
        except KeyError:
            raise EngineError(
                f"cursor column {self.window.column!r} is not in the rows of source {self.source_name!r}",
                key="source.incremental.cursor_column",
                value=self.window.column,
                expected=f"one of {batch.columns}",
            ) from None
        if pa.types.is_null(column.type):
            return column  # only rows without a cursor value: they fail or load as such
        if self._cursor_type is None:
            self._cursor_type = column.type
        elif column.type != self._cursor_type and not _same_clock(column.type, self._cursor_type):
            raise EngineError(
                f"cursor column {self.window.column!r} of source {self.source_name!r} changed "
                f"type between batches, from {self._cursor_type} to {column.type}: the two "
                "cannot be compared, and nothing of this batch was written",
                key="source.incremental.cursor_column",
                value=self.window.column,
                expected=f"cursor values of one type ({self._cursor_type}) in every batch",
            )
        return column

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
            # Without the checkpoint: it goes with the batch's other rows, which may follow
            # in a later commit, and a checkpoint naming the next page would skip them.
            without = ArrowBatch(
                table.filter(missing),
                {k: v for k, v in batch.metadata.items() if k != "checkpoint"},
            )
            batch = batch.with_data(table.filter(pc.invert(missing)))
            column = self._column(batch)
        if column.type not in self._bounds:
            lower, inclusive = self.window.lower_bound(column.type)
            upper = self.window.bounds(column.type)[1]
            self._bounds[column.type] = lower, upper, inclusive and not self._reread_refused
            if not inclusive:  # `lag` re-reads every row at the stored value, loaded or not
                self._loaded.clear()
                self._skipping = False
        lower, upper, inclusive = self._bounds[column.type]
        mask = None
        if lower is not None:
            mask = (pc.greater_equal if inclusive else pc.greater)(column, lower)
        if upper is not None:
            below = pc.less_equal(column, upper)
            mask = below if mask is None else pc.and_(mask, below)
        if mask is not None:
            batch = batch.with_data(batch.to_arrow().filter(mask))
        if self._loaded:
            batch = self._drop_loaded(batch)
        return batch, without

    def _drop_loaded(self, batch: ArrowBatch) -> ArrowBatch:
        """`batch` without the rows at the committed cursor value that earlier runs loaded.

        Each stored fingerprint drops one row: of three equal rows of which two were loaded,
        one is read. Only the rows at that value are fingerprinted, and only until the read
        has passed that value.
        """
        assert self._stored is not None
        table = batch.to_arrow()
        column = table.column(self.window.column)
        value = as_scalar(self._stored.value, column.type)
        at = pc.equal(column, value)
        positions = pc.indices_nonzero(at)
        passed = pc.any(pc.greater(column, value)).as_py()
        keep = []
        if len(positions):
            for digest in row_fingerprints(table.take(positions)):
                loaded = self._loaded[digest]
                if loaded:
                    self._loaded[digest] = loaded - 1
                keep.append(not loaded)
            self._loaded += Counter()  # forget the digests whose rows have all been seen
        if passed and self.ordered:
            self._loaded.clear()  # rows come in cursor order: no row at that value follows
        if all(keep):
            return batch
        log.debug(
            f"{keep.count(False)} row(s) at cursor value {self._stored.value!r} were loaded "
            "by an earlier run: skipped",
            extra={"stage": "read"},
        )
        mask = pc.replace_with_mask(pc.invert(at), at, pa.array(keep, pa.bool_()))
        return batch.with_data(table.filter(mask))

    def positions(self, batches: Iterable[ArrowBatch]) -> Iterator[tuple[ArrowBatch, Any]]:
        """`aligned`, but with the `Boundary` the state holds once the batch is committed (None
        for rows without a cursor value): it never moves back, and it carries the fingerprints
        of every row loaded at its value, so far."""
        stored = self._stored
        if (
            stored is not None
            and stored.rows
            and not self.window.lag
            and (not stored.inclusive or self._reread_refused)
        ):
            log.warning(
                f"{stored.rows} rows at cursor value {stored.value!r} were too many to "
                "fingerprint: this run reads after that value, so rows that arrived since "
                "with that same value are not loaded",
                extra={"stage": "read"},
            )
        for batch, cursor_max in self.aligned(batches):
            if cursor_max is not None:
                self._boundary = self._advance(batch)
            yield batch, None if cursor_max is None else self._boundary

    def _advance(self, batch: ArrowBatch) -> Boundary:
        """The boundary once `batch` (a batch of `aligned`: it holds every row this run reads
        at its highest cursor value) is loaded."""
        table = batch.to_arrow()
        column = table.column(self.window.column)
        high = pc.max(column)
        current = self._boundary
        previous, rows = b"", 0
        if current is not None:
            stored = as_scalar(current.value, column.type)
            if pc.less(high, stored).as_py():
                return current  # rows re-read below the committed value (`lag`)
            if pc.equal(high, stored).as_py() and self._skipping:
                # New rows at the committed value: the loaded ones were skipped by the read.
                previous, rows = current.fingerprints or b"", current.rows
            # Otherwise this run read every row at that value again (a reread or `lag`): they
            # are all in `batch`.
        at = pc.equal(column, high)
        rows += pc.sum(at).as_py()
        value = cursor_value(high)
        if rows > self.max_boundary_rows:
            self._warn_past_limit(value, rows)
            return Boundary(value, rows, None, reread=self.merge)
        step = FINGERPRINT_SIZE
        digests = [previous[i : i + step] for i in range(0, len(previous), step)]
        digests += row_fingerprints(table.filter(at))
        return Boundary(value, rows, b"".join(sorted(digests)))

    def unordered(
        self, batches: Iterable[ArrowBatch], pending: Mapping[str, Any] | None = None
    ) -> Iterator[tuple[ArrowBatch, Any]]:
        """For a source that cannot read in cursor order (an API listing newest first): each
        batch filtered to the window, the rows loaded at the committed value skipped, yielded
        with a `PendingCursor` (the highest value read so far and its rows' fingerprints);
        after the last, an empty batch with the `Boundary` the run's final commit keeps.

        :param pending: the `PendingCursor` a killed run committed (`PENDING_CURSOR` in the
            state's watermarks), which a resumed run goes on from.
        """
        assert not self.ordered, "a tracker of an unordered read is made with ordered=False"
        stored = self._stored
        reached: Boundary | None = None
        if isinstance(pending, Mapping) and "value" in pending:
            reached = Boundary.from_state(pending, pending["value"])
        elif stored is not None and stored.fingerprints is not None and self._skipping:
            reached = stored  # rows read at the stored value add to its fingerprints
        latest: ArrowBatch | None = None
        for raw in batches:
            if raw.row_count == 0:
                if raw.metadata.get("checkpoint"):  # the source's progress still counts
                    yield raw, None if reached is None else PendingCursor(reached)
                continue
            batch, without = self._split(raw)
            if without is not None:
                yield without, None
            if batch.row_count:
                latest = batch
                reached = self._reach(batch, reached)
            yield batch, None if reached is None else PendingCursor(reached)
        if reached is not None and reached is not stored:
            if reached.fingerprints is None and not reached.reread:
                self._warn_past_limit(reached.value, reached.rows)
            # No checkpoint again; no columns either when a resumed read found no rows.
            empty = latest.to_arrow().slice(0, 0) if latest is not None else pa.table({})
            yield ArrowBatch(empty), reached

    def _reach(self, batch: ArrowBatch, reached: Boundary | None) -> Boundary:
        """`reached` after `batch`: the highest cursor value read and the rows read at it."""
        table = batch.to_arrow()
        column = table.column(self.window.column)
        high = pc.max(column)
        previous: bytes | None = b""
        rows = 0
        if reached is not None:
            current = as_scalar(reached.value, column.type)
            if pc.less(high, current).as_py():
                return reached
            if pc.equal(high, current).as_py():
                previous, rows = reached.fingerprints, reached.rows
        at = pc.equal(column, high)
        rows += pc.sum(at).as_py()
        value = cursor_value(high)
        if previous is None or rows > self.max_boundary_rows:
            return Boundary(value, rows, None, reread=self.merge)
        step = FINGERPRINT_SIZE
        digests = [previous[i : i + step] for i in range(0, len(previous), step)]
        digests += row_fingerprints(table.filter(at))
        return Boundary(value, rows, b"".join(sorted(digests)))

    def _warn_past_limit(self, value: Any, rows: int) -> None:
        what = (
            "the next run reads them all again (the merge keeps each once)"
            if self.merge
            else "the next run reads after that value, so rows that arrive later with that "
            "same value will NOT be loaded (raise `source.incremental.max_boundary_rows`, or "
            "use `write_mode: merge`)"
        )
        log.warning(
            f"{rows} rows share cursor value {value!r}, more than "
            f"`source.incremental.max_boundary_rows` ({self.max_boundary_rows}) the state keeps "
            f"fingerprints of; {what}",
            extra={"stage": "read"},
        )

    def aligned(self, batches: Iterable[ArrowBatch]) -> Iterator[tuple[ArrowBatch, Any]]:
        """Yield `(batch, cursor_max)` where no cursor value spans two yielded batches.

        Rows without a cursor value (`on_missing_cursor: load`) are yielded as they come, with
        a `cursor_max` of None: they never move the cursor.
        """
        # The rows at the highest cursor value so far, not yet sent (kept as a list: a long run
        # of equal values spanning many batches is copied once, when it is sent), and the
        # batch whose metadata they go out with.
        held: list[pa.RecordBatch] = []
        held_value: pa.Scalar | None = None
        latest: ArrowBatch | None = None
        for raw in batches:
            if raw.row_count:
                batch, without = self._split(raw)
                if without is not None:
                    yield without, None
            else:
                batch = raw  # an empty batch may lack the cursor column or its type
            if batch.row_count == 0:
                if batch.metadata.get("checkpoint"):  # the source's progress still counts
                    if held:
                        latest = batch  # the held rows go out with it
                    else:
                        yield batch, None
                continue
            column = self._column(batch)
            low, high = pc.min_max(column).values()
            if self._previous_max is not None and pc.less(low, self._previous_max).as_py():
                raise EngineError(
                    f"source {self.source_name!r} returned rows out of cursor order "
                    f"({cursor_value(low)!r} after {cursor_value(self._previous_max)!r}); "
                    "a commit before this one may have moved the cursor past rows not loaded "
                    "yet: once the source reads in cursor order (or says it does not), re-run "
                    "with --full-refresh",
                    key="source.incremental.cursor_column",
                    expected="a source that reads ordered by the cursor column",
                )
            self._previous_max = high
            data = batch.to_arrow()
            at_max = pc.equal(column, high)
            below = data.filter(pc.invert(at_max))
            latest = batch
            if below.num_rows:  # rows under `high`: they and every held row can go
                ready = batch.with_data(pa.Table.from_batches([*held, below]))
                yield ready, cursor_value(pc.max(below.column(self.window.column)))
                held = [data.filter(at_max)]
            elif held and pc.equal(high, held_value).as_py():
                held.append(data)  # more rows at the held value
            else:
                if held:
                    yield batch.with_data(pa.Table.from_batches(held)), cursor_value(held_value)
                held = [data]
            held_value = high
        if held and latest is not None:
            yield latest.with_data(pa.Table.from_batches(held)), cursor_value(held_value)


@dataclass(frozen=True)
class PendingCursor:
    """What `CursorTracker.unordered` yields with each batch but the last: the boundary the
    run has reached so far, committed in the state's watermarks (under `PENDING_CURSOR`) so
    that a killed run that resumes from its source's checkpoint goes on from it, but not
    yet as the cursor."""

    boundary: Boundary


PENDING_CURSOR = "pending_cursor"
