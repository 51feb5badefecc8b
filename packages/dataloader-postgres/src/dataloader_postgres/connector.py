"""`PostgresConnector`: read a table or query with COPY; write with append, overwrite, merge.

Writes happen in one transaction per commit that also upserts the recipe's row in
`_dataloader_state`, so data and state commit together:
- append: `COPY` straight into the table inside the transaction (invisible until commit);
- merge: `COPY` into a temporary staging table, de-duplicated on the merge keys (latest by
  `dedup_sort`, else by cursor, wins; a batch whose keys Arrow shows distinct is not sorted,
  see `_keys_distinct`), then `INSERT … ON CONFLICT` when the keys are unique, else
  `UPDATE … FROM` + `INSERT … WHERE NOT EXISTS`; either way only the batch's columns are
  written, and with `dedup_sort` only over a stored row the incoming one wins against;
- overwrite: `COPY` into a new staging table labelled with the recipe that owns it (a run's
  cleanup drops only its own recipe's), then drop and rename in the commit, unless that would
  lose what the table carries (views on it, triggers, identity or generated columns, grants,
  row-level security, foreign keys): then its rows are replaced in place; the quarantine
  table keeps only this run's rows.

Child tables of normalized nested data are siblings of the table, written in the same
transaction: appended to; under overwrite staged and swapped in like the table (a known child
table this run did not write is emptied); under merge, the children of the merged roots are
deleted first (`_dl_root_id`), then the new ones added.

The engine fits the table first (`describe`, then `apply_schema` with its plan); the DDL runs
in the same transaction as the rows, and under overwrite it shapes the stage.

In a distributed run (`stage_partition` and the driver's `commit_staged`): each worker COPYs
its partition into UNLOGGED `_dl_part_…` tables of its own attempt, labelled with their
recipe, and commits them; the driver inserts the reported ones into the table (under
overwrite, into its stage) with the state in one transaction, and drops the recipe's
staging tables (`discard_staged`).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from dataloader import ArrowBatch, BaseConnector, Capabilities, ConnectorError, RunContext, State
from dataloader.incremental import window_for
from dataloader.parallel import ordered_merge
from dataloader.partitions import Partition
from dataloader.sql import (
    NAME_BYTES,
    STAGING_PREFIX,
    STATE_TABLE,
    MergeOrder,
    TableName,
    database_error,
    quote_identifier,
    stage_label,
    stage_owner,
    staging_name,
)
from dataloader_postgres.children import (
    ROOT_ID,
    ROOT_IDS,
    checked_identifier,
    checked_table,
    child_stage_label,
    delete_children_sql,
    root_id_index_sql,
    stage_parent,
)
from dataloader_postgres.codec import (
    CopyCodec,
    CsvCopyCodec,
    choose_codec,
    untranslatable_value,
)
from dataloader_postgres.config import PostgresConfig
from dataloader_postgres.connection import connect, is_transient, server_encoding
from dataloader_postgres.quarantine import quarantine_table, stored_rows
from dataloader_postgres.schema import (
    CONSTRAINTS_SQL,
    column_sql,
    create_table_sql,
    described,
    fit_clauses,
)
from dataloader_postgres.types import ColumnPlan, plan_column

if TYPE_CHECKING:
    from dataloader.schema.plan import SchemaPlan

log = logging.getLogger(__name__)

ORDINAL = "__dl_ordinal"
# A distributed run's staging tables: one per part of a partition's attempt, beside the table,
# labelled (a JSON comment under `PART_LABEL`) with the recipe, table, run, partition, attempt.
PART_PREFIX = "_dl_part_"
PART_LABEL = "dataloader_partition"
DISCARD_LOCK_TIMEOUT = 5.0  # seconds a drop of a staging table waits for another session
MERGE_STAGE = "_dl_merge_stage"
# Per column of a merge stage: its type, typmod and whether its collation is deterministic
# (true for a type without collation).
STAGE_KEYS_SQL = """
SELECT a.attname::text, a.atttypid::int, a.atttypmod, coalesce(c.collisdeterministic, true)
FROM pg_attribute a LEFT JOIN pg_collation c ON c.oid = a.attcollation
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
"""
INTEGER_OIDS = frozenset({20, 21, 23})  # bigint, smallint, integer
TEXT_OID, VARCHAR_OID = 25, 1043
VARHDRSZ = 4  # what a varchar(n) column's typmod adds to n
# Database encodings that store the client's UTF-8 text as it is (no conversion that might map
# two strings to one).
VERBATIM_ENCODINGS = frozenset({"UTF8", "SQL_ASCII"})
UNTRANSLATABLE_CHARACTER = "22P05"
# `CONSTRAINTS_SQL`, with identity and generated columns nullable: Postgres fills them, so
# rows need not carry them.
DESCRIBE_SQL = f"""
SELECT c.name, c.not_null AND a.attidentity = '' AND a.attgenerated = '', c.key
FROM ({CONSTRAINTS_SQL}) AS c (name, not_null, key)
JOIN pg_attribute a ON a.attrelid = to_regclass(%s) AND a.attname = c.name
"""
# What dropping a table would lose that its stage (`LIKE` it) lacks: whether it has user
# triggers, grants (on it or a column), row-level security or policies, or foreign keys; its
# identity and its generated columns; its comment. No row when the table does not exist.
DEFINITION_SQL = """
SELECT c.relrowsecurity OR c.relacl IS NOT NULL
    OR EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal)
    OR EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid)
    OR EXISTS (SELECT FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'f')
    OR EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
               AND NOT a.attisdropped AND (a.attacl IS NOT NULL OR a.attidentity <> ''
                                           OR a.attgenerated <> '')),
  ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
        AND NOT a.attisdropped AND a.attidentity <> '' ORDER BY a.attnum),
  ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
        AND NOT a.attisdropped AND a.attgenerated <> '' ORDER BY a.attnum),
  obj_description(c.oid, 'pg_class')
FROM pg_class c WHERE c.oid = to_regclass(%s)
"""
# The columns of a table a stage (`LIKE` it, `INCLUDING IDENTITY`) must loosen to take rows
# that lack them (see `_open_stage`): `GENERATED ALWAYS` identity columns, and generated
# columns that are NOT NULL but outside the primary key.
STAGE_LOOSENING_SQL = """
SELECT a.attname::text, a.attidentity = 'a'
FROM pg_attribute a
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
  AND (a.attidentity = 'a' OR (a.attgenerated <> '' AND a.attnotnull AND NOT EXISTS (
      SELECT FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary
      AND a.attnum = ANY(i.indkey))))
ORDER BY a.attnum
"""
# The identity columns of a table.
IDENTITY_SQL = """
SELECT a.attname::text FROM pg_attribute a
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped AND a.attidentity <> ''
"""
# Moves the sequence of an identity column past the column's largest value: forward only,
# within the sequence's bounds. Formatted with the quoted column and table, and both as
# literals for `pg_get_serial_sequence` (which takes the column name unquoted).
SEQUENCE_PAST_SQL = """
SELECT setval(s.seqrelid, m.top)
FROM pg_sequence s, (SELECT max({column}) AS top FROM {table}) AS m
WHERE s.seqrelid = pg_get_serial_sequence({table_literal}, {column_literal})::regclass
  AND s.seqincrement > 0 AND m.top BETWEEN s.seqmin AND s.seqmax
  AND (pg_sequence_last_value(s.seqrelid) IS NULL OR m.top > pg_sequence_last_value(s.seqrelid))
"""


@dataclass(frozen=True)
class _Range:
    """One range of a split read: its WHERE condition (empty: every row), a label, and for a
    page range its estimated rows and bytes and its pages."""

    condition: str
    label: str
    rows: int | None = None
    size: int | None = None
    pages: tuple[int, int] | None = None


def _shown(value: Any) -> str:
    """A range edge as a label shows it: `2024-06-01 10:00:00`, `1000`, `12.5`."""
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat(sep=" ") if isinstance(value, datetime.datetime) else str(value)
    return str(value)


class PostgresConnector(BaseConnector):
    """PostgreSQL source and destination."""

    name = "postgres"
    config_model = PostgresConfig
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
        max_identifier_length=63,
    )
    codec: CopyCodec = CsvCopyCodec()  # until `open` picks the recipe's (`choose_codec`)

    def __init__(self, config: PostgresConfig) -> None:
        super().__init__(config)
        self.conn: Any = None
        self._prepared = False
        self._staging: TableName | None = None
        self._merge_stage_columns: frozenset[str] = frozenset()  # empty: no stage yet
        # Per column of the merge stage: its type OID, typmod and deterministic collation.
        self._merge_stage_types: dict[str, tuple[int, int, bool]] = {}
        # Whether the database stores the stage's text as written (see `VERBATIM_ENCODINGS`).
        self._merge_text_verbatim = False
        self._unique_keys: bool | None = None
        # Per table (its SQL name): the columns it has in this transaction, once known.
        self._fitted: dict[str, tuple[str, ...]] = {}
        # Under overwrite: whether this transaction has emptied the quarantine table yet.
        self._quarantine_replaced = False
        # Under overwrite: the stage of each child table this transaction writes.
        self._child_stages: dict[str, TableName] = {}
        # Under overwrite: per stage (its SQL name), the columns of the rows written to it.
        self._provided: dict[str, set[str]] = {}
        # Under overwrite: per stage, its table's identity columns and those the first batch
        # written to it carried (every later batch must carry the same).
        self._identity: dict[str, tuple[TableName, frozenset[str], frozenset[str] | None]] = {}
        # Under merge: the root ids in `ROOT_IDS` (the batch's merged roots), once copied.
        self._root_ids: pa.Array | None = None
        # As a destination: the recipe's advisory lock (its key, the state table it guards),
        # and whether this session holds it.
        self._run_lock: tuple[int, TableName] | None = None
        self._holds_run_lock = False
        # During a split read: the snapshot the main connection exported for every range.
        self._snapshot: str | None = None
        # After `plan_partitions`: the snapshot the plan was made in, exported until `close`.
        self._plan_snapshot: str | None = None

    # -- lifecycle -------------------------------------------------------------------
    def open(self, context: Any) -> None:
        super().open(context)
        self.codec = choose_codec(self.config.codec)
        self.conn = connect(self.config, role=context.role)
        if context.role == "destination" and self.config.table:
            import psycopg2

            try:
                self._take_run_lock()
            except psycopg2.Error as exc:
                self.close()
                raise self._error("lock", exc) from exc

    def close(self) -> None:
        holds_run_lock, self._holds_run_lock = self._holds_run_lock, False
        self._plan_snapshot = None  # gone with the connection that exported it
        if self.conn is None:
            return
        connection, self.conn = self.conn, None
        if holds_run_lock:
            self._unlock_run(connection)
        self._release(connection)

    def _unlock_run(self, connection: Any) -> None:
        """Release the recipe's lock before closing: the server ends a closed session (and
        its locks) on its own time, which a retry reopening at once could otherwise race. A
        lost connection took the lock with it."""
        assert self._run_lock is not None
        self._rollback(connection)
        if not connection.closed:
            with contextlib.suppress(Exception):
                connection.cursor().execute("SELECT pg_advisory_unlock(%s)", (self._run_lock[0],))
                connection.commit()

    def _take_run_lock(self) -> None:
        """Try, without waiting, to take the recipe's session-level advisory lock, before any
        state is read: the state table holds the truth every run resumes from, whatever state
        backend or host a run uses. Its key is a hash of the state table's schema and the
        recipe's name. Held until `close`; not holding it only matters to `begin` and
        `reset_state` (see `_check_run_lock`), so read-only opens (`show-state`) still work.
        """
        assert self.context is not None
        schema = self._table().schema
        if schema is None:
            schema = self._execute("SELECT current_schema()").fetchall()[0][0]
        name = f"dataloader destination\0{schema}\0{self.context.recipe_name}"
        digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
        key = int.from_bytes(digest, "big", signed=True)
        self._run_lock = key, TableName(schema, STATE_TABLE)
        [(taken,)] = self._execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchall()
        self.conn.commit()
        self._holds_run_lock = bool(taken)

    def _check_run_lock(self) -> None:
        """Refuse to write when another session held the recipe's lock at `open` (taking it
        now would be too late: the state this run resumes from was read without it)."""
        assert self.context is not None
        if self._holds_run_lock:
            return
        assert self._run_lock is not None
        key, state_table = self._run_lock
        raise ConnectorError(
            f"another run of recipe {self.context.recipe_name!r} is loading into this database "
            f"({self.config.describe()}): another session holds the recipe's advisory lock {key} "
            f"(on its state in {state_table}); two runs of one recipe never load at once, "
            "whatever their state backends — run it again once that run ends",
            key="destination",
        )

    @staticmethod
    def _rollback(connection: Any) -> None:
        """Roll back, unless the connection is lost (its transaction is gone with it)."""
        if not connection.closed:
            with contextlib.suppress(Exception):
                connection.rollback()

    @classmethod
    def _release(cls, connection: Any) -> None:
        """Roll back and close. A lost connection must not raise here (that would hide the
        error that lost it), nor go through the pool's reset (a rollback that only logs errors).
        """
        cls._rollback(connection)
        if connection.closed:
            connection.invalidate()
        else:
            connection.close()

    def is_transient(self, error: BaseException) -> bool:
        return is_transient(error)

    def _error(self, action: str, exc: Exception, table: str | None = None) -> ConnectorError:
        return database_error(
            "Postgres",
            action,
            exc,
            role=self.context.role if self.context else "source",
            table=self.config.table,
            server=self.config.describe(),
            where=table,
            message=_with_copy_context(exc),
        )

    def _execute(self, sql: str, params: Any = None) -> Any:
        cursor = self.conn.cursor()
        cursor.execute(sql, params)
        return cursor

    # -- source ----------------------------------------------------------------------
    def _relation_query(self) -> str:
        """The read's SELECT before any cursor window: the table or query, and `where:`."""
        relation = f"({self.config.query}) AS src" if self.config.query else self._table().sql()
        return f"SELECT * FROM {relation}" + (
            f" WHERE ({self.config.where})" if self.config.where else ""
        )

    def _source_query(
        self, state: State, plans: list[ColumnPlan], extra: str = ""
    ) -> tuple[str, str | None]:
        """The read's SELECT (window and `where:` applied, `extra` added) and its ORDER BY.

        The window's bounds are literals of the cursor column's type (a timestamptz bound
        carries its offset, so no session time zone is involved), and text is compared and
        ordered under the "C" collation: code-point order, the order the engine checks and
        stores, whatever the column's own collation.
        """
        assert self.context is not None
        relation = f"({self.config.query}) AS src" if self.config.query else self._table().sql()
        conditions: list[str] = [f"({self.config.where})"] if self.config.where else []
        if extra:
            conditions.append(extra)
        order_by = None
        incremental = self.context.incremental
        if incremental is not None:
            if incremental.strategy != "cursor":
                raise ConnectorError(
                    "Postgres sources support the `cursor` incremental strategy only",
                    key="source.incremental.strategy",
                    value=incremental.strategy,
                )
            window = window_for(incremental, state.cursor_values, state.cursor_boundaries)
            plan = self._plan_of(plans, window.column)
            # A column read as text is compared as that text, as the engine sees it.
            column = quote_identifier(window.column)
            column = f"({column})::text" if plan.kind == "text" else column
            # Only the window's values become literals: the rest of the SQL (query, table,
            # where) never goes through `%` formatting.
            condition = window.sql_condition(
                column, plan.field.type, lambda value: self._literal(value.as_py()), "C"
            )
            if condition is not None:
                conditions.append(condition)
            order_by = window.sql_cursor(column, plan.field.type, "C")
        sql = f"SELECT * FROM {relation}"
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        return sql, order_by

    def _plan_of(self, plans: list[ColumnPlan], column: str) -> ColumnPlan:
        for plan in plans:
            if plan.name == column:
                return plan
        raise ConnectorError(
            f"cursor column {column!r} is not a column of {self.config.table or 'the query'}",
            key="source.incremental.cursor_column",
            value=column,
            expected=f"one of {[plan.name for plan in plans]}",
        )

    def plan_columns(self, query: str) -> list[ColumnPlan]:
        """How each column of `query` is read, from its Postgres type."""
        cursor = self._execute(f"SELECT * FROM ({query}) AS q LIMIT 0")
        description = cursor.description
        oids = sorted({column.type_code for column in description})
        names = dict(
            self._execute(
                "SELECT oid::int, format_type(oid, NULL) FROM pg_type WHERE oid = ANY(%s)", (oids,)
            ).fetchall()
        )
        return [
            plan_column(
                column.name,
                column.type_code,
                names.get(column.type_code, "text"),
                column.precision,
                column.scale,
                self.config.unconstrained_numeric,
                column.internal_size,
            )
            for column in description
        ]

    def read_batches(self, state: State) -> Iterator[ArrowBatch]:
        assert self.context is not None
        import psycopg2

        self._snapshot = None
        batches: Iterator[pa.RecordBatch] = iter(())
        try:
            plans = self.plan_columns(self._relation_query())
            query, order_by = self._source_query(state, plans)
            if self.context.parallelism > 1:
                self._snapshot = self._export_snapshot()
            parts = self._partitions(query, order_by, plans)
            if len(parts) > 1:
                readers = [partial(self._read_part, state, condition, plans) for condition in parts]
                batches = ordered_merge(
                    readers, workers=self.context.parallelism, depth=2, name="pg"
                )
            else:
                if order_by:
                    query = f"SELECT * FROM ({query}) AS ordered ORDER BY {order_by}"
                batches = self.codec.read(self.conn, query, plans, self.context.batch_size)
            for batch in batches:
                yield ArrowBatch(batch, {"source": "postgres"})
        except psycopg2.Error as exc:
            raise self._error("read", exc) from exc
        finally:
            try:
                # A read stopped early cancels its COPY first: a rollback sent while the COPY
                # still runs would read the whole rest of its stream before it could run.
                close = getattr(batches, "close", None)
                if close is not None:
                    close()
            finally:
                if self.conn is not None and self._plan_snapshot is None:
                    # End the read's transaction (the exporting one, or the one the COPY
                    # opened): its locks would keep an overwrite of a table it read (in the same
                    # database) waiting at the commit for ever.
                    self._rollback(self.conn)
                self._snapshot = None

    def _export_snapshot(self) -> str:
        """Start a REPEATABLE READ transaction on the main connection and export its snapshot
        (as pg_dump does): the partition bounds and every range of a split read see the same
        rows. The snapshot lives while this transaction is open (until the read ends)."""
        self.conn.rollback()
        self._execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        [(snapshot,)] = self._execute("SELECT pg_export_snapshot()").fetchall()
        return str(snapshot)

    def _partitions(self, query: str, order_by: str | None, plans: list[ColumnPlan]) -> list[str]:
        """WHERE conditions splitting the read into ranges, in order; one empty one if not split."""
        assert self.context is not None
        count = self.config.partitions or self.context.parallelism
        if self.context.parallelism <= 1 or count <= 1:
            return [""]
        ranges = self._split(query, plans, count)
        return [part.condition for part in ranges] if ranges else [""]

    def _split(self, query: str, plans: list[ColumnPlan], count: int) -> list[_Range] | None:
        """The read `query` (window and `where:` applied) cut into at most `count` ranges that
        together hold each of its rows once: of `partition_column` (the cursor column when
        incremental), else of a table's pages (`ctid`). The first and last ranges are open, so
        a row added since lands in one of them. None when the read cannot split: a query
        without a split column, a split column without arithmetic (text, …), a relation with
        no pages of its own (a view, a partitioned or foreign table)."""
        assert self.context is not None
        column = self.config.partition_column
        cursor_column = self.context.incremental.cursor_column if self.context.incremental else None
        if cursor_column is not None and column not in (None, cursor_column):
            raise ConnectorError(
                "an incremental read can only be split on its cursor column (rows must arrive in cursor order)",
                key="source.partition_column",
                value=column,
                expected=cursor_column,
            )
        column = column or cursor_column
        if column is None:
            return None if self.config.table is None else self._page_ranges(count)
        return self._key_ranges(query, plans, column, count)

    def _page_ranges(self, count: int) -> list[_Range] | None:
        """Ranges of the table's pages: `ctid >= '(a,0)' AND ctid < '(b,0)'`, a TID range scan
        on Postgres 14+. Pages are counted from the table's size on disk (`relpages` lags until
        the next VACUUM or ANALYZE); rows are estimated from `reltuples` per page."""
        found = self._execute(
            "SELECT relkind, relpages, reltuples, pg_relation_size(oid), "
            "current_setting('block_size')::int FROM pg_class WHERE oid = to_regclass(%s)",
            (self._table().sql(),),
        ).fetchall()
        if not found or found[0][0] not in ("r", "m"):
            return None  # a view, a partitioned or foreign table: no pages to split
        _, relpages, reltuples, size, block = found[0]
        pages = int(size) // int(block)
        per_page = float(reltuples) / relpages if relpages and reltuples >= 0 else None
        count = max(1, min(count, pages))
        bounds = [pages * i // count for i in range(count + 1)]
        ranges = []
        for index in range(count):
            low, high = bounds[index], bounds[index + 1]
            parts = [f"ctid >= '({low},0)'::tid"] if index else []
            if index < count - 1:
                parts.append(f"ctid < '({high},0)'::tid")
            label = (
                "all pages"
                if count == 1
                else f"pages [{low}, {high})"
                if index < count - 1
                else f"pages [{low}, …)"
            )
            rows = round(per_page * (high - low)) if per_page is not None else None
            if count == 1 and per_page is None and reltuples >= 0:
                rows = int(reltuples)
            ranges.append(
                _Range(" AND ".join(parts), label, rows, (high - low) * int(block), (low, high))
            )
        return ranges

    def _key_ranges(
        self, query: str, plans: list[ColumnPlan], column: str, count: int
    ) -> list[_Range] | None:
        """Ranges of equal width of a numeric or time column, between its smallest and largest
        finite values in the read; NULLs (and NaN, ±Infinity) land in the first or last one."""
        quoted = quote_identifier(column)
        plan = next((plan for plan in plans if plan.name == column), None)
        if plan is None:
            raise ConnectorError(
                f"partition column {column!r} is not a column of {self.config.table or 'the query'}",
                key="source.partition_column",
                value=column,
                expected=f"one of {[plan.name for plan in plans]}",
            )
        arrow_type = plan.field.type
        if not (
            pa.types.is_integer(arrow_type)
            or pa.types.is_floating(arrow_type)
            or pa.types.is_decimal(arrow_type)
            or pa.types.is_timestamp(arrow_type)
            or pa.types.is_date(arrow_type)
        ):
            return None  # no arithmetic to cut ranges with (text, …): one ordered read
        # Edges come from finite values only (NaN and ±Infinity would make them NaN or infinite);
        # the first and last ranges are open-ended, so those values still land in exactly one.
        finite = self._finite_condition(quoted, plan.oid)
        low, high = self._execute(
            f"SELECT min({quoted}), max({quoted}) FROM ({query}) AS q WHERE {finite}"
        ).fetchall()[0]
        if low is None or low == high:
            return [_Range("", "all rows")]
        if pa.types.is_integer(arrow_type):  # exact edges, even past 2**53
            edges = [low + (high - low) * i // count for i in range(1, count)]
        else:
            step = (high - low) / count
            edges = [low + step * i for i in range(1, count)]
        edges = sorted({edge for edge in edges if edge > low})  # no empty range
        literal = self.conn.cursor().mogrify
        ranges = []
        for index in range(len(edges) + 1):
            parts = []
            if index:
                parts.append(f"{quoted} >= {literal('%s', (edges[index - 1],)).decode()}")
            if index < len(edges):
                parts.append(f"{quoted} < {literal('%s', (edges[index],)).decode()}")
            if not index:  # NULLs fall in no range: the first one reads them
                parts = [f"({parts[0]} OR {quoted} IS NULL)"]
            if not index:
                label = f"{column} < {_shown(edges[0])} or null"
            elif index == len(edges):
                label = f"{column} >= {_shown(edges[index - 1])}"
            else:
                label = f"{column} in [{_shown(edges[index - 1])}, {_shown(edges[index])})"
            ranges.append(_Range(" AND ".join(parts), label))
        return ranges

    def _finite_condition(self, quoted: str, oid: int) -> str:
        """SQL true for the column's finite values (any value, for types without infinities)."""
        float4, float8, numeric, date, timestamp, timestamptz = 700, 701, 1700, 1082, 1114, 1184
        if oid in (float4, float8) or (oid == numeric and self.conn.server_version >= 140000):
            return f"{quoted} > '-Infinity' AND {quoted} < 'Infinity'"  # NaN sorts above both
        if oid == numeric:  # before Postgres 14 numeric has NaN but no infinities
            return f"{quoted} <> 'NaN'"
        if oid in (date, timestamp, timestamptz):
            return f"isfinite({quoted})"
        return "TRUE"

    def _read_part(
        self,
        state: State,
        condition: str,
        plans: list[ColumnPlan],
        snapshot: str | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """One range of a split read, on its own connection, in `snapshot` (by default the
        one the read's main connection exported)."""
        assert self.context is not None
        query, order_by = self._source_query(state, plans, extra=condition)
        if order_by:
            query += f" ORDER BY {order_by}"
        snapshot = snapshot or self._snapshot
        connection = connect(self.config, role="source")
        try:
            if snapshot is not None:
                cursor = connection.cursor()
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cursor.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
            yield from self.codec.read(connection, query, plans, self.context.batch_size)
        finally:
            self._release(connection)

    # -- source: partitions ----------------------------------------------------------
    def plan_partitions(self, state: State, count: int) -> list[Partition] | None:
        """The read `read_batches(state)` would do, cut as a split read cuts it (`_split`):
        ranges of `partition_column` (the cursor column when incremental; the window applies
        inside every range), else of a table's pages. None for a query without such a
        column. Rows and bytes of a key range are the planner's estimate (EXPLAIN), of a page
        range the table's rows per page times its pages.

        The plan is made in a snapshot this connector exports and keeps until it is closed:
        each partition's spec names it, so partitions read while the source stays open see
        the rows as of the plan, and together hold each of them once, whatever is written
        meanwhile (a row updated across a range edge too)."""
        assert self.context is not None
        import psycopg2

        if count < 1:
            raise ValueError(f"the number of partitions is 1 or more, not {count}")
        try:
            self._plan_snapshot = self._export_snapshot()
            plans = self.plan_columns(self._relation_query())
            query, _ = self._source_query(state, plans)
            ranges = self._split(query, plans, count)
            if ranges is None:
                return None
            partitions = []
            for index, part in enumerate(ranges):
                rows, size = part.rows, part.size
                if part.pages is None:
                    rows, size = self._explained(state, plans, part.condition)
                partitions.append(
                    Partition(
                        index=index,
                        label=part.label,
                        estimated_rows=rows,
                        estimated_bytes=size,
                        spec={"where": part.condition, "snapshot": self._plan_snapshot},
                    )
                )
            return partitions
        except psycopg2.Error as exc:
            raise self._error("plan a split read of", exc) from exc

    def _explained(
        self, state: State, plans: list[ColumnPlan], condition: str
    ) -> tuple[int | None, int | None]:
        """The planner's estimate of a range's rows, and of its bytes (rows times the row width)."""
        query, _ = self._source_query(state, plans, extra=condition)
        [(explained,)] = self._execute(f"EXPLAIN (FORMAT JSON) {query}").fetchall()
        if isinstance(explained, str):
            explained = json.loads(explained)
        top = explained[0]["Plan"]
        rows = int(top.get("Plan Rows", 0))
        return rows, rows * int(top.get("Plan Width", 0))

    def read_partition(self, partition: Partition, state: State) -> Iterator[ArrowBatch]:
        """The rows of one range of the plan, on a connection of its own, in the plan's
        snapshot (a `ConnectorError` once the planning source is closed), with the window
        from `state`, ordered by the cursor when incremental."""
        assert self.context is not None
        import psycopg2

        try:
            plans = self.plan_columns(self._relation_query())
            for batch in self._read_part(
                state, partition.spec["where"], plans, partition.spec.get("snapshot")
            ):
                yield ArrowBatch(batch, {"source": "postgres", "partition": partition.index})
        except psycopg2.Error as exc:
            raise self._error("read", exc) from exc

    def estimate_rows(self) -> int | None:
        if self.config.table is None or self.conn is None:
            return None
        try:
            rows = self._execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                (self._table().sql(),),
            ).fetchall()
            if self._plan_snapshot is None:  # else the plan's snapshot stays exported
                self.conn.rollback()
        except Exception:
            return None
        return int(rows[0][0]) if rows and rows[0][0] and rows[0][0] > 0 else None

    # -- destination: state ------------------------------------------------------------
    def _table(self) -> TableName:
        if self.config.table is None:
            raise ConnectorError("a Postgres destination needs `table`", key="destination.table")
        role = self.context.role if self.context else "destination"
        return checked_table(TableName.parse(self.config.table), f"{role}.table")

    def _child(self, table: str) -> TableName:
        """The child table `table`: a sibling of the main table."""
        return self._table().sibling(checked_identifier(table, "child table", "normalization"))

    def _check_columns(self, table: TableName, names: list[str]) -> None:
        key = "destination.table" if table.name == self._table().name else "normalization"
        for name in names:
            checked_identifier(name, f"column of {table}", key)

    def _state_table(self) -> TableName:
        return self._table().sibling(STATE_TABLE)

    def _exists(self, table: TableName) -> bool:
        return self._execute("SELECT to_regclass(%s) IS NOT NULL", (table.sql(),)).fetchall()[0][0]

    def load_state(self) -> State | None:
        assert self.context is not None
        if not self._exists(self._state_table()):
            self.conn.rollback()
            return None
        rows = self._execute(
            f"SELECT state::text FROM {self._state_table().sql()} WHERE recipe = %s",
            (self.context.recipe_name,),
        ).fetchall()
        self.conn.rollback()
        return State.from_dict(json.loads(rows[0][0])) if rows else None

    def reset_state(self) -> None:
        assert self.context is not None
        self._check_run_lock()
        if self._exists(self._state_table()):
            self._execute(
                f"DELETE FROM {self._state_table().sql()} WHERE recipe = %s",
                (self.context.recipe_name,),
            )
        self.conn.commit()

    def _save_state(self, state: State) -> None:
        assert self.context is not None
        table = self._state_table().sql()
        if not self._exists(self._state_table()):
            # Two first commits at once would both create it, one failing on the catalog's
            # unique index: the second waits for the first's commit, then finds the table.
            self._execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
            self._execute(
                f"CREATE TABLE IF NOT EXISTS {table} (recipe text PRIMARY KEY, state jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"
            )
        document = json.dumps(state.progress())
        self._execute(
            f"INSERT INTO {table} (recipe, state, updated_at) VALUES (%s, %s, now()) ON CONFLICT (recipe) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at",
            (self.context.recipe_name, document),
        )

    # -- destination: writes -----------------------------------------------------------
    def begin(self, state: State) -> None:
        self._check_run_lock()
        table = self._table()
        self._drop_dead_stages(table)
        if table.schema:
            self._execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(table.schema)}")
        self.conn.commit()

    def _drop_dead_stages(self, table: TableName) -> None:
        """Drop the committed staging tables labelled as this recipe's stages of `table` or
        of its child tables.

        A run's stage lives in its uncommitted transaction, so no other session sees it; one
        that was committed anyway (by hand, or by another tool) is dead when it is this
        recipe's: this run holds the recipe's lock. Any other stage, even of the same table,
        may be another recipe's and is left to that recipe.
        """
        assert self.context is not None
        stages = self._execute(
            "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = coalesce(%s, current_schema()) AND c.relkind IN ('r', 'p') "
            "AND starts_with(c.relname, %s)",
            (table.schema, STAGING_PREFIX),
        ).fetchall()
        mine = (self.context.recipe_name, table.name)
        for name, comment in stages:
            if mine in (stage_owner(comment), stage_parent(comment)):
                self._execute(f"DROP TABLE IF EXISTS {table.sibling(name).sql()}")

    def _columns(self, table: TableName) -> dict[str, str]:
        rows = self._execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (table.sql(),),
        ).fetchall()
        return dict(rows)

    def _ensure_table(
        self, table: TableName, schema: pa.Schema, *, primary_key: tuple[str, ...] = ()
    ) -> tuple[str, ...]:
        """Create `table` for `schema`, or add the columns it lacks; its column names.

        Types are left as they are: changing them is the engine's plan (`apply_schema`).
        """
        known = self._fitted.get(table.sql())
        if known is not None and set(known).issuperset(schema.names):
            return known
        existing = tuple(self._columns(table))
        if not existing:
            self._create(table, schema, primary_key)
            existing = tuple(schema.names)
        else:
            missing = [field for field in schema if field.name not in existing]
            for field in missing:
                self._execute(f"ALTER TABLE {table.sql()} ADD COLUMN {column_sql(field)}")
            existing += tuple(field.name for field in missing)
        self._fitted[table.sql()] = existing
        return existing

    def _create(self, table: TableName, schema: pa.Schema, key: tuple[str, ...]) -> None:
        """CREATE TABLE `table` for `schema` (`key` the primary key unless `schema` tags one);
        a child table gets an index on `_dl_root_id`, which merges delete by."""
        self._execute(create_table_sql(table, schema, key))
        if ROOT_ID in schema.names:
            self._execute(root_id_index_sql(table))

    def _fit(
        self, table: TableName, schema: pa.Schema, *, empty: bool = False, child: bool = False
    ) -> None:
        """Make `table` hold `schema`: create it, or add the columns it lacks and widen the
        types that cannot hold the planned ones (see `schema.fit_clauses`). A `child` table
        takes no primary key from the merge keys (they are the main table's)."""
        assert self.context is not None
        if not self._exists(table):
            self._create(table, schema, () if child else self.context.merge_keys)
            self._fitted[table.sql()] = tuple(schema.names)
            return
        existing = {plan.name: plan.field for plan in self._read_plans(table)}
        clauses = fit_clauses(existing, schema, empty=empty)
        if clauses:
            self._execute(f"ALTER TABLE {table.sql()} {', '.join(clauses)}")
        self._fitted[table.sql()] = (*existing, *(n for n in schema.names if n not in existing))

    def _read_plans(self, table: TableName) -> list[ColumnPlan]:
        return self.plan_columns(f"SELECT * FROM {table.sql()}")

    def describe(self) -> pa.Schema | None:
        """The destination table as the Postgres source reads it (types, `pg_type` tags), with
        NOT NULL columns not nullable and primary-key / one-column unique columns tagged.

        Under overwrite that is also the stage's shape: the stage starts as a copy (`LIKE`) of
        the table; once this run has opened it, the stage is described.
        """
        return self._describe(self._staging or self._table())

    def _describe(self, table: TableName) -> pa.Schema | None:
        import psycopg2

        try:
            if not self._exists(table):
                return None
            constraints = self._execute(DESCRIBE_SQL, (table.sql(), table.sql())).fetchall()
            return described(self._read_plans(table), constraints)
        except psycopg2.Error as exc:
            self.abort()
            raise self._error("describe", exc, str(table)) from exc

    def apply_schema(self, plan: SchemaPlan) -> None:
        """Fit the table (under overwrite, this run's stage) to `plan.target` in the open
        transaction: CREATE TABLE, ADD COLUMN, ALTER COLUMN … TYPE … USING."""
        assert self.context is not None
        import psycopg2

        self._check_columns(self._table(), plan.target.names)
        try:
            if self.context.write_mode != "overwrite":
                self._fit(self._table(), plan.target)
            elif self._staging is None:
                self._staging = self._open_stage(self._table(), plan.target)
            else:
                self._fit(self._staging, plan.target)
        except psycopg2.Error as exc:
            self.abort()
            raise self._error("schema change", exc) from exc
        self._merge_stage_columns = frozenset()  # remade with the new types

    def write_quarantine(self, rows: pa.Table) -> None:
        """Add `rows` to `<table>__quarantine` (created from their columns when missing, `row`
        as `jsonb`), in the transaction of the data. Under overwrite, the rows of earlier runs
        are deleted first: they refer to data the overwrite replaces."""
        if rows.num_rows == 0:
            return
        import psycopg2

        quarantine = quarantine_table(self._table())
        stored = stored_rows(rows)
        try:
            self._replace_quarantine()
            self._ensure_table(quarantine, stored.schema)
            for batch in stored.to_batches():
                self.codec.write(self.conn, quarantine.sql(), batch)
        except psycopg2.Error as exc:
            self.abort()
            raise self._error("quarantine write", exc) from exc

    def _replace_quarantine(self) -> None:
        """Under overwrite, empty the quarantine table once per transaction (a DELETE: readers
        see the old rows until the commit, without waiting)."""
        assert self.context is not None
        if self.context.write_mode != "overwrite" or self._quarantine_replaced:
            return
        quarantine = quarantine_table(self._table())
        if self._exists(quarantine):
            self._execute(f"DELETE FROM {quarantine.sql()}")
        self._quarantine_replaced = True

    def write_batch(self, batch: Any, state: State) -> None:
        assert self.context is not None
        data: pa.RecordBatch = batch.to_arrow()
        if data.num_rows == 0:
            return
        import psycopg2

        mode = self.context.write_mode
        self._check_columns(self._table(), data.schema.names)
        try:
            if mode == "overwrite":
                self._write_overwrite(data)
            elif mode == "merge":
                self._write_merge(data, self._table())
            else:
                self._ensure_table(self._table(), data.schema)
                self.codec.write(self.conn, self._table().sql(), data)
        except psycopg2.Error as exc:
            self.abort()
            if getattr(exc, "pgcode", None) == UNTRANSLATABLE_CHARACTER:
                raise self._encoding_error(mode, data, exc) from exc
            raise self._error(f"{mode} write", exc) from exc

    def _encoding_error(
        self, mode: str, data: pa.RecordBatch, exc: Exception, table: str | None = None
    ) -> ConnectorError:
        """The server could not store a character in the database's encoding: name the column
        holding it (the server names only the COPY line)."""
        encoding = server_encoding(self.conn)
        found = untranslatable_value(data, encoding)
        if found is None:
            return self._error(f"{mode} write", exc, table)
        column, row, character = found
        return ConnectorError(
            f"Postgres {mode} write failed on {table or self.config.table} at {self.config.describe()}: "
            f"column {column!r} holds {character!r} (row {row} of the batch), which the "
            f"database's encoding {encoding} cannot store; nothing of this commit was written",
            key="destination.table",
            value=self.config.table,
            expected=f"text that {encoding} can hold, or a database with ENCODING 'UTF8'",
        )

    def _write_overwrite(self, data: pa.RecordBatch) -> None:
        assert self.context is not None
        if self._staging is None:
            self._staging = self._open_stage(self._table(), data.schema)
        elif not self.context.merge_keys:
            self._ensure_table(self._staging, data.schema)
        assert self._staging is not None
        self._note_columns(self._staging, data.schema.names)
        if self.context.merge_keys:
            # A merge recipe's full refresh: the stage holds one row per key, as a merge keeps.
            self._write_merge(data, self._staging)
        else:
            self.codec.write(self.conn, self._staging.sql(), data)

    def _note_columns(self, stage: TableName, names: list[str]) -> None:
        """Record the columns of rows written to `stage`. An identity column in some batches
        and not in others is refused: the stage would number the rows without it from 1,
        beside the loaded values."""
        self._provided.setdefault(stage.sql(), set()).update(names)
        found = self._identity.get(stage.sql())
        if found is None:
            return
        target, identity, first = found
        carried = identity.intersection(names)
        if first is None:
            self._identity[stage.sql()] = (target, identity, carried)
        elif carried != first:
            columns = sorted(carried ^ first)
            raise ConnectorError(
                f"identity column(s) {columns} of {target.sql()} are in some batches of this "
                "overwrite and not in others; nothing was replaced",
                key="destination.table",
                value=target.sql(),
                expected="every batch with the identity column, or none (the table then "
                "numbers the rows)",
            )

    def _open_stage(self, target: TableName, schema: pa.Schema) -> TableName:
        """Create this run's stage of `target` (the main table or a child table) for
        `schema`: `LIKE` the target when it exists (defaults, constraints, indexes, identity;
        a column type that cannot hold the schema's is replaced), and labelled with its owner
        in the transaction that creates it."""
        assert self.context is not None
        main = self._table()
        stage = target.sibling(staging_name(target.name, self.context.run_id))
        if self._exists(target):
            self._execute(
                f"CREATE TABLE {stage.sql()} (LIKE {target.sql()} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES INCLUDING IDENTITY)"
            )
            # Rows may lack an identity or generated column (the table fills it): the stage's
            # own identity numbers them, BY DEFAULT so it takes loaded values from any INSERT
            # too; a generated column, a plain one in the stage, loses NOT NULL (a primary key
            # column keeps it). Which columns the rows carried decides what the swap inserts.
            for column, identity in self._execute(STAGE_LOOSENING_SQL, (target.sql(),)).fetchall():
                change = "SET GENERATED BY DEFAULT" if identity else "DROP NOT NULL"
                self._execute(
                    f"ALTER TABLE {stage.sql()} ALTER COLUMN {quote_identifier(column)} {change}"
                )
            identity = self._execute(IDENTITY_SQL, (target.sql(),)).fetchall()
            self._identity[stage.sql()] = (target, frozenset(row[0] for row in identity), None)
        recipe, run_id = self.context.recipe_name, self.context.run_id
        if target == main:
            self._fit(stage, schema, empty=True)
            label = stage_label(recipe, target.name, run_id)
        else:
            self._fit(stage, schema, empty=True, child=True)
            label = child_stage_label(recipe, target.name, main.name, run_id)
        self._execute(f"COMMENT ON TABLE {stage.sql()} IS {self._literal(label)}")
        return stage

    def _literal(self, value: Any) -> str:
        """`value` as a SQL literal, for statements that take no parameters (and so that a `%`
        in an identifier next to it is never read as a placeholder)."""
        return self.conn.cursor().mogrify("%s", (value,)).decode()

    def _has_unique_keys(self, table: TableName, keys: tuple[str, ...]) -> bool:
        if self._unique_keys is None:
            rows = self._execute(
                "SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indrelid = to_regclass(%s) AND i.indisunique AND i.indpred IS NULL GROUP BY i.indexrelid",
                (table.sql(),),
            ).fetchall()
            self._unique_keys = any(sorted(row[0]) == sorted(keys) for row in rows)
        return self._unique_keys

    def _keys_distinct(self, data: pa.RecordBatch, keys: tuple[str, ...]) -> bool:
        """Whether no two rows of `data` have equal merge keys as the merge stage's columns
        compare them. Decided in Arrow only where Arrow's equality of the values written is
        the column's: integers into smallint/integer/bigint, strings into text or varchar with
        a deterministic collation (equal there is byte-equal) in a UTF8 or SQL_ASCII database.
        False elsewhere: floats (0.0 = -0.0), citext, nondeterministic collations, ... are left
        to the server's sort."""
        for key in keys:
            found = self._merge_stage_types.get(key)
            if found is None:
                return False
            oid, typmod, deterministic = found
            column = data.column(key)
            kind = column.type
            if pa.types.is_integer(kind):
                if oid not in INTEGER_OIDS:
                    return False
            elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
                if oid not in (TEXT_OID, VARCHAR_OID) or not deterministic:
                    return False
                if not self._merge_text_verbatim:
                    return False
                if oid == VARCHAR_OID and typmod >= 0:
                    # varchar(n) drops the spaces past n ('a ' and 'a  ' both become 'a').
                    longest = pc.max(pc.utf8_length(column))
                    if longest.is_valid and longest.as_py() > typmod - VARHDRSZ:
                        return False
            else:
                return False
        table = pa.Table.from_batches([data.select(list(keys))])
        # Nulls group together, as DISTINCT ON groups them.
        return table.group_by(list(keys)).aggregate([]).num_rows == data.num_rows

    def _latest_sql(
        self,
        data: pa.RecordBatch,
        keys: tuple[str, ...],
        winner: MergeOrder | None,
        stage: str,
        column_list: str,
    ) -> str:
        """The SELECT of the stage's winning row per key: by `dedup_sort`, then by the cursor,
        then the row read last (the highest ordinal)."""
        assert self.context is not None
        incremental = self.context.incremental
        order = [quote_identifier(k) for k in keys]
        if winner is not None:
            order.append(winner.sort_key())
        if incremental is not None and incremental.cursor_column in data.schema.names:
            order.append(f"{quote_identifier(incremental.cursor_column)} DESC NULLS LAST")
        order.append(f"{quote_identifier(ORDINAL)} DESC")
        key_list = ", ".join(quote_identifier(k) for k in keys)
        return f"SELECT DISTINCT ON ({key_list}) {column_list} FROM {stage} ORDER BY {', '.join(order)}"

    def _write_merge(self, data: pa.RecordBatch, target: TableName) -> None:
        assert self.context is not None
        keys = self.context.merge_keys
        missing = [key for key in keys if key not in data.schema.names]
        if missing:
            raise ConnectorError(
                f"merge key {missing[0]!r} is not a column of the incoming rows",
                key="destination.merge_keys",
                value=missing[0],
                expected=f"one of {data.schema.names}",
            )
        winner = self.context.merge_order(data.schema.names)
        target_columns = self._ensure_table(target, data.schema, primary_key=keys)
        stage = f"pg_temp.{quote_identifier(MERGE_STAGE)}"  # never a user's table of that name
        names = [quote_identifier(name) for name in data.schema.names]
        column_list = ", ".join(names)
        if not self._merge_stage_columns.issuperset(data.schema.names):
            # Empty between batches: (re)made with every column of the target when a batch
            # brings one the stage lacks (the first batch, or a column new in this run).
            self._execute(f"DROP TABLE IF EXISTS {stage}")
            every = ", ".join(quote_identifier(name) for name in target_columns)
            self._execute(
                f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {every} FROM {target.sql()} WITH NO DATA"
            )
            # Filled only when the batch is sorted (see `_keys_distinct`): the batch's row number.
            self._execute(f"ALTER TABLE {stage} ADD COLUMN {quote_identifier(ORDINAL)} bigint")
            self._merge_stage_columns = frozenset(target_columns)
            found = self._execute(STAGE_KEYS_SQL, (stage,)).fetchall()
            self._merge_stage_types = {row[0]: (row[1], row[2], row[3]) for row in found}
            self._merge_text_verbatim = server_encoding(self.conn) in VERBATIM_ENCODINGS
        if self._keys_distinct(data, keys):
            # One row per key: DISTINCT ON would keep every row, so the stage is read unsorted.
            self.codec.write(self.conn, stage, data)
            latest = f"SELECT {column_list} FROM {stage}"
        else:
            ordinal = pa.array(range(data.num_rows), pa.int64())
            self.codec.write(self.conn, stage, data.append_column(ORDINAL, ordinal))
            latest = self._latest_sql(data, keys, winner, stage, column_list)
        key_list = ", ".join(quote_identifier(k) for k in keys)
        # Only the batch's columns are written: the target's other columns keep their values.
        values = [n for n, raw in zip(names, data.schema.names, strict=True) if raw not in keys]
        # With `dedup_sort`, a stored row that wins over the incoming one stays as it is.
        if self._has_unique_keys(target, keys):
            updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in values)
            action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
            if updates and winner is not None:
                action += f" WHERE {winner.replaces('EXCLUDED', 't')}"
            self._execute(
                f"INSERT INTO {target.sql()} AS t ({column_list}) {latest} ON CONFLICT ({key_list}) {action}"
            )
        else:
            match = " AND ".join(f"t.{quote_identifier(k)} = s.{quote_identifier(k)}" for k in keys)
            if values:
                updates = ", ".join(f"{n} = s.{n}" for n in values)
                wins = f" AND {winner.replaces('s', 't')}" if winner is not None else ""
                self._execute(
                    f"UPDATE {target.sql()} AS t SET {updates} FROM ({latest}) AS s WHERE {match}{wins}"
                )
            self._execute(
                f"INSERT INTO {target.sql()} ({column_list}) SELECT {column_list} FROM ({latest}) AS s "
                f"WHERE NOT EXISTS (SELECT FROM {target.sql()} AS t WHERE {match})"
            )
        self._execute(f"TRUNCATE {stage}")

    # -- destination: child tables ------------------------------------------------------
    def table_name(self) -> str | None:
        return self._table().name if self.config.table else None

    def describe_child(self, table: str) -> pa.Schema | None:
        """The child table `table` as `describe` describes the main one; under overwrite, its
        stage once this run has opened one (before that: None, the run writes it anew)."""
        assert self.context is not None
        if self.context.write_mode == "overwrite":
            stage = self._child_stages.get(table)
            return None if stage is None else self._describe(stage)
        return self._describe(self._child(table))

    def apply_child_schema(self, table: str, plan: SchemaPlan) -> None:
        """Fit the child table `table` (under overwrite, its stage in this run) to
        `plan.target` in the open transaction, as `apply_schema` fits the main table."""
        assert self.context is not None
        import psycopg2

        child = self._child(table)
        self._check_columns(child, plan.target.names)
        try:
            if self.context.write_mode != "overwrite":
                self._fit(child, plan.target, child=True)
            elif table not in self._child_stages:
                self._child_stages[table] = self._open_stage(child, plan.target)
            else:
                self._fit(self._child_stages[table], plan.target, child=True)
        except psycopg2.Error as exc:
            self.abort()
            raise self._error("schema change", exc, str(child)) from exc

    def write_child_batch(self, table: str, batch: Any, state: State) -> None:
        """COPY rows of the child table `table` into it (under overwrite, into its stage)
        inside the transaction of the main table's rows."""
        assert self.context is not None
        data: pa.RecordBatch = batch.to_arrow()
        if data.num_rows == 0:
            return
        import psycopg2

        mode = self.context.write_mode
        child = self._child(table)
        self._check_columns(child, data.schema.names)
        try:
            if mode == "overwrite":
                if table not in self._child_stages:
                    self._child_stages[table] = self._open_stage(child, data.schema)
                target = self._child_stages[table]
                self._note_columns(target, data.schema.names)
            else:
                target = child
            self._ensure_table(target, data.schema)
            self.codec.write(self.conn, target.sql(), data)
        except psycopg2.Error as exc:
            self.abort()
            if getattr(exc, "pgcode", None) == UNTRANSLATABLE_CHARACTER:
                raise self._encoding_error(mode, data, exc, str(child)) from exc
            raise self._error(f"{mode} write", exc, str(child)) from exc

    def delete_children(self, table: str, root_ids: pa.Array | None) -> None:
        """Delete, in the open transaction, the rows of child table `table` whose
        `_dl_root_id` is one of `root_ids` (copied once into a temporary table for all the
        child tables of a batch); with None (overwrite), every row, unless this run staged
        rows for it. A table that does not exist is left alone."""
        assert self.context is not None
        import psycopg2

        child = self._child(table)
        try:
            if root_ids is None:
                if table not in self._child_stages and self._exists(child):
                    self._execute(f"DELETE FROM {child.sql()}")
                return
            if self.context.write_mode == "overwrite":
                # The table is replaced at the commit: only rows staged so far can go.
                target = self._child_stages.get(table)
            else:
                target = child if self._exists(child) else None
            if target is None or len(root_ids) == 0:
                return
            self._load_root_ids(root_ids)
            [(column_type,)] = self._execute(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = to_regclass(%s) AND attname = %s",
                (target.sql(), ROOT_ID),
            ).fetchall()
            self._execute(delete_children_sql(target, column_type))
        except psycopg2.Error as exc:
            self.abort()
            raise self._error("merge delete", exc, str(child)) from exc

    def _load_root_ids(self, root_ids: pa.Array) -> None:
        """Make `ROOT_IDS` hold exactly `root_ids` (a temporary table dropped at the commit)."""
        if self._root_ids is not None and self._root_ids.equals(root_ids):
            return
        if self._root_ids is None:
            quoted = quote_identifier(ROOT_ID)
            self._execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {ROOT_IDS} ({quoted} text) ON COMMIT DROP"
            )
        self._execute(f"TRUNCATE {ROOT_IDS}")
        ids = pa.record_batch([root_ids.cast(pa.string())], names=[ROOT_ID])
        self.codec.write(self.conn, ROOT_IDS, ids)
        self._root_ids = root_ids

    def commit(self, state: State) -> None:
        assert self.context is not None
        import psycopg2

        try:
            if self.context.write_mode == "overwrite":
                self._replace_quarantine()
                self._swap_in_staging(self._table(), self._staging)
                self._staging = None
                for child, stage in self._child_stages.items():
                    self._swap_in_staging(self._child(child), stage)
                self._child_stages = {}
            self._save_state(state)
            self.conn.commit()
        except psycopg2.Error as exc:
            self.abort()
            raise self._error("commit", exc) from exc
        self._merge_stage_columns = frozenset()
        self._fitted.clear()  # the stage is now the table
        self._quarantine_replaced = False
        self._root_ids = None  # dropped with the commit
        self._provided = {}
        self._identity = {}

    def _swap_in_staging(self, target: TableName, staging: TableName | None) -> None:
        """Replace `target` with the staged table `staging` (None: nothing staged, `target`
        is emptied), inside the commit's transaction.

        Drop and rename, unless that would lose part of the table's definition the stage lacks
        (see `DEFINITION_SQL`) or views depend on it: then keep the table and replace its rows
        (`_replace_rows`).
        """
        import psycopg2

        if staging is None:
            if self._exists(target):
                self._execute(f"DELETE FROM {target.sql()}")
            return
        found = self._execute(DEFINITION_SQL, (target.sql(),)).fetchall()
        keep, identity, generated, comment = found[0] if found else (False, [], [], None)
        if keep:
            self._replace_rows(target, staging, identity, generated)
            return
        self._execute("SAVEPOINT dl_swap")
        try:
            self._execute(f"DROP TABLE IF EXISTS {target.sql()}")
        except psycopg2.errors.DependentObjectsStillExist:
            self._execute("ROLLBACK TO SAVEPOINT dl_swap")
            self._replace_rows(target, staging, identity, generated)
        else:
            self._execute(f"ALTER TABLE {staging.sql()} RENAME TO {quote_identifier(target.name)}")
            # The stage's owner label goes; the replaced table's own comment, if any, stays.
            self._execute(f"COMMENT ON TABLE {target.sql()} IS {self._literal(comment)}")

    def _replace_rows(
        self, target: TableName, staging: TableName, identity: list[str], generated: list[str]
    ) -> None:
        """Keep `target` and replace its rows with the stage's (TRUNCATE + INSERT … SELECT),
        then drop the stage. The INSERT fires the table's triggers; Postgres computes its
        `generated` columns; its `identity` columns take the staged values when the rows
        carried them (and the sequence moves past them), else the table numbers the rows."""
        self._execute(f"TRUNCATE {target.sql()}")
        # The stage's columns and types; Postgres refuses to retype a column a view selects,
        # which fails the commit.
        staged = pa.schema(
            [plan.field for plan in self._read_plans(staging) if plan.name not in generated]
        )
        existing = {plan.name: plan.field for plan in self._read_plans(target)}
        clauses = fit_clauses(existing, staged, empty=True)
        if clauses:
            self._execute(f"ALTER TABLE {target.sql()} {', '.join(clauses)}")
        provided = self._provided.get(staging.sql(), set())
        loaded = [name for name in identity if name in provided and name in staged.names]
        names = [name for name in staged.names if name not in identity or name in loaded]
        columns = ", ".join(quote_identifier(name) for name in names)
        overriding = " OVERRIDING SYSTEM VALUE" if loaded else ""
        self._execute(
            f"INSERT INTO {target.sql()} ({columns}){overriding} SELECT {columns} FROM {staging.sql()}"
        )
        for name in loaded:
            self._execute(
                SEQUENCE_PAST_SQL.format(
                    column=quote_identifier(name),
                    table=target.sql(),
                    table_literal=self._literal(target.sql()),
                    column_literal=self._literal(name),
                )
            )
        self._execute(f"DROP TABLE {staging.sql()}")

    def abort(self) -> None:
        if self.conn is not None:
            self._rollback(self.conn)
        self._merge_stage_columns = frozenset()
        self._staging = None
        self._child_stages = {}
        self._provided = {}
        self._identity = {}
        self._root_ids = None
        self._fitted.clear()
        self._unique_keys = None
        self._quarantine_replaced = False

    # -- destination: staging for a distributed run --------------------------------------
    def _part_table(
        self, context: RunContext, partition: Partition, attempt: str, number: int
    ) -> TableName:
        """The staging table of part `number` of this attempt at `partition`: beside the
        table, named by a digest of recipe, table, run, partition, attempt and part (at most
        `NAME_BYTES` bytes, however long the table's name)."""
        table = self._table()
        key = [context.recipe_name, table.sql(), context.run_id, partition.index, attempt, number]
        digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:20]
        room = NAME_BYTES - len(PART_PREFIX) - len(digest) - 1
        readable = table.name.encode()[:room].decode(errors="ignore")
        return table.sibling(f"{PART_PREFIX}{readable}_{digest}")

    def stage_partition(
        self, context: RunContext, partition: Partition, attempt: str, batches: Iterable[Any]
    ) -> dict[str, Any]:
        """Worker side: COPY the partition's rows (the connector's codec) into UNLOGGED
        staging tables of this attempt's own, over a connection of the worker's own, in one
        transaction the worker commits: a new table whenever the batches' Arrow schema
        changes, each created from that schema as the single-process write creates a table
        and labelled with its recipe, table, run, partition and attempt. Readers of the
        table never see them; the driver inserts the reported ones at `commit_staged`.

        :returns: the tables' names and Arrow schemas (IPC, base64), and the rows staged.
        """
        import psycopg2

        self.context = context
        self.codec = choose_codec(self.config.codec)
        self.conn = connect(self.config, role="destination")
        table = self._table()
        label = {"recipe": context.recipe_name, "table": table.name, "run_id": context.run_id}
        label |= {"partition": partition.index, "attempt": attempt}
        parts: list[dict[str, str]] = []
        current: TableName | None = None
        schema: pa.Schema | None = None
        rows = 0
        data: pa.RecordBatch | None = None
        try:
            held = self._describe(table)
            held_types = self._columns(table) if held is not None else {}
            for batch in batches:
                data = batch.to_arrow()
                if current is None or data.schema != schema:
                    self._check_columns(table, data.schema.names)
                    schema = data.schema
                    current = self._part_table(context, partition, attempt, len(parts))
                    columns = ", ".join(
                        _staged_column_sql(field, held, held_types) for field in schema
                    )
                    self._execute(f"CREATE UNLOGGED TABLE {current.sql()} ({columns})")
                    comment = json.dumps({PART_LABEL: label | {"part": len(parts)}})
                    self._execute(f"COMMENT ON TABLE {current.sql()} IS {self._literal(comment)}")
                    encoded = base64.b64encode(schema.serialize().to_pybytes()).decode()
                    parts.append({"table": current.name, "schema": encoded})
                if data.num_rows:
                    self.codec.write(self.conn, current.sql(), data)
                    rows += data.num_rows
            self.conn.commit()
        except psycopg2.Error as exc:
            self._rollback(self.conn)
            if getattr(exc, "pgcode", None) == UNTRANSLATABLE_CHARACTER and data is not None:
                raise self._encoding_error("staging", data, exc) from exc
            raise self._error("staging write", exc) from exc
        finally:
            connection, self.conn = self.conn, None
            self._release(connection)
        return {"schema": table.schema, "tables": parts, "rows": rows, "run_id": context.run_id}

    def _staged_tables(self, staged: list[dict[str, Any]]) -> list[tuple[TableName, pa.Schema]]:
        """Every reported staging table, with the Arrow schema of its rows."""
        found = []
        for report in staged:
            for part in report.get("tables", []):
                schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(part["schema"])))
                found.append((TableName(report.get("schema"), part["table"]), schema))
        return found

    def staged_schemas(self, staged: list[dict[str, Any]]) -> list[tuple[str, pa.Schema]]:
        """Each reported staging table's name and Arrow schema, from the reports alone."""
        return [(table.name, schema) for table, schema in self._staged_tables(staged)]

    def commit_staged(
        self, staged: list[dict[str, Any]], state: State, schema: pa.Schema | None
    ) -> None:
        """In one transaction: `INSERT … SELECT` every reported staging table into the table
        (under overwrite, into this run's stage, swapped in as a single-process overwrite
        swaps, or its rows replaced in place), casting where the table's type differs,
        then save the state and commit (`commit`). Nothing is visible if any step fails."""
        import psycopg2

        assert self.context is not None
        parts = self._staged_tables(staged)
        try:
            if parts:
                assert schema is not None
                self._check_columns(self._table(), schema.names)
                if self.context.write_mode == "overwrite":
                    if self._staging is None:
                        self._staging = self._open_stage(self._table(), schema)
                    target = self._staging
                else:
                    target = self._table()
                    self._check_insert_like_copy(target)
                    self._ensure_table(target, schema)
                held = self._columns(target)
                for part, _ in parts:
                    self._insert_part(target, part, held)
        except psycopg2.Error as exc:
            self.abort()
            raise self._error("insert of the staged partitions", exc) from exc
        except BaseException:
            self.abort()
            raise
        self.commit(state)

    def _check_insert_like_copy(self, table: TableName) -> None:
        """Refuse a table the driver's INSERT would write otherwise than a single-process COPY:
        a view (COPY refuses it) or a table with an INSERT rule (COPY never fires it)."""
        found = self._execute(
            "SELECT c.relkind, (SELECT string_agg(r.rulename, ', ') FROM pg_rewrite r "
            "WHERE r.ev_class = c.oid AND r.ev_type = '3') FROM pg_class c "
            "WHERE c.oid = to_regclass(%s)",
            (table.sql(),),
        ).fetchall()
        if not found:
            return
        kind, rules = found[0]
        if kind in ("r", "p") and rules is None:
            return
        what = f"has the INSERT rule(s) {rules}" if kind in ("r", "p") else "is not a table"
        raise ConnectorError(
            f"{table} {what}: the driver of a distributed run inserts its staged rows with "
            "INSERT, which a rule rewrites, where a single-process COPY loads the table itself "
            "(and refuses a view); nothing was committed",
            key="destination.table",
            value=self.config.table,
            expected="a table without INSERT rules, or a single-process run (`executor: local`)",
        )

    def _insert_part(self, target: TableName, part: TableName, held: dict[str, str]) -> None:
        """`INSERT INTO target … SELECT … FROM part`, each column cast to the table's type
        where it differs (a fixed-length character type is left to the assignment cast, which
        refuses a value too long where an explicit cast would cut it)."""
        staged = self._columns(part)
        if not staged:
            raise ConnectorError(
                f"the staging table {part.sql()} a worker reported is gone; nothing was committed",
                key="destination.table",
                value=self.config.table,
                expected="the staging tables of this run left in place until its commit",
            )
        selected = []
        for name, kind in staged.items():
            wanted = held[name]
            quoted = quote_identifier(name)
            if kind == wanted or wanted.startswith(("character", "bit")):
                selected.append(quoted)
            else:
                selected.append(f"CAST({quoted} AS {wanted})")
        if target == self._staging:
            self._note_columns(target, list(staged))
        columns = ", ".join(quote_identifier(name) for name in staged)
        # OVERRIDING SYSTEM VALUE: a single-process COPY loads an identity column's values.
        self._execute(
            f"INSERT INTO {target.sql()} ({columns}) OVERRIDING SYSTEM VALUE "
            f"SELECT {', '.join(selected)} FROM {part.sql()}"
        )

    def discard_staged(self) -> None:
        """Drop every staging table of this recipe (any run's, reported or not), none of
        another recipe's. A table another session still locks (a dead run's worker or driver
        the server has not yet ended) is skipped after `lock_timeout` and left to the next
        run, with a warning. With the connection lost, nothing can be dropped: the next run
        does it."""
        import psycopg2

        assert self.context is not None
        if self.conn is None or self.conn.closed:
            return
        table = self._table()
        try:
            self._rollback(self.conn)
            found = self._execute(
                "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = coalesce(%s, current_schema()) AND c.relkind = 'r' "
                "AND starts_with(c.relname, %s)",
                (table.schema, PART_PREFIX),
            ).fetchall()
            self._execute(f"SET LOCAL lock_timeout = {int(DISCARD_LOCK_TIMEOUT * 1000)}")
            for name, comment in found:
                if part_owner(comment) != self.context.recipe_name:
                    continue
                self._execute("SAVEPOINT dl_discard")
                try:
                    self._execute(f"DROP TABLE IF EXISTS {table.sibling(name).sql()}")
                except psycopg2.errors.LockNotAvailable:
                    self._execute("ROLLBACK TO SAVEPOINT dl_discard")
                    log.warning(
                        f"staging table {table.sibling(name).sql()} is locked by another "
                        "session (a dead run's); left for the next run to drop"
                    )
            self.conn.commit()
        except psycopg2.Error as exc:
            self._rollback(self.conn)
            raise self._error("discard of staged partitions", exc) from exc


def _staged_column_sql(field: pa.Field, held: pa.Schema | None, types: dict[str, str]) -> str:
    """A staging table's column: of the table's own type (a domain, `cidr`, `bit(3)`,
    `varchar(5)`…) where the table has the column and it holds the staged type, so the
    worker's COPY parses each value as a single-process COPY into the table does; else as a
    single-process write would create it (the driver's plan widens the table to it)."""
    from dataloader.schema.lattice import Rules, supertype

    index = held.get_field_index(field.name) if held is not None else -1
    if held is not None and index >= 0 and field.name in types:
        kind = held.field(index).type
        staged = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        if supertype(kind, staged, Rules()) == kind:
            return f"{quote_identifier(field.name)} {types[field.name]}"
    return column_sql(field.with_nullable(True))


def part_owner(comment: str | None) -> str | None:
    """The recipe a partition's staging table is labelled with; None for any other table."""
    try:
        return json.loads(comment or "")[PART_LABEL]["recipe"]
    except (ValueError, TypeError, KeyError):
        return None


def _with_copy_context(exc: Exception) -> str | None:
    """The server's message with where in a COPY it failed (`COPY t, line 2, column x: …`):
    the first line alone names no column. None when the error has no such context."""
    context = getattr(getattr(exc, "diag", None), "context", None)
    if not context or not context.startswith("COPY "):
        return None
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    where = context.strip().splitlines()[0]
    return f"{first} ({where[:200]}{'…' if len(where) > 200 else ''})"
