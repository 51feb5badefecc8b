"""`dataloader run`: run recipes with a progress display and a summary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dataloader.cli.app import make_console, parse_vars, report_error, var_option
from dataloader.engine import Runner, RunOptions, RunResult, state_backend_for
from dataloader.errors import DataLoaderError, RecipeError
from dataloader.recipe.binding import bind_recipe
from dataloader.recipe.loader import RecipeLoader
from dataloader.registry import get_registry

RECIPE_SUFFIXES = (".yaml", ".yml", ".json")


def expand_recipe_paths(paths: tuple[str, ...]) -> list[Path]:
    """Files as given; directories expanded to the recipe files directly inside them."""
    result: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            result += sorted(
                p for p in path.iterdir() if p.suffix in RECIPE_SUFFIXES and p.is_file()
            )
        else:
            result.append(path)
    return result


class ProgressReporter:
    """Rich progress on a terminal; a plain line per commit otherwise."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,} rows"),
            TextColumn("{task.fields[rate]:,.0f} rows/s"),
            TextColumn("{task.fields[batches]} batches"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.task: Any = None

    def __enter__(self) -> ProgressReporter:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.progress.stop()

    def start(self, name: str) -> None:
        self.name = name
        if self.live:
            self.task = self.progress.add_task(name, total=None, rate=0.0, batches=0)

    def estimate(self, rows: int | None) -> None:
        if self.live and rows:
            self.progress.update(self.task, total=rows)

    def update(self, result: RunResult) -> None:
        if self.live:
            self.progress.update(
                self.task,
                completed=result.rows_written,
                rate=result.rows_per_second,
                batches=result.batches,
            )
        else:
            self.console.print(
                f"{self.name}: {result.rows_written:,} rows, {result.batches} batches, {result.rows_per_second:,.0f} rows/s",
                highlight=False,
            )


def summary_table(results: list[tuple[str, RunResult | None, str | None]]) -> Table:
    table = Table(title="Run summary")
    for header, justify in (
        ("recipe", "left"),
        ("status", "left"),
        ("rows read", "right"),
        ("rows written", "right"),
        ("batches", "right"),
        ("seconds", "right"),
        ("rows/s", "right"),
    ):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for name, result, error in results:
        if result is None:
            table.add_row(name, f"[red]failed[/]: {error}", "", "", "", "", "")
            continue
        table.add_row(
            name,
            "[green]ok[/]",
            f"{result.rows_read:,}",
            f"{result.rows_written:,}",
            str(result.batches),
            f"{result.duration_seconds:.2f}",
            f"{result.rows_per_second:,.0f}",
        )
    return table


@click.command()
@click.argument("recipes", nargs=-1, required=True, type=click.Path(exists=True))
@var_option
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    help="Keep state in this directory (local backend), overriding the recipe's `state:`.",
)
@click.option(
    "--full-refresh", is_flag=True, help="Ignore stored state and replace the destination's data."
)
def run(
    recipes: tuple[str, ...], variables: tuple[str, ...], state_dir: str | None, full_refresh: bool
) -> None:
    """Run recipes (files or directories of recipe files). Exit 1 if a load fails, 2 if a recipe is invalid."""
    loader = RecipeLoader(parse_vars(variables))
    console = make_console()
    results: list[tuple[str, RunResult | None, str | None]] = []
    exit_code = 0
    with ProgressReporter(console) as reporter:
        for path in expand_recipe_paths(recipes):
            try:
                recipe = loader.load(path)
                bound = bind_recipe(recipe, get_registry())
                backend = state_backend_for(recipe, state_dir)
                reporter.start(recipe.name)
                options = RunOptions(
                    full_refresh=full_refresh,
                    progress=reporter.update,
                    estimate_callback=reporter.estimate,
                )
                result = Runner(bound, backend, options).run()
            except DataLoaderError as exc:
                report_error(exc)
                results.append((str(path), None, type(exc).__name__))
                exit_code = max(exit_code, 2 if isinstance(exc, RecipeError) else 1)
                continue
            results.append((recipe.name, result, None))
    console.print(summary_table(results))
    if exit_code:
        sys.exit(exit_code)
