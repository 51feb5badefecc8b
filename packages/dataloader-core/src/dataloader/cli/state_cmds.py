"""`dataloader show-state`, `reset-state` and `import-state`: each under the recipe's run lock."""

from __future__ import annotations

import json
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import click
from rich.table import Table

from dataloader.cli.app import err_console, make_console, parse_vars, var_option
from dataloader.context import RunContext
from dataloader.engine import state_backend_for
from dataloader.errors import StateError
from dataloader.recipe.binding import bind_recipe
from dataloader.recipe.loader import RecipeLoader
from dataloader.registry import get_registry
from dataloader.state.model import State

state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    help="The local state directory, overriding the recipe's `state:`.",
)


def _destination_state(
    recipe_path: str, variables: tuple[str, ...], state_dir: str | None, *, reset: bool
) -> tuple[State, State | None, str]:
    """The state backend's copy of the state and the destination's own, read (and with `reset`
    deleted) under the recipe's lock: opening a destination may write (a file destination
    finishes a pending commit), so none of this runs beside a run.

    :raises StateError: with `reset`, when a run holds the lock.
    :returns: `(stored, committed, name)`; `committed` is None when the destination keeps no
        state, or, for `show-state`, when a run holds the lock (the stored copy is then what
        that run mirrored at its last commit).
    """
    recipe = RecipeLoader(parse_vars(variables)).load(recipe_path)
    bound = bind_recipe(recipe, get_registry())
    backend = state_backend_for(recipe, state_dir)
    with ExitStack() as stack:
        try:
            stack.enter_context(backend.lock(recipe.name))
        except StateError as exc:
            if reset:
                raise
            err_console.print(
                f"note: {exc}; showing the state backend's copy, as of the run's last commit",
                markup=False,
            )
            return State.from_dict(backend.load(recipe.name)), None, recipe.name
        stored = State.from_dict(backend.load(recipe.name))
        committed: State | None = None
        capabilities = bound.destination.registration.capabilities
        if capabilities is not None and capabilities.transactional_state:
            destination = bound.destination.create()
            context = RunContext(
                recipe_name=recipe.name,
                run_id="inspect",
                started_at=datetime.now(UTC),
                role="destination",
                recipe_file=recipe.file,
                write_mode=recipe.destination.write_mode,
            )
            destination.open(context)
            try:
                committed = destination.load_state()
                if reset:
                    destination.reset_state()
            finally:
                destination.close()
        if reset:
            backend.delete(recipe.name)
    return stored, committed, recipe.name


@click.command("show-state")
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False))
@var_option
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the stored state document as JSON.")
def show_state(
    recipe: str, variables: tuple[str, ...], state_dir: str | None, as_json: bool
) -> None:
    """Show a recipe's state: cursor values, watermarks and the last runs (of a running recipe:
    the state backend's copy, as of the run's last commit)."""
    stored, committed, name = _destination_state(recipe, variables, state_dir, reset=False)
    if committed is not None:
        stored.cursor_values, stored.watermarks = committed.cursor_values, committed.watermarks
    if as_json:
        click.echo(json.dumps(stored.to_dict(), indent=2, sort_keys=True))
        return
    console = make_console()
    console.print(f"[bold]{name}[/]")
    console.print(
        "cursor values: "
        + (", ".join(f"{k} = {v!r}" for k, v in stored.cursor_values.items()) or "none")
    )
    files = stored.watermarks.get("files", {})
    if files:
        console.print(
            f"files read: {sum(1 for f in files.values() if f.get('complete'))} complete, {sum(1 for f in files.values() if not f.get('complete'))} partial"
        )
    table = Table(title="last runs")
    for header in ("run", "started", "status", "rows written", "batches", "seconds"):
        table.add_column(header)
    for run in stored.checkpoints[-10:]:
        table.add_row(
            run.get("run_id", ""),
            run.get("started_at", ""),
            run.get("status", ""),
            f"{run.get('rows_written', 0):,}",
            str(run.get("batches", "")),
            str(run.get("duration_seconds", "")),
        )
    console.print(table)


@click.command("reset-state")
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False))
@var_option
@state_dir_option
def reset_state(recipe: str, variables: tuple[str, ...], state_dir: str | None) -> None:
    """Forget a recipe's state (in the state backend and the destination): the next run starts
    over. Fails while a run of the recipe holds its lock."""
    _, _, name = _destination_state(recipe, variables, state_dir, reset=True)
    click.echo(f"state of {name!r} reset")


@click.command("import-state")
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False))
@click.argument("state_file", type=click.File("r"))
@var_option
@state_dir_option
def import_state(
    recipe: str, state_file: Any, variables: tuple[str, ...], state_dir: str | None
) -> None:
    """Store a state document (from `show-state --json`, `-` for stdin) in the recipe's state
    backend. Fails while a run of the recipe holds its lock."""
    loaded = RecipeLoader(parse_vars(variables)).load(recipe)
    try:
        document = json.load(state_file)
    except json.JSONDecodeError as exc:
        raise StateError(
            f"not a state document: invalid JSON at line {exc.lineno} ({exc.msg})",
            file=state_file.name,
        ) from None
    state = State.from_dict(document)  # validates the shape and the typed values
    backend = state_backend_for(loaded, state_dir)
    with backend.lock(loaded.name):
        backend.save(loaded.name, state.to_dict())
    click.echo(f"state of {loaded.name!r} imported into {type(backend).__name__}")
