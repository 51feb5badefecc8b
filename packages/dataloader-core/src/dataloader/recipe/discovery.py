"""Which recipe files a command line names: files, directories of recipe files, and globs.

`run` and `validate` expand their arguments the same way. A directory or a glob selects the
recipe files it holds except the abstract ones (`abstract: true`, parents that other recipes
extend); those are returned apart, for the command to say it skipped them. A file named on
its own is taken as it is, abstract or not: loading an abstract one says what it is.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

from dataloader.errors import RecipeError
from dataloader.recipe.loader import RecipeLoader

RECIPE_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class RecipeSelection:
    """The recipe files to load, in order, and the abstract ones a directory or glob held."""

    recipes: list[Path] = field(default_factory=list)
    abstract: list[Path] = field(default_factory=list)


def select_recipes(arguments: tuple[str, ...] | list[str], loader: RecipeLoader) -> RecipeSelection:
    """Expand command-line arguments into recipe files.

    :raises RecipeError: an argument that does not exist, or a glob that matches nothing.
    """
    selection = RecipeSelection()
    for text in arguments:
        is_glob = any(c in text for c in "*?[")
        matches = sorted(glob.glob(text)) if is_glob else [text]
        if not matches:
            raise RecipeError(
                f"no recipe matches {text!r}", expected="a recipe file, a directory or a glob"
            )
        for match in matches:
            path = Path(match)
            if path.is_dir():
                found = sorted(
                    p for p in path.iterdir() if p.suffix in RECIPE_SUFFIXES and p.is_file()
                )
            elif path.exists():
                if not is_glob:
                    selection.recipes.append(path)
                    continue
                found = [path]
            else:
                raise RecipeError(
                    f"{text!r} does not exist", expected="a recipe file, a directory or a glob"
                )
            for recipe in found:
                (selection.abstract if loader.is_abstract(recipe) else selection.recipes).append(
                    recipe
                )
    return selection
