"""The one place that decides a batch's fate against the destination table and the contract.

`SchemaManager.prepare(batch)` compares the batch's Arrow schema with the table (as the
destination describes it, or as the state recorded it) and the recipe's `schema:` section, and
returns a `Prepared`: the plan of changes to the table (add a column, widen a type), the batch
cast to the table's types, and the rows that break the contract. The comparison is made once
per distinct batch schema; per batch, only casts, NULL checks and key checks run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dataloader.errors import EngineError
from dataloader.schema.config import OnViolation, SchemaConfig
from dataloader.schema.lattice import Rules, supertype
from dataloader.schema.plan import KEY_TAG, ColumnChange, SchemaPlan, as_text, key_of
from dataloader.schema.types import JSON_TAG, TYPE_TAG, is_json_name, parse_type, type_name


@dataclass
class Violation:
    """Rows of one batch that broke one rule."""

    rule: str
    column: str
    rows: pa.Array  # the row positions (int64) in the batch
    detail: str
    action: OnViolation


@dataclass
class Prepared:
    """A batch made ready for the destination.

    :param plan: changes the table needs before `batch` is written (None: none).
    :param batch: the rows that keep the contract, cast to the table's types.
    :param rejected: the rows that broke it and are to be quarantined (the batch's columns, as
        read), with the rule each broke; None when there are none.
    :param dropped: how many rows were dropped (`on_violation: drop`).
    """

    plan: SchemaPlan | None
    batch: pa.RecordBatch
    rejected: list[tuple[pa.Table, str, str]] = field(default_factory=list)
    dropped: int = 0


@dataclass(frozen=True)
class _Shape:
    """What one batch schema needs: the plan, the casts, the checks."""

    plan: SchemaPlan | None
    target: pa.Schema  # the batch's columns with the table's types
    casts: tuple[tuple[int, pa.DataType, bool], ...]  # (column index, type, checked per value)
    not_null: tuple[str, ...]
    unique: tuple[str, ...]


class SchemaManager:
    """Plans each batch against the table and the contract; keeps the table's schema as it goes.

    :param config: the recipe's `schema:` section.
    :param current: the table's schema (None: no table yet).
    :param file: the recipe file, for errors.
    :param merge_keys: a merge's keys: repeated keys in a batch are the merge's to settle, not
        a broken `unique` rule.
    :param can_quarantine: the destination keeps a quarantine (the default rule of `lenient`).
    """

    def __init__(
        self,
        config: SchemaConfig,
        current: pa.Schema | None,
        file: str | None = None,
        merge_keys: Sequence[str] = (),
        can_quarantine: bool = False,
    ) -> None:
        self.config = config
        self.can_quarantine = can_quarantine
        self.merge_keys = frozenset(merge_keys)
        self.current = current
        self.file = file
        self.rules = Rules(
            allow_float=config.evolution.allow_float,
            allow_text=config.evolution.allow_text,
            naive_as_utc=config.evolution.naive_timestamps_as_utc,
        )
        self.declared = {spec.name: spec for spec in config.columns}
        self._shapes: dict[pa.Schema, _Shape] = {}

    # -- planning ---------------------------------------------------------------------
    def prepare(self, batch: pa.RecordBatch) -> Prepared:
        """The plan, the cast batch and the rejected rows for `batch`."""
        shape = self._shapes.get(batch.schema)
        if shape is None:
            shape = self._plan(batch)
            if shape.plan is None:
                self._shapes[batch.schema] = shape
            else:  # the table changes: the next batch of this shape plans against the new table
                self.current = shape.plan.target
        violations: list[Violation] = []
        columns = list(batch.columns)
        for index, arrow_type, checked in shape.casts:
            columns[index], bad = self._cast(batch, index, arrow_type, checked)
            if bad is not None:
                name = batch.schema.field(index).name
                violations.append(
                    Violation(
                        "type",
                        name,
                        bad,
                        f"a {type_name(batch.column(index).type)} value does not fit "
                        f"{type_name(arrow_type)}: "
                        f"{_value_at(batch.column(index), bad[0].as_py())!r}",
                        self.config.rule_for(name, self.can_quarantine),
                    )
                )
        cast = pa.RecordBatch.from_arrays(columns, schema=shape.target)
        violations += self._null_violations(cast, shape.not_null)
        violations += self._unique_violations(cast, shape.unique)
        if not violations:
            return Prepared(shape.plan, cast)
        return self._sort_out(batch, cast, shape.plan, violations)

    def _plan(self, batch: pa.RecordBatch) -> _Shape:
        config, current = self.config, self.current
        table = {f.name: f for f in current} if current is not None else {}
        fields: list[pa.Field] = []
        changes: list[ColumnChange] = []
        casts: list[tuple[int, pa.DataType, bool]] = []
        for index, incoming in enumerate(batch.schema):
            name = incoming.name
            spec = self.declared.get(name)
            existing = table.get(name)
            declared_type = parse_type(spec.type) if spec is not None and spec.type else None
            if spec is None and config.mode == "strict":
                self._refuse(
                    name,
                    "a column of the schema (mode `strict` allows only `schema.columns`)",
                    f"new column {name!r} of type {type_name(incoming.type)}",
                    batch.column(index),
                )
            if existing is None:
                if current is not None and not config.allows("new_columns"):
                    self._refuse(
                        name,
                        "no new columns (`schema.evolution.allow_new_columns` is false)",
                        f"new column {name!r} of type {type_name(incoming.type)}",
                        batch.column(index),
                    )
                kind = declared_type if declared_type is not None else _plain(incoming.type)
                if pa.types.is_null(kind):
                    kind = pa.string()  # a column of NULLs only: the widest guess that widens
                target = self._field(name, kind, incoming)
                if current is not None:  # the rows already in the table have no value
                    target = target.with_nullable(True)
                if incoming.type != kind:
                    self._check_zones(name, incoming.type, kind, batch.column(index))
                    lossless = self._lossless(incoming.type, kind)
                    if config.mode == "strict" and not lossless:
                        self._refuse(
                            name, type_name(kind), type_name(incoming.type), batch.column(index)
                        )
                    casts.append((index, kind, not lossless))
                changes.append(
                    ColumnChange(
                        "create" if current is None else "add_column",
                        name,
                        None,
                        kind,
                        "declared in schema.columns"
                        if spec is not None and spec.type
                        else "first seen in the rows"
                        if current is None
                        else "new column in the rows",
                        _first_value(batch.column(index)),
                    )
                )
                fields.append(target)
                continue
            if incoming.type == existing.type:
                fields.append(existing)
                continue
            widened = (
                supertype(existing.type, _plain(incoming.type), self.rules)
                if declared_type is None
                and config.allows("type_changes")
                and not _unit_only(existing.type, incoming.type)
                else None
            )
            if widened is not None and widened != existing.type:
                changes.append(
                    ColumnChange(
                        "widen_type",
                        name,
                        existing.type,
                        widened,
                        f"the rows carry {type_name(incoming.type)}",
                        _first_misfit(batch.column(index), existing.type),
                    )
                )
                existing = existing.with_type(widened)
            if incoming.type != existing.type:
                self._check_zones(name, incoming.type, existing.type, batch.column(index))
                if config.mode == "strict" and not self._lossless(incoming.type, existing.type):
                    self._refuse(
                        name,
                        type_name(existing.type),
                        type_name(incoming.type),
                        batch.column(index),
                    )
                casts.append(
                    (index, existing.type, not self._lossless(incoming.type, existing.type))
                )
            fields.append(existing)
        incoming_names = set(batch.schema.names)
        missing = [f for f in (current or []) if f.name not in incoming_names]
        if missing and not config.allows("column_deletion"):
            self._refuse(
                missing[0].name,
                "every column of the table (`schema.evolution.allow_column_deletion` is false)",
                f"rows without column {missing[0].name!r}",
                None,
            )
        target = pa.schema(fields)
        required = {
            spec.name for spec in self.declared.values() if not spec.nullable or spec.primary_key
        }
        not_null = tuple(f.name for f in target if not f.nullable or f.name in required)
        absent_required = [f.name for f in missing if not f.nullable]
        if absent_required:
            self._refuse(
                absent_required[0],
                "a value (the column is NOT NULL)",
                f"rows without column {absent_required[0]!r}",
                None,
            )
        unique = tuple(
            f.name for f in target if key_of(f) is not None and f.name not in self.merge_keys
        )
        plan = None
        if changes:
            whole = pa.schema([*fields, *missing]) if current is not None else target
            if current is not None:  # keep the table's column order; new ones at the end
                order = [f.name for f in current] + [
                    c.column for c in changes if c.kind == "add_column"
                ]
                by_name = {f.name: f for f in whole}
                whole = pa.schema([by_name[n] for n in order])
            plan = SchemaPlan(create=current is None, target=whole, changes=tuple(changes))
        return _Shape(plan, target, tuple(casts), not_null, unique)

    def _field(self, name: str, kind: pa.DataType, incoming: pa.Field) -> pa.Field:
        """A new column's field: its type, nullability, key and JSON tags."""
        spec = self.declared.get(name)
        metadata = dict(incoming.metadata or {})
        metadata.pop(KEY_TAG, None)
        nullable = True
        if spec is not None:
            nullable = spec.nullable and not spec.primary_key
            if spec.primary_key or spec.unique:
                metadata[KEY_TAG] = b"primary" if spec.primary_key else b"unique"
            if spec.type is not None and is_json_name(spec.type):
                metadata[TYPE_TAG] = JSON_TAG
        return pa.field(name, kind, nullable=nullable, metadata=metadata or None)

    def _check_zones(
        self, column: str, source: pa.DataType, target: pa.DataType, values: Any
    ) -> None:
        """A timestamp without a zone is not an instant: it becomes one (read as UTC) only
        under `naive_timestamps_as_utc`, and an instant never loses its zone."""
        if not (pa.types.is_timestamp(source) and pa.types.is_timestamp(target)):
            return
        if (source.tz is None) == (target.tz is None):
            return
        if source.tz is None and self.rules.naive_as_utc:
            return
        self._refuse(
            column,
            type_name(target),
            type_name(source)
            + (
                " (set schema.evolution.naive_timestamps_as_utc to read it as UTC)"
                if source.tz is None
                else ""
            ),
            values,
        )

    def _lossless(self, source: pa.DataType, target: pa.DataType) -> bool:
        """Whether every value of `source` fits `target` (the lattice leads there)."""
        return supertype(source, target, self.rules) == target

    def _refuse(self, column: str, expected: str, found: str, values: Any) -> None:
        sample = _first_value(values) if values is not None else None
        raise EngineError(
            f"column {column!r} breaks the schema contract: found {found}"
            + (f" (e.g. {sample!r})" if sample is not None else ""),
            file=self.file,
            key="schema",
            expected=expected,
        )

    # -- per batch --------------------------------------------------------------------
    def _cast(
        self, batch: pa.RecordBatch, index: int, arrow_type: pa.DataType, checked: bool
    ) -> tuple[pa.Array, pa.Array | None]:
        """The column cast to `arrow_type`; with the positions of the values that do not fit
        (NULL in the cast column), or None when all fit. Unchecked casts are lossless by the
        lattice."""
        column = batch.column(index)
        if not checked:  # `allow_float` accepts the rounding of integers past 2**53
            exact = pa.types.is_floating(column.type) or not pa.types.is_floating(arrow_type)
            return pc.cast(column, arrow_type, safe=exact), None
        bad = _misfits(column, arrow_type)
        if not len(bad):
            return pc.cast(column, arrow_type, safe=True), None
        keep = pc.invert(_mask(len(column), bad))
        good = pc.cast(pc.if_else(keep, column, pa.nulls(len(column), column.type)), arrow_type)
        return good, bad

    def _null_violations(self, batch: pa.RecordBatch, names: Sequence[str]) -> list[Violation]:
        found = []
        for name in names:
            column = batch.column(name)
            if column.null_count:
                rows = pc.indices_nonzero(column.is_null())
                found.append(
                    Violation(
                        "not_null",
                        name,
                        rows,
                        f"{column.null_count} NULL value(s) in NOT NULL column {name!r}",
                        self.config.rule_for(name, self.can_quarantine),
                    )
                )
        return found

    def _unique_violations(self, batch: pa.RecordBatch, names: Sequence[str]) -> list[Violation]:
        found = []
        for name in names:
            column = batch.column(name)
            distinct = pc.count_distinct(column, mode="only_valid").as_py()
            if distinct == len(column) - column.null_count:
                continue  # the common case, by one hash pass; positions only when repeated
            positions = _arange(len(column))
            table = pa.table({"k": column, "i": positions})
            firsts = table.group_by("k", use_threads=False).aggregate([("i", "min")])
            first = _mask(len(column), firsts.column("i_min").combine_chunks())
            repeats = pc.indices_nonzero(pc.and_(pc.invert(first), column.is_valid()))
            if len(repeats):
                found.append(
                    Violation(
                        "unique",
                        name,
                        repeats,
                        f"{len(repeats)} repeated value(s) in unique column {name!r}, e.g. "
                        f"{_value_at(column, repeats[0].as_py())!r}",
                        self.config.rule_for(name, self.can_quarantine),
                    )
                )
        return found

    def _sort_out(
        self,
        read: pa.RecordBatch,
        cast: pa.RecordBatch,
        plan: SchemaPlan | None,
        violations: list[Violation],
    ) -> Prepared:
        for violation in violations:
            if violation.action == "fail":
                raise EngineError(
                    f"column {violation.column!r} breaks the schema contract: "
                    f"{violation.detail} ({len(violation.rows)} row(s) of a batch of "
                    f"{read.num_rows})",
                    file=self.file,
                    key="schema.on_violation",
                    expected="rows that keep the contract, or `on_violation: quarantine` or `drop`",
                )
        bad = _mask(read.num_rows, pa.concat_arrays([v.rows.cast(pa.int64()) for v in violations]))
        keep = pc.invert(bad)
        rejected: list[tuple[pa.Table, str, str]] = []
        taken = pa.array([False] * read.num_rows)
        for violation in violations:
            rows = _mask(read.num_rows, violation.rows)
            rows = pc.and_(rows, pc.invert(taken))  # a row is quarantined once, for its first rule
            taken = pc.or_(taken, rows)
            if violation.action == "quarantine" and pc.any(rows).as_py():
                rejected.append(
                    (pa.Table.from_batches([read.filter(rows)]), violation.rule, violation.column)
                )
        quarantined = sum(table.num_rows for table, _, _ in rejected)
        dropped = int(pc.sum(bad).as_py() or 0) - quarantined
        return Prepared(plan, cast.filter(keep), rejected, dropped)


def _plain(arrow_type: pa.DataType) -> pa.DataType:
    """A dictionary-encoded type as the type of its values (a database column has no
    dictionary)."""
    return arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type


def _unit_only(old: pa.DataType, new: pa.DataType) -> bool:
    """Timestamps that differ only in unit or in the name of their zone: the column keeps its
    type. An instant is the same in any zone; a value finer than the column's unit breaks the
    contract instead of changing the table (most sources' nanoseconds are whole microseconds)."""
    return (
        pa.types.is_timestamp(old)
        and pa.types.is_timestamp(new)
        and (old.tz is None) == (new.tz is None)
        and old != new
    )


def _arange(length: int) -> pa.Array:
    """0, 1, … length - 1 as int64, built by Arrow (no Python loop)."""
    every = pc.fill_null(pa.nulls(length, pa.bool_()), True)
    return pc.indices_nonzero(every).cast(pa.int64())


def _mask(length: int, positions: pa.Array) -> pa.Array:
    """A boolean array of `length`, true at `positions`."""
    return pc.is_in(_arange(length), value_set=positions.cast(pa.int64()))


def _misfits(column: pa.Array, arrow_type: pa.DataType) -> pa.Array:
    """The positions of the non-NULL values of `column` that `arrow_type` cannot hold exactly.

    A value misfits when the cast fails (overflow, truncation, text that is no number) or, from
    a float, when the cast value is not the same number (Arrow rounds floats into decimals).
    Failing casts are located by halving: a few casts for a few misfits."""
    try:
        converted = pc.cast(column, arrow_type, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        found: list[int] = []
        _halve(column, arrow_type, 0, len(column), found)
        return pa.array(found, pa.int64())
    if pa.types.is_floating(column.type) and not pa.types.is_floating(arrow_type):
        back = pc.cast(converted, column.type)
        return pc.indices_nonzero(pc.fill_null(pc.not_equal(back, column), False))
    return pa.array([], pa.int64())


def _halve(
    column: pa.Array, arrow_type: pa.DataType, start: int, length: int, found: list[int]
) -> None:
    part = column.slice(start, length)
    try:
        converted = pc.cast(part, arrow_type, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if length == 1:
            found.append(start)
            return
        half = length // 2
        _halve(column, arrow_type, start, half, found)
        _halve(column, arrow_type, start + half, length - half, found)
        return
    if pa.types.is_floating(column.type) and not pa.types.is_floating(arrow_type):
        back = pc.cast(converted, column.type)
        differs = pc.indices_nonzero(pc.fill_null(pc.not_equal(back, part), False))
        found.extend(start + i for i in differs.to_pylist())


def _first_value(values: Any) -> str | None:
    """The first non-NULL value of a column, as text."""
    if values is None:
        return None
    valid = values.drop_null()
    return _value_at(valid, 0) if len(valid) else None


def _value_at(values: pa.Array, index: int) -> str:
    """The value at `index` as text (Arrow's own text where Python has no exact value, as
    for nanoseconds)."""
    try:
        return as_text(values[index].as_py())
    except (ValueError, OverflowError):
        return as_text(pc.cast(values.slice(index, 1), pa.string())[0].as_py())


def _first_misfit(column: pa.Array, old: pa.DataType) -> str | None:
    """The first value of `column` that the column's old type could not hold, as text."""
    bad = _misfits(column, old)
    if len(bad):
        return _value_at(column, bad[0].as_py())
    return _first_value(column)
