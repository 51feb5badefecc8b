"""`RecipeLoader`: file → parsed dict → inheritance → deletes → templates → validated `Recipe`."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dataloader.errors import Problem, RecipeError
from dataloader.recipe.merger import RecipeMerger, leaf_paths, origin_of
from dataloader.recipe.models import Recipe
from dataloader.recipe.problems import problems_from_validation
from dataloader.recipe.templates import TemplateRenderer
from dataloader.registry import Registry, get_registry
from dataloader.secrets import register_secrets_in

# Keys of a recipe file that are not part of the recipe itself: each is read from the file
# that holds it and never inherited.
INHERITANCE_KEYS = ("extends", "delete", "abstract")


@dataclass
class ResolvedTree:
    """A recipe dict with inheritance applied, and which file each key came from."""

    tree: dict[str, Any]
    file: Path
    origins: dict[str, str] = field(default_factory=dict)
    abstract: bool = False


class RecipeLoader:
    """Loads recipe files. `variables` feed `var()`; `environ` feeds `env_var()` (default: os.environ)."""

    def __init__(
        self,
        variables: Mapping[str, Any] | None = None,
        *,
        registry: Registry | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.variables = dict(variables or {})
        self.registry = registry
        self.environ = environ
        self.merger = RecipeMerger()

    # -- step 1: parse one file ------------------------------------------------------
    def read_file(self, path: Path) -> dict[str, Any]:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RecipeError("recipe file does not exist", file=str(path)) from None
        except OSError as exc:
            raise RecipeError(f"cannot read recipe file: {exc.strerror}", file=str(path)) from exc
        try:
            data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except json.JSONDecodeError as exc:
            raise RecipeError(
                f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", file=str(path)
            ) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            reason = getattr(exc, "problem", None) or str(exc)
            raise RecipeError(f"invalid YAML{where}: {reason}", file=str(path)) from None
        if data is None:
            raise RecipeError(
                "recipe file is empty",
                file=str(path),
                expected="a mapping with name, source and destination",
            )
        if not isinstance(data, dict):
            raise RecipeError(
                f"a recipe must be a mapping, not a {type(data).__name__}", file=str(path)
            )
        return data

    # -- step 2: inheritance ---------------------------------------------------------
    def resolve(self, path: str | os.PathLike[str], _chain: tuple[Path, ...] = ()) -> ResolvedTree:
        """Load `path` and every parent it `extends:`, deepest parent first, and merge them."""
        file = Path(path).absolute()
        if file in _chain:
            cycle = " -> ".join(str(p) for p in (*_chain, file))
            raise RecipeError(
                f"recipe inheritance cycle: {cycle}", file=str(_chain[-1]), key="extends"
            )
        raw = self.read_file(file)
        abstract = _abstract_flag(raw, file)
        extends = raw.pop("extends", None)
        deletes = raw.pop("delete", None) or []
        if not isinstance(deletes, list) or not all(isinstance(item, str) for item in deletes):
            raise RecipeError(
                "`delete` must be a list of dot paths",
                file=str(file),
                key="delete",
                value=deletes,
                expected="e.g. [transform.steps, destination.merge_keys]",
            )
        own_origins = dict.fromkeys(leaf_paths(raw), str(file))
        if extends is None:
            base = ResolvedTree({}, file)
        else:
            if not isinstance(extends, str) or not extends.strip():
                raise RecipeError(
                    "`extends` must be a file path", file=str(file), key="extends", value=extends
                )
            parent_file = (file.parent / extends).absolute()
            if not parent_file.exists() and parent_file not in _chain and parent_file != file:
                raise RecipeError(
                    f"parent recipe {extends!r} does not exist (looked for {parent_file})",
                    file=str(file),
                    key="extends",
                    value=extends,
                )
            base = self.resolve(parent_file, (*_chain, file))
        for dot_path in deletes:
            try:
                self.merger.delete(base.tree, dot_path)
            except KeyError as missing:
                raise RecipeError(
                    f"cannot delete {dot_path!r}: {missing.args[0]!r} is not in the inherited recipe",
                    file=str(file),
                    key="delete",
                    value=dot_path,
                    expected="a dot path that exists in a parent recipe",
                ) from None
            base.origins = {
                k: v
                for k, v in base.origins.items()
                if k != dot_path and not k.startswith(dot_path + ".")
            }
        tree = self.merger.merge(base.tree, raw)
        return ResolvedTree(tree, file, {**base.origins, **own_origins}, abstract)

    def is_abstract(self, path: str | os.PathLike[str]) -> bool:
        """Whether the file says `abstract: true`: a parent for other recipes, never run. A
        file that cannot be read is not abstract here (loading it reports why)."""
        try:
            return _abstract_flag(self.read_file(Path(path)), Path(path))
        except RecipeError:
            return False

    # -- step 3 and 4: templates and validation --------------------------------------
    def load(self, path: str | os.PathLike[str]) -> Recipe:
        """A validated `Recipe`; `RecipeError` listing every problem otherwise."""
        resolved = self.resolve(path)
        file = str(resolved.file)
        if resolved.abstract:
            raise RecipeError(
                "this recipe is abstract: a parent that other recipes extend, never run or "
                "validated on its own",
                file=file,
                key="abstract",
                value=True,
                expected="a recipe that extends it, or `abstract: false`",
            )

        def file_for(key: str) -> str:
            return origin_of(resolved.origins, key) or file

        rendered = TemplateRenderer(self.variables, self.environ).render_tree(
            resolved.tree, file=file, origins=resolved.origins
        )
        # Every password, key, token and URL password is known before any message can quote it.
        register_secrets_in(rendered.tree)
        problems: list[Problem] = list(rendered.problems)
        recipe: Recipe | None = None
        registry = self.registry or get_registry()
        try:
            recipe = Recipe.model_validate(rendered.tree)
        except ValidationError as exc:
            problems += problems_from_validation(
                exc,
                prefix="",
                file_for=file_for,
                owner=None,
                model=Recipe,
                section_keys=INHERITANCE_KEYS,
            )
            from dataloader.recipe.binding import section_problems

            problems += section_problems(rendered.tree, registry, file_for)
        if recipe is not None:
            recipe._file = resolved.file
            recipe._origins = resolved.origins
            recipe._masked_paths = frozenset(rendered.secret_paths)
            if not problems:
                from dataloader.recipe.binding import bind_recipe

                try:
                    bound = bind_recipe(recipe, registry)
                except RecipeError as exc:
                    problems += exc.problems
                else:
                    recipe._masked_paths |= bound.secret_paths
        if problems:
            raise RecipeError(
                f"{file}: recipe is not valid ({len(problems)} problem{'s' if len(problems) > 1 else ''})",
                problems=problems,
                file=file,
            )
        assert recipe is not None
        return recipe

    def render(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """The fully resolved recipe as a dict, secrets masked (what `dataloader render` prints)."""
        return self.load(path).masked_dump()


def _abstract_flag(raw: dict[str, Any], file: Path) -> bool:
    """Pop the file's `abstract:` key (not inherited: each file says it for itself)."""
    value = raw.pop("abstract", False)
    if not isinstance(value, bool):
        raise RecipeError(
            "`abstract` must be true or false",
            file=str(file),
            key="abstract",
            value=value,
            expected="`abstract: true` for a recipe that is only a parent of others",
        )
    return value


def from_yaml(path: str | os.PathLike[str], vars: Mapping[str, Any] | None = None) -> Recipe:
    """Load, resolve and validate a recipe file (YAML or JSON)."""
    return RecipeLoader(vars).load(path)
