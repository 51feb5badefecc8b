"""`dataloader plan`: how the recipe's source would split its read into partitions.

The source is opened and asked for its plan (`plan_partitions`) from the state a run would
start from (its incremental window, the files already read); no row is read and the
destination's data is not touched (its state record is read, as `show-state` reads it).
"""

from __future__ import annotations

from datetime import UTC, datetime

import click
from rich.table import Table

from dataloader.cli.app import make_console, var_option
from dataloader.cli.display import plural
from dataloader.cli.state_cmds import destination_state, state_dir_option, with_progress_of
from dataloader.context import RunContext
from dataloader.executors import LOCAL, PARTITIONS_PER_WORKER, executor_name, partition_count
from dataloader.partitions import Partition, total
from dataloader.recipe.binding import bind_recipe
from dataloader.registry import get_registry
from dataloader.secrets import mask_text

DEFAULT_PARTITIONS = 8  # when `runtime.parallelism` is 1


@click.command()
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False))
@var_option
@click.option(
    "--partitions",
    "-n",
    "count",
    type=click.IntRange(min=1, max=100_000),
    default=None,
    help=f"How many partitions to ask for (default: what a distributed run asks for, "
    f"{PARTITIONS_PER_WORKER} per worker, under `runtime.executor` other than local; else "
    f"runtime.parallelism, or {DEFAULT_PARTITIONS} when that is 1); a source may make fewer.",
)
@state_dir_option(
    "The local state directory the run would start from, instead of the recipe's `state:`."
)
def plan(recipe: str, variables: tuple[str, ...], count: int | None, state_dir: str | None) -> None:
    """Show how the source would split its read into partitions (for a distributed run): each
    partition's rows or files, estimated rows and size, and the total. Planned from the state a
    run would start from (an incremental window, files already read); reads no rows."""
    stored, committed, loaded, _ = destination_state(recipe, variables, state_dir, reset=False)
    state = with_progress_of(stored, committed)
    parallelism = loaded.runtime.parallelism
    if executor_name(loaded) != LOCAL:  # what the distributed run asks for
        wanted = count or partition_count(loaded.runtime)
    else:
        wanted = count or (parallelism if parallelism > 1 else DEFAULT_PARTITIONS)
    bound = bind_recipe(loaded, get_registry())
    source = bound.source.create()
    source.open(
        RunContext(
            recipe_name=loaded.name,
            run_id=f"plan-{datetime.now(UTC):%Y%m%dT%H%M%S}",
            started_at=datetime.now(UTC),
            role="source",
            batch_size=loaded.runtime.batch_size,
            recipe_file=loaded.file,
            incremental=loaded.source.incremental,
            retries=loaded.runtime.retries,
            parallelism=parallelism,
        )
    )
    try:
        partitions = source.plan_partitions(state, wanted)
    finally:
        source.close()
    console = make_console()
    if partitions is None:
        console.print(f"source {loaded.source.type} cannot be split", markup=False)
        return
    if not partitions:
        console.print(f"{loaded.name}: nothing to read, no partition", markup=False)
        return
    console.print(_table(loaded.name, loaded.source.type, partitions, wanted))


def _table(name: str, source_type: str, partitions: list[Partition], wanted: int) -> Table:
    title = f"{name}: {plural(len(partitions), 'partition')} of the {source_type} source"
    if len(partitions) < wanted:
        title += f" ({wanted:,} asked for)"
    table = Table(title=mask_text(title), title_justify="left", show_footer=True)
    rows = total([p.estimated_rows for p in partitions])
    size = total([p.estimated_bytes for p in partitions])
    table.add_column("#", "total", justify="right")
    table.add_column("partition", "", overflow="fold")
    table.add_column("est. rows", _count(rows), justify="right", no_wrap=True)
    table.add_column("est. size", _size(size), justify="right", no_wrap=True)
    for partition in partitions:
        table.add_row(
            str(partition.index),
            mask_text(partition.label),
            _count(partition.estimated_rows),
            _size(partition.estimated_bytes),
        )
    return table


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _size(value: int | None) -> str:
    """`812 B`, `1.5 KiB`, `120.3 MiB`, `2.0 GiB`; `?` when unknown."""
    if value is None:
        return "?"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{value:,} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
