"""`dataloader validate` and `dataloader render`."""

from __future__ import annotations

import json
import sys

import click
import yaml

from dataloader.cli.app import parse_vars, var_option
from dataloader.errors import RecipeError
from dataloader.recipe.discovery import select_recipes
from dataloader.recipe.loader import RecipeLoader


@click.command()
@click.argument("recipes", nargs=-1, required=True)
@var_option
def validate(recipes: tuple[str, ...], variables: tuple[str, ...]) -> None:
    """Check recipes (files, directories of recipe files, or globs, as `run` takes them):
    every problem, with its file and key path. Abstract recipes in a directory or glob are
    listed as skipped. Exit 2 when any is invalid."""
    # Plain click output (colour on a terminal only): validating imports no rich.
    loader = RecipeLoader(parse_vars(variables))
    selection = select_recipes(recipes, loader)
    abstract = [*selection.abstract, *filter(loader.is_abstract, selection.recipes)]
    for skipped in abstract:
        click.secho(f"- {skipped} (abstract: a parent of other recipes, skipped)", dim=True)
    recipes = tuple(str(path) for path in selection.recipes if path not in abstract)
    failed = 0
    for path in recipes:
        try:
            recipe = loader.load(path)
        except RecipeError as exc:
            failed += 1
            click.echo(f"{click.style('✗', fg='red')} {path}")
            for problem in exc.problems:
                click.echo(f"    {problem.render()}")
            continue
        summary = (
            f"({recipe.name}: {recipe.source.type} → {recipe.destination.type}, "
            f"{recipe.destination.write_mode})"
        )
        click.echo(f"{click.style('✓', fg='green')} {path} {click.style(summary, dim=True)}")
    if failed:
        click.echo(f"{failed} of {len(recipes)} recipe{'s' if len(recipes) > 1 else ''} invalid")
        sys.exit(2)
    if not recipes:
        click.echo("no recipe to validate")


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@var_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
)
def render(recipe: str, variables: tuple[str, ...], output_format: str) -> None:
    """Print the fully resolved recipe (extends, delete and templates applied), secrets masked."""
    data = RecipeLoader(parse_vars(variables)).render(recipe)
    if output_format == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)
