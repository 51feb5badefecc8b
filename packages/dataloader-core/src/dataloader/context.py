"""What the engine tells plugins about the run they take part in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dataloader.errors import ConnectorError
from dataloader.sql import MergeOrder

if TYPE_CHECKING:
    from dataloader.recipe.models import DedupSortConfig, IncrementalConfig, RetryConfig

WriteMode = Literal["append", "overwrite", "merge"]


@dataclass(frozen=True)
class RunContext:
    """One run of one recipe, as seen by a connector, format or transform.

    :param recipe_name: the recipe's `name`.
    :param run_id: unique per run; used to name staged files and tables.
    :param started_at: when the run started (UTC).
    :param batch_size: `runtime.batch_size`: the most rows a source should put in one batch.
    :param role: whether the connector is opened as the recipe's source or destination.
    :param recipe_file: the recipe file, for error messages (None for recipes built in code).
    :param incremental: the source's incremental settings, when the source is incremental.
    :param write_mode: the destination's write mode.
    :param merge_keys: a merge recipe's merge keys; empty for other write modes. Also set when
        `--full-refresh` makes a merge an `overwrite`: the rows that replace the table are
        merged on them (one row per key, chosen as a merge chooses it).
    :param dedup_sort: `destination.dedup_sort` (merge mode): the column whose highest (`desc`)
        or lowest (`asc`) value wins among rows of one key, in the batch and in the table.
    :param full_refresh: the run ignores stored state and replaces the destination's data.
    :param retries: `runtime.retries`, for connectors that retry transient failures.
    :param parallelism: `runtime.parallelism`: how many readers a source may run at once.
    """

    recipe_name: str
    run_id: str
    started_at: datetime
    batch_size: int = 10_000
    role: Literal["source", "destination"] = "source"
    recipe_file: Path | None = None
    incremental: IncrementalConfig | None = None
    write_mode: WriteMode = "append"
    merge_keys: tuple[str, ...] = ()
    dedup_sort: DedupSortConfig | None = None
    full_refresh: bool = False
    retries: RetryConfig | None = None
    parallelism: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def merge_order(self, columns: list[str]) -> MergeOrder | None:
        """How a merge picks the row of a key that wins (`dedup_sort`), for a batch with
        `columns`; None without `dedup_sort`. A batch without its column is an error."""
        if self.dedup_sort is None:
            return None
        if self.dedup_sort.column not in columns:
            raise ConnectorError(
                f"dedup_sort column {self.dedup_sort.column!r} is not a column of the incoming rows",
                key="destination.dedup_sort.column",
                value=self.dedup_sort.column,
                expected=f"one of {columns}",
            )
        return self.dedup_sort.merge_order()
