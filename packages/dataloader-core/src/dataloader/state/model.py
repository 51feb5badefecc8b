"""The state of one recipe: what has been loaded, so the next run resumes from there."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from dataloader.state.codec import decode_value, encode_value

RUN_HISTORY_LIMIT = 20


class State(BaseModel):
    """Per-recipe state.

    :param cursor_values: the last committed cursor value per cursor column.
    :param watermarks: source-managed progress (e.g. which files were read, and up to which row).
    :param checkpoints: the history of the last runs (metrics per run), newest last.
    :param metadata: engine bookkeeping (pending file commits, last run id, …).
    """

    cursor_values: dict[str, Any] = Field(default_factory=dict)
    watermarks: dict[str, Any] = Field(default_factory=dict)
    checkpoints: list[dict[str, Any]] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; cursor values keep their type and precision."""
        return {
            "cursor_values": encode_value(self.cursor_values),
            "watermarks": encode_value(self.watermarks),
            "checkpoints": encode_value(self.checkpoints),
            "metadata": encode_value(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> State:
        data = data or {}
        return cls(
            cursor_values=decode_value(data.get("cursor_values", {})),
            watermarks=decode_value(data.get("watermarks", {})),
            checkpoints=decode_value(data.get("checkpoints", [])),
            metadata=decode_value(data.get("metadata", {})),
        )

    def copy_deep(self) -> State:
        return State.from_dict(self.to_dict())

    def record_run(self, summary: dict[str, Any]) -> None:
        """Append a run summary to the history, keeping the last few."""
        self.checkpoints.append(summary)
        del self.checkpoints[:-RUN_HISTORY_LIMIT]
