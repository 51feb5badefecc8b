"""Turning pydantic validation errors into `Problem`s that name the file and key path."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from dataloader.connectors import Role, role_of
from dataloader.errors import Problem


def key_path(prefix: str, loc: tuple[Any, ...]) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def _one_model(annotation: Any) -> Any:
    """`X | None` → `X`; a union holding exactly one model → that model."""
    if get_origin(annotation) is Union or type(annotation).__name__ == "UnionType":
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        models = [arg for arg in args if isinstance(arg, type) and issubclass(arg, BaseModel)]
        if len(args) == 1:
            return args[0]
        return models[0] if len(models) == 1 else None
    return annotation


def keys_of(model: type[BaseModel], role: Role | None = None) -> list[str]:
    """The keys `model` accepts, without those that apply only to the other role."""
    return sorted(
        info.alias or name
        for name, info in model.model_fields.items()
        if role is None or role_of(info) in (None, role)
    )


def keys_at(model: type[BaseModel], loc: tuple[Any, ...], role: Role | None = None) -> list[str]:
    """The keys valid at `loc` (the path of the mapping that holds an unknown key) inside
    `model`, following nested models, lists and dicts; [] when it cannot be told."""
    annotation: Any = model
    for part in loc:
        annotation = _one_model(annotation)
        origin = get_origin(annotation)
        if origin in (list, tuple) and isinstance(part, int):
            annotation = get_args(annotation)[0]
        elif origin is dict:
            annotation = get_args(annotation)[1]
        elif (
            isinstance(annotation, type)
            and issubclass(annotation, BaseModel)
            and isinstance(part, str)
            and part in annotation.model_fields
        ):
            annotation = annotation.model_fields[part].annotation
        else:
            return []
    annotation = _one_model(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return keys_of(annotation, role if not loc else None)
    return []


def unknown_key_problem(
    key: str, known: Sequence[str], *, message: str, file: str | None, path: str
) -> Problem:
    """An unknown key, with the closest known key as a suggestion and the list of them all."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if close:
        message += f"; did you mean {close[0]!r}?"
    return Problem(
        message,
        file=file,
        key=path,
        expected=f"one of: {', '.join(known)}" if known else None,
    )


def problems_from_validation(
    exc: ValidationError,
    *,
    prefix: str,
    file_for: Callable[[str], str | None],
    owner: str | None = None,
    model: type[BaseModel] | None = None,
    role: Role | None = None,
    section_keys: Sequence[str] = (),
) -> list[Problem]:
    """One `Problem` per pydantic error.

    :param owner: e.g. "connector 'duckdb' (dataloader-duckdb)", to explain unknown keys.
    :param model: the model validated, whose keys are listed (with a suggestion) for a typo.
    :param role: a connector's role: keys that apply only to the other role are not offered.
    :param section_keys: keys the section accepts besides the model's (`type`, `write_mode`…).
    """
    problems: list[Problem] = []
    for error in exc.errors(include_url=False):
        loc = tuple(
            part
            for part in error["loc"]
            if not (isinstance(part, str) and part.startswith("function-"))
        )
        path = key_path(prefix, loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            if model is not None:
                known = keys_at(model, loc[:-1], role)
                if len(loc) == 1:
                    known = sorted({*known, *section_keys})
            else:
                known = []
            problems.append(
                unknown_key_problem(
                    str(loc[-1]),
                    known,
                    message=f"unknown key {loc[-1]!r}" + (f" for {owner}" if owner else ""),
                    file=file_for(path),
                    path=path,
                )
            )
        elif kind == "missing":
            problems.append(
                Problem(
                    "required key is missing" + (f" for {owner}" if owner else ""),
                    file=file_for(path),
                    key=path,
                )
            )
        else:
            message = error["msg"].removeprefix("Value error, ")
            problems.append(
                Problem(message, file=file_for(path), key=path, value=error.get("input"))
            )
    return problems
