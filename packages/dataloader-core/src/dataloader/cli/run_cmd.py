"""`dataloader run`: run recipes, several at once if asked, with progress and a summary."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from dataloader.cli.app import Interrupted, make_console, parse_vars, report_error, var_option
from dataloader.cli.display import describe_cursors, plural
from dataloader.engine import Runner, RunOptions, RunResult, state_backend_for
from dataloader.engine.distributed import DistributedRun, create_run
from dataloader.engine.result import RunInterrupted
from dataloader.errors import DataLoaderError, RecipeError
from dataloader.recipe.binding import bind_recipe
from dataloader.recipe.discovery import select_recipes
from dataloader.recipe.loader import RecipeLoader
from dataloader.registry import get_registry
from dataloader.state.model import State


@dataclass(frozen=True)
class Outcome:
    """How one recipe's run ended: for the summary, the exit code and the Ctrl-C message.

    :param name: the recipe's name, or its file when it could not be loaded.
    :param result: what the run did (for a failed or interrupted run: what it committed);
        None when no run started.
    :param error: the error's class name, when the run failed.
    :param exit_code: 0 ok, 1 load failure, 2 invalid recipe, 130 interrupted.
    :param incremental: whether the recipe reads only what is new.
    """

    name: str
    result: RunResult | None
    error: str | None = None
    exit_code: int = 0
    incremental: bool = False

    @property
    def interrupted(self) -> bool:
        return self.exit_code == 130


class ProgressReporter:
    """Rich progress on a terminal, one line per recipe; plain lines per commit otherwise.

    When `stop` is set (Ctrl-C while recipes run in worker threads, which never see the
    signal), a run's next progress report raises `KeyboardInterrupt` in that run: it stops
    as if interrupted, keeping what it committed.
    """

    def __init__(self, console: Console, stop: threading.Event | None = None) -> None:
        self.console = console
        self.stop = stop or threading.Event()
        self.live = console.is_terminal
        self.lock = threading.Lock()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,} rows"),
            TextColumn("{task.fields[rate]:,.0f} rows/s"),
            TextColumn("{task.fields[batches]}"),
            TimeElapsedColumn(),
            console=console,
        )

    def __enter__(self) -> ProgressReporter:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.progress.stop()

    def options(self, name: str, full_refresh: bool) -> RunOptions:
        """Run options whose callbacks report this recipe's progress."""
        task: TaskID | None = (
            self.progress.add_task(
                name, total=None, rate=0.0, batches=plural(0, "batch", "batches")
            )
            if self.live
            else None
        )

        def estimate(rows: int | None) -> None:
            if self.stop.is_set():
                raise KeyboardInterrupt
            if task is not None and rows:
                self.progress.update(task, total=rows)

        def update(result: RunResult) -> None:
            if self.stop.is_set():
                raise KeyboardInterrupt
            batches = plural(result.batches, "batch", "batches")
            if task is not None:
                self.progress.update(
                    task,
                    completed=result.rows_written,
                    rate=result.rows_per_second,
                    batches=batches,
                )
            else:
                with self.lock:
                    self.console.print(
                        f"{name}: {plural(result.rows_written, 'row')}, {batches}, "
                        f"{result.rows_per_second:,.0f} rows/s"
                    )

        return RunOptions(full_refresh=full_refresh, progress=update, estimate_callback=estimate)


# The summary's number columns: (header, cell, rank). Narrow terminals drop the highest
# ranks first, so the table always fits; the order on screen stays this one. The rows of
# child tables and the columns of the schema contract are shown only when a run counted some.
SUMMARY_COLUMNS: tuple[tuple[str, Callable[[RunResult], str], int], ...] = (
    ("rows read", lambda r: f"{r.rows_read:,}", 7),
    ("rows written", lambda r: f"{r.rows_written:,}", 1),
    ("child rows", lambda r: f"{r.child_rows:,}", 2),
    ("quarantined", lambda r: f"{r.rows_quarantined:,}", 3),
    ("dropped", lambda r: f"{r.rows_dropped:,}", 4),
    ("schema changes", lambda r: f"{r.schema_changes:,}", 9),
    ("batches", lambda r: f"{r.batches:,}", 8),
    ("retries", lambda r: str(sum(stage.retries for stage in r.stages.values())), 10),
    ("read s", lambda r: f"{r.stages['read'].seconds:.2f}", 12),
    ("transform s", lambda r: f"{r.stages['transform'].seconds:.2f}", 14),
    ("write s", lambda r: f"{r.stages['write'].seconds:.2f}", 13),
    ("commit s", lambda r: f"{r.stages['commit'].seconds:.2f}", 11),
    ("seconds", lambda r: f"{r.duration_seconds:.2f}", 5),
    ("rows/s", lambda r: f"{r.rows_per_second:,.0f}", 6),
)
WHEN_COUNTED: dict[str, Callable[[RunResult], int]] = {
    "child rows": lambda r: r.child_rows,
    "quarantined": lambda r: r.rows_quarantined,
    "dropped": lambda r: r.rows_dropped,
    "schema changes": lambda r: r.schema_changes,
}


def _status(outcome: Outcome) -> str:
    if outcome.interrupted:
        return "[yellow]interrupted[/]"
    if outcome.error is not None or outcome.result is None:
        return f"[red]failed[/]: {outcome.error}"
    if outcome.result.rows_read == 0:
        return "[green]ok[/], nothing new" if outcome.incremental else "[green]ok[/], no rows"
    return "[green]ok[/]"


def _summary_with(outcomes: list[Outcome], columns: list[int]) -> Table:
    table = Table(title="Run summary")
    table.add_column("recipe", overflow="fold")
    table.add_column("status", overflow="fold")
    for index in columns:
        table.add_column(SUMMARY_COLUMNS[index][0], justify="right", overflow="fold")
    for outcome in outcomes:
        result = outcome.result
        cells = [SUMMARY_COLUMNS[i][1](result) if result else "" for i in columns]
        table.add_row(outcome.name, _status(outcome), *cells)
    return table


def summary_table(outcomes: list[Outcome], console: Console) -> Table:
    """The run summary, one row per recipe, with as many columns as fit the console's width:
    a failed run shows its error's class (the error itself is printed once, above) and what it
    committed; rows quarantined or dropped and schema changes when a run had any."""
    unbounded = console.options.update_width(10_000)  # the width the table wants
    results = [outcome.result for outcome in outcomes if outcome.result is not None]
    shown = [
        index
        for index, (header, _, _) in enumerate(SUMMARY_COLUMNS)
        if header not in WHEN_COUNTED or any(WHEN_COUNTED[header](r) for r in results)
    ]
    by_rank = sorted(shown, key=lambda i: SUMMARY_COLUMNS[i][2])
    for keep in range(len(by_rank), 0, -1):
        table = _summary_with(outcomes, sorted(by_rank[:keep]))
        if console.measure(table, options=unbounded).maximum <= console.width:
            return table
    return _summary_with(outcomes, [])


def interrupt_message(outcomes: list[Outcome]) -> str:
    """The one line printed after Ctrl-C: what each interrupted run committed."""
    parts = []
    for outcome in outcomes:
        if not outcome.interrupted:
            continue
        result = outcome.result
        text = f"{plural(result.rows_written if result else 0, 'row')} of {outcome.name!r}"
        where = describe_cursors(State.from_dict(result.state)) if result and result.state else ""
        parts.append(f"{text} ({where})" if where else text)
    if not parts:
        return "interrupted before a load started; nothing was committed, re-run to start"
    return f"interrupted; committed up to {', '.join(parts)}, re-run to resume"


def run_concurrently(
    paths: list[Path], run_one: Callable[[Path], Outcome], workers: int, stop: threading.Event
) -> list[Outcome]:
    """Run recipes in `workers` threads. Ctrl-C reaches only the main thread: it sets `stop`,
    so running recipes stop at their next batch (keeping what they committed), and starts no
    other; the outcomes so far are then in the `KeyboardInterrupt`'s `outcomes`."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dataloader-recipe")
    futures = [pool.submit(run_one, path) for path in paths]
    try:
        return [future.result() for future in futures]
    except KeyboardInterrupt as exc:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        exc.outcomes = [  # type: ignore[attr-defined]
            f.result() for f in futures if f.done() and not f.cancelled() and not f.exception()
        ]
        raise
    finally:
        pool.shutdown(wait=False)


@click.command()
@click.argument("recipes", nargs=-1, required=True)
@var_option
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    help="Keep the state backend's copy of the state in this directory (local files), instead "
    "of the recipe's `state:`. A destination that keeps its own state (DuckDB, Postgres, files) "
    "still resumes from it: a new directory does not start over (use reset-state, or "
    "--full-refresh).",
)
@click.option(
    "--full-refresh", is_flag=True, help="Ignore stored state and replace the destination's data."
)
@click.option(
    "--concurrency",
    "-j",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="How many recipes run at once.",
)
@click.option(
    "--executor",
    metavar="NAME",
    help="What runs the load, instead of the recipe's `runtime.executor`: `local` (this "
    "process) or an executor plugin (`dask`: the source's partitions on a cluster's workers, "
    "at `runtime.address` or a local cluster).",
)
@click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False),
    help="Write Prometheus text metrics of the runs here (node-exporter textfile collector).",
)
def run(
    recipes: tuple[str, ...],
    variables: tuple[str, ...],
    state_dir: str | None,
    full_refresh: bool,
    concurrency: int,
    executor: str | None,
    metrics_file: str | None,
) -> None:
    """Run recipes: files, directories of recipe files, or globs. A failed recipe does not stop
    the others; exit 1 if a load failed, 2 if a recipe is invalid."""
    loader = RecipeLoader(parse_vars(variables))
    console = make_console()
    selection = select_recipes(recipes, loader)
    paths = selection.recipes
    for skipped in selection.abstract:
        console.print(f"skipped {skipped} (abstract: a parent of other recipes)", highlight=False)

    def run_one(path: Path, reporter: ProgressReporter) -> Outcome:
        runner: Runner | DistributedRun | None = None
        name, incremental = str(path), False
        try:
            recipe = loader.load(path)
            name, incremental = recipe.name, recipe.source.incremental is not None
            bound = bind_recipe(recipe, get_registry())
            backend = state_backend_for(recipe, state_dir)
            runner = create_run(
                bound, backend, reporter.options(recipe.name, full_refresh), executor
            )
            result = runner.run()
        except RunInterrupted as exc:
            return Outcome(name, exc.result, "interrupted", 130, incremental)
        except KeyboardInterrupt:
            return Outcome(name, runner.result if runner else None, "interrupted", 130, incremental)
        except DataLoaderError as exc:
            failed = runner.result if runner is not None else None
            if failed is None or failed.status != "failed":  # the runner logs the failures it saw
                report_error(exc, failed)
            code = 2 if isinstance(exc, RecipeError) else 1
            return Outcome(name, failed, type(exc).__name__, code, incremental)
        return Outcome(name, result, None, 0, incremental)

    stop = threading.Event()
    outcomes: list[Outcome] = []
    try:
        with ProgressReporter(console, stop) as reporter:
            if concurrency == 1 or len(paths) <= 1:
                for path in paths:
                    outcomes.append(run_one(path, reporter))
                    if outcomes[-1].interrupted:
                        raise KeyboardInterrupt
            else:
                outcomes = run_concurrently(
                    paths, lambda p: run_one(p, reporter), concurrency, stop
                )
        console.print(summary_table(outcomes, console))
        if metrics_file:
            from dataloader.metrics import write_prometheus_file

            write_prometheus_file(
                [outcome.result for outcome in outcomes if outcome.result is not None],
                metrics_file,
            )
    except KeyboardInterrupt as exc:
        outcomes = getattr(exc, "outcomes", outcomes)
        raise Interrupted(interrupt_message(outcomes)) from None
    exit_code = max((outcome.exit_code for outcome in outcomes), default=0)
    if exit_code:
        sys.exit(exit_code)
