"""The core's built-in plugin: its transforms and the local state backend.

Like every plugin's entry-point module, it imports what it registers only when asked (the
transforms import pyarrow), so loading plugins stays cheap.
"""

from __future__ import annotations

from typing import Any

from dataloader.hookspecs import hookimpl


@hookimpl
def register_transforms() -> list[Any]:
    from dataloader.transforms import BUILTIN_TRANSFORMS

    return list(BUILTIN_TRANSFORMS)


@hookimpl
def register_state_backends() -> list[Any]:
    from dataloader.state.local import LocalStateBackend

    return [LocalStateBackend]
