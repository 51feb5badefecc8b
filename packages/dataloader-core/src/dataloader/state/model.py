"""The state of one recipe: what has been loaded, so the next run resumes from there."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from dataloader.state.codec import decode_value, encode_value

RUN_HISTORY_LIMIT = 20
PROGRESS_KEYS = (
    "cursor_values",
    "cursor_boundaries",
    "watermarks",
    "last_commit",
    "schema_history",
)


class State(BaseModel):
    """Per-recipe state.

    :param cursor_values: the last committed cursor value per cursor column.
    :param cursor_boundaries: per cursor column, the rows loaded at its committed value
        (`dataloader.incremental.Boundary.to_state`: `value`, `rows`, and the rows'
        `fingerprints`, or `reread`), so the next run reads `cursor >= value` and skips them.
    :param watermarks: source-managed progress (e.g. which files were read, and up to which row).
    :param checkpoints: the history of the last runs (metrics per run), newest last.
    :param metadata: engine bookkeeping (pending file commits, last run id, …).
    :param last_commit: the engine's marker of the commit that wrote this state: `run_id`,
        `sequence` (1, 2, … within the run), `final` (the run's last commit) and `counts`
        (the run's counters at that commit). A retry reads it back from the destination to
        learn whether a commit whose acknowledgement was lost did happen.
    :param schema_history: the destination table's schema and the versions it went through
        (`dataloader.schema.history`), committed with the data that changed it.
    """

    cursor_values: dict[str, Any] = Field(default_factory=dict)
    cursor_boundaries: dict[str, Any] = Field(default_factory=dict)
    watermarks: dict[str, Any] = Field(default_factory=dict)
    checkpoints: list[dict[str, Any]] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    last_commit: dict[str, Any] = Field(default_factory=dict)
    schema_history: dict[str, Any] = Field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; cursor values keep their type and precision."""
        return {
            "cursor_values": encode_value(self.cursor_values),
            "cursor_boundaries": encode_value(self.cursor_boundaries),
            "watermarks": encode_value(self.watermarks),
            "checkpoints": encode_value(self.checkpoints),
            "metadata": encode_value(self.metadata),
            "last_commit": encode_value(self.last_commit),
            "schema_history": encode_value(self.schema_history),
        }

    def progress(self) -> dict[str, Any]:
        """What a destination commits together with the data (JSON-safe): the read position
        (`cursor_values`, `cursor_boundaries`, `watermarks`), the `last_commit` marker and the
        `schema_history`."""
        encoded = self.to_dict()
        return {key: encoded[key] for key in PROGRESS_KEYS}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> State:
        data = data or {}
        return cls(
            cursor_values=decode_value(data.get("cursor_values", {})),
            cursor_boundaries=decode_value(data.get("cursor_boundaries", {})),
            watermarks=decode_value(data.get("watermarks", {})),
            checkpoints=decode_value(data.get("checkpoints", [])),
            metadata=decode_value(data.get("metadata", {})),
            last_commit=decode_value(data.get("last_commit", {})),
            schema_history=decode_value(data.get("schema_history", {})),
        )

    def copy_deep(self) -> State:
        return State.from_dict(self.to_dict())

    def record_run(self, summary: dict[str, Any]) -> None:
        """Append a run summary to the history, keeping the last few."""
        self.checkpoints.append(summary)
        del self.checkpoints[:-RUN_HISTORY_LIMIT]
