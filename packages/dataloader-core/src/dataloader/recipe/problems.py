"""Turning pydantic validation errors into `Problem`s that name the file and key path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from dataloader.errors import Problem


def key_path(prefix: str, loc: tuple[Any, ...]) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def problems_from_validation(
    exc: ValidationError,
    *,
    prefix: str,
    file_for: Callable[[str], str | None],
    owner: str | None = None,
    model: type[BaseModel] | None = None,
) -> list[Problem]:
    """One `Problem` per pydantic error; `owner` (e.g. "connector 'duckdb'") explains unknown keys."""
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
            known = sorted(model.model_fields) if model is not None and len(loc) == 1 else None
            message = f"unknown key {loc[-1]!r}" + (f" for {owner}" if owner else "")
            problems.append(
                Problem(
                    message,
                    file=file_for(path),
                    key=path,
                    expected=f"one of: {', '.join(known)}" if known else None,
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
