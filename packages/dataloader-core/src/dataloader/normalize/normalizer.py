"""Nested records into flat tables: structs into columns, lists into child tables (or exploded
rows, or JSON columns), every row keyed so a child row finds its parent and its root.

Everything works on whole Arrow arrays: a plan is made once per input schema (names, tables,
collisions), then each batch is cut along it with StructArray.flatten, pc.list_flatten, take
and numpy over list lengths — never a Python step per row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataloader.normalize.config import NormalizationConfig
from dataloader.normalize.json_text import to_json_text
from dataloader.normalize.key_text import key_text
from dataloader.normalize.keys import (
    LIST_INDEX,
    PARENT_ID,
    ROOT_ID,
    ROW_ID,
    child_lanes,
    hash_rows,
    short_hash,
    uuid_text,
)
from dataloader.normalize.naming import NameRequest, NormalizationError, assign_names
from dataloader.schema.quarantine import QUARANTINE_SUFFIX
from dataloader.schema.types import JSON_TAG, TYPE_TAG, UUID_TAG

_STRATEGY_ACTION = {
    "auto": "create_table",
    "flatten": "json_column",
    "explode": "explode",
    "json_column": "json_column",
}
_UUID = {TYPE_TAG: UUID_TAG}  # destinations with a uuid type store the ids in it
_ROOT_KEYS = (pa.field(ROW_ID, pa.string(), nullable=False, metadata=_UUID),)
_CHILD_KEYS = (
    pa.field(ROW_ID, pa.string(), nullable=False, metadata=_UUID),
    pa.field(PARENT_ID, pa.string(), nullable=False, metadata=_UUID),
    pa.field(ROOT_ID, pa.string(), nullable=False, metadata=_UUID),
    pa.field(LIST_INDEX, pa.int64(), nullable=False),
)


@dataclass(frozen=True)
class TableSpec:
    """One table the normalization writes.

    :param name: the table's name (the root table's is the destination's).
    :param path: the list it comes from, as field names from the root record (`()` for the
        root table; a list of lists adds the segment `value`).
    :param parent: the parent table's name; None for the root table.
    :param level: 0 for the root table, 1 for its child tables, and so on.
    """

    name: str
    path: tuple[str, ...]
    parent: str | None
    level: int


@dataclass(frozen=True)
class ChildBatch:
    """The rows of one child table from one input batch."""

    spec: TableSpec
    data: pa.RecordBatch


@dataclass(frozen=True)
class NormalizedBatch:
    """One input batch, normalized.

    :param root: the flattened root rows, then `_dl_id`.
    :param children: every child table the batch's schema gives (parents before children),
        with 0 rows when the batch has no element of its list.
    """

    root: pa.RecordBatch
    children: tuple[ChildBatch, ...]


@dataclass(frozen=True)
class TableLayout:
    """A table a schema gives, without data (what `preview` shows).

    :param spec: the table.
    :param schema: its columns: data columns, then `key_columns`.
    :param key_columns: the row keys the normalization adds (`_dl_id`; child tables also
        `_dl_parent_id`, `_dl_root_id`, `_dl_list_idx`).
    """

    spec: TableSpec
    schema: pa.Schema
    key_columns: tuple[str, ...]


# The plan: one tree of nodes per input schema, mirroring its types.


@dataclass
class _Column:
    slot: int
    json: bool


@dataclass
class _Struct:
    fields: list[tuple[int, _Node]]


@dataclass
class _Table:
    plan: _TablePlan


@dataclass
class _Explode:
    element: _Node
    index_slot: int
    salt: int


_Node = _Column | _Struct | _Table | _Explode


@dataclass
class _TablePlan:
    logical_name: str
    path: tuple[str, ...]
    parent: _TablePlan | None
    level: int
    requests: list[NameRequest] = field(default_factory=list)
    fields: list[pa.Field] = field(default_factory=list)
    children: list[_TablePlan] = field(default_factory=list)
    node: _Node | None = None
    spec: TableSpec | None = None
    schema: pa.Schema | None = None

    def walk(self) -> list[_TablePlan]:
        """This table and its descendants, parents first, in schema order."""
        tables = [self]
        for child in self.children:
            tables += child.walk()
        return tables


def _salt(path: tuple[str, ...]) -> int:
    """A number for the list at `path`, mixed into its elements' ids so that the elements of
    two lists of one row (in two tables) never share an id."""
    return int(short_hash(json.dumps(list(path))), 16)


def _element_ids(ids: np.ndarray, salt: int, rows: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The ids of list elements: a hash of the parent row's id, the list and the position."""
    salted = child_lanes(ids, np.arange(len(ids), dtype=np.int64), np.full(len(ids), salt))
    return child_lanes(salted, rows, positions)


def _dotted(path: tuple[str, ...]) -> str:
    return repr(".".join(path))


def _is_list(arrow_type: pa.DataType) -> bool:
    return (
        pa.types.is_list(arrow_type)
        or pa.types.is_large_list(arrow_type)
        or pa.types.is_fixed_size_list(arrow_type)
        or pa.types.is_map(arrow_type)
    )


def _decoded_type(arrow_type: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(arrow_type) and pa.types.is_nested(arrow_type.value_type):
        return arrow_type.value_type
    return arrow_type


def _map_as_list(arrow_type: pa.MapType) -> pa.DataType:
    return pa.list_(
        pa.struct(
            [
                pa.field("key", arrow_type.key_type, nullable=False),
                pa.field("value", arrow_type.item_type),
            ]
        )
    )


def _element_field(arrow_type: pa.DataType) -> pa.Field:
    if pa.types.is_map(arrow_type):
        return _map_as_list(arrow_type).value_field
    return arrow_type.value_field


class _Planner:
    """Builds the plan of one input schema: nodes, tables, final names."""

    def __init__(self, config: NormalizationConfig, root_table: str, limit: int | None) -> None:
        self.config = config
        self.root_table = root_table
        self.limit = limit
        self.json_fields = set(config.json_fields)

    def plan(self, schema: pa.Schema) -> _TablePlan:
        root = _TablePlan(self.root_table, (), None, 0)
        root.node = _Struct(
            [
                (index, self._field(root, item, (item.name,), (item.name,), 0, top=True))
                for index, item in enumerate(schema)
            ]
        )
        self._name(root)
        return root

    def _label(self, path: tuple[str, ...]) -> str:
        return "field " + _dotted(path)

    def _column(
        self,
        table: _TablePlan,
        rel: tuple[str, ...],
        path: tuple[str, ...],
        out: pa.Field,
        json: bool,
        label: str | None = None,
    ) -> _Column:
        name = self.config.separator.join(rel)
        table.requests.append(NameRequest(name, path, label or self._label(path)))
        if json:
            out = pa.field(name, pa.string(), nullable=True, metadata={TYPE_TAG: JSON_TAG})
        table.fields.append(out)
        return _Column(len(table.fields) - 1, json)

    def _field(
        self,
        table: _TablePlan,
        item: pa.Field,
        path: tuple[str, ...],
        rel: tuple[str, ...],
        level: int,
        top: bool = False,
    ) -> _Node:
        arrow_type = _decoded_type(item.type)
        dotted = ".".join(path)
        out = item if top else item.with_nullable(True)
        if dotted in self.json_fields:
            return self._column(table, rel, path, out, json=True)
        if pa.types.is_struct(arrow_type):
            if level >= self.config.max_depth or self.config.strategy == "json_column":
                return self._column(table, rel, path, out, json=True)
            return _Struct(
                [
                    (i, self._field(table, sub, (*path, sub.name), (*rel, sub.name), level + 1))
                    for i, sub in enumerate(arrow_type)
                ]
            )
        if not _is_list(arrow_type):
            return self._column(table, rel, path, out, json=False)
        rule = self.config.rule_for(dotted)
        if rule is not None:
            action = rule.action
        elif level >= self.config.max_depth:
            action = "json_column"
        else:
            action = _STRATEGY_ACTION[self.config.strategy]
        if action == "json_column":
            return self._column(table, rel, path, out, json=True)
        element = _element_field(arrow_type)
        if action == "create_table":
            name = rule.table_name if rule is not None and rule.table_name else None
            if name is None:
                name = self.config.separator.join((table.logical_name, *rel))
            child = _TablePlan(name, path, table, table.level + 1)
            table.children.append(child)
            child.node = self._element(child, element, path, (), level + 1, explode=False)
            return _Table(child)
        node = self._element(table, element, path, rel, level + 1, explode=True)
        index = self._column(
            table,
            (*rel, "idx"),
            (*path, "idx"),
            pa.field("idx", pa.int64()),
            json=False,
            label=f"the list positions of {self._label(path)}",
        )
        return _Explode(node, index.slot, _salt(path))

    def _element(
        self,
        table: _TablePlan,
        item: pa.Field,
        path: tuple[str, ...],
        rel: tuple[str, ...],
        level: int,
        explode: bool,
    ) -> _Node:
        arrow_type = _decoded_type(item.type)
        if pa.types.is_struct(arrow_type):
            return _Struct(
                [
                    (i, self._field(table, sub, (*path, sub.name), (*rel, sub.name), level))
                    for i, sub in enumerate(arrow_type)
                ]
            )
        value = pa.field("value", item.type, nullable=True, metadata=item.metadata)
        if _is_list(arrow_type):
            return self._field(table, value, (*path, "value"), (*rel, "value"), level)
        if explode:
            return self._column(
                table, rel, path, value, json=False, label=f"the elements of {self._label(path)}"
            )
        return self._column(table, ("value",), (*path, "value"), value, json=False)

    def _name(self, root: _TablePlan) -> None:
        tables = root.walk()
        naming = self.config.naming
        requests = [NameRequest(root.logical_name, (), f"the table {root.logical_name!r}")] + [
            NameRequest(table.logical_name, table.path, "the list " + _dotted(table.path))
            for table in tables[1:]
        ]
        quarantine = root.logical_name + QUARANTINE_SUFFIX
        reserved = NameRequest(quarantine, (), f"the quarantine table {quarantine!r}")
        names = assign_names([*requests, reserved], self.limit, naming.on_collision, "table")
        names = names[:-1]
        by_plan = {id(table): name for table, name in zip(tables, names, strict=True)}
        for table, name in zip(tables, names, strict=True):
            keys = _ROOT_KEYS if table.parent is None else _CHILD_KEYS
            reserved = [NameRequest(key.name, (), f"the row key {key.name}") for key in keys]
            columns = assign_names(
                reserved + table.requests,
                self.limit,
                naming.on_collision,
                f"column (in table {name!r})",
            )[len(keys) :]
            fields = [
                item.with_name(final) for item, final in zip(table.fields, columns, strict=True)
            ]
            table.schema = pa.schema(fields + list(keys))
            parent = by_plan[id(table.parent)] if table.parent is not None else None
            table.spec = TableSpec(name, table.path, parent, table.level)


# Running a plan over one batch.


@dataclass
class _Frame:
    """Rows being built for one table: columns by slot, lists still to cut, and the keys
    (`carried`: the parent's and the root's id text, and the list positions or rows)."""

    ids: np.ndarray
    carried: dict[str, np.ndarray | pa.Array]
    columns: dict[int, pa.Array] = field(default_factory=dict)
    tables: list[tuple[_TablePlan, pa.Array]] = field(default_factory=list)
    explodes: list[tuple[_Explode, pa.Array]] = field(default_factory=list)
    text: pa.Array | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def id_text(self) -> pa.Array:
        """The rows' ids as UUID text, made once: children take their parent's and root's ids
        from it (Arrow's take copies the strings faster than they are written again)."""
        if self.text is None:
            self.text = uuid_text(self.ids)
        return self.text


def _gather(values: np.ndarray | pa.Array, rows: np.ndarray) -> np.ndarray | pa.Array:
    """`values` at `rows`: an Arrow array by Arrow's take, numpy rows along axis 0."""
    if isinstance(values, pa.Array):
        return values.take(pa.array(rows))
    return np.take(values, rows, axis=0)


def _decoded(array: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(array.type) and pa.types.is_nested(array.type.value_type):
        return array.dictionary_decode()
    return array


def _elements(array: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """The elements of a list array, each one's row and its position in the row's list.
    Null lists give no element (whatever their offsets say)."""
    array = _decoded(array)
    if pa.types.is_map(array.type):
        array = array.cast(_map_as_list(array.type))
    lengths = pc.list_value_length(array).fill_null(0)
    counts = lengths.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    values = pc.list_flatten(array)
    rows = np.repeat(np.arange(len(array), dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    positions = np.arange(len(values), dtype=np.int64) - np.repeat(starts, counts)
    return values, rows, positions


def _fill(node: _Node, array: pa.Array, frame: _Frame) -> None:
    if isinstance(node, _Column):
        frame.columns[node.slot] = to_json_text(array) if node.json else array
    elif isinstance(node, _Struct):
        values = _decoded(array).flatten()
        for index, child in node.fields:
            _fill(child, values[index], frame)
    elif isinstance(node, _Table):
        frame.tables.append((node.plan, array))
    else:
        frame.explodes.append((node, array))


def _take(array: pa.Array, indices: pa.Array | None) -> pa.Array:
    return array if indices is None else array.take(indices)


def _explode_all(frame: _Frame) -> _Frame:
    """The frame with every exploded list joined into its rows (the cross product of several
    lists, in field order; an empty or null list keeps its row, with nulls)."""
    while frame.explodes:
        node, array = frame.explodes.pop(0)
        values, rows, positions = _elements(array)
        sub = _Frame(_element_ids(frame.ids, node.salt, rows, positions), {"row": rows})
        _fill(node.element, values, sub)
        sub.columns[node.index_slot] = pa.array(positions, pa.int64())
        sub = _explode_all(sub)
        rows = sub.carried["row"]
        counts = np.bincount(rows, minlength=len(frame))
        kept = counts > 0
        if kept.all():
            repeat, picked = rows, None
            ids = sub.ids
        else:
            total = np.where(kept, counts, 1)
            repeat = np.repeat(np.arange(len(frame), dtype=np.int64), total)
            valid = np.repeat(kept, total)
            where = np.zeros(len(repeat), dtype=np.int64)
            where[valid] = np.arange(len(sub), dtype=np.int64)
            picked = pa.array(where, mask=~valid)
            ids = np.take(frame.ids, repeat, axis=0)
            ids[valid] = sub.ids
        same = len(repeat) == len(frame)
        take = None if same else pa.array(repeat)
        frame = _Frame(
            ids,
            {
                name: values if same else _gather(values, repeat)
                for name, values in frame.carried.items()
            },
            {slot: _take(column, take) for slot, column in frame.columns.items()},
            [(plan, _take(lists, take)) for plan, lists in frame.tables],
            [(later, _take(lists, take)) for later, lists in frame.explodes],
        )
        for slot, column in sub.columns.items():
            frame.columns[slot] = _take(column, picked)
        frame.tables += [(plan, _take(lists, picked)) for plan, lists in sub.tables]
    return frame


def _table_batch(plan: _TablePlan, frame: _Frame) -> pa.RecordBatch:
    assert plan.schema is not None
    arrays = [frame.columns[slot] for slot in range(len(plan.fields))]
    arrays.append(frame.id_text())
    if plan.parent is not None:
        arrays += [
            frame.carried["parent"],
            frame.carried["root"],
            pa.array(frame.carried["index"], pa.int64()),
        ]
    return pa.RecordBatch.from_arrays(arrays, schema=plan.schema)


class Normalizer:
    """Normalizes batches of nested records as a `normalization:` section says.

    :param config: the section.
    :param root_table: the destination's name for the root table.
    :param key_columns: the columns whose values key a root row (merge keys, else the
        contract's primary key); none: a hash of the whole row keys it.
    :param max_identifier_length: the destination's longest identifier in UTF-8 bytes
        (`naming.max_identifier_length` overrides it); None for no limit.
    """

    def __init__(
        self,
        config: NormalizationConfig,
        root_table: str,
        *,
        key_columns: Sequence[str] = (),
        max_identifier_length: int | None = None,
    ) -> None:
        self.config = config
        self.root_table = root_table
        self.key_columns = tuple(key_columns)
        limit = config.naming.max_identifier_length
        self.limit = limit if limit is not None else max_identifier_length
        self._plans: dict[bytes, _TablePlan] = {}

    def _plan(self, schema: pa.Schema) -> _TablePlan:
        cache_key = schema.serialize().to_pybytes()
        plan = self._plans.get(cache_key)
        if plan is None:
            self._check_keys(schema)
            plan = _Planner(self.config, self.root_table, self.limit).plan(schema)
            self._plans[cache_key] = plan
        return plan

    def _check_keys(self, schema: pa.Schema) -> None:
        for name in self.key_columns:
            indices = schema.get_all_field_indices(name)
            if len(indices) != 1:
                found = "is not a field" if not indices else "is more than one field"
                raise NormalizationError(
                    f"key column {name!r} {found} of the records",
                    value=name,
                    expected="a top-level scalar field of every record",
                    context={"fields": schema.names},
                )
            arrow_type = _decoded_type(schema.field(indices[0]).type)
            if pa.types.is_nested(arrow_type):
                raise NormalizationError(
                    f"key column {name!r} is nested ({arrow_type}), it cannot key a row",
                    value=name,
                    expected="a top-level scalar field of every record",
                )

    def tables(self, schema: pa.Schema) -> list[TableLayout]:
        """The tables records of `schema` give, parents first: names, columns with their
        Arrow types, and the row keys each gets."""
        layouts = []
        for plan in self._plan(schema).walk():
            assert plan.spec is not None and plan.schema is not None
            keys = _ROOT_KEYS if plan.parent is None else _CHILD_KEYS
            layouts.append(TableLayout(plan.spec, plan.schema, tuple(key.name for key in keys)))
        return layouts

    def normalize(self, batch: pa.RecordBatch) -> NormalizedBatch:
        """The root rows and every child table's rows of one batch."""
        plan = self._plan(batch.schema)
        if self.key_columns:  # as SQL compares keys, in any order of the key columns
            keys = sorted(self.key_columns)
            ids = hash_rows([key_text(batch.column(name)) for name in keys], keys)
        else:
            ids = hash_rows(batch.columns, batch.schema.names)
        frame = _Frame(ids, {})
        assert isinstance(plan.node, _Struct)
        for index, node in plan.node.fields:
            _fill(node, batch.column(index), frame)
        frame = _explode_all(frame)
        batches: dict[int, pa.RecordBatch] = {}
        _cut_children(frame, batches)
        children = tuple(
            ChildBatch(table.spec, batches[id(table)])
            for table in plan.walk()[1:]
            if table.spec is not None
        )
        return NormalizedBatch(_table_batch(plan, frame), children)


def _cut_children(frame: _Frame, out: dict[int, pa.RecordBatch]) -> None:
    """The rows of every child table under `frame`'s rows, by plan."""
    text = frame.id_text()
    roots = frame.carried.get("root", text)
    for plan, lists in frame.tables:
        values, rows, positions = _elements(lists)
        carried = {
            "parent": _gather(text, rows),
            "root": _gather(roots, rows),
            "index": positions,
        }
        child = _Frame(_element_ids(frame.ids, _salt(plan.path), rows, positions), carried)
        assert plan.node is not None
        _fill(plan.node, values, child)
        child = _explode_all(child)
        out[id(plan)] = _table_batch(plan, child)
        _cut_children(child, out)
