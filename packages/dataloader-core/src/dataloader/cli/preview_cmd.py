"""`dataloader preview`: what a run would load, without writing anything.

The source is read from its start and the rows go through the recipe's transforms, the
normalization of nested data and the schema manager, as a run's would; the destination is never
opened. The tables the rows are planned against are the ones the state backend's copy of the
state recorded (`schema history`), none under `write_mode: overwrite` (a run then writes new
tables).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from dataloader.batch import as_arrow_batch
from dataloader.cli.app import make_console, parse_vars, var_option
from dataloader.cli.display import display_value, plural
from dataloader.cli.schema_cmds import describe_change
from dataloader.cli.state_cmds import state_dir_option
from dataloader.context import RunContext
from dataloader.engine import state_backend_for
from dataloader.engine.nested import one_row_per_key
from dataloader.normalize.keys import KEY_COLUMNS
from dataloader.normalize.normalizer import Normalizer
from dataloader.recipe.binding import bind_recipe
from dataloader.recipe.loader import RecipeLoader
from dataloader.recipe.models import Recipe
from dataloader.registry import get_registry
from dataloader.schema.history import current_schema, type_word
from dataloader.schema.manager import SchemaManager
from dataloader.schema.plan import ColumnChange, key_of
from dataloader.schema.types import type_name
from dataloader.secrets import mask_text
from dataloader.state.model import State
from dataloader.transforms.pipeline import TransformPipeline

MIN_CELL = 10
_KEY_NAMES = dict(
    zip(KEY_COLUMNS, ("row id", "parent id", "root id", "position"), strict=True)
)  # narrower than this, rows are shown one `column: value` line at a time


@click.command()
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False))
@var_option
@click.option(
    "--rows",
    "-n",
    "limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="How many rows to read and show (at least the source's first batch is read).",
)
@state_dir_option(
    "The local state directory whose recorded table schema the rows are planned against, "
    "instead of the recipe's `state:`."
)
def preview(recipe: str, variables: tuple[str, ...], limit: int, state_dir: str | None) -> None:
    """Show what a run would load, writing nothing: the schema the engine would plan for the
    destination table (the source's types after the transforms, fitted to the table), and with
    `normalization:` the tree of child tables with their columns and keys, then the first rows.
    The source is read from its start; the destination is not opened: the rows are planned
    against the tables as the state backend last recorded them."""
    loaded = RecipeLoader(parse_vars(variables)).load(recipe)
    bound = bind_recipe(loaded, get_registry())
    history: dict[str, Any] = {}
    if loaded.destination.write_mode != "overwrite":
        stored = State.from_dict(state_backend_for(loaded, state_dir).load(loaded.name))
        history = stored.schema_history
    planner = _Planner(loaded, bound, history)
    batches, first = _read(loaded, bound, planner, limit)
    console = make_console()
    if first is None:
        console.print(f"{loaded.name}: the source has no rows and no columns", markup=False)
        return
    if planner.normalizer is not None:
        console.print(_tree(planner), markup=False, soft_wrap=False)
    for name, planned in planner.tables.items():
        target = planned.manager.current if planned.manager.current is not None else planned.first
        if target is None:
            continue
        console.print(_schema_table(loaded, name, target, planned.new_table, planned.changes))
        for change in planned.changes:
            if change.kind != "create":
                console.print(
                    mask_text(f"  {describe_change(_as_record(change))}"),
                    markup=False,
                    soft_wrap=False,
                )
    root = planner.tables[planner.root]
    target = root.manager.current if root.manager.current is not None else root.first
    assert target is not None
    records: list[dict[str, Any]] = []
    for batch in batches:
        records += batch.slice(0, limit - len(records)).to_pylist()
    if records:
        _print_rows(console, [field.name for field in target], records)
    else:
        console.print("no rows", markup=False)
    rejected = sum(planned.rejected for planned in planner.tables.values())
    dropped = sum(planned.dropped for planned in planner.tables.values())
    if rejected or dropped:
        broken = rejected + dropped
        fates = [f"quarantine {rejected:,}"] * bool(rejected) + [f"drop {dropped:,}"] * bool(
            dropped
        )
        console.print(
            f"{plural(broken, 'row')} read {'breaks' if broken == 1 else 'break'} the schema "
            f"contract (not shown): a run would {' and '.join(fates)}",
            markup=False,
            soft_wrap=False,
        )


class _Planned:
    """One table as the preview plans it: its schema manager and what it planned."""

    def __init__(self, manager: SchemaManager, new_table: bool) -> None:
        self.manager = manager
        self.new_table = new_table
        self.first: pa.Schema | None = None
        self.changes: list[ColumnChange] = []
        self.rows = self.rejected = self.dropped = 0
        self.parent: str | None = None

    def prepare(self, data: pa.RecordBatch) -> pa.RecordBatch:
        prepared = self.manager.prepare(data)
        if self.first is None:
            self.first = prepared.batch.schema
        if prepared.plan is not None:
            self.changes += prepared.plan.changes
        self.rejected += sum(rows.num_rows for rows, _, _ in prepared.rejected)
        self.dropped += prepared.dropped
        self.rows += prepared.batch.num_rows
        return prepared.batch


class _Planner:
    """The tables a run would write, planned as the engine plans them: the main table and,
    with `normalization:`, its child tables (the destination's name for the main table is
    asked of the connector, which is not opened)."""

    def __init__(self, recipe: Recipe, bound: Any, history: dict[str, Any]) -> None:
        self.recipe = recipe
        self.history = history
        capabilities = bound.destination.registration.capabilities
        self.can_quarantine = bool(capabilities and capabilities.quarantine)
        merging = recipe.destination.write_mode == "merge"
        self.merge_keys = tuple(recipe.destination.merge_keys or ()) if merging else ()
        table = recipe.destination.options.get("table")
        self.root = str(table) if table else "the destination table"
        self.normalizer: Normalizer | None = None
        config = recipe.normalization
        if config is not None and config.enabled:
            self.root = bound.destination.create().table_name() or recipe.name
            keys = (
                recipe.destination.merge_keys if recipe.destination.write_mode == "merge" else None
            )
            keys = keys or [c.name for c in recipe.table_schema.columns if c.primary_key]
            limit = capabilities.max_identifier_length if capabilities is not None else None
            self.normalizer = Normalizer(
                config, self.root, key_columns=keys, max_identifier_length=limit
            )
        current = current_schema(history)
        self.tables: dict[str, _Planned] = {
            self.root: _Planned(self._manager(recipe.table_schema, current), current is None)
        }

    def _manager(self, contract: Any, current: pa.Schema | None) -> SchemaManager:
        return SchemaManager(
            contract,
            current,
            file=self.recipe.origin_of("schema"),
            merge_keys=self.merge_keys,
            can_quarantine=self.can_quarantine,
        )

    def prepare(self, data: pa.RecordBatch) -> pa.RecordBatch:
        """Plan one batch into every table; the main table's rows as a run would write them."""
        if self.normalizer is None:
            return self.tables[self.root].prepare(data)
        if self.merge_keys:
            incremental = self.recipe.source.incremental
            cursor = incremental.cursor_column if incremental is not None else None
            data = one_row_per_key(data, self.merge_keys, cursor)
        normalized = self.normalizer.normalize(data)
        root = self.tables[self.root].prepare(normalized.root)
        for child in normalized.children:
            planned = self.tables.get(child.spec.name)
            if planned is None:
                recorded = self.history.get("tables", {}).get(child.spec.name, {})
                current = current_schema(recorded)
                contract = self.recipe.table_schema.for_table(child.spec.name, [])
                planned = _Planned(self._manager(contract, current), current is None)
                planned.parent = child.spec.parent
                self.tables[child.spec.name] = planned
            if child.data.num_rows:
                planned.prepare(child.data)
        return root


def _read(
    recipe: Recipe, bound: Any, planner: _Planner, limit: int
) -> tuple[list[pa.RecordBatch], pa.Schema | None]:
    """Read and transform batches until `limit` rows (at least one batch), each planned by
    `planner`: the main table's batches as a run would write them, and the first batch's
    schema (None: the source yields none)."""
    started = datetime.now(UTC)
    common: dict[str, Any] = {
        "recipe_name": recipe.name,
        "run_id": f"preview-{started:%Y%m%dT%H%M%S}",
        "started_at": started,
        "batch_size": recipe.runtime.batch_size,
        "recipe_file": recipe.file,
        "incremental": recipe.source.incremental,
        "retries": recipe.runtime.retries,
        "parallelism": recipe.runtime.parallelism,
    }
    destination_context = RunContext(
        role="destination", write_mode=recipe.destination.write_mode, **common
    )
    pipeline = TransformPipeline([step.create() for step in bound.steps])
    source = bound.source.create()
    source.open(RunContext(role="source", **common))
    batches: list[pa.RecordBatch] = []
    count = 0
    first: pa.Schema | None = None
    try:
        reader = iter(source.read_batches(State()))
        try:
            for raw in reader:
                transformed = pipeline.apply(as_arrow_batch(raw), destination_context)
                arrow = transformed.to_arrow()
                if not arrow.num_columns:
                    continue
                prepared = planner.prepare(arrow)
                if first is None:
                    first = prepared.schema
                if prepared.num_rows:
                    batches.append(prepared)
                count += prepared.num_rows
                if count >= limit:
                    break
        finally:
            close = getattr(reader, "close", None)
            if close is not None:
                close()
    finally:
        source.close()
    return batches, first


def _tree(planner: _Planner) -> str:
    """The tables a run would write, each child indented under its parent, with the rows of
    the sample each gets."""
    lines = ["tables a run would write (rows of the sample):"]
    depth: dict[str, int] = {}
    for name, planned in planner.tables.items():
        level = depth[planned.parent] + 1 if planned.parent in depth else 0
        depth[name] = level
        lines.append(f"{'  ' * (level + 1)}{name}: {plural(planned.rows, 'row')}")
    lines += [
        "keys: a child row's _dl_parent_id is its parent's _dl_id, _dl_root_id",
        "the main table row's; _dl_list_idx is its position in the list",
    ]
    return "\n".join(lines)


def _as_record(change: ColumnChange) -> dict[str, Any]:
    return {
        "kind": change.kind,
        "column": change.column,
        "before": type_name(change.before) if change.before is not None else None,
        "after": type_name(change.after),
        "reason": change.reason,
        "sample": change.sample,
    }


def _schema_table(
    recipe: Recipe, table: str, target: pa.Schema, new_table: bool, changes: list[ColumnChange]
) -> Table:
    name = table if table == "the destination table" else f"table {table}"
    if new_table:
        title = f"{name}, as a run would create it"
    elif changes:
        title = f"{name}, as a run would change it"
    else:
        title = f"{name}: the rows fit it as it is"
    kinds = {
        change.column: "added"
        if change.kind == "add_column"
        else f"was {type_name(change.before)}"
        if change.kind == "widen_type" and change.before is not None
        else ""
        for change in changes
    }
    rendered = Table(title=title, title_justify="left")
    for header in ("column", "type", "nullable", "key", "change"):
        rendered.add_column(header, overflow="fold")
    for field in target:
        rendered.add_row(
            field.name,
            type_word(field),
            "yes" if field.nullable else "no",
            key_of(field) or _KEY_NAMES.get(field.name, ""),
            kinds.get(field.name, ""),
        )
    return rendered


def _cell(value: Any) -> str:
    """A value as the rows table shows it: text as it is, the rest as a recipe writes it."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, default=str, ensure_ascii=False)
    else:
        text = display_value(value)
    return mask_text(text)


def _print_rows(console: Console, names: list[str], records: list[dict[str, Any]]) -> None:
    """The rows in a table when each column gets `MIN_CELL` characters, else one block per row;
    a column a row lacks shows as null (a run writes NULL there)."""
    title = f"first {plural(len(records), 'row')}"
    if len(names) * (MIN_CELL + 3) + 1 <= console.width:
        table = Table(title=title, title_justify="left")
        for name in names:
            table.add_column(name, overflow="fold")
        for record in records:
            table.add_row(*(_cell(record.get(name)) for name in names))
        console.print(table)
        return
    console.print(title, markup=False)
    width = max(len(name) for name in names)
    for index, record in enumerate(records, 1):
        console.print(f"-- row {index}", markup=False)
        for name in names:
            console.print(
                f"{name.ljust(width)} : {_cell(record.get(name))}", markup=False, soft_wrap=False
            )
