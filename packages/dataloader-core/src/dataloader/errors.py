"""The exception hierarchy. Every error carries a structured `context` and prints masked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dataloader.secrets import mask_text, mask_value

_UNSET: Any = object()


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a recipe: where it is, what was found and what was expected."""

    message: str
    file: str | None = None
    key: str | None = None
    value: Any = _UNSET
    expected: str | None = None

    def render(self) -> str:
        where = ":".join(part for part in (self.file, self.key) if part)
        text = f"{where}: {self.message}" if where else self.message
        if self.value is not _UNSET:
            leaf = self.key.rsplit(".", 1)[-1] if self.key else None
            text += f" (got {mask_value(leaf, self.value)!r})"
        if self.expected:
            text += f"; expected {self.expected}"
        return mask_text(text)


class DataLoaderError(Exception):
    """Base of every error dataloader raises on purpose.

    `context` holds structured details (file, key, value, expected, …) for programs;
    `str()` gives the message for people, with secrets masked.
    """

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key: str | None = None,
        value: Any = _UNSET,
        expected: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        self.problem = Problem(message, file=file, key=key, value=value, expected=expected)
        self.context: dict[str, Any] = dict(context or {})
        for name, item in (("file", file), ("key", key), ("expected", expected)):
            if item is not None:
                self.context.setdefault(name, item)
        if value is not _UNSET:
            self.context.setdefault(
                "value", mask_value(key.rsplit(".", 1)[-1] if key else None, value)
            )
        super().__init__(message)

    def __str__(self) -> str:
        return self.problem.render()


class RecipeError(DataLoaderError):
    """A recipe cannot be read, merged, rendered or validated. Holds every problem found."""

    exit_code = 2

    def __init__(self, message: str, *, problems: list[Problem] | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.problems: list[Problem] = problems if problems else [self.problem]

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0].render()
        lines = [mask_text(self.problem.message)]
        lines += [f"  - {problem.render()}" for problem in self.problems]
        return "\n".join(lines)


class PluginError(DataLoaderError):
    """A plugin is broken, or two plugins claim the same name."""

    exit_code = 2


class ConnectorError(DataLoaderError):
    """A source or destination failed to connect, read or write."""


class TransformError(DataLoaderError):
    """A transform step failed on a batch."""


class StateError(DataLoaderError):
    """State could not be loaded, saved or locked."""


class StateDocumentError(StateError):
    """A state document given to `import-state` is not valid for the recipe. Holds every
    problem found; exit code 2, as for an invalid recipe."""

    exit_code = 2

    def __init__(self, message: str, *, problems: list[Problem] | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.problems: list[Problem] = problems if problems else [self.problem]

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0].render()
        return "\n".join(
            [mask_text(self.problem.message)] + [f"  - {p.render()}" for p in self.problems]
        )


class EngineError(DataLoaderError):
    """The run itself failed (planning, commit protocol, internal invariants)."""
