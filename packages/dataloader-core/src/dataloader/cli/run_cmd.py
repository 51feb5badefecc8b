"""`dataloader run`: run recipes, several at once if asked, with progress and a summary."""

from __future__ import annotations

import glob
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from dataloader.cli.app import make_console, parse_vars, report_error, var_option
from dataloader.engine import Runner, RunOptions, RunResult, state_backend_for
from dataloader.errors import DataLoaderError, RecipeError
from dataloader.recipe.binding import bind_recipe
from dataloader.recipe.loader import RecipeLoader
from dataloader.registry import get_registry

RECIPE_SUFFIXES = (".yaml", ".yml", ".json")


def expand_recipe_paths(paths: tuple[str, ...]) -> list[Path]:
    """Files as given; directories expanded to the recipe files directly inside them; globs expanded."""
    result: list[Path] = []
    for text in paths:
        matches = sorted(glob.glob(text)) if any(c in text for c in "*?[") else [text]
        if not matches:
            raise click.BadParameter(f"no recipe matches {text!r}", param_hint="RECIPES")
        for match in matches:
            path = Path(match)
            if path.is_dir():
                result += sorted(
                    p for p in path.iterdir() if p.suffix in RECIPE_SUFFIXES and p.is_file()
                )
            elif path.exists():
                result.append(path)
            else:
                raise click.BadParameter(f"{text!r} does not exist", param_hint="RECIPES")
    return result


class ProgressReporter:
    """Rich progress on a terminal, one line per recipe; plain lines per commit otherwise."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.lock = threading.Lock()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,} rows"),
            TextColumn("{task.fields[rate]:,.0f} rows/s"),
            TextColumn("{task.fields[batches]} batches"),
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
            self.progress.add_task(name, total=None, rate=0.0, batches=0) if self.live else None
        )

        def estimate(rows: int | None) -> None:
            if task is not None and rows:
                self.progress.update(task, total=rows)

        def update(result: RunResult) -> None:
            if task is not None:
                self.progress.update(
                    task,
                    completed=result.rows_written,
                    rate=result.rows_per_second,
                    batches=result.batches,
                )
            else:
                with self.lock:
                    self.console.print(
                        f"{name}: {result.rows_written:,} rows, {result.batches} batches, {result.rows_per_second:,.0f} rows/s"
                    )

        return RunOptions(full_refresh=full_refresh, progress=update, estimate_callback=estimate)


def summary_table(results: list[tuple[str, RunResult | None, str | None]]) -> Table:
    table = Table(title="Run summary")
    headers = (
        "recipe",
        "status",
        "rows read",
        "rows written",
        "batches",
        "retries",
        "read s",
        "transform s",
        "write s",
        "commit s",
        "seconds",
        "rows/s",
    )
    for header in headers:
        table.add_column(header, justify="left" if header in ("recipe", "status") else "right")
    for name, result, error in results:
        if error is not None or result is None:
            table.add_row(name, f"[red]failed[/]: {error}", *[""] * (len(headers) - 2))
            continue
        stages = result.stages
        table.add_row(
            name,
            "[green]ok[/]",
            f"{result.rows_read:,}",
            f"{result.rows_written:,}",
            str(result.batches),
            str(sum(stage.retries for stage in stages.values())),
            *(f"{stages[stage].seconds:.2f}" for stage in ("read", "transform", "write", "commit")),
            f"{result.duration_seconds:.2f}",
            f"{result.rows_per_second:,.0f}",
        )
    return table


@click.command()
@click.argument("recipes", nargs=-1, required=True)
@var_option
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    help="Keep state in this directory (local backend), overriding the recipe's `state:`.",
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
    metrics_file: str | None,
) -> None:
    """Run recipes: files, directories of recipe files, or globs. A failed recipe does not stop
    the others; exit 1 if a load failed, 2 if a recipe is invalid."""
    loader = RecipeLoader(parse_vars(variables))
    console = make_console()
    paths = expand_recipe_paths(recipes)

    def run_one(
        path: Path, reporter: ProgressReporter
    ) -> tuple[str, RunResult | None, str | None, int]:
        runner: Runner | None = None
        try:
            recipe = loader.load(path)
            bound = bind_recipe(recipe, get_registry())
            backend = state_backend_for(recipe, state_dir)
            runner = Runner(bound, backend, reporter.options(recipe.name, full_refresh))
            result = runner.run()
        except DataLoaderError as exc:
            failed = runner.result if runner is not None else None
            report_error(exc, failed)
            return str(path), failed, type(exc).__name__, 2 if isinstance(exc, RecipeError) else 1
        return recipe.name, result, None, 0

    with ProgressReporter(console) as reporter:
        if concurrency == 1 or len(paths) == 1:
            outcomes = [run_one(path, reporter) for path in paths]
        else:
            with ThreadPoolExecutor(
                max_workers=concurrency, thread_name_prefix="dataloader-recipe"
            ) as pool:
                outcomes = list(pool.map(lambda p: run_one(p, reporter), paths))
    console.print(summary_table([(name, result, error) for name, result, error, _ in outcomes]))
    if metrics_file:
        from dataloader.metrics import write_prometheus_file

        write_prometheus_file(
            [result for _, result, _, _ in outcomes if result is not None], metrics_file
        )
    exit_code = max(code for *_, code in outcomes)
    if exit_code:
        sys.exit(exit_code)
