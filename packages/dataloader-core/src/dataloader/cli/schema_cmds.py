"""`dataloader schema show` and `dataloader schema history`: the destination table's schema as
the committed state recorded it (`dataloader.schema.history`), read the way `show-state`
reads the state: the destination's own record when it keeps one, else the state backend's."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from dataloader.cli.app import make_console, var_option
from dataloader.cli.state_cmds import (
    destination_state,
    state_dir_option,
    with_progress_of,
)
from dataloader.recipe.models import Recipe
from dataloader.schema.history import current_columns
from dataloader.secrets import mask_text


def _history(
    recipe: str, variables: tuple[str, ...], state_dir: str | None
) -> tuple[Recipe, dict[str, Any], str]:
    """The recipe, its `schema_history` and where it was read from."""
    stored, committed, loaded, where = destination_state(recipe, variables, state_dir, reset=False)
    state = with_progress_of(stored, committed)
    source = (
        f"the {loaded.destination.type} destination's state record"
        if committed is not None
        else where
    )
    return loaded, state.schema_history, source


def _table_name(recipe: Recipe, child: str | None = None) -> str:
    table = child or recipe.destination.options.get("table")
    what = f"table {table}" if table else "the destination"
    return f"{what} ({recipe.destination.type})"


def _of_table(recipe: Recipe, recorded: dict[str, Any], table: str | None) -> dict[str, Any]:
    """The history of the main table, or of child table `table` (normalized nested data)."""
    if table is None:
        return recorded
    children = recorded.get("tables", {})
    if table not in children:
        known = ", ".join(sorted(children)) or "none recorded yet"
        raise click.UsageError(
            f"{recipe.name}: no child table {table!r} in the schema history (child tables: {known})"
        )
    return children[table]


def _children_note(console: Console, recorded: dict[str, Any], table: str | None) -> None:
    children = sorted(recorded.get("tables", {}))
    if table is None and children:
        _echo(console, f"child tables (--table NAME): {', '.join(children)}")


table_option = click.option(
    "--table",
    "table",
    metavar="NAME",
    help="A child table of normalized nested data, instead of the main table.",
)


def _when(at: Any) -> str:
    """An ISO time as `2024-06-01 10:00:00 UTC`."""
    return str(at or "").replace("T", " ").replace("+00:00", " UTC")


def _echo(console: Console, text: str, indent: int = 0) -> None:
    """A line wrapped at the console's width, its continuation indented two more columns."""
    for line in textwrap.wrap(
        mask_text(text),
        width=console.width,
        initial_indent=" " * indent,
        subsequent_indent=" " * (indent + 2),
        break_on_hyphens=False,
    ) or [""]:
        console.print(line, markup=False, highlight=False)


def _no_history(recipe: Recipe, console: Console) -> None:
    _echo(
        console,
        f"{recipe.name}: no schema recorded yet for {_table_name(recipe)}; a run records "
        "the table's schema when it creates or first writes the table.",
    )


def _columns_table(columns: list[dict[str, Any]]) -> Table:
    table = Table()
    for header in ("column", "type", "nullable", "key", "origin"):
        table.add_column(header, overflow="fold")
    for column in columns:
        table.add_row(
            str(column["name"]),
            str(column["type"]),
            "yes" if column.get("nullable", True) else "no",
            column.get("key") or "",
            str(column.get("origin", "")),
        )
    return table


def describe_change(change: dict[str, Any]) -> str:
    """`widen_type qty: int → decimal(20,1) (the rows carry decimal(2,1); e.g. 3.5)`."""
    before, after = change.get("before"), change.get("after")
    types = f"{before} → {after}" if before and after else after or f"was {before}"
    why = change.get("reason") or ""
    if change.get("sample") is not None:
        why = f"{why}; e.g. {change['sample']}" if why else f"e.g. {change['sample']}"
    return f"{change['kind']} {change['column']}: {types}" + (f" ({why})" if why else "")


@click.group()
def schema() -> None:
    """Show the destination table's schema and the versions it went through."""


@schema.command("show")
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False))
@var_option
@state_dir_option("The local state directory to read, instead of the recipe's `state:`.")
@table_option
@click.option("--json", "as_json", is_flag=True, help="Print the schema as JSON.")
def show(
    recipe: str, variables: tuple[str, ...], state_dir: str | None, table: str | None, as_json: bool
) -> None:
    """Show the destination table's current schema: each column's type, nullability, key and
    origin (declared in `schema.columns`, inferred in a version, or found in the destination),
    and the schema's version. Read from the committed state, as `show-state` reads it."""
    loaded, everything, source = _history(recipe, variables, state_dir)
    recorded = _of_table(loaded, everything, table)
    versions = recorded.get("versions") or []
    last = versions[-1] if versions else None
    columns = current_columns(recorded)
    if as_json:
        document = {
            "recipe": loaded.name,
            **({"table": table} if table else {}),
            "version": last["version"] if last else None,
            "run_id": last["run_id"] if last else None,
            "at": last["at"] if last else None,
            "columns": columns,
        }
        click.echo(json.dumps(document, indent=2))
        return
    console = make_console()
    if last is None:
        _no_history(loaded, console)
        return
    _echo(
        console,
        f"{loaded.name}: {_table_name(loaded, table)}, schema version {last['version']}, "
        f"made by run {last['run_id']} at {_when(last['at'])} (from {source})",
    )
    console.print(_columns_table(columns))
    _children_note(console, everything, table)


@schema.command("history")
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False))
@var_option
@state_dir_option("The local state directory to read, instead of the recipe's `state:`.")
@table_option
@click.option("--json", "as_json", is_flag=True, help="Print the versions as JSON.")
def history(
    recipe: str, variables: tuple[str, ...], state_dir: str | None, table: str | None, as_json: bool
) -> None:
    """Show every version of the destination table's schema, oldest first: its number, the run
    that made it and when, and each change (kind, column, type before → after, reason, a
    sample value that triggered it)."""
    loaded, everything, source = _history(recipe, variables, state_dir)
    recorded = _of_table(loaded, everything, table)
    versions = recorded.get("versions") or []
    if as_json:
        document = {"recipe": loaded.name, **({"table": table} if table else {})}
        click.echo(json.dumps({**document, "versions": versions}, indent=2))
        return
    console = make_console()
    if not versions:
        _no_history(loaded, console)
        return
    count = f"{len(versions)} schema version{'s' if len(versions) != 1 else ''}"
    _echo(console, f"{loaded.name}: {_table_name(loaded, table)}, {count} (from {source})")
    for version in versions:
        console.print()
        _echo(
            console,
            f"version {version['version']} · {_when(version['at'])} · run {version['run_id']}",
        )
        changes = version.get("changes") or []
        for change in changes:
            _echo(console, describe_change(change), indent=2)
        if not changes:
            _echo(console, "no change: the table as it was found", indent=2)
