"""The connector API: what a source or destination plugin implements.

A connector is constructed with its validated config, then driven by the engine through
`open` → `read_batches` (source) or `begin` → `write_batch`… → `commit` (destination) → `close`.
The engine, never the connector, decides when to read, write, commit and save state.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo

from dataloader.context import RunContext, WriteMode
from dataloader.sql import TableName

if TYPE_CHECKING:
    import pyarrow as pa

    from dataloader.batch import Batch  # pyarrow: not needed to validate a connector's keys
    from dataloader.partitions import Partition
    from dataloader.schema.plan import SchemaPlan
    from dataloader.state.model import State


Role = Literal["source", "destination"]
SOURCE_ONLY: dict[str, Any] = {"role": "source"}
DESTINATION_ONLY: dict[str, Any] = {"role": "destination"}


def role_of(field: FieldInfo) -> Role | None:
    """The one role a connector key applies to (`Field(json_schema_extra=SOURCE_ONLY)`), or
    None when it applies to sources and destinations alike."""
    extra = field.json_schema_extra
    return extra.get("role") if isinstance(extra, dict) else None  # type: ignore[return-value]


class ConnectorConfig(BaseModel):
    """Base of every connector's options model. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class TableOrQueryConfig(ConnectorConfig):
    """Options shared by SQL connectors: a `table` (`schema.table`; sources and destinations)
    or a `query` (sources only)."""

    table: str | None = None
    query: str | None = Field(default=None, json_schema_extra=SOURCE_ONLY)

    @model_validator(mode="after")
    def _table_or_query(self) -> TableOrQueryConfig:
        if self.table is None and self.query is None:
            raise ValueError("give `table` (source or destination) or `query` (source)")
        if self.table is not None:
            TableName.parse(self.table)
        return self


class Capabilities(BaseModel):
    """What a connector can do; shown by `dataloader list-connectors`.

    :param read: usable as a source.
    :param write: usable as a destination.
    :param write_modes: the write modes it supports as a destination.
    :param incremental: supports incremental reads.
    :param transactional_state: commits the recipe's state in the same transaction as the data.
    :param resumable: as a source, its batches carry checkpoints (`metadata["checkpoint"]`), so a
        killed run resumes after the last committed batch instead of starting over.
    :param quarantine: as a destination, it keeps rows that break the recipe's schema contract
        in a quarantine table or file beside the data (`write_quarantine`).
    :param child_tables: as a destination, it writes the child tables of normalized nested
        data (`describe_child`, `apply_child_schema`, `write_child_batch`, `delete_children`)
        in the transaction or commit record of the main table.
    :param can_split: as a source, it can cut its read into partitions read apart
        (`plan_partitions`, `read_partition`), e.g. by a distributed executor.
    :param can_stage: as a destination, workers of a distributed run stage partitions into
        it (`stage_partition`) and the driver commits them with the state in one transaction
        (`commit_staged`), discarding what no worker reported (`discard_staged`).
    :param max_identifier_length: the longest table or column name it takes, in UTF-8 bytes
        (Postgres: 63); the normalizer cuts longer names, with a stable hash suffix.
    :param experimental: not yet run against the real system it names (its docs say what
        was tested and how); `list-connectors` says so, and a run using it logs a warning.
    """

    model_config = ConfigDict(frozen=True)

    read: bool = False
    write: bool = False
    write_modes: tuple[WriteMode, ...] = ()
    incremental: bool = False
    transactional_state: bool = False
    resumable: bool = False
    quarantine: bool = False
    child_tables: bool = False
    can_split: bool = False
    can_stage: bool = False
    max_identifier_length: int | None = None
    experimental: bool = False

    def describe(self) -> str:
        parts = ["experimental"] if self.experimental else []
        parts += [word for word, flag in (("read", self.read), ("write", self.write)) if flag]
        if self.write_modes:
            parts.append("modes=" + "/".join(self.write_modes))
        if self.incremental:
            parts.append("incremental")
        if self.transactional_state:
            parts.append("transactional-state")
        if self.quarantine:
            parts.append("quarantine")
        if self.child_tables:
            parts.append("child-tables")
        if self.can_split:
            parts.append("can-split")
        if self.can_stage:
            parts.append("can-stage")
        return ", ".join(parts)


@runtime_checkable
class Connector(Protocol):
    """The seed's unified protocol: a connector reads, writes, or both."""

    def read_batches(self, state: State) -> Iterable[Batch]: ...

    def write_batch(self, batch: Batch, state: State) -> None: ...


class BaseConnector:
    """A convenient base for connectors: every lifecycle step has a harmless default.

    Subclasses set `name`, `config_model` and `capabilities`, and override what they support.
    """

    name: ClassVar[str]
    config_model: ClassVar[type[ConnectorConfig]] = ConnectorConfig
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, config: Any) -> None:
        self.config = config
        self.context: RunContext | None = None

    # -- lifecycle driven by the engine -------------------------------------------------
    def open(self, context: RunContext) -> None:
        """Connect. Called once before any read or write."""
        self.context = context

    def close(self) -> None:
        """Release connections and temporary resources. Called once, also after failures."""

    def is_transient(self, error: BaseException) -> bool:
        """Whether `error` (raised by this connector or its driver) is worth retrying.

        When it is, the engine aborts the uncommitted work, reopens both ends and resumes
        from the last commit, up to `runtime.retries.attempts` times.
        """
        return False

    # -- source side --------------------------------------------------------------------
    def read_batches(self, state: State) -> Iterable[Batch]:
        """Yield batches of at most `context.batch_size` rows.

        Incremental sources read only what `state` says is new, ordered by the cursor column.
        A batch may carry `metadata["checkpoint"]`: a dict merged into `state.watermarks`
        once the batch is committed (how file sources remember what they have read).
        """
        raise NotImplementedError(f"connector {self.name!r} cannot be used as a source")

    def reads_in_cursor_order(self) -> bool:
        """Whether an incremental read yields its rows ordered by the cursor column (this
        default). A source that cannot (an API that lists newest first) returns False: the
        engine then keeps the highest cursor value read as the run goes, commits it as the
        cursor with the run's last commit only, and meanwhile commits it beside the batches'
        checkpoints, from which such a source must resume a killed run."""
        return True

    def estimate_rows(self) -> int | None:
        """A cheap estimate of the rows a read will yield, for progress display; None if unknown."""
        return None

    # -- source side: partitions ----------------------------------------------------------
    # A source that sets `capabilities.can_split` implements both. The plan is made once (by
    # the driver of a distributed run, or `dataloader plan`), each partition may be read by
    # another process of the same recipe, opened as a source as usual, with the same `state`.
    def plan_partitions(self, state: State, count: int) -> list[Partition] | None:
        """Cut the read `read_batches(state)` would do into at most `count` partitions.

        Together the partitions hold exactly the rows that read would yield, each in one
        partition only: the same selection (`where:`, the files listed) and the same
        incremental window from `state`. Called on an opened source; cheap (metadata, an
        EXPLAIN, a listing), never a read of the data.

        :param state: the state the run starts from (its cursor window or files read).
        :param count: the most partitions wanted, 1 or more; fewer come back when the source
            has fewer natural parts (files, pages).
        :returns: the partitions, `index` 0, 1, … in order (an empty list: nothing to read);
            None when this source cannot split (this default), and the read stays whole.
        """
        return None

    def read_partition(self, partition: Partition, state: State) -> Iterable[Batch]:
        """Yield the rows of one partition of a plan made by `plan_partitions(state, …)`, in
        batches of at most `context.batch_size` rows, as `read_batches` yields them
        (ordered by the cursor within the partition for an incremental read; checkpoints in
        `metadata["checkpoint"]` as `read_batches` sets them).

        :param partition: one partition of the plan, as planned (possibly in another process).
        :param state: the state the plan was made from.
        """
        raise NotImplementedError(f"connector {self.name!r} cannot read a partition")

    # -- destination side ---------------------------------------------------------------
    def load_state(self) -> State | None:
        """The state committed with the data (transactional destinations); None otherwise."""
        return None

    def begin(self, state: State) -> None:
        """Prepare a load: finish or clean up whatever a crashed earlier run left behind."""

    def write_batch(self, batch: Batch, state: State) -> None:
        """Stage one batch. Staged data is invisible to readers until `commit`."""
        raise NotImplementedError(f"connector {self.name!r} cannot be used as a destination")

    def describe(self) -> pa.Schema | None:
        """The table this run's rows go into, as it is before the first batch: one Arrow field
        per column with its type and nullability, key columns tagged `dataloader.key`
        (`primary`/`unique`, see `dataloader.schema.plan.key_of`); None when there is no such
        table yet — also under `overwrite` when the run writes into a new, empty stage.

        The engine calls it once per attempt, after `begin`, and plans every batch against it
        (and against the recipe's `schema:` contract). This default knows no table: the engine
        then plans against the schema the recipe's state recorded at the last commit (against
        none under `overwrite`).
        """
        return None

    def apply_schema(self, plan: SchemaPlan) -> None:
        """Make the table `plan.target`, before the next `write_batch`: create it
        (`plan.create`), add the columns of `plan.added()`, widen those of `plan.widened()`.

        The changes must become visible with the next `commit` and vanish with `abort`, as
        the data does (in the same transaction, or recorded with the data). The engine has
        cast the batches that follow to `plan.target`'s types, and only plans widenings no
        value can be lost in. This default does nothing: a destination that creates and
        extends its table from the batches it is given.
        """

    def write_quarantine(self, rows: pa.Table) -> None:
        """Stage rows that broke the schema contract beside the data (e.g. `<table>__quarantine`),
        committed with it. `rows` has the columns `row` (the row as JSON text), `rule` (what
        it broke), `column`, `run_id` and `quarantined_at` (timestamp with zone). Only called
        when `capabilities.quarantine` is set.
        """
        raise NotImplementedError(f"connector {self.name!r} cannot keep a quarantine")

    # -- destination: child tables of normalized nested data ---------------------------
    # Called only when `capabilities.child_tables` is set. A child table is a sibling of the
    # main table (same database schema, or a sibling directory), named by the normalizer
    # (`customers__orders`). Its rows carry `_dl_id`, `_dl_parent_id`, `_dl_root_id` and
    # `_dl_list_idx` (`dataloader.normalize.keys`). The write mode is the main table's:
    # append adds rows; overwrite replaces the table at commit, as it replaces the main one;
    # merge first deletes the children of the merged parents (`delete_children`), then adds.
    def table_name(self) -> str | None:
        """The main table's name without its database schema (a file destination: the last
        segment of its directory), which child table names start with; None when unknown."""
        return None

    def describe_child(self, table: str) -> pa.Schema | None:
        """As `describe`, for the child table `table`: None when it does not exist yet, and
        under overwrite (the run writes it anew)."""
        return None

    def apply_child_schema(self, table: str, plan: SchemaPlan) -> None:
        """As `apply_schema`, for the child table `table`: create it, add or widen columns,
        visible with the next `commit` and gone with `abort`."""
        raise NotImplementedError(f"connector {self.name!r} cannot write child tables")

    def write_child_batch(self, table: str, batch: Batch, state: State) -> None:
        """Stage rows of the child table `table`, committed with the main table's rows by
        the next `commit`. The engine calls `apply_child_schema` first."""
        raise NotImplementedError(f"connector {self.name!r} cannot write child tables")

    def delete_children(self, table: str, root_ids: pa.Array | None) -> None:
        """Stage the deletion of the rows of child table `table` whose `_dl_root_id` is in
        `root_ids`: under merge (the merged parents' lists are replaced, so children they no
        longer have go), called before each batch's `write_child_batch` for every child table
        the state knows or the run wrote, even one the batch has no rows for; under a merge
        recipe's full refresh likewise, deleting from what this run wrote (its stage).
        Under overwrite, before the final commit, `root_ids` is None for each known child
        table this run wrote no rows to: it is emptied at `commit`."""
        raise NotImplementedError(f"connector {self.name!r} cannot write child tables")

    def commit(self, state: State) -> None:
        """Make everything staged since the last commit visible, together with `state`."""

    def commit_due(self, staged_rows: int) -> bool | None:
        """Whether the destination wants a commit now, `staged_rows` rows after the last one.
        None (this default) leaves it to the engine: a commit every `runtime.batch_size` rows. A
        file destination asks for one when a part file is full, so that its files are not cut
        at every batch. `runtime.commit_interval_seconds` brings a commit forward either way."""
        return None

    def abort(self) -> None:
        """Discard everything staged since the last commit."""

    # -- destination: staging for a distributed run ----------------------------------------
    # Called only when `capabilities.can_stage` is set, by `dataloader.engine.distributed`.
    # A worker stages one partition's rows apart from every other attempt's (`attempt` is
    # unique to this try of this partition); nothing staged is visible to readers. The driver
    # then commits exactly the staging the finished tasks reported, with the state, in one
    # transaction, and discards the rest (an attempt whose worker died is never reported).
    def stage_partition(
        self, context: RunContext, partition: Partition, attempt: str, batches: Iterable[Batch]
    ) -> dict[str, Any]:
        """Worker side: write `batches` (the partition's rows, transformed) to a staging area
        only this attempt writes. Called on a destination created from the recipe but NOT
        opened (the driver holds its connection, and `begin` is the driver's).

        :param context: the run's destination context (what `open` would be given).
        :param partition: the partition the rows are of.
        :param attempt: unique to this try of this partition within the run (a name part).
        :param batches: its rows, in order; an empty partition yields none.
        :returns: what was staged, as plain JSON (e.g. the part files), handed back to
            `commit_staged`.
        """
        raise NotImplementedError(f"connector {self.name!r} cannot stage partitions")

    def staged_schemas(self, staged: list[dict[str, Any]]) -> list[tuple[str, pa.Schema]]:
        """Driver side: each staged part of `staged` (a name for messages) with the Arrow
        schema of its rows; empty when they hold no rows. The engine unites them by its own
        widening rules and plans the table against the result before `commit_staged`."""
        raise NotImplementedError(f"connector {self.name!r} cannot stage partitions")

    def commit_staged(
        self, staged: list[dict[str, Any]], state: State, schema: pa.Schema | None
    ) -> None:
        """Driver side: make the rows of every `staged` report visible together with `state`,
        in one transaction (after `begin`, and `apply_schema` if the engine planned a change);
        under overwrite they replace the table's rows. Nothing is visible if it fails.

        :param staged: what `stage_partition` returned, one per partition, each once.
        :param state: the state to commit with them.
        :param schema: the parts' schemas as the engine united them (every value of every
            part fits it without loss, and so does the table): the columns to commit, which
            leave out a part's column of NULLs the table lacks; None without rows.
        """
        raise NotImplementedError(f"connector {self.name!r} cannot stage partitions")

    def discard_staged(self) -> None:
        """Driver side: remove all of this recipe's staging, reported or not, also a dead
        run's. Called when a run starts, after its `commit_staged` (what was reported is in
        the table now; what was not is a retried attempt's) and after a failed run. The
        recipe's lock is held: no other run of it stages meanwhile."""
        raise NotImplementedError(f"connector {self.name!r} cannot stage partitions")

    def reset_state(self) -> None:
        """Forget the state stored in the destination (transactional destinations)."""
