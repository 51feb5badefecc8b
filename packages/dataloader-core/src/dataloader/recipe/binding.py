"""Binding a recipe to installed plugins: each section's keys validated by its plugin's model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from dataloader.connectors import Role, role_of
from dataloader.errors import PluginError, Problem, RecipeError
from dataloader.recipe.models import (
    DestinationConfig,
    Recipe,
    SourceConfig,
    StateConfig,
    TransformConfig,
)
from dataloader.recipe.problems import keys_of, problems_from_validation
from dataloader.registry import Registration, Registry
from dataloader.secrets import register_secret_values, register_secrets_in, secret_fields, values_at

OriginOf = Callable[[str], str | None]


@dataclass(frozen=True)
class Bound:
    """A plugin registration with its validated options, and the recipe section it binds."""

    registration: Registration
    options: Any
    section: str = ""

    def create(self) -> Any:
        return self.registration.create(self.options)

    @property
    def secret_paths(self) -> frozenset[str]:
        """The recipe's dot paths of the keys the plugin's config model declares secret."""
        return frozenset(
            f"{self.section}.{path}" for path in secret_fields(self.registration.config_model)
        )


@dataclass(frozen=True)
class BoundRecipe:
    recipe: Recipe
    source: Bound
    destination: Bound
    steps: tuple[Bound, ...]
    state: Bound | None

    @property
    def secret_paths(self) -> frozenset[str]:
        """Every key of the recipe that a plugin declares secret (masked by `render`)."""
        bounds = (self.source, self.destination, *self.steps, self.state)
        return frozenset().union(*(bound.secret_paths for bound in bounds if bound is not None))


def bind_recipe(recipe: Recipe, registry: Registry) -> BoundRecipe:
    """Validate every plugin section of `recipe`; a `RecipeError` lists every problem found."""
    register_secrets_in(recipe.model_dump(mode="json"))  # a recipe built in code, too
    problems: list[Problem] = []
    source, destination, steps, state = _bind_sections(
        registry,
        recipe.source,
        recipe.destination,
        recipe.transform,
        recipe.state,
        recipe.origin_of,
        problems,
    )
    _check_capabilities(recipe, source, destination, problems)
    _check_write_mode(recipe, problems)
    _check_missing_cursor(recipe, problems)
    _check_dedup_sort(recipe, problems)
    _check_normalization(recipe, destination, problems)
    if problems:
        raise RecipeError(
            f"recipe {recipe.name!r} is not valid",
            problems=problems,
            file=str(recipe.file) if recipe.file else None,
        )
    assert source is not None and destination is not None
    return BoundRecipe(recipe, source, destination, tuple(s for s in steps if s is not None), state)


def section_problems(
    tree: Mapping[str, Any], registry: Registry, origin_of: OriginOf
) -> list[Problem]:
    """The problems of each plugin section of a recipe whose top level is not valid (a missing
    `name`, say): every section that is well formed on its own is bound to its plugin, so one
    problem does not hide the others. The top level's own problems are not repeated."""

    def section(model: type[BaseModel], key: str) -> Any:
        value = tree.get(key)
        try:
            return model.model_validate(value) if isinstance(value, Mapping) else None
        except ValidationError:
            return None

    transform = section(TransformConfig, "transform") if "transform" in tree else TransformConfig()
    problems: list[Problem] = []
    _bind_sections(
        registry,
        section(SourceConfig, "source"),
        section(DestinationConfig, "destination"),
        transform,
        section(StateConfig, "state"),
        origin_of,
        problems,
    )
    return problems


def _bind_sections(
    registry: Registry,
    source: SourceConfig | None,
    destination: DestinationConfig | None,
    transform: TransformConfig | None,
    state: StateConfig | None,
    origin_of: OriginOf,
    problems: list[Problem],
) -> tuple[Bound | None, Bound | None, list[Bound | None], Bound | None]:
    """Bind each section given to its plugin; None stands for a section that is not bound."""
    bound_source = bound_destination = bound_state = None
    if source is not None:
        bound_source = _bind(
            registry, "connector", source.type, source.options, "source", origin_of, problems
        )
    if destination is not None:
        bound_destination = _bind(
            registry,
            "connector",
            destination.type,
            destination.options,
            "destination",
            origin_of,
            problems,
        )
    steps = [
        _bind(
            registry,
            "transform",
            step.type,
            step.options,
            f"transform.steps[{i}]",
            origin_of,
            problems,
        )
        for i, step in enumerate(transform.steps if transform is not None else ())
    ]
    if state is not None:
        bound_state = _bind(
            registry, "state_backend", state.backend, state.options, "state", origin_of, problems
        )
    return bound_source, bound_destination, steps, bound_state


# The keys of each section that the recipe itself owns, besides the plugin's.
_SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "source": tuple(SourceConfig.model_fields),
    "destination": tuple(DestinationConfig.model_fields),
    "state": tuple(StateConfig.model_fields),
}


def _bind(
    registry: Registry,
    kind: Any,
    name: str,
    options: dict[str, Any],
    section: str,
    origin_of: OriginOf,
    problems: list[Problem],
) -> Bound | None:
    type_key = f"{section}.backend" if kind == "state_backend" else f"{section}.type"
    try:
        registration = registry.get(kind, name)
        model = registration.config_model  # a lazy plugin's model is imported here
    except PluginError as exc:
        problems.append(
            Problem(
                exc.problem.message,
                file=origin_of(type_key),
                key=type_key,
                expected=exc.problem.expected,
            )
        )
        return None
    # Known before anything can quote them: a message about any key must not show a secret.
    for path in secret_fields(model):
        for value in values_at(options, path):
            register_secret_values(value)
    role: Role | None = section if section in ("source", "destination") else None  # type: ignore[assignment]
    owner = f"{kind.replace('_', ' ')} {name!r} ({registration.distribution})"
    try:
        validated = model.model_validate(options)
    except ValidationError as exc:
        problems.extend(
            problems_from_validation(
                exc,
                prefix=section,
                file_for=origin_of,
                owner=owner,
                model=model,
                role=role,
                section_keys=_SECTION_KEYS.get(section, ("type",)),
            )
        )
        return None
    before = len(problems)
    if role is not None:
        _check_role(validated, model, role, section, owner, origin_of, problems)
        _check_format_options(registry, validated, section, origin_of, problems)
    if len(problems) > before:
        return None
    return Bound(registration, validated, section)


def _check_role(
    validated: BaseModel,
    model: type[BaseModel],
    role: Role,
    section: str,
    owner: str,
    origin_of: OriginOf,
    problems: list[Problem],
) -> None:
    """A key that applies only to sources is an error in a destination, and the reverse."""
    for name in sorted(validated.model_fields_set):
        info = model.model_fields.get(name)
        only = role_of(info) if info is not None else None
        if only is not None and only != role:
            key = f"{section}.{info.alias or name}"  # type: ignore[union-attr]
            problems.append(
                Problem(
                    f"key {name!r} of {owner} applies to a {only} only, not a {role}",
                    file=origin_of(key),
                    key=key,
                    expected="one of: "
                    + ", ".join(sorted({*keys_of(model, role), *_SECTION_KEYS[section]})),
                )
            )


def _check_format_options(
    registry: Registry,
    validated: BaseModel,
    section: str,
    origin_of: OriginOf,
    problems: list[Problem],
) -> None:
    """A file connector's `format` and `format_options` (the names every file connector uses
    for them) checked against the registered formats, before any file is read. Without
    `format`, the format is told by `path`'s extension; when neither tells it (a directory of
    several formats), the options are checked as each file is read."""
    format_name = getattr(validated, "format", None)
    options = getattr(validated, "format_options", None)
    if format_name is not None and not isinstance(format_name, str):
        return
    registration: Registration | None = None
    if format_name:
        key = f"{section}.format"
        try:
            registration = registry.format(format_name)
        except PluginError as exc:
            problems.append(
                Problem(
                    exc.problem.message,
                    file=origin_of(key),
                    key=key,
                    value=format_name,
                    expected=exc.problem.expected,
                )
            )
            return
    elif isinstance(getattr(validated, "path", None), str):
        registration = registry.format_for_path(validated.path)  # type: ignore[attr-defined]
    if registration is None or not isinstance(options, Mapping):
        return
    try:
        registration.config_model.model_validate(dict(options))
    except ValidationError as exc:
        problems.extend(
            problems_from_validation(
                exc,
                prefix=f"{section}.format_options",
                file_for=origin_of,
                owner=f"format {registration.name!r} ({registration.distribution})",
                model=registration.config_model,
            )
        )


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
        if _quarantines(recipe) and not caps.quarantine:
            problems.append(
                Problem(
                    f"connector {recipe.destination.type!r} cannot keep a quarantine",
                    file=recipe.origin_of("schema"),
                    key="schema.on_violation",
                    value="quarantine",
                    expected="`fail` or `drop`, or a destination that keeps a quarantine",
                )
            )


def _quarantines(recipe: Recipe) -> bool:
    schema = recipe.table_schema
    return schema.on_violation == "quarantine" or any(
        column.on_violation == "quarantine" for column in schema.columns
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


def _check_normalization(
    recipe: Recipe, destination: Bound | None, problems: list[Problem]
) -> None:
    """Child tables need a destination that writes them; explode and dedup_sort do not
    mix with merge."""
    config = recipe.normalization
    if config is None or not config.enabled:
        return
    write_mode = recipe.destination.write_mode
    problem = config.check_write_mode(write_mode)
    if problem is not None:
        problems.append(
            Problem(
                problem,
                file=recipe.origin_of("normalization"),
                key="normalization",
                value="explode",
                expected="`create_table` or `json_column` for lists under merge",
            )
        )
    creates_tables = config.strategy == "auto" or any(
        rule.action == "create_table" for rule in config.array_handling
    )
    if not creates_tables:
        return
    caps = destination.registration.capabilities if destination is not None else None
    if caps is not None and caps.write and not caps.child_tables:
        problems.append(
            Problem(
                f"connector {recipe.destination.type!r} cannot write child tables, which "
                "lists become here",
                file=recipe.origin_of("normalization"),
                key="normalization.strategy",
                value=config.strategy,
                expected="`flatten` or `json_column` (lists as JSON columns), `explode`, or "
                "a destination that writes child tables",
            )
        )
    if write_mode == "merge" and recipe.destination.dedup_sort is not None:
        key = "destination.dedup_sort"
        problems.append(
            Problem(
                "`dedup_sort` may keep a stored row over an incoming one, and the child "
                "tables of normalized data cannot follow that choice yet",
                file=recipe.origin_of(key),
                key=key,
                value=recipe.destination.dedup_sort.model_dump(),
                expected="no `dedup_sort` (the row read last, or with the highest cursor, "
                "wins), or lists as JSON columns",
            )
        )
