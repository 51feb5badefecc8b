"""`dataloader preview`: what a run would load, without writing anything.

The source is read from its start and the rows go through the recipe's transforms and the
schema manager, as a run's would; the destination is never opened. The table the rows are
planned against is the one the state backend's copy of the state recorded (`schema history`),
none under `write_mode: overwrite` (a run then writes a new table).
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
from dataloader.recipe.binding import bind_recipe
from dataloader.recipe.loader import RecipeLoader
from dataloader.recipe.models import Recipe
from dataloader.registry import get_registry
from dataloader.schema.history import current_schema
from dataloader.schema.manager import SchemaManager
from dataloader.schema.plan import ColumnChange, key_of
from dataloader.schema.types import JSON_TAG, TYPE_TAG, type_name
from dataloader.secrets import mask_text
from dataloader.state.model import State
from dataloader.transforms.pipeline import TransformPipeline

MIN_CELL = 10  # narrower than this, rows are shown one `column: value` line at a time


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
    destination table (the source's types after the transforms, fitted to the table) and the
    first rows. The source is read from its start; the destination is not opened: the rows are
    planned against the table as the state backend last recorded it."""
    loaded = RecipeLoader(parse_vars(variables)).load(recipe)
    bound = bind_recipe(loaded, get_registry())
    current = None
    if loaded.destination.write_mode != "overwrite":
        stored = State.from_dict(state_backend_for(loaded, state_dir).load(loaded.name))
        current = current_schema(stored.schema_history)
    merging = loaded.destination.write_mode == "merge"
    capabilities = bound.destination.registration.capabilities
    manager = SchemaManager(
        loaded.table_schema,
        current,
        file=loaded.origin_of("schema"),
        merge_keys=(loaded.destination.merge_keys or ()) if merging else (),
        can_quarantine=bool(capabilities and capabilities.quarantine),
    )
    batches, changes, rejected, dropped, first = _read(loaded, bound, manager, limit)
    console = make_console()
    if first is None:
        console.print(f"{loaded.name}: the source has no rows and no columns", markup=False)
        return
    target = manager.current if manager.current is not None else first
    console.print(_schema_table(loaded, target, current is None, changes))
    for change in changes:
        if change.kind != "create":
            console.print(
                mask_text(f"  {describe_change(_as_record(change))}"),
                markup=False,
                soft_wrap=False,
            )
    records: list[dict[str, Any]] = []
    for batch in batches:
        records += batch.slice(0, limit - len(records)).to_pylist()
    if records:
        _print_rows(console, [field.name for field in target], records)
    else:
        console.print("no rows", markup=False)
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


def _read(
    recipe: Recipe, bound: Any, manager: SchemaManager, limit: int
) -> tuple[list[pa.RecordBatch], list[ColumnChange], int, int, pa.Schema | None]:
    """Read and transform batches until `limit` rows (at least one batch), each planned by
    `manager`: the batches as a run would write them, the changes planned, the rows a run
    would quarantine and drop, and the first batch's schema (None: the source yields none)."""
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
    changes: list[ColumnChange] = []
    rejected = dropped = count = 0
    first: pa.Schema | None = None
    try:
        reader = iter(source.read_batches(State()))
        try:
            for raw in reader:
                transformed = pipeline.apply(as_arrow_batch(raw), destination_context)
                arrow = transformed.to_arrow()
                if not arrow.num_columns:
                    continue
                prepared = manager.prepare(arrow)
                if first is None:
                    first = prepared.batch.schema
                if prepared.plan is not None:
                    changes += prepared.plan.changes
                rejected += sum(rows.num_rows for rows, _, _ in prepared.rejected)
                dropped += prepared.dropped
                if prepared.batch.num_rows:
                    batches.append(prepared.batch)
                count += prepared.batch.num_rows
                if count >= limit:
                    break
        finally:
            close = getattr(reader, "close", None)
            if close is not None:
                close()
    finally:
        source.close()
    return batches, changes, rejected, dropped, first


def _as_record(change: ColumnChange) -> dict[str, Any]:
    return {
        "kind": change.kind,
        "column": change.column,
        "before": type_name(change.before) if change.before is not None else None,
        "after": type_name(change.after),
        "reason": change.reason,
        "sample": change.sample,
    }


def _field_type(field: pa.Field) -> str:
    if (field.metadata or {}).get(TYPE_TAG) == JSON_TAG:
        return "json"
    return type_name(field.type)


def _schema_table(
    recipe: Recipe, target: pa.Schema, new_table: bool, changes: list[ColumnChange]
) -> Table:
    table = recipe.destination.options.get("table")
    name = f"table {table}" if table else "the destination table"
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
            _field_type(field),
            "yes" if field.nullable else "no",
            key_of(field) or "",
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
