"""`dataloader show-state`, `reset-state` and `import-state`: each under the recipe's run lock.

A destination that keeps its state with its data (`transactional_state`: DuckDB, Postgres,
files) is where a run resumes from; the state backend holds a mirror and the run history. So
the commands read, reset and write both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import click
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from dataloader.cli.app import err_console, make_console, parse_vars, var_option
from dataloader.cli.display import describe_cursors, display_value, plural
from dataloader.context import RunContext
from dataloader.engine import state_backend_for
from dataloader.errors import Problem, StateDocumentError, StateError
from dataloader.recipe.binding import BoundRecipe, bind_recipe
from dataloader.recipe.loader import RecipeLoader
from dataloader.recipe.models import Recipe
from dataloader.registry import get_registry
from dataloader.schema.history import current_columns
from dataloader.state.backend import StateBackend
from dataloader.state.model import PROGRESS_KEYS, State
from dataloader.state.nanotimestamp import NanoTimestamp


def state_dir_option(help_text: str) -> Any:
    return click.option("--state-dir", type=click.Path(file_okay=False), help=help_text)


def location(backend: StateBackend, recipe_name: str) -> str:
    """Where `backend` keeps the recipe's state, as a person finds it (a path, a URL, a table)."""
    describe = getattr(backend, "location", None)
    if describe is not None:
        return str(describe(recipe_name))
    return f"the {getattr(backend, 'name', type(backend).__name__)} state backend"


def keeps_state(bound: BoundRecipe) -> bool:
    capabilities = bound.destination.registration.capabilities
    return capabilities is not None and capabilities.transactional_state


@contextmanager
def opened_destination(recipe: Recipe, bound: BoundRecipe, write_mode: str) -> Iterator[Any]:
    """The recipe's destination, opened to read or write its state record (not its data)."""
    destination = bound.destination.create()
    destination.open(
        RunContext(
            recipe_name=recipe.name,
            run_id="state-command",
            started_at=datetime.now(UTC),
            role="destination",
            recipe_file=recipe.file,
            write_mode=write_mode,  # type: ignore[arg-type]
        )
    )
    try:
        yield destination
    finally:
        destination.close()


def destination_state(
    recipe_path: str, variables: tuple[str, ...], state_dir: str | None, *, reset: bool
) -> tuple[State, State | None, Recipe, str]:
    """The state backend's copy of the state and the destination's own, read (and with `reset`
    deleted) under the recipe's lock: opening a destination may write (a file destination
    finishes a pending commit), so none of this runs beside a run.

    :raises StateError: with `reset`, when a run holds the lock.
    :returns: `(stored, committed, recipe, location)`; `committed` is None when the destination
        keeps no state, or, for `show-state`, when a run holds the lock (the stored copy is
        then what that run mirrored at its last commit).
    """
    recipe = RecipeLoader(parse_vars(variables)).load(recipe_path)
    bound = bind_recipe(recipe, get_registry())
    backend = state_backend_for(recipe, state_dir)
    where = location(backend, recipe.name)
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
            return State.from_dict(backend.load(recipe.name)), None, recipe, where
        stored = State.from_dict(backend.load(recipe.name))
        committed: State | None = None
        if keeps_state(bound):
            with opened_destination(recipe, bound, recipe.destination.write_mode) as destination:
                committed = destination.load_state()
                if reset:
                    destination.reset_state()
        if reset:
            backend.delete(recipe.name)
    return stored, committed, recipe, where


def with_progress_of(stored: State, committed: State | None) -> State:
    """The state a run would start from: the destination's read position, the backend's history."""
    if committed is not None:
        for key in PROGRESS_KEYS:
            setattr(stored, key, getattr(committed, key))
    return stored


# Rows of child tables and counts of the schema contract: a column each in the runs table
# when a run had any.
CONTRACT_COUNTS = (
    ("child_rows", "child rows"),
    ("rows_quarantined", "quarantined"),
    ("rows_dropped", "dropped"),
    ("schema_changes", "schema changes"),
)


def _runs_table(runs: list[dict[str, Any]], console: Console) -> Table:
    """The last runs, in as many columns as fit: `batches`, then the run id, go first. Rows of
    child tables, rows quarantined or dropped and schema changes are shown when a run had any."""
    counted = [(key, header) for key, header in CONTRACT_COUNTS if any(r.get(key) for r in runs)]
    headers = [
        "run",
        "started (UTC)",
        "status",
        "rows written",
        *(header for _, header in counted),
        "batches",
        "seconds",
    ]
    cells = [
        [
            str(run.get("run_id", "")),
            _started(run.get("started_at")),
            str(run.get("status", "")),
            f"{run.get('rows_written', 0):,}",
            *(f"{run.get(key, 0):,}" for key, _ in counted),
            f"{run.get('batches', 0):,}",
            f"{run.get('duration_seconds', 0):.2f}",
        ]
        for run in runs
    ]
    unbounded = console.options.update_width(10_000)
    for dropped in ((), ("batches",), ("batches", "run"), ("batches", "run", "started (UTC)")):
        keep = [i for i, header in enumerate(headers) if header not in dropped]
        table = Table(title="last runs")
        for i in keep:
            table.add_column(headers[i], overflow="fold", justify="right" if i >= 3 else "left")
        for row in cells:
            table.add_row(*(row[i] for i in keep))
        if console.measure(table, options=unbounded).maximum <= console.width:
            break
    return table


def _started(value: Any) -> str:
    try:
        return datetime.fromisoformat(str(value)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(value or "")


@click.command("show-state")
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False))
@var_option
@state_dir_option("The local state directory to read, instead of the recipe's `state:`.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored state document as JSON.")
def show_state(
    recipe: str, variables: tuple[str, ...], state_dir: str | None, as_json: bool
) -> None:
    """Show a recipe's state: cursor values, files read and the last runs (of a running recipe:
    the state backend's copy, as of the run's last commit). Values are printed as a recipe
    writes them (ISO 8601 timestamps); `--json` gives the typed document `import-state` takes."""
    stored, committed, loaded, _ = destination_state(recipe, variables, state_dir, reset=False)
    state = with_progress_of(stored, committed)
    if as_json:
        click.echo(json.dumps(state.to_dict(), indent=2, sort_keys=True))
        return
    console = make_console()
    console.print(f"[bold]{loaded.name}[/]")
    cursors = ", ".join(
        f"{column} = {display_value(value)}" for column, value in state.cursor_values.items()
    )
    console.print(f"cursor: {cursors or 'none (the next run reads from the start)'}")
    files = state.watermarks.get("files", {})
    if files:
        complete = sum(1 for entry in files.values() if entry.get("complete"))
        console.print(f"files read: {complete} complete, {len(files) - complete} partial")
    versions = state.schema_history.get("versions") or []
    if versions:
        columns = plural(len(current_columns(state.schema_history)), "column")
        console.print(
            f"schema: version {versions[-1]['version']}, {columns} (see `dataloader schema "
            "history`)",
            markup=False,
            soft_wrap=False,
        )
    console.print(_runs_table(state.checkpoints[-10:], console))


@click.command("reset-state")
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False))
@var_option
@state_dir_option(
    "The local state directory whose state file is deleted, instead of the recipe's `state:`. "
    "The destination's own state record is reset too; the destination's rows stay."
)
def reset_state(recipe: str, variables: tuple[str, ...], state_dir: str | None) -> None:
    """Forget a recipe's state (in the state backend and in the destination's state record):
    the next run reads the source from the start. The destination's rows stay. Fails while a
    run of the recipe holds its lock."""
    stored, committed, loaded, where = destination_state(recipe, variables, state_dir, reset=True)
    state = with_progress_of(stored, committed)
    forgot = [part for part in (describe_cursors(state),) if part]
    if state.checkpoints:
        forgot.append(f"the history of {plural(len(state.checkpoints), 'run')}")
    places = where + (
        f" and the {loaded.destination.type} destination's state record"
        if committed is not None
        else ""
    )
    what = f"forgot {'; '.join(forgot)}" if forgot else "there was no state to forget"
    click.echo(f"state of {loaded.name!r} reset: {what} (in {places}).")
    again = (
        " and, with write_mode append, loads rows already there again"
        if loaded.destination.write_mode == "append"
        else ""
    )
    click.echo(
        f"The destination's rows stay: the next run reads the source from the start{again}; "
        "`dataloader run --full-refresh` replaces them instead."
    )


# -- import-state ---------------------------------------------------------------------------


def read_document(text: str, file: str) -> State:
    """A state document (as `show-state --json` prints it) as a `State`.

    :raises StateDocumentError: not JSON, not an object, unknown keys, or values of the wrong
        shape or type (every problem at once).
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateDocumentError(
            f"not a state document: invalid JSON at line {exc.lineno} ({exc.msg})",
            file=file,
            expected="the JSON printed by `dataloader show-state RECIPE --json`",
        ) from None
    if not isinstance(document, dict):
        raise StateDocumentError(
            f"not a state document: a JSON {type(document).__name__}, not an object",
            file=file,
            expected="a JSON object, as printed by `dataloader show-state RECIPE --json`",
        )
    known = list(State.model_fields)
    problems = [
        Problem("unknown key", file=file, key=key, expected=f"one of {', '.join(known)}")
        for key in document
        if key not in known
    ]
    try:
        state = State.from_dict({k: v for k, v in document.items() if k in known})
    except ValidationError as exc:
        problems += [
            Problem(
                error["msg"],
                file=file,
                key=".".join(str(part) for part in error["loc"]),
                expected="the shape `show-state --json` prints",
            )
            for error in exc.errors()
        ]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        problems.append(
            Problem(
                f"a typed value cannot be read: {exc}",
                file=file,
                expected='typed values as `show-state --json` writes them, e.g. {"$datetime": '
                '"2024-06-01T10:00:00+00:00"}',
            )
        )
    if problems:
        raise StateDocumentError("not a valid state document", problems=problems, file=file)
    return state


def check_cursors(state: State, recipe: Recipe, current: State, file: str) -> State:
    """The document's cursor values, checked against the recipe's cursor column and converted
    to the type of the cursor stored now (an ISO text for a timestamp cursor, a number for a
    numeric one, …). With no stored cursor, the recipe's `initial_value` gives the type when it
    has one; otherwise the document's own type is taken.

    :raises StateDocumentError: a cursor column the recipe does not read, or a value that is
        not of (or convertible to) the cursor's type.
    """
    incremental = recipe.source.incremental
    column = (
        incremental.cursor_column
        if incremental is not None and incremental.strategy == "cursor"
        else None
    )
    problems = []
    for name, value in state.cursor_values.items():
        key = f"cursor_values.{name}"
        if name != column:
            expected = (
                f"the recipe's cursor column {column!r} (source.incremental.cursor_column)"
                if column
                else "no cursor values: the recipe reads no cursor (source.incremental)"
            )
            problems.append(
                Problem("not the recipe's cursor column", file=file, key=key, expected=expected)
            )
            continue
        reference = current.cursor_values.get(name)
        if reference is None and incremental is not None:
            initial = incremental.initial_value
            reference = None if isinstance(initial, str) else initial
        try:
            state.cursor_values[name] = as_cursor_type(value, reference)
        except ValueError as exc:
            problems.append(
                Problem(
                    str(exc),
                    file=file,
                    key=key,
                    value=display_value(value),
                    expected=_type_hint(reference),
                )
            )
    if problems:
        raise StateDocumentError(
            "the state document does not fit the recipe", problems=problems, file=file
        )
    return state


_CURSOR_TYPES = (int, float, Decimal, str, bytes, date, datetime, NanoTimestamp)


def as_cursor_type(value: Any, reference: Any) -> Any:
    """`value` as a cursor of the type of `reference` (None: any cursor type).

    :raises ValueError: when it is not, and cannot be read as one.
    """
    if isinstance(value, bool) or not isinstance(value, (*_CURSOR_TYPES, tuple)):
        raise ValueError(f"a {type(value).__name__} cannot be a cursor value")
    if reference is None or (type(value) is type(reference) and not isinstance(value, datetime)):
        return value
    if isinstance(reference, NanoTimestamp):
        if isinstance(value, str):
            parsed = _timestamp(value, aware=reference.tz is not None)
            _same_zone_kind(parsed.tzinfo is not None, reference.tz is not None)
            try:  # all nine fractional digits, when the text has them
                return NanoTimestamp.fromisoformat(value, reference.tz)
            except ValueError:
                value = parsed
        if isinstance(value, datetime):
            _same_zone_kind(value.tzinfo is not None, reference.tz is not None)
            return NanoTimestamp.from_datetime(value, reference.tz)
        if isinstance(value, NanoTimestamp):
            _same_zone_kind(value.tz is not None, reference.tz is not None)
            return value
    elif isinstance(reference, datetime):
        if isinstance(value, str):
            value = _timestamp(value, aware=reference.tzinfo is not None)
        if isinstance(value, datetime):
            _same_zone_kind(value.tzinfo is not None, reference.tzinfo is not None)
            return value.astimezone(reference.tzinfo) if reference.tzinfo else value
    elif isinstance(reference, date) and isinstance(value, str):
        return date.fromisoformat(value)
    elif isinstance(reference, (int, float, Decimal)) and isinstance(
        value, (str, int, float, Decimal)
    ):
        number = Decimal(str(value))
        if isinstance(reference, int):
            if number != number.to_integral_value():
                raise ValueError("not a whole number")
            return int(number)
        return float(number) if isinstance(reference, float) else number
    raise ValueError(f"a {_type_name(value)}, but the cursor is a {_type_name(reference)}")


def _timestamp(text: str, *, aware: bool) -> datetime:
    """ISO text as a timestamp; without an offset, UTC when the cursor has a time zone (as a
    recipe's `initial_value` is read)."""
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if aware and parsed.tzinfo is None else parsed


def _same_zone_kind(value_aware: bool, cursor_aware: bool) -> None:
    if value_aware != cursor_aware:
        raise ValueError(
            "a timestamp with a time zone offset, but the cursor has none"
            if value_aware
            else "a timestamp without a time zone, but the cursor has one"
        )


def _type_name(value: Any) -> str:
    if isinstance(value, (NanoTimestamp, datetime)):
        return "timestamp"
    return {date: "date", str: "text", bytes: "binary value", Decimal: "decimal"}.get(
        type(value), type(value).__name__
    )


def _type_hint(reference: Any) -> str:
    if reference is None:
        return "a number, text, a date or a timestamp"
    return f"a {_type_name(reference)}, like the stored cursor {display_value(reference)}"


@click.command("import-state")
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False))
@click.argument("state_file", type=click.File("r"))
@var_option
@state_dir_option("The local state directory to write, instead of the recipe's `state:`.")
def import_state(
    recipe: str, state_file: Any, variables: tuple[str, ...], state_dir: str | None
) -> None:
    """Store a state document (from `show-state --json`; `-` for stdin) where the next run
    reads it: the state backend, and the destination's own state record when it keeps one. The
    cursor is checked against the recipe's cursor column and type. Exit 2 when the document
    is invalid; fails while a run of the recipe holds its lock."""
    loaded = RecipeLoader(parse_vars(variables)).load(recipe)
    state = read_document(state_file.read(), state_file.name)
    bound = bind_recipe(loaded, get_registry())
    backend = state_backend_for(loaded, state_dir)
    with backend.lock(loaded.name):
        stored = State.from_dict(backend.load(loaded.name))
        current = stored
        if keeps_state(bound):
            with opened_destination(loaded, bound, "append") as destination:
                current = destination.load_state() or State()
        state = check_cursors(state, loaded, current, state_file.name)
        if not state.checkpoints:
            state.checkpoints = stored.checkpoints
        places = location(backend, loaded.name)
        if keeps_state(bound):
            # An empty commit in `append` mode writes the state record and nothing else.
            with opened_destination(loaded, bound, "append") as destination:
                destination.begin(state)
                destination.commit(state)
            places += f" and the {loaded.destination.type} destination's state record"
        backend.save(loaded.name, state.to_dict())
    cursors = describe_cursors(state) or "no cursor"
    click.echo(f"state of {loaded.name!r} imported ({cursors}) into {places}")
