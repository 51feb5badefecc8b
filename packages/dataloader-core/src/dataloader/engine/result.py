"""What a run reports: rows, batches, bytes and seconds, per run and per stage."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

Stage = Literal["read", "transform", "write", "commit"]
STAGES: tuple[Stage, ...] = ("read", "transform", "write", "commit")


@dataclass
class StageMetrics:
    rows: int = 0
    batches: int = 0
    bytes: int = 0
    seconds: float = 0.0
    retries: int = 0


@dataclass
class RunResult:
    """The outcome of one run of one recipe."""

    recipe_name: str
    run_id: str
    started_at: datetime
    status: Literal["success", "failed", "interrupted"] = "success"
    rows_read: int = 0
    rows_written: int = 0
    batches: int = 0
    bytes_written: int = 0
    duration_seconds: float = 0.0
    commits: int = 0
    rows_quarantined: int = 0
    rows_dropped: int = 0
    schema_changes: int = 0
    child_rows: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, StageMetrics] = field(
        default_factory=lambda: {stage: StageMetrics() for stage in STAGES}
    )
    error: str | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows_written / self.duration_seconds if self.duration_seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """A JSON-safe summary, as kept in the state's run history."""
        return {
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "status": self.status,
            "rows_read": self.rows_read,
            "rows_written": self.rows_written,
            "batches": self.batches,
            "bytes_written": self.bytes_written,
            "commits": self.commits,
            "rows_quarantined": self.rows_quarantined,
            "rows_dropped": self.rows_dropped,
            "schema_changes": self.schema_changes,
            "child_rows": self.child_rows,
            "duration_seconds": round(self.duration_seconds, 3),
            "stages": {name: asdict(metrics) for name, metrics in self.stages.items()},
            **({"error": self.error} if self.error else {}),
        }


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped a run. Still a `KeyboardInterrupt`, so nothing that handles
    errors swallows it; `result` holds what the run committed before it stopped."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(f"run of recipe {result.recipe_name!r} interrupted")
        self.result = result
