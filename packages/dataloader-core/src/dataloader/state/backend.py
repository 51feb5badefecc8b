"""The state backend API: where recipe state lives between runs, and the run lock."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict


class StateBackendConfig(BaseModel):
    """Base of every state backend's options model (the recipe's `state:` section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@runtime_checkable
class StateBackend(Protocol):
    """Stores one JSON document per recipe and holds a lock so two runs never interleave."""

    def load(self, recipe_name: str) -> dict[str, Any]:
        """The stored state, or an empty dict when the recipe never ran."""
        ...

    def save(self, recipe_name: str, state: dict[str, Any]) -> None:
        """Replace the stored state atomically: a reader sees the old or the new document."""
        ...

    def delete(self, recipe_name: str) -> None:
        """Forget the recipe's state."""
        ...

    def lock(self, recipe_name: str) -> AbstractContextManager[None]:
        """Hold the recipe's run lock; raise `StateError` at once if another run holds it."""
        ...


class StateBackendPlugin:
    """Base for state backend classes registered through `register_state_backends`."""

    name: ClassVar[str]
    config_model: ClassVar[type[StateBackendConfig]] = StateBackendConfig

    def __init__(self, config: Any) -> None:
        self.config = config

    def location(self, recipe_name: str) -> str:
        """Where the recipe's state is kept, for people (a path, a URL, a table): what the state
        commands name. Override it; the default names only the backend."""
        return f"the {self.name} state backend"
