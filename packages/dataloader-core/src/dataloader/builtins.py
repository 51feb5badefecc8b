"""The core's built-in plugin: its transforms and the local state backend."""

from __future__ import annotations

from typing import Any

from dataloader.hookspecs import hookimpl
from dataloader.state.local import LocalStateBackend
from dataloader.transforms import BUILTIN_TRANSFORMS


@hookimpl
def register_transforms() -> list[Any]:
    return list(BUILTIN_TRANSFORMS)


@hookimpl
def register_state_backends() -> list[Any]:
    return [LocalStateBackend]
