"""Run metrics as Prometheus text exposition, for node-exporter's textfile collector."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from dataloader.engine.result import RunResult


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(results: Iterable[RunResult]) -> str:
    """Gauges of the last run of each recipe: rows, bytes, batches, seconds, retries, per stage;
    rows quarantined and dropped, and schema changes."""
    results = list(results)
    lines: list[str] = []

    def family(name: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        for labels, value in samples:
            rendered = ",".join(f'{key}="{_label(val)}"' for key, val in labels.items())
            lines.append(f"{name}{{{rendered}}} {value}")

    family(
        "dataloader_run_success",
        "1 if the last run succeeded, else 0.",
        [({"recipe": r.recipe_name}, 1 if r.status == "success" else 0) for r in results],
    )
    family(
        "dataloader_run_timestamp_seconds",
        "When the last run started (Unix time).",
        [({"recipe": r.recipe_name}, r.started_at.timestamp()) for r in results],
    )
    family(
        "dataloader_run_duration_seconds",
        "Duration of the last run.",
        [({"recipe": r.recipe_name}, round(r.duration_seconds, 6)) for r in results],
    )
    family(
        "dataloader_run_rows_written",
        "Rows written by the last run.",
        [({"recipe": r.recipe_name}, r.rows_written) for r in results],
    )
    family(
        "dataloader_run_commits",
        "Commits of the last run.",
        [({"recipe": r.recipe_name}, r.commits) for r in results],
    )
    family(
        "dataloader_run_child_rows",
        "Rows the last run wrote into child tables of normalized nested data.",
        [({"recipe": r.recipe_name}, r.child_rows) for r in results],
    )
    family(
        "dataloader_run_rows_quarantined",
        "Rows of the last run that broke the schema contract and went to quarantine.",
        [({"recipe": r.recipe_name}, r.rows_quarantined) for r in results],
    )
    family(
        "dataloader_run_rows_dropped",
        "Rows of the last run that broke the schema contract and were dropped.",
        [({"recipe": r.recipe_name}, r.rows_dropped) for r in results],
    )
    family(
        "dataloader_run_schema_changes",
        "Changes the last run made to the destination table's schema.",
        [({"recipe": r.recipe_name}, r.schema_changes) for r in results],
    )
    for metric, help_text in (
        ("rows", "Rows"),
        ("bytes", "Bytes"),
        ("batches", "Batches"),
        ("seconds", "Seconds"),
        ("retries", "Retries"),
    ):
        family(
            f"dataloader_stage_{metric}",
            f"{help_text} per stage (read, transform, write, commit) in the last run.",
            [
                ({"recipe": r.recipe_name, "stage": stage}, getattr(m, metric))
                for r in results
                for stage, m in r.stages.items()
            ],
        )
    return "\n".join(lines) + "\n"


def write_prometheus_file(results: Iterable[RunResult], path: str | os.PathLike[str]) -> None:
    """Write the metrics atomically (the collector never reads a half-written file)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(prometheus_text(results))
    os.replace(tmp, target)
