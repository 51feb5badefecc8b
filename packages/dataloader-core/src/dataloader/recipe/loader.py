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

INHERITANCE_KEYS = ("extends", "delete")


@dataclass
class ResolvedTree:
    """A recipe dict with inheritance applied, and which file each key came from."""

    tree: dict[str, Any]
    file: Path
    origins: dict[str, str] = field(default_factory=dict)


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
        return ResolvedTree(tree, file, {**base.origins, **own_origins})

    # -- step 3 and 4: templates and validation --------------------------------------
    def load(self, path: str | os.PathLike[str]) -> Recipe:
        """A validated `Recipe`; `RecipeError` listing every problem otherwise."""
        resolved = self.resolve(path)
        file = str(resolved.file)

        def file_for(key: str) -> str:
            return origin_of(resolved.origins, key) or file

        rendered = TemplateRenderer(self.variables, self.environ).render_tree(
            resolved.tree, file=file, origins=resolved.origins
        )
        # Every password, key, token and URL password is known before any message can quote it.
        register_secrets_in(rendered.tree)
        problems: list[Problem] = list(rendered.problems)
        recipe: Recipe | None = None
        try:
            recipe = Recipe.model_validate(rendered.tree)
        except ValidationError as exc:
            problems += problems_from_validation(
                exc, prefix="", file_for=file_for, owner=None, model=Recipe
            )
        if recipe is not None:
            recipe._file = resolved.file
            recipe._origins = resolved.origins
            recipe._masked_paths = frozenset(rendered.env_paths)
            if not problems:
                from dataloader.recipe.binding import bind_recipe

                try:
                    bind_recipe(recipe, self.registry or get_registry())
                except RecipeError as exc:
                    problems += exc.problems
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


def from_yaml(path: str | os.PathLike[str], vars: Mapping[str, Any] | None = None) -> Recipe:
    """Load, resolve and validate a recipe file (YAML or JSON)."""
    return RecipeLoader(vars).load(path)
