"""The recipe's pydantic models: the shape every recipe has, whatever its connectors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from dataloader.context import WriteMode
from dataloader.durations import parse_duration
from dataloader.normalize.config import NormalizationConfig
from dataloader.recipe.merger import origin_of
from dataloader.schema.config import SchemaConfig
from dataloader.sql import MergeOrder

RECIPE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class IncrementalConfig(BaseModel):
    """How a source reads only what is new.

    :param strategy: `cursor` (a column that grows, e.g. `updated_at`) or `modified_time`
        (files: a new or changed file is read, an unchanged one is not).
    :param cursor_column: the cursor column (`cursor` strategy).
    :param initial_value: where the first run starts (exclusive); default: from the beginning.
    :param end_value: where a run stops (inclusive), for backfill windows.
    :param lag: re-read this far behind the stored cursor (a number in the cursor's units, or
        for time cursors seconds, `90s`/`15m`/`2h`/`1d` or an ISO 8601 duration like `PT1H`),
        for late-arriving rows; pair with `merge` to avoid duplicates.
    :param on_missing_cursor: what to do with rows whose cursor is NULL or NaN (they have no
        place in the cursor order): `fail` the run (default), or `load` them on every run
        without moving the cursor (needs `write_mode: merge`).
    :param max_boundary_rows: the most rows at the committed cursor value whose fingerprints
        the state keeps (8 bytes each), so that the next run reads `cursor >= value` and skips
        them; past it, a merge reads those rows again and any other mode reads after the value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Literal["cursor", "modified_time"] = "cursor"
    cursor_column: str | None = None
    initial_value: Any = None
    end_value: Any = None
    lag: float | str | None = None
    on_missing_cursor: Literal["fail", "load"] = "fail"
    max_boundary_rows: int = Field(10_000, ge=0)

    @field_validator("lag")
    @classmethod
    def _lag_is_a_duration(cls, value: float | str | None) -> float | str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _cursor_needs_column(self) -> IncrementalConfig:
        if self.strategy == "cursor" and not self.cursor_column:
            raise ValueError("strategy `cursor` needs `cursor_column`")
        return self


class SourceConfig(BaseModel):
    """The `source:` section: `type`, optional `incremental`, and the connector's own keys."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    incremental: IncrementalConfig | None = None

    @property
    def options(self) -> dict[str, Any]:
        """The connector's own keys (everything but `type` and `incremental`)."""
        return dict(self.model_extra or {})


class DedupSortConfig(BaseModel):
    """`destination.dedup_sort`: which row of a merge key wins, by a column's value.

    :param column: the column compared (e.g. `updated_at`).
    :param order: `desc` (default): the highest value wins; `asc`: the lowest wins.

    The rows of one key are compared within a batch, across the batches of a run and with the
    row already in the table: a row that loses keeps no trace, a stored row that wins stays as
    it is. A NULL never wins over a value; between equal values (or two NULLs) the row read
    later wins.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str = Field(min_length=1)
    order: Literal["asc", "desc"] = "desc"

    def merge_order(self) -> MergeOrder:
        """The SQL pieces a database destination applies it with."""
        return MergeOrder(self.column, descending=self.order == "desc")


class DestinationConfig(BaseModel):
    """The `destination:` section: `type`, `write_mode`, `merge_keys`, `dedup_sort`, and the
    connector's keys."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    write_mode: WriteMode = "append"
    merge_keys: list[str] | None = None
    dedup_sort: DedupSortConfig | None = None

    @model_validator(mode="after")
    def _merge_needs_keys(self) -> DestinationConfig:
        if self.write_mode == "merge" and not self.merge_keys:
            raise ValueError(
                "write_mode `merge` needs `merge_keys` (the columns that identify a row)"
            )
        return self

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TransformStep(BaseModel):
    """One `transform.steps[]` entry: `type` and the transform's own keys."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TransformConfig(BaseModel):
    """The `transform:` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: list[TransformStep] = Field(default_factory=list)


class RetryConfig(BaseModel):
    """`runtime.retries`: how transient failures are retried (a bare number sets `attempts`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int = Field(default=3, ge=0)
    initial_backoff: float = Field(default=0.5, ge=0)
    max_backoff: float = Field(default=30.0, ge=0)
    jitter: float = Field(default=0.1, ge=0, le=1)


class RuntimeConfig(BaseModel):
    """The `runtime:` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(default=50_000, gt=0)
    retries: RetryConfig = Field(default_factory=RetryConfig)
    parallelism: int = Field(default=1, ge=1, le=64)
    commit_interval_seconds: float = Field(default=30, gt=0)
    # 1: reading and transforming run in a background thread ahead of the writes; 0: in turn.
    read_ahead: int = Field(default=1, ge=0, le=1)
    # What runs the load: `local` (this process, the engine's own loop) or an executor plugin
    # (`dask`) that runs the source's partitions on a cluster's workers; `address`: an
    # existing cluster's scheduler (`tcp://host:8786`), else the executor starts a local one.
    executor: str = Field(default="local", pattern=r"^[a-z][a-z0-9_-]*$")
    address: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9+.-]*://[^\s/]+$")

    @field_validator("retries", mode="before")
    @classmethod
    def _bare_count(cls, value: Any) -> Any:
        return (
            {"attempts": value} if isinstance(value, int) and not isinstance(value, bool) else value
        )


class StateConfig(BaseModel):
    """The `state:` section: the backend's name and its own keys."""

    model_config = ConfigDict(extra="allow", frozen=True)

    backend: str = "local"

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Recipe(BaseModel):
    """A fully resolved recipe (inheritance merged, deletes applied, templates rendered)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=RECIPE_NAME_PATTERN)
    description: str | None = None
    source: SourceConfig
    destination: DestinationConfig
    table_schema: SchemaConfig = Field(default_factory=SchemaConfig, alias="schema")
    normalization: NormalizationConfig | None = None
    transform: TransformConfig = Field(default_factory=TransformConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    state: StateConfig | None = None

    _file: Path | None = PrivateAttr(default=None)
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)
    _masked_paths: frozenset[str] = PrivateAttr(default=frozenset())

    @property
    def file(self) -> Path | None:
        """The recipe file it was loaded from (None when built in code)."""
        return self._file

    def origin_of(self, key: str) -> str | None:
        """The file that defined `key` (a dot path), following `extends:`."""
        return origin_of(self._origins, key) or (str(self._file) if self._file else None)

    def masked_dump(self) -> dict[str, Any]:
        """The recipe as a dict with secrets masked, for printing."""
        from dataloader.secrets import mask_tree

        data = self.model_dump(mode="json", exclude_none=True, by_alias=True)
        return mask_tree(data, masked_paths=self._masked_paths)
