"""Binding a recipe to installed plugins: each section's keys validated by its plugin's model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from dataloader.errors import PluginError, Problem, RecipeError
from dataloader.recipe.models import Recipe
from dataloader.recipe.problems import problems_from_validation
from dataloader.registry import Registration, Registry
from dataloader.secrets import register_secrets_in


@dataclass(frozen=True)
class Bound:
    """A plugin registration with its validated options."""

    registration: Registration
    options: Any

    def create(self) -> Any:
        return self.registration.create(self.options)


@dataclass(frozen=True)
class BoundRecipe:
    recipe: Recipe
    source: Bound
    destination: Bound
    steps: tuple[Bound, ...]
    state: Bound | None


def bind_recipe(recipe: Recipe, registry: Registry) -> BoundRecipe:
    """Validate every plugin section of `recipe`; a `RecipeError` lists every problem found."""
    register_secrets_in(recipe.model_dump(mode="json"))  # a recipe built in code, too
    problems: list[Problem] = []
    source = _bind(
        registry, "connector", recipe.source.type, recipe.source.options, "source", recipe, problems
    )
    destination = _bind(
        registry,
        "connector",
        recipe.destination.type,
        recipe.destination.options,
        "destination",
        recipe,
        problems,
    )
    steps = [
        _bind(
            registry,
            "transform",
            step.type,
            step.options,
            f"transform.steps[{i}]",
            recipe,
            problems,
        )
        for i, step in enumerate(recipe.transform.steps)
    ]
    state = None
    if recipe.state is not None:
        state = _bind(
            registry,
            "state_backend",
            recipe.state.backend,
            recipe.state.options,
            "state",
            recipe,
            problems,
        )
    _check_capabilities(recipe, source, destination, problems)
    _check_write_mode(recipe, problems)
    _check_missing_cursor(recipe, problems)
    _check_dedup_sort(recipe, problems)
    if problems:
        raise RecipeError(
            f"recipe {recipe.name!r} is not valid",
            problems=problems,
            file=str(recipe.file) if recipe.file else None,
        )
    assert source is not None and destination is not None
    return BoundRecipe(recipe, source, destination, tuple(s for s in steps if s is not None), state)


def _bind(
    registry: Registry,
    kind: Any,
    name: str,
    options: dict[str, Any],
    section: str,
    recipe: Recipe,
    problems: list[Problem],
) -> Bound | None:
    type_key = f"{section}.backend" if kind == "state_backend" else f"{section}.type"
    try:
        registration = registry.get(kind, name)
    except PluginError as exc:
        problems.append(
            Problem(
                exc.problem.message,
                file=recipe.origin_of(type_key),
                key=type_key,
                expected=exc.problem.expected,
            )
        )
        return None
    owner = f"{kind.replace('_', ' ')} {name!r} ({registration.distribution})"
    try:
        validated = registration.config_model.model_validate(options)
    except ValidationError as exc:
        problems.extend(
            problems_from_validation(
                exc,
                prefix=section,
                file_for=recipe.origin_of,
                owner=owner,
                model=registration.config_model,
            )
        )
        return None
    return Bound(registration, validated)


def _check_capabilities(
    recipe: Recipe, source: Bound | None, destination: Bound | None, problems: list[Problem]
) -> None:
    if source is not None and source.registration.capabilities is not None:
        caps = source.registration.capabilities
        if not caps.read:
            problems.append(
                Problem(
                    f"connector {recipe.source.type!r} cannot be used as a source",
                    file=recipe.origin_of("source.type"),
                    key="source.type",
                )
            )
        elif recipe.source.incremental is not None and not caps.incremental:
            problems.append(
                Problem(
                    f"connector {recipe.source.type!r} does not support incremental reads",
                    file=recipe.origin_of("source.incremental"),
                    key="source.incremental",
                )
            )
    if destination is not None and destination.registration.capabilities is not None:
        caps = destination.registration.capabilities
        if not caps.write:
            problems.append(
                Problem(
                    f"connector {recipe.destination.type!r} cannot be used as a destination",
                    file=recipe.origin_of("destination.type"),
                    key="destination.type",
                )
            )
        elif recipe.destination.write_mode not in caps.write_modes:
            problems.append(
                Problem(
                    f"connector {recipe.destination.type!r} does not support write_mode {recipe.destination.write_mode!r}",
                    file=recipe.origin_of("destination.write_mode"),
                    key="destination.write_mode",
                    expected=f"one of: {', '.join(caps.write_modes)}",
                )
            )


def _check_write_mode(recipe: Recipe, problems: list[Problem]) -> None:
    """An overwrite replaces the table with what one run reads, so that run must read it all."""
    if recipe.destination.write_mode == "overwrite" and recipe.source.incremental is not None:
        problems.append(
            Problem(
                "write_mode `overwrite` replaces the whole table with what the run reads, "
                "so it needs a full read; with `source.incremental` a run would read only "
                "what is new and the table would lose the rest",
                file=recipe.origin_of("source.incremental"),
                key="source.incremental",
                expected="no `source.incremental` with `overwrite` (a child recipe removes "
                "an inherited one with `delete: [source.incremental]`), or write_mode "
                "`append`/`merge`",
            )
        )


def _check_missing_cursor(recipe: Recipe, problems: list[Problem]) -> None:
    """Rows without a cursor value are read again by every run: only a merge loads them once."""
    incremental = recipe.source.incremental
    if (
        incremental is not None
        and incremental.on_missing_cursor == "load"
        and recipe.destination.write_mode != "merge"
    ):
        key = "source.incremental.on_missing_cursor"
        problems.append(
            Problem(
                "rows whose cursor is NULL or NaN never move the cursor, so every run reads "
                f"them again; with write_mode {recipe.destination.write_mode!r} each run would "
                "add them once more",
                file=recipe.origin_of(key),
                key=key,
                value=incremental.on_missing_cursor,
                expected="`fail`, or `load` with `destination.write_mode: merge` (and "
                "`merge_keys` that identify those rows)",
            )
        )


def _check_dedup_sort(recipe: Recipe, problems: list[Problem]) -> None:
    """`dedup_sort` picks the row that wins among rows of one merge key: a merge's choice."""
    destination = recipe.destination
    dedup_sort = destination.dedup_sort
    if dedup_sort is None:
        return
    if destination.write_mode != "merge":
        key = "destination.dedup_sort"
        problems.append(
            Problem(
                "`dedup_sort` chooses which row of a merge key is kept; with write_mode "
                f"{destination.write_mode!r} no row replaces another",
                file=recipe.origin_of(key),
                key=key,
                value=dedup_sort.model_dump(),
                expected="`destination.write_mode: merge` (with `merge_keys`), or no `dedup_sort`",
            )
        )
    elif dedup_sort.column in (destination.merge_keys or ()):
        key = "destination.dedup_sort.column"
        problems.append(
            Problem(
                "`dedup_sort.column` is a merge key: every row of one key has the same value "
                "there, so it cannot choose between them",
                file=recipe.origin_of(key),
                key=key,
                value=dedup_sort.column,
                expected=f"a column that is not one of the merge keys {destination.merge_keys}",
            )
        )
