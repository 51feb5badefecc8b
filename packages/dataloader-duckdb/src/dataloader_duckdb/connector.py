"""`DuckDBConnector`: read a table or query; write with append, overwrite or merge.

Writes run inside a DuckDB transaction that also updates the recipe's row in
`_dataloader_state`, so data and state commit together. Overwrite loads into a staging table
and swaps it in at the end, in one transaction that also replaces the quarantine's rows.
The child tables of normalized nested data are tables beside the main one, written in the
same transactions (under overwrite: staged and swapped in with it).

Several recipes may load into one file at once (threads of one process: DuckDB lets a single
process write a file). So a staging table is labelled with the recipe, table and run that own
it, and a run drops only its own recipe's stages (dead, since the run holds the recipe's
lock); DDL that runs share is created outside the data transactions, and a write-write
conflict between runs is transient: the engine retries from the last commit.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dataloader import (
    ArrowBatch,
    BaseConnector,
    Capabilities,
    ConnectorError,
    State,
)
from dataloader.context import RunContext
from dataloader.incremental import CursorWindow, window_for
from dataloader.partitions import Partition
from dataloader.schema.types import JSON_TAG, TYPE_TAG
from dataloader.sql import (
    STAGING_PREFIX,
    STATE_TABLE,
    TableName,
    quote_identifier,
    stage_label,
    stage_owner,
    staging_name,
)
from dataloader_duckdb.config import DuckDBConfig
from dataloader_duckdb.schema import (
    add_columns,
    create_sql,
    describe_table,
    exists,
    sql_string,
    tagged_schema,
    typed_star,
    widen_columns,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from dataloader.schema.plan import SchemaPlan

BATCH_VIEW = "_dl_batch"
# Beside the database file, the Parquet parts a distributed run's workers stage:
# `<dir>/.<file>.staging/<recipe>/<run id>/part-<partition>-<attempt>.parquet`.
STAGING_SUFFIX = ".staging"
# Parquet holds no month-day-nanosecond interval: a staged part keeps one as a struct of
# its three fields, its field marked with this key; the commit makes it an INTERVAL again.
STAGED_INTERVAL = b"dataloader.staged_interval"
ORDINAL = "__dl_ordinal"
# A merge's aliases of the incoming and the stored rows, unlike any column name: in the
# correlated `NOT EXISTS`, a column `s` of the table would hide an outer alias `s`.
NEW, OLD = "__dl_new", "__dl_old"
QUARANTINE_VIEW = "_dl_quarantine"
QUARANTINE_SUFFIX = "__quarantine"
ROOT_IDS_VIEW = "_dl_root_ids"
# Runs in this process take turns at shared DDL, so they do not conflict with each other.
_SHARED_DDL = threading.Lock()


def _literal(value: Any, arrow_type: pa.DataType) -> str:
    """A range edge as a DuckDB literal of the column's type."""
    if pa.types.is_timestamp(arrow_type):
        kind = "TIMESTAMPTZ" if arrow_type.tz is not None else "TIMESTAMP"
        return f"{kind} {sql_string(value.isoformat(sep=' '))}"
    if pa.types.is_date(arrow_type):
        return f"DATE {sql_string(value.isoformat())}"
    if pa.types.is_floating(arrow_type):
        return f"{float(value)!r}::DOUBLE"
    return str(value)


def _shown(value: Any) -> str:
    """A range edge as a label shows it."""
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    return str(value)


def _windowed(sql: str, window: CursorWindow, arrow_type: pa.DataType) -> tuple[str, list[Any]]:
    """`sql` limited to the cursor window and ordered by the cursor, with its parameters.

    Bounds are bound as values of the column's type (a nanosecond timestamp as its integer),
    never as text DuckDB would read in the session's time zone; text is compared in code-point
    order, whatever the column's collation, as the engine compares it.
    """
    params: list[Any] = []

    def bind(value: pa.Scalar) -> str:
        kind = value.type
        if pa.types.is_timestamp(kind) and kind.unit == "ns" and kind.tz is None:
            params.append(value.value)
            return "make_timestamp_ns(?)"
        params.append(value.as_py())
        return "?"

    column = quote_identifier(window.column)
    condition = window.sql_condition(column, arrow_type, bind, "binary")
    if condition is not None:
        sql += f" WHERE {condition}"
    return f"{sql} ORDER BY {window.sql_cursor(column, arrow_type, 'binary')}", params


class DuckDBConnector(BaseConnector):
    """DuckDB source and destination."""

    name = "duckdb"
    config_model = DuckDBConfig
    capabilities = Capabilities(
        read=True,
        write=True,
        write_modes=("append", "overwrite", "merge"),
        incremental=True,
        transactional_state=True,
        quarantine=True,
        child_tables=True,
        can_split=True,
        can_stage=True,
        max_identifier_length=None,
    )

    def __init__(self, config: DuckDBConfig) -> None:
        super().__init__(config)
        self.con: Any = None
        self._in_transaction = False
        # Under overwrite: per table this run writes (the main one, its child tables), the
        # stage its rows go into; and the child tables to empty at the swap.
        self._stages: dict[TableName, TableName] = {}
        self._emptied: set[TableName] = set()
        # Per table: its columns as `apply_schema`, `describe` or a write last left them, so a
        # batch whose columns the table has skips the catalog queries. Forgotten on abort (a
        # rollback may undo a CREATE or ALTER).
        self._fitted: dict[str, frozenset[str]] = {}
        # Under overwrite: whether this transaction has emptied the quarantine yet.
        self._quarantine_replaced = False

    # -- lifecycle -------------------------------------------------------------------
    def open(self, context: Any) -> None:
        import duckdb

        super().open(context)
        database = self.config.database
        if database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(
                database, read_only=self.config.read_only and context.role == "source"
            )
        except duckdb.Error as exc:
            if context.role == "source" and not self.config.read_only and "lock" in str(exc):
                raise ConnectorError(
                    f"cannot open DuckDB database: {exc}",
                    key="source.read_only",
                    value=False,
                    expected="true: another process holds the file, and only read-only "
                    "connections share it (a distributed run's driver and workers open the "
                    "source at once)",
                ) from exc
            raise ConnectorError(
                f"cannot open DuckDB database: {exc}",
                key=f"{context.role}.database",
                value=database,
            ) from exc

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None

    def is_transient(self, error: BaseException) -> bool:
        """A write-write conflict with another run on this file (two recipes creating the state
        table or the same table at once): the data and state commit together, so a retry
        from the last commit is safe."""
        import duckdb

        return isinstance(error, duckdb.TransactionException) and "conflict" in str(error).lower()

    def _error(self, action: str, exc: Exception) -> ConnectorError:
        return ConnectorError(
            f"DuckDB {action} failed on {self.config.table or 'query'} in {self.config.database}: {exc}",
            key=f"{self.context.role if self.context else 'destination'}.table",
        )

    # -- source ----------------------------------------------------------------------
    def read_batches(self, state: State) -> Iterator[ArrowBatch]:
        yield from self._read(state, "")

    def _relation(self) -> str:
        return f"({self.config.query}) AS q" if self.config.query else self._table().sql()

    def _selected(self, state: State, condition: str) -> tuple[str, list[Any]]:
        """The read's SQL and parameters: the table or query, limited to `condition` (a range of
        a plan; empty: every row), then to the cursor window and ordered by the cursor."""
        assert self.context is not None
        sql = f"SELECT * FROM {self._relation()}" + (f" WHERE {condition}" if condition else "")
        params: list[Any] = []
        incremental = self.context.incremental
        if incremental is not None and incremental.strategy == "cursor":
            if condition:
                sql = f"SELECT * FROM ({sql}) AS p"
            window = window_for(incremental, state.cursor_values, state.cursor_boundaries)
            arrow_type = self._column_type(window.column)
            sql, params = _windowed(sql, window, arrow_type)
        elif incremental is not None:
            raise ConnectorError(
                "DuckDB sources support the `cursor` incremental strategy only",
                key="source.incremental.strategy",
                value=incremental.strategy,
            )
        return sql, params

    def _column_type(self, column: str) -> pa.DataType:
        """The Arrow type of the cursor column `column`."""
        cursor = self.con.cursor()
        schema = cursor.sql(f"SELECT * FROM {self._relation()} LIMIT 0").to_arrow_table().schema
        if column not in schema.names:
            raise ConnectorError(
                f"cursor column {column!r} is not a column of {self.config.table or 'the query'}",
                key="source.incremental.cursor_column",
                value=column,
                expected=f"one of {schema.names}",
            )
        return schema.field(column).type

    def _read(self, state: State, condition: str) -> Iterator[ArrowBatch]:
        assert self.context is not None
        import duckdb

        try:
            sql, params = self._selected(state, condition)
            cursor = self.con.cursor()  # kept while the reader reads
            relation = cursor.sql(sql, params=params or None)
            types = [str(kind) for kind in relation.types]
            reader = relation.to_arrow_reader(batch_size=self.context.batch_size)
            tagged = tagged_schema(reader.schema, types)
        except duckdb.Error as exc:
            raise self._error("read", exc) from exc
        for record_batch in reader:
            if tagged is not None:
                record_batch = pa.RecordBatch.from_arrays(record_batch.columns, schema=tagged)
            yield ArrowBatch(record_batch, {"source": "duckdb"})

    # -- source: partitions ----------------------------------------------------------
    def plan_partitions(self, state: State, count: int) -> list[Partition] | None:
        """An incremental read: ranges of its cursor column (numeric or time; the window
        applies inside every range, ranges in cursor order). Else a table: ranges of `rowid`,
        rows estimated in proportion. None for a query that is not incremental, and a cursor
        without arithmetic (text). DuckDB has no snapshot to share between connections:
        partitions hold each row once when the table does not change between the plan and
        the reads (rows appended meanwhile fall into the last, open, range)."""
        assert self.context is not None
        import duckdb

        if count < 1:
            raise ValueError(f"the number of partitions is 1 or more, not {count}")
        incremental = self.context.incremental
        try:
            if incremental is not None and incremental.strategy == "cursor":
                assert incremental.cursor_column is not None
                ranges = self._key_ranges(state, incremental.cursor_column, count)
            elif self.config.query is not None:
                return None
            else:
                ranges = self._rowid_ranges(count)
        except duckdb.Error as exc:
            raise self._error("plan a split read", exc) from exc
        if ranges is None:
            return None
        return [
            Partition(index=i, label=label, estimated_rows=rows, spec={"where": condition})
            for i, (condition, label, rows) in enumerate(ranges)
        ]

    def _rowid_ranges(self, count: int) -> list[tuple[str, str, int | None]]:
        rows, low, high = self.con.execute(
            f"SELECT count(*), min(rowid), max(rowid) FROM {self._table().sql()}"
        ).fetchall()[0]
        if not rows:
            return [("", "all rows", 0)]
        span = high - low + 1
        count = max(1, min(count, span))
        edges = [low + span * i // count for i in range(count + 1)]
        ranges = []
        for index in range(count):
            parts = [f"rowid >= {edges[index]}"] if index else []
            if index < count - 1:
                parts.append(f"rowid < {edges[index + 1]}")
            if count == 1:
                label = "all rows"
            elif index < count - 1:
                label = f"rowid in [{edges[index]}, {edges[index + 1]})"
            else:
                label = f"rowid >= {edges[index]}"
            estimate = round(rows * (edges[index + 1] - edges[index]) / span)
            ranges.append((" AND ".join(parts), label, estimate))
        return ranges

    def _key_ranges(
        self, state: State, column: str, count: int
    ) -> list[tuple[str, str, int | None]] | None:
        """Ranges of equal width between the column's smallest and largest finite values in
        the windowed read; NULLs (and NaN, ±infinity) land in the first or last range."""
        arrow_type = self._column_type(column)
        quoted = quote_identifier(column)
        timely = pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type)
        if pa.types.is_floating(arrow_type) or timely:
            finite = f"isfinite({quoted})"
        elif pa.types.is_integer(arrow_type) or pa.types.is_decimal(arrow_type):
            finite = "true"
        else:
            return None  # no arithmetic to cut ranges with (text, …)
        sql, params = self._selected(state, "")
        low, high = self.con.execute(
            f"SELECT min({quoted}), max({quoted}) FROM ({sql}) AS w WHERE {finite}",
            params or None,
        ).fetchall()[0]
        if low is None or low == high:
            return [("", "all rows", None)]
        if pa.types.is_integer(arrow_type):
            edges = [low + (high - low) * i // count for i in range(1, count)]
        else:
            step = (high - low) / count
            edges = [low + step * i for i in range(1, count)]
        edges = sorted({edge for edge in edges if edge > low})
        literals = [_literal(edge, arrow_type) for edge in edges]
        ranges: list[tuple[str, str, int | None]] = []
        for index in range(len(edges) + 1):
            if not index:
                condition = f"({quoted} < {literals[0]} OR {quoted} IS NULL)"
                label = f"{column} < {_shown(edges[0])} or null"
            elif index == len(edges):
                condition = f"{quoted} >= {literals[-1]}"
                label = f"{column} >= {_shown(edges[-1])}"
            else:
                condition = f"{quoted} >= {literals[index - 1]} AND {quoted} < {literals[index]}"
                label = f"{column} in [{_shown(edges[index - 1])}, {_shown(edges[index])})"
            ranges.append((condition, label, None))
        return ranges

    def read_partition(self, partition: Partition, state: State) -> Iterator[ArrowBatch]:
        """The rows of one range of the plan, with the window from `state`, ordered by the
        cursor when incremental."""
        yield from self._read(state, partition.spec["where"])

    def estimate_rows(self) -> int | None:
        if self.config.query or self.con is None:
            return None
        try:
            return int(
                self.con.execute(f"SELECT count(*) FROM {self._table().sql()}").fetchall()[0][0]
            )
        except Exception:
            return None

    # -- destination: state ------------------------------------------------------------
    def _table(self) -> TableName:
        if self.config.table is None:
            raise ConnectorError("a DuckDB destination needs `table`", key="destination.table")
        return TableName.parse(self.config.table)

    def _exists(self, table: TableName) -> bool:
        return exists(self.con, table)

    def load_state(self) -> State | None:
        assert self.context is not None
        if not self._exists(TableName(None, STATE_TABLE)):
            return None
        rows = self.con.execute(
            f"SELECT state FROM {quote_identifier(STATE_TABLE)} WHERE recipe = ?",
            [self.context.recipe_name],
        ).fetchall()
        return State.from_dict(json.loads(rows[0][0])) if rows else None

    def reset_state(self) -> None:
        assert self.context is not None
        if self._exists(TableName(None, STATE_TABLE)):
            self.con.execute(
                f"DELETE FROM {quote_identifier(STATE_TABLE)} WHERE recipe = ?",
                [self.context.recipe_name],
            )

    def _save_state(self, state: State) -> None:
        assert self.context is not None
        # `begin` created the state table: creating it here, in the data transaction, conflicts
        # with a concurrent run that created it and committed first.
        self.con.execute(
            f"DELETE FROM {quote_identifier(STATE_TABLE)} WHERE recipe = ?",
            [self.context.recipe_name],
        )
        self.con.execute(
            f"INSERT INTO {quote_identifier(STATE_TABLE)} VALUES (?, ?, now())",
            [self.context.recipe_name, json.dumps(state.progress())],
        )

    # -- destination: writes -----------------------------------------------------------
    def begin(self, state: State) -> None:
        table = self._table()
        if table.schema:
            self._create_shared(
                f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(table.schema)}",
                "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?",
                [table.schema],
            )
        self._create_shared(
            f"CREATE TABLE IF NOT EXISTS {quote_identifier(STATE_TABLE)} (recipe VARCHAR, state VARCHAR, updated_at TIMESTAMPTZ)",
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = current_schema()",
            [STATE_TABLE],
        )
        self._drop_dead_stages(table)

    def _create_shared(self, ddl: str, exists_sql: str, params: list[Any]) -> None:
        """Run `CREATE … IF NOT EXISTS` for an object other runs on this file may create at the
        same moment, in a transaction of its own. A conflict with their create is harmless once
        the object exists; while their create is uncommitted it is transient (see `is_transient`)."""
        import duckdb

        try:
            with _SHARED_DDL:
                self.con.execute(ddl)
        except duckdb.TransactionException as exc:
            if not self.con.execute(exists_sql, params).fetchall()[0][0]:
                raise self._error("create of a shared table or schema", exc) from exc

    def _drop_dead_stages(self, table: TableName) -> None:
        """Drop the staging tables an earlier run of this recipe left in `table`'s schema, of
        `table` or of a child table. They are dead: this run holds the recipe's lock. Other
        stages, even of the same tables, may belong to another recipe's live run; that
        recipe's next run drops them."""
        assert self.context is not None
        stages = self.con.execute(
            "SELECT table_name, comment FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = coalesce(?, current_schema()) AND starts_with(table_name, ?)",
            [table.schema, STAGING_PREFIX],
        ).fetchall()
        for name, comment in stages:
            owner = stage_owner(comment)
            if owner is not None and owner[0] == self.context.recipe_name:
                self.con.execute(f"DROP TABLE IF EXISTS {table.sibling(name).sql()}")

    def _begin_transaction(self) -> None:
        if not self._in_transaction:
            self.con.execute("BEGIN TRANSACTION")
            self._in_transaction = True

    def write_batch(self, batch: Any, state: State) -> None:
        assert self.context is not None
        data = batch.to_arrow()
        if data.num_rows == 0:
            return
        import duckdb

        try:
            if self.context.write_mode == "overwrite":
                # A merge recipe's full refresh: the stage holds one row per key, as a merge.
                fill = self._merge if self.context.merge_keys else self._append
                self._write_staging(data, self._table(), fill)
            elif self.context.write_mode == "merge":
                self._begin_transaction()
                self._merge(data, self._table())
            else:
                self._begin_transaction()
                self._append(data, self._table())
        except duckdb.Error as exc:
            raise self._error(f"{self.context.write_mode} write", exc) from exc

    def _register(self, data: pa.RecordBatch) -> None:
        self.con.register(BATCH_VIEW, pa.Table.from_batches([data]))

    def _unregister_batch(self) -> None:
        """Forget the batch view. After a failed statement DuckDB refuses even this ("transaction
        is aborted"), and the failure to report is the one that aborted the transaction."""
        import duckdb

        with suppress(duckdb.Error):
            self.con.unregister(BATCH_VIEW)

    def _ensure_table(self, table: TableName, source: str, names: list[str]) -> frozenset[str]:
        """The columns of `table`, which must hold the columns `names` of `source`. The engine
        fits the table first (`apply_schema`); one not fitted to these columns is created
        shaped like `source`, or given the columns it lacks."""
        fitted = self._fitted.get(table.sql())
        if fitted is not None and fitted.issuperset(names):
            return fitted
        if not self._exists(table):
            self.con.execute(f"CREATE TABLE {table.sql()} AS SELECT * FROM {source} LIMIT 0")
            columns = frozenset(names)
        else:
            existing = {row[0] for row in self.con.execute(f"DESCRIBE {table.sql()}").fetchall()}
            described = self.con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
            for name, type_name, *_ in described:
                if name not in existing:
                    self.con.execute(
                        f"ALTER TABLE {table.sql()} ADD COLUMN {quote_identifier(name)} {type_name}"
                    )
            columns = frozenset(existing | {row[0] for row in described})
        self._fitted[table.sql()] = columns
        return columns

    def _append(self, data: pa.RecordBatch, table: TableName) -> None:
        self._register(data)
        rows = f"(SELECT *{typed_star(data.schema)} FROM {BATCH_VIEW})"
        try:
            self._ensure_table(table, rows, data.schema.names)
            self.con.execute(f"INSERT INTO {table.sql()} BY NAME SELECT * FROM {rows}")
        finally:
            self._unregister_batch()

    def _write_staging(
        self,
        data: pa.RecordBatch,
        target: TableName,
        fill: Callable[[pa.RecordBatch, TableName], None],
    ) -> None:
        """`fill` `target`'s stage with `data`, creating the stage first when it has none."""
        stage = self._stages.get(target)
        if stage is not None:
            fill(data, stage)
            return
        stage = self._stage_name(target)
        opened = not self._in_transaction
        self._begin_transaction()
        fill(data, stage)
        self._label_stage(target, stage, commit=opened)

    def _stage_name(self, target: TableName) -> TableName:
        assert self.context is not None
        return target.sibling(staging_name(target.name, self.context.run_id))

    def _label_stage(self, target: TableName, stage: TableName, *, commit: bool) -> None:
        """Label `target`'s stage, just created, with its owner, in the transaction that created
        it: no crash leaves a stage that `_drop_dead_stages` cannot attribute. With `commit`,
        that transaction commits now, so the run's later batches need not form one
        transaction (the stage is invisible until the swap); without, the stage joins the
        open one."""
        assert self.context is not None
        label = stage_label(self.context.recipe_name, target.name, self.context.run_id)
        self.con.execute(f"COMMENT ON TABLE {stage.sql()} IS {sql_string(label)}")
        if commit:
            self.con.execute("COMMIT")
            self._in_transaction = False
        self._stages[target] = stage

    def _merge(self, data: pa.RecordBatch, table: TableName) -> None:
        assert self.context is not None
        keys = list(self.context.merge_keys)
        missing = [key for key in keys if key not in data.schema.names]
        if missing:
            raise ConnectorError(
                f"merge key {missing[0]!r} is not a column of the incoming rows",
                key="destination.merge_keys",
                value=missing[0],
                expected=f"one of {data.schema.names}",
            )
        winner = self.context.merge_order(data.schema.names)
        ordinal = pa.array(range(data.num_rows), type=pa.int64())
        self._register(data.append_column(ORDINAL, ordinal))
        incremental = self.context.incremental
        # Per key, the first row in this order wins: by `dedup_sort`, then by the cursor,
        # then the row read last.
        order = [winner.sort_key()] if winner else []
        if incremental and incremental.cursor_column in data.schema.names:
            order.append(f"{quote_identifier(incremental.cursor_column)} DESC NULLS LAST")
        order.append(f"{quote_identifier(ORDINAL)} DESC")
        partition = ", ".join(quote_identifier(key) for key in keys)
        columns_of_rows = f"* EXCLUDE ({quote_identifier(ORDINAL)}){typed_star(data.schema)}"
        try:
            columns = self._ensure_table(
                table, f"(SELECT {columns_of_rows} FROM {BATCH_VIEW})", data.schema.names
            )
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE _dl_merge AS SELECT {columns_of_rows} FROM {BATCH_VIEW} "
                f"QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {', '.join(order)}) = 1"
            )
            match = " AND ".join(
                f"{OLD}.{quote_identifier(k)} = {NEW}.{quote_identifier(k)}" for k in keys
            )
            if winner:  # a stored row that wins over the incoming one stays as it is
                self.con.execute(
                    f"DELETE FROM _dl_merge AS {NEW} USING {table.sql()} AS {OLD} "
                    f"WHERE {match} AND NOT {winner.replaces(NEW, OLD)}"
                )
            incoming = [name for name in data.schema.names if name != ORDINAL]
            if columns <= set(incoming):  # nothing to keep: delete + insert is the fastest
                self.con.execute(
                    f"DELETE FROM {table.sql()} AS {OLD} USING _dl_merge AS {NEW} WHERE {match}"
                )
                self.con.execute(f"INSERT INTO {table.sql()} BY NAME SELECT * FROM _dl_merge")
            else:  # columns the rows do not carry keep their values in matched rows
                updates = ", ".join(
                    f"{quote_identifier(name)} = {NEW}.{quote_identifier(name)}"
                    for name in incoming
                    if name not in keys
                )
                if updates:
                    self.con.execute(
                        f"UPDATE {table.sql()} AS {OLD} SET {updates} FROM _dl_merge AS {NEW} WHERE {match}"
                    )
                self.con.execute(
                    f"INSERT INTO {table.sql()} BY NAME SELECT * FROM _dl_merge AS {NEW} "
                    f"WHERE NOT EXISTS (SELECT 1 FROM {table.sql()} AS {OLD} WHERE {match})"
                )
            self.con.execute("DROP TABLE _dl_merge")
        finally:
            self._unregister_batch()

    # -- destination: schema -----------------------------------------------------------
    def describe(self) -> pa.Schema | None:
        """The table as it is; None under overwrite, where the rows go into a new stage."""
        return self._describe(self._table())

    def _describe(self, table: TableName) -> pa.Schema | None:
        import duckdb

        assert self.context is not None
        if self.context.write_mode == "overwrite":
            return None
        try:
            described = describe_table(self.con, table)
        except duckdb.Error as exc:
            raise self._error(f"describe of {table}", exc) from exc
        if described is not None:
            self._fitted[table.sql()] = frozenset(described.names)
        return described

    def apply_schema(self, plan: SchemaPlan) -> None:
        """Create or alter the table (under overwrite: this run's stage) in the transaction the
        next batches and the state commit in. A new table's non-nullable fields are NOT NULL
        and its `primary`/`unique` fields its keys; added columns are nullable (the rows there
        have no value)."""
        self._apply_plan(self._table(), plan)

    def _apply_plan(self, target: TableName, plan: SchemaPlan) -> None:
        assert self.context is not None
        import duckdb

        overwrite = self.context.write_mode == "overwrite"
        stage = self._stages.get(target)
        table = stage or (self._stage_name(target) if overwrite else target)
        try:
            if overwrite and stage is None:
                opened = not self._in_transaction
                self._begin_transaction()
                self.con.execute(create_sql(self.con, table, plan.target))
                self._label_stage(target, table, commit=opened)
            else:
                self._begin_transaction()
                if plan.create and not overwrite:
                    self.con.execute(create_sql(self.con, table, plan.target))
                else:
                    add_columns(self.con, table, plan.added())
                    scratch = staging_name(table.name, f"{self.context.run_id} rewrite")
                    widen_columns(self.con, table, plan.widened(), scratch)
        except duckdb.Error as exc:
            raise self._error(f"schema change of {target}", exc) from exc
        self._fitted[table.sql()] = frozenset(plan.target.names)

    def write_quarantine(self, rows: pa.Table) -> None:
        """Insert `rows` into `<table>__quarantine` (created with their columns when missing, the
        row's JSON text as JSON), in the transaction the data commits in. Under overwrite the
        rows quarantined before go first: they refer to the data the run replaces."""
        if rows.num_rows == 0:
            return
        import duckdb

        if "row" in rows.schema.names:
            index = rows.schema.get_field_index("row")
            row = rows.schema.field(index)
            tagged = row.with_metadata({**(row.metadata or {}), TYPE_TAG: JSON_TAG})
            rows = pa.Table.from_arrays(rows.columns, schema=rows.schema.set(index, tagged))
        table = self._quarantine_table()
        try:
            self._begin_transaction()
            self._replace_quarantine()
            self.con.register(QUARANTINE_VIEW, rows)
            source = f"(SELECT *{typed_star(rows.schema)} FROM {QUARANTINE_VIEW})"
            try:
                self._ensure_table(table, source, rows.schema.names)
                self.con.execute(f"INSERT INTO {table.sql()} BY NAME SELECT * FROM {source}")
            finally:
                with suppress(duckdb.Error):
                    self.con.unregister(QUARANTINE_VIEW)
        except duckdb.Error as exc:
            raise self._error("quarantine write", exc) from exc

    def _quarantine_table(self) -> TableName:
        target = self._table()
        return target.sibling(target.name + QUARANTINE_SUFFIX)

    def _replace_quarantine(self) -> None:
        """Under overwrite, empty the quarantine once, in the transaction that swaps the stage in,
        so it commits holding this run's rows only."""
        assert self.context is not None
        if self.context.write_mode != "overwrite" or self._quarantine_replaced:
            return
        quarantine = self._quarantine_table()
        if self._exists(quarantine):
            self.con.execute(f"DELETE FROM {quarantine.sql()}")
        self._quarantine_replaced = True

    # -- destination: child tables -----------------------------------------------------
    def table_name(self) -> str | None:
        """The main table's name, without its schema; child tables are created beside it."""
        return TableName.parse(self.config.table).name if self.config.table else None

    def _child(self, table: str) -> TableName:
        return self._table().sibling(table)

    def describe_child(self, table: str) -> pa.Schema | None:
        """The child table `table` as it is (as `describe`); None when it does not exist yet
        and under overwrite."""
        return self._describe(self._child(table))

    def apply_child_schema(self, table: str, plan: SchemaPlan) -> None:
        """As `apply_schema`, for the child table `table` (under overwrite: its own stage)."""
        self._apply_plan(self._child(table), plan)

    def write_child_batch(self, table: str, batch: Any, state: State) -> None:
        """Insert rows of the child table `table` by name in the transaction the main table's
        rows commit in; under overwrite into its stage."""
        assert self.context is not None
        data = batch.to_arrow()
        if data.num_rows == 0:
            return
        import duckdb

        target = self._child(table)
        try:
            if self.context.write_mode == "overwrite":
                self._write_staging(data, target, self._append)
            else:
                self._begin_transaction()
                self._append(data, target)
        except duckdb.Error as exc:
            raise self._error(f"write of child table {table!r}", exc) from exc

    def delete_children(self, table: str, root_ids: pa.Array | None) -> None:
        """Delete, in the open transaction, the rows of child table `table` whose `_dl_root_id`
        is in `root_ids` (under overwrite from its stage, if it has one); with None, empty
        the table in the transaction that swaps the stages in."""
        import duckdb

        target = self._child(table)
        if root_ids is None:
            self._emptied.add(target)
            return
        assert self.context is not None
        if self.context.write_mode == "overwrite":
            rows = self._stages.get(target)  # none yet: this run's rows hold no such children
            if rows is None:
                return
        elif target.sql() in self._fitted or self._exists(target):
            rows = target
        else:
            return
        try:
            self._begin_transaction()
            self.con.register(ROOT_IDS_VIEW, pa.table({"id": root_ids}))
            try:
                # The ids as the column holds them (UUID, or text), so the column is not cast.
                column = quote_identifier("_dl_root_id")
                types = dict(
                    (name, kind)
                    for name, kind, *_ in self.con.execute(f"DESCRIBE {rows.sql()}").fetchall()
                )
                kind = types.get("_dl_root_id", "VARCHAR")
                self.con.execute(
                    f"DELETE FROM {rows.sql()} WHERE {column} IN "
                    f"(SELECT CAST(id AS {kind}) FROM {ROOT_IDS_VIEW})"
                )
            finally:
                with suppress(duckdb.Error):
                    self.con.unregister(ROOT_IDS_VIEW)
        except duckdb.Error as exc:
            raise self._error(f"delete from child table {table!r}", exc) from exc

    def commit(self, state: State) -> None:
        import duckdb

        assert self.context is not None
        try:
            if self.context.write_mode == "overwrite":
                self._swap_in_stages()
            self._begin_transaction()
            self._save_state(state)
            self.con.execute("COMMIT")
            self._in_transaction = False
            self._quarantine_replaced = False
        except duckdb.Error as exc:
            self.abort()
            raise self._error("commit", exc) from exc

    def _swap_in_stages(self) -> None:
        """In the commit's transaction: each table this run staged (the main one, child tables)
        replaced by its stage, the main table emptied when the run staged none, and the child
        tables `delete_children` named emptied."""
        main = self._table()
        self._begin_transaction()
        self._replace_quarantine()
        emptied = (self._emptied | {main}) - self._stages.keys()
        for target in sorted(emptied, key=str):
            if self._exists(target):
                self.con.execute(f"DELETE FROM {target.sql()}")
        for target, stage in self._stages.items():
            self._swap_in(stage, target)
        self._stages.clear()
        self._emptied.clear()
        self._fitted.clear()

    def _swap_in(self, stage: TableName, target: TableName) -> None:
        rows = self.con.execute(
            "SELECT comment FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = coalesce(?, current_schema()) AND table_name = ?",
            [target.schema, target.name],
        ).fetchall()
        self.con.execute(f"DROP TABLE IF EXISTS {target.sql()}")
        self.con.execute(f"ALTER TABLE {stage.sql()} RENAME TO {quote_identifier(target.name)}")
        # The stage's owner label goes; the replaced table's own comment, if any, stays.
        comment = rows[0][0] if rows else None
        self.con.execute(
            f"COMMENT ON TABLE {target.sql()} IS {sql_string(comment) if comment else 'NULL'}"
        )

    def abort(self) -> None:
        """Roll back the open transaction and drop this run's stages (a stage left behind is
        dropped by the recipe's next run)."""
        import duckdb

        self._fitted.clear()
        self._emptied.clear()
        self._quarantine_replaced = False
        stages, self._stages = list(self._stages.values()), {}
        if self.con is None:
            return
        if self._in_transaction:
            self.con.execute("ROLLBACK")
            self._in_transaction = False
        for stage in stages:
            with suppress(duckdb.Error):
                self.con.execute(f"DROP TABLE IF EXISTS {stage.sql()}")

    # -- destination: staging for a distributed run --------------------------------------
    def _staging_root(self, context: RunContext) -> Path:
        """This recipe's staging directory, beside the database file."""
        database = self.config.database
        if database == ":memory:":
            raise ConnectorError(
                "a distributed run stages Parquet parts beside the database file, and "
                "`:memory:` has none",
                key="destination.database",
                value=database,
                expected="a database file",
            )
        path = Path(database)
        return path.parent / f".{path.name}{STAGING_SUFFIX}" / context.recipe_name

    def stage_partition(
        self,
        context: RunContext,
        partition: Partition,
        attempt: str,
        batches: Iterable[Any],
    ) -> dict[str, Any]:
        """Write the partition's rows to Parquet parts of this attempt's own, under the run's
        staging directory: a new part whenever the batches' schema changes (files of one
        partition may differ in their columns or types; the driver unites them). Each is
        written under a temporary name, then renamed: a part that exists is whole. The
        database is not opened."""
        import pyarrow.parquet as pq

        directory = self._staging_root(context) / context.run_id
        directory.mkdir(parents=True, exist_ok=True)
        names: list[str] = []
        writer: Any = None
        partial = directory
        rows = 0

        def finish() -> None:
            writer.close()
            name = partial.name.removeprefix(".").removesuffix(".partial")
            os.replace(partial, directory / name)
            names.append(name)

        try:
            for batch in batches:
                data = _intervals_as_structs(batch.to_arrow())
                if writer is not None and data.schema != writer.schema:
                    finish()
                    writer = None
                if writer is None:
                    part = f"part-{partition.index:05d}-{attempt}-{len(names):04d}.parquet"
                    partial = directory / f".{part}.partial"
                    writer = pq.ParquetWriter(partial, data.schema)
                writer.write_batch(data)
                rows += data.num_rows
            if writer is not None:
                finish()
                writer = None
        finally:
            if writer is not None:
                writer.close()
        return {
            "files": names,
            "rows": rows,
            "run_id": context.run_id,
            "directory": str(directory.absolute()),
        }

    def _staged_files(self, staged: list[dict[str, Any]]) -> list[str]:
        """The reported parts' paths; an error naming `destination.database` for parts a
        worker staged elsewhere (a relative path it resolved in another directory)."""
        assert self.context is not None
        directory = self._staging_root(self.context)
        for report in staged:
            here = str((directory / report["run_id"]).absolute())
            if report.get("files") and report.get("directory", here) != here:
                astray = Path(report["directory"])
                if (
                    astray.parent.name == self.context.recipe_name
                    and astray.parent.parent.name.endswith(STAGING_SUFFIX)
                ):
                    shutil.rmtree(astray.parent.parent, ignore_errors=True)  # where reachable
                raise ConnectorError(
                    f"a worker staged its parts in {report['directory']}, not beside the "
                    f"database the driver commits into ({here}); nothing was committed",
                    key="destination.database",
                    value=self.config.database,
                    expected="a database path the driver and every worker resolve to one "
                    "file: an absolute path on a volume they share",
                )
        return [
            str(directory / report["run_id"] / name)
            for report in staged
            for name in report.get("files", [])
        ]

    def staged_schemas(self, staged: list[dict[str, Any]]) -> list[tuple[str, pa.Schema]]:
        """Each reported part file's name and Arrow schema (from its Parquet footer)."""
        import pyarrow.parquet as pq

        return [
            (Path(file).name, _structs_as_intervals(pq.read_schema(file)))
            for file in self._staged_files(staged)
        ]

    def commit_staged(
        self, staged: list[dict[str, Any]], state: State, schema: pa.Schema | None
    ) -> None:
        """In one transaction: insert every reported part (by name, united by name) into the
        table (under overwrite: into the run's stage, swapped in), save the state, commit."""
        import duckdb

        assert self.context is not None
        files = self._staged_files(staged)
        try:
            if files:
                assert schema is not None
                target = self._table()
                if self.context.write_mode == "overwrite":
                    table = self._stages.get(target) or target
                else:
                    table = target
                self._begin_transaction()
                listed = ", ".join(sql_string(file) for file in files)
                columns = ", ".join(_staged_column(field) for field in schema)
                rows = (
                    f"(SELECT *{typed_star(schema)} FROM (SELECT {columns} FROM "
                    f"read_parquet([{listed}], union_by_name = true)))"
                )
                self._ensure_table(table, rows, schema.names)
                self.con.execute(f"INSERT INTO {table.sql()} BY NAME SELECT * FROM {rows}")
        except duckdb.Error as exc:
            self.abort()
            raise self._error("insert of the staged parts", exc) from exc
        self.commit(state)

    def discard_staged(self) -> None:
        """Remove this recipe's staging directory (every run's parts)."""
        assert self.context is not None
        if self.config.database == ":memory:":
            return
        root = self._staging_root(self.context)
        shutil.rmtree(root, ignore_errors=True)
        with suppress(OSError):  # another recipe's staging may be there
            root.parent.rmdir()


_NANOSECONDS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _intervals_as_structs(data: pa.RecordBatch) -> pa.RecordBatch:
    """`data` with each month-day-nanosecond interval column, each duration (which Parquet
    keeps as a bare integer) and each list of either as a struct of an interval's fields (a
    list of them), its field marked `STAGED_INTERVAL`."""
    if not any(_is_span(field.type) or _is_span_list(field.type) for field in data.schema):
        return data
    columns, fields = [], []
    for field, column in zip(data.schema, data.columns, strict=True):
        marked = None
        if _is_span(field.type):
            column, marked = _span_structs(column), b"1"
        elif _is_span_list(field.type):
            if column.offset:  # a slice: offsets of its own, from zero
                column = pa.concat_arrays([pa.array([], column.type), column])
            values = _span_structs(column.values)
            column = type(column).from_arrays(column.offsets, values, mask=column.is_null())
            marked = b"list"
        if marked is not None:
            metadata = {**(field.metadata or {}), STAGED_INTERVAL: marked}
            field = pa.field(field.name, column.type, field.nullable, metadata)
        columns.append(column)
        fields.append(field)
    return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields, data.schema.metadata))


def _span_structs(column: pa.Array) -> pa.StructArray:
    """Intervals or durations as structs of months, days and nanoseconds."""
    import pyarrow.compute as pc

    if pa.types.is_duration(column.type):
        months = days = pa.nulls(len(column), pa.int32()).fill_null(0)
        nanoseconds = pc.multiply_checked(column.cast(pa.int64()), _NANOSECONDS[column.type.unit])
    else:
        values = column.to_pylist()  # MonthDayNano tuples or None
        months = pa.array([None if v is None else v.months for v in values], pa.int32())
        days = pa.array([None if v is None else v.days for v in values], pa.int32())
        nanoseconds = pa.array([None if v is None else v.nanoseconds for v in values], pa.int64())
    return pa.StructArray.from_arrays(
        [months, days, nanoseconds],
        names=["months", "days", "nanoseconds"],
        mask=pc.is_null(column),
    )


def _is_span(kind: pa.DataType) -> bool:
    return pa.types.is_interval(kind) or pa.types.is_duration(kind)


def _is_span_list(kind: pa.DataType) -> bool:
    return (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and _is_span(kind.value_type)


def _structs_as_intervals(schema: pa.Schema) -> pa.Schema:
    """A staged part's schema with its interval columns' type as the rows had it (a duration
    staged as an interval loads as one)."""
    for index, field in enumerate(schema):
        marked = (field.metadata or {}).get(STAGED_INTERVAL)
        if marked is None:
            continue
        metadata = {k: v for k, v in (field.metadata or {}).items() if k != STAGED_INTERVAL}
        kind: pa.DataType = pa.month_day_nano_interval()
        if marked == b"list":
            kind = (pa.large_list if pa.types.is_large_list(field.type) else pa.list_)(kind)
        schema = schema.set(index, pa.field(field.name, kind, field.nullable, metadata or None))
    return schema


def _staged_column(field: pa.Field) -> str:
    """The select expression of a staged part's column: an interval rebuilt from its struct
    (nanoseconds to DuckDB's microseconds, truncated toward zero as DuckDB converts an
    Arrow interval)."""
    name = quote_identifier(field.name)

    def interval(of: str) -> str:
        return (
            f"to_months({of}.months) + to_days({of}.days) + "
            f"to_microseconds({of}.nanoseconds // 1000)"
        )

    if pa.types.is_interval(field.type):
        return f"{interval(name)} AS {name}"
    if _is_span_list(field.type):
        return f"list_transform({name}, lambda x: {interval('x')}) AS {name}"
    return name
