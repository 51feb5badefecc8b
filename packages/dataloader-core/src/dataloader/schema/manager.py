"""The one place that decides a batch's fate against the destination table and the contract.

`SchemaManager.prepare(batch)` compares the batch's Arrow schema with the table (as the
destination describes it, or as the state recorded it) and the recipe's `schema:` section, and
returns a `Prepared`: the plan of changes to the table (add a column, widen a type), the batch
cast to the table's types, and the rows that break the contract. The comparison is made once
per distinct batch schema; per batch, only casts, NULL checks and key checks run.

A value reaches a column of another type in one of three ways: a lossless cast (the lattice
leads from its type to the column's), a checked cast (numbers into numbers, times into times,
text parsed into a typed column: each value must come back as itself, or it breaks the
contract), or not at all (the plan refuses: bool and numbers, numbers and times, anything into
text without `allow_text`, nested types into others).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

import pyarrow as pa
import pyarrow.compute as pc

from dataloader.errors import EngineError
from dataloader.schema.config import ColumnSpec, OnViolation, SchemaConfig
from dataloader.schema.lattice import Rules, supertype
from dataloader.schema.plan import KEY_TAG, ColumnChange, SchemaPlan, as_text, key_of
from dataloader.schema.types import JSON_TAG, TYPE_TAG, is_json_name, parse_type, type_name

_ACTION_ORDER = {"fail": 0, "quarantine": 1, "drop": 2}


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
    :param rejected: the rows to quarantine (the batch's columns, as read), in groups with the
        rule they broke and its column.
    :param dropped: how many rows were dropped (`on_violation: drop`).
    """

    plan: SchemaPlan | None
    batch: pa.RecordBatch
    rejected: list[tuple[pa.Table, str, str]] = field(default_factory=list)
    dropped: int = 0


@dataclass(frozen=True)
class _Shape:
    """What one batch schema needs: the plan, the columns kept, the casts, the checks."""

    plan: SchemaPlan | None
    keep: tuple[int, ...]  # the batch's columns that go to the table (NULL-only new ones do not)
    target: pa.Schema  # those columns with the table's types
    casts: tuple[tuple[int, pa.DataType, bool], ...]  # (position in keep, type, checked)
    not_null: tuple[str, ...]
    unique: tuple[str, ...]
    json: tuple[str, ...]  # text columns the table stores as JSON


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
        self._source: str | None = None

    # -- planning ---------------------------------------------------------------------
    def prepare(self, batch: pa.RecordBatch, source: str | None = None) -> Prepared:
        """The plan, the cast batch and the rejected rows for `batch` (read from `source`, a
        file name errors give)."""
        self._source = source
        batch = self._nested_as_json(batch)
        shape = self._shapes.get(batch.schema)
        if shape is None:
            shape = self._plan(batch)
            if shape.plan is None:
                self._shapes[batch.schema] = shape
            else:  # the table changes: the next batch of this shape plans against the new table
                self.current = shape.plan.target
        columns = [batch.column(index) for index in shape.keep]
        violations: list[Violation] = []
        for position, arrow_type, checked in shape.casts:
            read = columns[position]
            columns[position], bad = _cast(read, arrow_type, checked)
            if bad is not None:
                name = shape.target.field(position).name
                sample = _value_at(read, bad[0].as_py())
                violations.append(
                    Violation(
                        "type",
                        name,
                        bad,
                        f"value {sample!r} ({type_name(read.type)}) does not fit "
                        f"{type_name(arrow_type)}",
                        self._rule_for(name),
                    )
                )
        cast = pa.RecordBatch.from_arrays(columns, schema=shape.target)
        violations += self._null_violations(cast, shape.not_null)
        violations += self._json_violations(cast, shape.json)
        if shape.unique:
            violations += self._unique_violations(cast, shape.unique, violations)
        if not violations:
            return Prepared(shape.plan, cast)
        return self._sort_out(batch, cast, shape.plan, violations)

    def _nested_as_json(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Nested values (structs, lists, maps) bound for a column the table stores as JSON
        (Postgres `jsonb`, which reads back as JSON text) as that text."""
        if self.current is None:
            return batch
        stored = {f.name: f for f in self.current}
        fields, columns, changed = list(batch.schema), list(batch.columns), False
        for index, incoming in enumerate(fields):
            target = stored.get(incoming.name)
            if target is not None and pa.types.is_nested(incoming.type) and _tagged_json(target):
                from dataloader.normalize.json_text import to_json_text

                columns[index] = to_json_text(columns[index])
                fields[index] = incoming.with_type(pa.string())
                changed = True
        if not changed:
            return batch
        return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))

    def _plan(self, batch: pa.RecordBatch) -> _Shape:
        config, current = self.config, self.current
        table = {f.name: f for f in current} if current is not None else {}
        fields: list[pa.Field] = []
        keep: list[int] = []
        changes: list[ColumnChange] = []
        casts: list[tuple[int, pa.DataType, bool]] = []
        for index, incoming in enumerate(batch.schema):
            name, values = incoming.name, batch.column(index)
            spec = self.declared.get(name)
            existing = table.get(name)
            declared_type = parse_type(spec.type) if spec is not None and spec.type else None
            source = _plain(incoming.type)
            if spec is None and config.mode == "strict":
                self._refuse(
                    name,
                    "a column of the schema (mode `strict` allows only `schema.columns`)",
                    f"new column {name!r} of type {type_name(source)}",
                    values,
                )
            if existing is None:
                if spec is None and pa.types.is_null(source):
                    continue  # NULLs only, no type to give: left out until a value comes
                if current is not None and not config.allows("new_columns"):
                    self._refuse(
                        name,
                        "no new columns (`schema.evolution.allow_new_columns` is false)",
                        f"new column {name!r} of type {type_name(source)}",
                        values,
                    )
                kind = declared_type or (pa.string() if pa.types.is_null(source) else source)
                target = self._field(name, kind, incoming, added=current is not None)
                changes.append(self._new_column(name, kind, current is None, values))
            else:
                target = existing
                widened = (
                    supertype(existing.type, source, self.rules)
                    if declared_type is None
                    and config.allows("type_changes")
                    and not _unit_only(existing.type, source)
                    else None
                )
                if widened is not None and _is_timestamp_pair(existing.type, widened):
                    widened = pa.timestamp(existing.type.unit, tz=widened.tz)  # see _unit_only
                if widened is not None and widened != existing.type:
                    self._check_zones(name, existing.type, widened, values)
                    changes.append(
                        ColumnChange(
                            "widen_type",
                            name,
                            existing.type,
                            widened,
                            f"the rows carry {type_name(source)}",
                            _first_misfit(values, existing.type),
                        )
                    )
                    target = existing.with_type(widened)
            keep.append(index)
            fields.append(target)
            if incoming.type != target.type:
                checked = self._how(name, source, target.type, values) == "checked"
                casts.append((len(keep) - 1, target.type, checked))
        present = set(batch.schema.names)
        missing = [f for f in (current or []) if f.name not in present]
        absent = [
            spec
            for spec in self.declared.values()
            if spec.type and spec.name not in present and spec.name not in table
        ]
        if (missing or absent) and not config.allows("column_deletion"):
            name = missing[0].name if missing else absent[0].name
            self._refuse(
                name,
                "every column of the table (`schema.evolution.allow_column_deletion` is false)",
                f"rows without column {name!r}",
                None,
            )
        required = {s.name for s in self.declared.values() if not s.nullable or s.primary_key}
        lacking = [f.name for f in missing if not f.nullable] + [
            s.name for s in absent if s.name in required
        ]
        if lacking:
            self._refuse(
                lacking[0], "a value (the column is NOT NULL)", f"rows without {lacking[0]!r}", None
            )
        declared_only = [self._declared_field(spec, current is not None) for spec in absent]
        changes += [
            ColumnChange(
                "create" if current is None else "add_column",
                f.name,
                None,
                f.type,
                "declared in schema.columns",
            )
            for f in declared_only
        ]
        target = pa.schema(fields)
        not_null = tuple(f.name for f in target if not f.nullable or f.name in required)
        unique = tuple(
            f.name for f in target if key_of(f) is not None and f.name not in self.merge_keys
        )
        json_columns = tuple(  # a source that tags its text JSON (Postgres json) is trusted
            f.name
            for f in target
            if _tagged_json(f) and not _tagged_json(batch.schema.field(f.name))
        )
        plan = None
        if changes:
            whole = {f.name: f for f in [*(current or []), *fields, *declared_only]}
            order = [f.name for f in current] if current is not None else []
            order += [name for name in whole if name not in order]
            plan = SchemaPlan(
                create=current is None,
                target=pa.schema([whole[name] for name in order]),
                changes=tuple(changes),
            )
        return _Shape(plan, tuple(keep), target, tuple(casts), not_null, unique, json_columns)

    def _new_column(
        self, name: str, kind: pa.DataType, create: bool, values: pa.Array
    ) -> ColumnChange:
        spec = self.declared.get(name)
        if spec is not None and spec.type:
            reason = "declared in schema.columns"
        else:
            reason = "first seen in the rows" if create else "new column in the rows"
        kind_of_change = "create" if create else "add_column"
        return ColumnChange(kind_of_change, name, None, kind, reason, _first_value(values))

    def _field(self, name: str, kind: pa.DataType, incoming: pa.Field, added: bool) -> pa.Field:
        """A new column's field: its type, nullability, key and JSON tags. A column added to a
        table that has rows is nullable there (those rows have no value); the rows that come
        are still checked against the declared rule."""
        metadata = dict(incoming.metadata or {})
        metadata.pop(KEY_TAG, None)
        spec = self.declared.get(name)
        nullable = True
        if spec is not None:
            nullable = spec.nullable and not spec.primary_key
            if spec.primary_key or spec.unique:
                metadata[KEY_TAG] = b"primary" if spec.primary_key else b"unique"
            if spec.type is not None and is_json_name(spec.type):
                metadata[TYPE_TAG] = JSON_TAG
        return pa.field(name, kind, nullable=nullable or added, metadata=metadata or None)

    def _declared_field(self, spec: ColumnSpec, added: bool) -> pa.Field:
        """The field of a declared column the rows do not carry (NULL in them)."""
        assert spec.type is not None
        return self._field(spec.name, parse_type(spec.type), pa.field(spec.name, pa.null()), added)

    def _how(
        self, column: str, source: pa.DataType, target: pa.DataType, values: Any
    ) -> Literal["lossless", "checked"]:
        """How the values of `source` reach a `target` column; refuses what may not."""
        self._check_zones(column, source, target, values)
        if supertype(target, source, self.rules) == target:  # the table's type first: see lattice
            return "lossless"
        hint = ""
        if self.config.mode != "strict":
            if _is_number(source) and _is_number(target):
                return "checked"
            if _is_time(source) and _is_time(target):
                return "checked"
            if _is_text(source) and _scalar(target) and not _is_text(target):
                return "checked"
            if _is_text(target) and not _is_text(source):
                hint = " (set schema.evolution.allow_text to store it as text)"
        self._refuse(column, type_name(target), type_name(source) + hint, values)

    def _check_zones(
        self, column: str, source: pa.DataType, target: pa.DataType, values: Any
    ) -> None:
        """A timestamp without a zone, or a date, is not an instant: it becomes one (read as
        UTC) only under `naive_timestamps_as_utc`, and an instant never loses its zone."""
        if not (_is_time(source) and _is_time(target)):
            return
        source_aware = pa.types.is_timestamp(source) and source.tz is not None
        target_aware = pa.types.is_timestamp(target) and target.tz is not None
        if source_aware == target_aware or (target_aware and self.rules.naive_as_utc):
            return
        hint = (
            " (set schema.evolution.naive_timestamps_as_utc to read it as UTC)"
            if target_aware
            else " (an instant is not stored without its zone)"
        )
        self._refuse(column, type_name(target), type_name(source) + hint, values)

    def _refuse(self, column: str, expected: str, found: str, values: Any) -> NoReturn:
        sample = _first_value(values) if values is not None else None
        raise EngineError(
            f"column {column!r} breaks the schema contract: found {found}"
            + (f" (e.g. {sample!r})" if sample is not None else "")
            + self._where(),
            file=self.file,
            key="schema",
            expected=expected,
        )

    def _where(self) -> str:
        return f", in {self._source}" if self._source else ""

    def _rule_for(self, column: str) -> OnViolation:
        return self.config.rule_for(column, self.can_quarantine)

    # -- per batch --------------------------------------------------------------------
    def _null_violations(self, batch: pa.RecordBatch, names: Sequence[str]) -> list[Violation]:
        found = []
        for name in names:
            column = batch.column(name)
            if column.null_count:
                found.append(
                    Violation(
                        "not_null",
                        name,
                        pc.indices_nonzero(column.is_null()),
                        f"{column.null_count} NULL value(s) in NOT NULL column {name!r}",
                        self._rule_for(name),
                    )
                )
        return found

    def _json_violations(self, batch: pa.RecordBatch, names: Sequence[str]) -> list[Violation]:
        """Text that is not JSON, in a column the table stores as JSON (parsed one by one:
        only such columns pay for it)."""
        found = []
        for name in names:
            column = batch.column(name)
            if not _is_text(column.type):
                continue
            bad = [
                i
                for i, text in enumerate(column.to_pylist())
                if text is not None and not _is_json(text)
            ]
            if bad:
                found.append(
                    Violation(
                        "json",
                        name,
                        pa.array(bad, pa.int64()),
                        f"{len(bad)} value(s) that are not JSON in column {name!r}, e.g. "
                        f"{_value_at(column, bad[0])!r}",
                        self._rule_for(name),
                    )
                )
        return found

    def _unique_violations(
        self, batch: pa.RecordBatch, names: Sequence[str], earlier: list[Violation]
    ) -> list[Violation]:
        """Values repeated among the rows that broke no other rule: the first such row of a
        value keeps it."""
        rows = _arange(batch.num_rows)
        if earlier:
            broken = _mask(batch.num_rows, _positions(earlier))
            rows = pc.filter(rows, pc.invert(broken))
        found = []
        for name in names:
            column = pc.take(batch.column(name), rows)
            distinct = pc.count_distinct(column, mode="only_valid").as_py()
            if distinct == len(column) - column.null_count:
                continue  # the common case, by one hash pass; positions only when repeated
            table = pa.table({"k": column, "i": _arange(len(column))})
            firsts = table.group_by("k", use_threads=False).aggregate([("i", "min")])
            first = _mask(len(column), firsts.column("i_min").combine_chunks())
            repeats = pc.indices_nonzero(pc.and_(pc.invert(first), column.is_valid()))
            if len(repeats):
                found.append(
                    Violation(
                        "unique",
                        name,
                        pc.take(rows, repeats),
                        f"{len(repeats)} repeated value(s) in unique column {name!r}, e.g. "
                        f"{_value_at(column, repeats[0].as_py())!r}",
                        self._rule_for(name),
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
        """Fail on the first `fail` rule broken; else each broken row is quarantined if any
        rule it broke says so (rather than dropped), once, for the first such rule."""
        violations = sorted(violations, key=lambda v: _ACTION_ORDER[v.action])
        if violations[0].action == "fail":
            violation = violations[0]
            raise EngineError(
                f"column {violation.column!r} breaks the schema contract: "
                f"{violation.detail} ({len(violation.rows)} row(s) of a batch of "
                f"{read.num_rows}){self._where()}",
                file=self.file,
                key="schema.on_violation",
                expected="rows that keep the contract, or `on_violation: quarantine` or `drop`",
            )
        bad = _mask(read.num_rows, _positions(violations))
        rejected: list[tuple[pa.Table, str, str]] = []
        taken = _mask(read.num_rows, pa.array([], pa.int64()))
        for violation in violations:
            rows = pc.and_(_mask(read.num_rows, violation.rows), pc.invert(taken))
            taken = pc.or_(taken, rows)
            if violation.action == "quarantine" and pc.any(rows).as_py():
                rejected.append(
                    (pa.Table.from_batches([read.filter(rows)]), violation.rule, violation.column)
                )
        quarantined = sum(table.num_rows for table, _, _ in rejected)
        dropped = int(pc.sum(bad).as_py() or 0) - quarantined
        return Prepared(plan, cast.filter(pc.invert(bad)), rejected, dropped)


def _cast(
    column: pa.Array, arrow_type: pa.DataType, checked: bool
) -> tuple[pa.Array, pa.Array | None]:
    """`column` cast to `arrow_type`; with the positions of the values that do not fit (NULL in
    the cast column), or None when all fit. Unchecked casts are lossless by the lattice."""
    if not checked:  # `allow_float` accepts the rounding of integers past 2**53
        exact = pa.types.is_floating(column.type) or not pa.types.is_floating(arrow_type)
        return pc.cast(column, arrow_type, safe=exact), None
    bad = _misfits(column, arrow_type)
    if not len(bad):
        return pc.cast(column, arrow_type, safe=True), None
    keep = pc.invert(_mask(len(column), bad))
    good = pc.cast(pc.if_else(keep, column, pa.nulls(len(column), column.type)), arrow_type)
    return good, bad


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


def _is_timestamp_pair(a: pa.DataType, b: pa.DataType) -> bool:
    return pa.types.is_timestamp(a) and pa.types.is_timestamp(b)


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _is_time(t: pa.DataType) -> bool:
    return pa.types.is_timestamp(t) or pa.types.is_date(t)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _scalar(t: pa.DataType) -> bool:
    return not (pa.types.is_nested(t) or pa.types.is_dictionary(t))


def _tagged_json(f: pa.Field) -> bool:
    return (f.metadata or {}).get(TYPE_TAG) in (b"json", b"jsonb")


def _is_json(text: str) -> bool:
    """Strict JSON: no NaN or Infinity (Python's own extension), no lone surrogate escaped in
    a string (`"\\ud800"` decodes to text no database stores)."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return False
    return True


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _arange(length: int) -> pa.Array:
    """0, 1, … length - 1 as int64, built by Arrow (no Python loop)."""
    every = pc.fill_null(pa.nulls(length, pa.bool_()), True)
    return pc.indices_nonzero(every).cast(pa.int64())


def _mask(length: int, positions: pa.Array) -> pa.Array:
    """A boolean array of `length`, true at `positions`."""
    return pc.is_in(_arange(length), value_set=positions.cast(pa.int64()))


def _positions(violations: Sequence[Violation]) -> pa.Array:
    return pa.concat_arrays([v.rows.cast(pa.int64()) for v in violations])


def _misfits(column: pa.Array, arrow_type: pa.DataType) -> pa.Array:
    """The positions of the non-NULL values of `column` that `arrow_type` cannot hold exactly.

    A value misfits when the cast fails (overflow, truncation, text that is no number) or, but
    from text, when it does not come back as itself (a float rounded into a decimal or a
    float32, a time cut to a date). Failing casts are located by halving: a few casts for a
    few misfits."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    found: list[int] = []
    _halve(column, arrow_type, 0, len(column), found)
    return pa.array(found, pa.int64())


def _halve(
    column: pa.Array, arrow_type: pa.DataType, start: int, length: int, found: list[int]
) -> None:
    if length == 0:
        return
    part = column.slice(start, length)
    try:
        converted = pc.cast(part, arrow_type, safe=True)
        differs = _changed(part, converted)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if length == 1:
            found.append(start)
            return
        half = length // 2
        _halve(column, arrow_type, start, half, found)
        _halve(column, arrow_type, start + half, length - half, found)
        return
    found.extend(start + i for i in differs.to_pylist())


def _changed(values: pa.Array, converted: pa.Array) -> pa.Array:
    """The positions where a cast that Arrow calls safe still changed the value: from or to a
    float (rounding, overflow to infinity), a time cut to a date. Between integers and decimals
    Arrow's own check is exact; text is parsed, not compared."""
    source, target = values.type, converted.type
    if _is_text(source):
        return _text_changed(values, converted) if pa.types.is_floating(target) else _NONE
    if not (pa.types.is_floating(source) or pa.types.is_floating(target) or _is_time(source)):
        return _NONE
    back = pc.cast(converted, source, safe=False)
    same = pc.equal(back, values)
    if pa.types.is_floating(source):
        same = pc.or_kleene(same, pc.and_(pc.is_nan(back), pc.is_nan(values)))
    return pc.indices_nonzero(pc.fill_null(pc.invert(same), False))


_NONE = pa.array([], pa.int64())
_INFINITE_WORDS = ("inf", "infinity", "+inf", "+infinity", "-inf", "-infinity")


def _text_changed(text: pa.Array, converted: pa.Array) -> pa.Array:
    """Text parsed into a float column: a finite number written out that overflows to an
    infinity, or one a float32 holds less exactly than a float64 reading of it."""
    words = pc.utf8_lower(pc.utf8_trim_whitespace(text))
    overflow = pc.and_(pc.is_inf(converted), pc.invert(pc.is_in(words, pa.array(_INFINITE_WORDS))))
    changed = overflow
    if converted.type != pa.float64():
        wide = pc.cast(text, pa.float64())
        same = pc.or_kleene(
            pc.equal(pc.cast(converted, pa.float64()), wide),
            pc.and_(pc.is_nan(wide), pc.is_nan(pc.cast(converted, pa.float64()))),
        )
        changed = pc.or_(changed, pc.invert(same))
    return pc.indices_nonzero(pc.fill_null(changed, False))


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
    bad = _misfits(column, old) if _castable(column.type, old) else pa.array([], pa.int64())
    if len(bad):
        return _value_at(column, bad[0].as_py())
    return _first_value(column)


def _castable(source: pa.DataType, target: pa.DataType) -> bool:
    return (_is_number(source) and _is_number(target)) or (_is_time(source) and _is_time(target))
