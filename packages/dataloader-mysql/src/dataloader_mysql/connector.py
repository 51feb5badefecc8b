"""`MySQLConnector`: read a MySQL/MariaDB table or query; write with append, overwrite, merge.

MySQL commits a transaction implicitly at every DDL statement (CREATE, ALTER, RENAME, DROP,
TRUNCATE), so no table is created or changed while rows wait in a transaction. Rows are loaded
with `LOAD DATA LOCAL INFILE`:
- append: straight into the table, inside a transaction opened at the batch and committed with
  the recipe's state row. Each LOAD runs in a background thread while the next batch is read
  and encoded (one at a time: every other statement waits for it and raises its error). The
  batch files are kept until that commit: a schema change while rows wait (DDL would commit
  them without their state) rolls the transaction back, changes the table and loads the
  files again;
- merge: into a staging table that only this run uses; each commit is one short transaction
  moving the stage's latest row per key (by `dedup_sort`, then the cursor, then the row read
  last) `INSERT … ON DUPLICATE KEY UPDATE` into the table, and the state row;
- overwrite: rows go into a replacement table; the commit records the new state as *pending*
  for this run, swaps the tables with one atomic `RENAME TABLE`, then promotes the pending
  state. The replacement carries the run's label as its table comment, so whether the swap
  happened is known from the table itself: a run killed between the steps leaves a pending
  state that `load_state` counts only if the table that is in place is this run's.

Schema changes (creating the table, adding or widening columns) are applied to the table
before the transaction that moves the rows, and are committed on their own. A `LOAD DATA
LOCAL` turns errors (a duplicate key, a value cut) into warnings: a load that warns fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dataloader import ArrowBatch, BaseConnector, Capabilities, ConnectorError, State
from dataloader.incremental import is_text, window_for
from dataloader.parallel import ordered_merge
from dataloader.schema.plan import KEY_TAG, key_of
from dataloader.sql import (
    STAGING_PREFIX,
    STATE_TABLE,
    TableName,
    database_error,
    stage_label,
    stage_owner,
    staging_name,
)
from dataloader_mysql.codec import LOAD_OPTIONS, load_file_bytes, read_batches
from dataloader_mysql.config import MySQLConfig
from dataloader_mysql.connection import connect, is_transient, quote, table_sql
from dataloader_mysql.types import (
    BIN_COLLATION,
    UTC_COMMENT,
    ColumnPlan,
    column_type,
    plan_column,
    text_collation,
)

if TYPE_CHECKING:
    from dataloader.schema.plan import SchemaPlan

ORDINAL = "__dl_ordinal"
RANK = "__dl_rank"


class MySQLConnector(BaseConnector):
    """MySQL and MariaDB source and destination."""

    name = "mysql"
    config_model = MySQLConfig
    capabilities = Capabilities(
        read=True,
        write=True,
        write_modes=("append", "overwrite", "merge"),
        incremental=True,
        transactional_state=True,
        max_identifier_length=64,
    )

    def __init__(self, config: MySQLConfig) -> None:
        super().__init__(config)
        self.conn: Any = None
        self._holds_run_lock = False
        self._lock_name = ""
        # Tables this run created (stages), by SQL name: their columns and MySQL types.
        self._created: dict[str, dict[str, str]] = {}
        self._staged: dict[str, pa.Field] = {}  # the load stage's columns since the last commit
        # merge: earlier stages of this commit, each of batches with one set of columns
        self._sealed: list[tuple[TableName, dict[str, pa.Field]]] = []
        self._replacement: TableName | None = None  # overwrite: the table swapped in at commit
        self._unique_checked = False
        # append: the files loaded into the table in the open transaction, with their columns
        self._direct: list[tuple[str, list[str]]] = []
        self._in_transaction = False
        self._target_columns: set[str] | None = None  # append: the table's columns, once fitted
        self._loader: ThreadPoolExecutor | None = None  # append: runs one LOAD at a time
        self._loading: Future[None] | None = None  # the LOAD in flight
        self._collation = BIN_COLLATION  # text's no-pad binary collation on this server
        self._converted: frozenset[str] = frozenset()  # append: text columns not in utf8mb4

    # -- lifecycle -------------------------------------------------------------------
    def open(self, context: Any) -> None:
        super().open(context)
        import pymysql

        destination = context.role == "destination"
        if self.config.ssl_ca and not os.path.isfile(self.config.ssl_ca):
            raise ConnectorError(
                f"the CA certificate file {self.config.ssl_ca!r} does not exist",
                key=f"{context.role}.ssl_ca",
                value=self.config.ssl_ca,
                expected="the path of a readable PEM file of the CA that signed the server's certificate",
            )
        try:
            self.conn = connect(self.config, raw=not destination)
            self._collation = text_collation(_text(self.conn.get_server_info()))
            if destination and self.config.table:
                self._take_run_lock()
        except pymysql.err.MySQLError as exc:
            self.close()
            raise self._error("connect", exc) from exc

    def close(self) -> None:
        self._forget_direct()
        if self._loader is not None:
            self._loader.shutdown(wait=True)
            self._loader = None
        if self.conn is None:
            return
        connection, self.conn = self.conn, None
        with contextlib.suppress(Exception):
            if self._holds_run_lock:
                connection.cursor().execute("SELECT RELEASE_LOCK(%s)", (self._lock_name,))
        self._holds_run_lock = False
        with contextlib.suppress(Exception):
            connection.close()

    def is_transient(self, error: BaseException) -> bool:
        return is_transient(error)

    def _error(self, action: str, exc: Exception, table: str | None = None) -> ConnectorError:
        return database_error(
            "MySQL",
            action,
            exc,
            role=self.context.role if self.context else "source",
            table=self.config.table,
            server=self.config.describe(),
            where=table,
        )

    def _execute(self, sql: str, params: Any = None) -> Any:
        self._wait_load()
        cursor = self.conn.cursor()
        cursor.execute(sql, params)
        return cursor

    def _rows(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        return list(self._execute(sql, params).fetchall())

    # -- source ----------------------------------------------------------------------
    def _relation(self) -> str:
        if self.config.query:
            return f"({self.config.query}) AS src"
        return table_sql(self._table())

    def plan_columns(self, relation: str, table: TableName | None = None) -> list[ColumnPlan]:
        """How each column of `relation` is read, from the result's column metadata (and, for
        a table, its definition: JSON columns, DATETIME columns of UTC instants)."""
        cursor = self.conn.cursor()
        cursor.execute(f"SELECT * FROM {relation} LIMIT 0")
        # PyMySQL keeps each column's full metadata (flags, character set) on the result;
        # `description` drops the unsigned flag and the character set.
        fields = cursor._result.fields
        cursor.fetchall()
        json_columns, utc_columns = self._column_tags(table) if table else (set(), set())
        return [
            plan_column(
                f.name,
                f.type_code,
                f.flags,
                f.length,
                f.scale,
                f.charsetnr,
                json=f.name in json_columns,
                utc=f.name in utc_columns,
            )
            for f in fields
        ]

    def _column_tags(self, table: TableName) -> tuple[set[str], set[str]]:
        schema_sql = "%s" if table.schema else "DATABASE()"
        params = [table.schema] if table.schema else []
        rows = self._rows(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_COMMENT FROM information_schema.COLUMNS "
            f"WHERE TABLE_SCHEMA = {schema_sql} AND TABLE_NAME = %s",
            (*params, table.name),
        )
        checks = self._rows(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            f"WHERE CONSTRAINT_SCHEMA = {schema_sql} AND TABLE_NAME = %s",
            (*params, table.name),
        )
        clauses = " ".join(_text(clause) for (clause,) in checks)
        json_columns = {
            _text(name)
            for name, data_type, _ in rows
            if _text(data_type) == "json" or f"json_valid({quote(_text(name))})" in clauses
        }
        utc = {_text(name) for name, _, comment in rows if _text(comment) == UTC_COMMENT}
        return json_columns, utc

    def _select(self, plans: list[ColumnPlan], conditions: list[str], order_by: str | None) -> str:
        columns = ", ".join(
            f"{plan.select_sql(quote(plan.name))} AS {quote(plan.name)}" for plan in plans
        )
        sql = f"SELECT {columns} FROM {self._relation()}"
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        if order_by:
            sql += f" ORDER BY {order_by}"
        return sql

    def _window(self, state: State, plans: list[ColumnPlan]) -> tuple[list[str], str | None]:
        """The `where:` condition and the cursor window as SQL conditions, and the ORDER BY."""
        assert self.context is not None
        conditions = [f"({self.config.where})"] if self.config.where else []
        incremental = self.context.incremental
        if incremental is None:
            return conditions, None
        if incremental.strategy != "cursor":
            raise ConnectorError(
                "MySQL sources support the `cursor` incremental strategy only",
                key="source.incremental.strategy",
                value=incremental.strategy,
            )
        window = window_for(incremental, state.cursor_values, state.cursor_boundaries)
        plan = self._plan_of(plans, window.column, "source.incremental.cursor_column")
        arrow_type = plan.field.type
        column = quote(window.column)
        # Text compares by code point without padding, the order the engine checks and stores.
        compared = (
            f"CONVERT({column} USING utf8mb4) COLLATE {self._collation}"
            if is_text(arrow_type)
            else column
        )
        # MySQL floats have no NaN (and `= 'NaN'` would test `= 0`): NULL is the only missing.
        condition = window.sql_condition(
            column, arrow_type, self._literal, compared=compared, nan=None
        )
        if condition is not None:
            conditions.append(condition)
        return conditions, f"{column} IS NULL, {compared}"

    def _literal(self, scalar: pa.Scalar) -> str:
        value = scalar.as_py()
        if pa.types.is_timestamp(scalar.type) and scalar.type.tz is not None and value is not None:
            from datetime import UTC

            value = value.astimezone(UTC).replace(tzinfo=None)
        return self._sql_value(value)

    def _sql_value(self, value: Any) -> str:
        """`value` as a SQL literal (for statements that take no parameters)."""
        return self.conn.cursor().mogrify("%s", (value,))

    def _plan_of(self, plans: list[ColumnPlan], column: str, key: str) -> ColumnPlan:
        for plan in plans:
            if plan.name == column:
                return plan
        raise ConnectorError(
            f"column {column!r} is not a column of {self.config.table or 'the query'}",
            key=key,
            value=column,
            expected=f"one of {[plan.name for plan in plans]}",
        )

    def read_batches(self, state: State) -> Iterator[ArrowBatch]:
        assert self.context is not None
        import pymysql

        try:
            table = None if self.config.query else self._table()
            plans = self.plan_columns(self._relation(), table)
            conditions, order_by = self._window(state, plans)
            parts = self._partitions(conditions, plans)
            if len(parts) > 1:
                readers = [
                    partial(
                        self._read_part, self._select(plans, [*conditions, part], order_by), plans
                    )
                    for part in parts
                ]
                batches = ordered_merge(
                    readers, workers=self.context.parallelism, depth=2, name="mysql"
                )
            else:
                batches = self._stream(self.conn, self._select(plans, conditions, order_by), plans)
            for batch in batches:
                yield ArrowBatch(batch, {"source": "mysql"})
        except pymysql.err.MySQLError as exc:
            raise self._error("read", exc) from exc

    def _stream(
        self, connection: Any, sql: str, plans: list[ColumnPlan]
    ) -> Iterator[pa.RecordBatch]:
        """Stream `sql`'s rows from the server (an unbuffered cursor) in Arrow batches."""
        import pymysql.cursors

        assert self.context is not None
        cursor = connection.cursor(pymysql.cursors.SSCursor)
        try:
            cursor.execute(sql)
            yield from read_batches(cursor, plans, self.context.batch_size)
        finally:
            cursor.close()  # reads what is left of an abandoned result

    def _read_part(self, sql: str, plans: list[ColumnPlan]) -> Iterator[pa.RecordBatch]:
        """One range of a split read, on its own connection."""
        connection = connect(self.config, raw=True)
        try:
            yield from self._stream(connection, sql, plans)
        finally:
            with contextlib.suppress(Exception):
                connection.close()

    def _partitions(self, conditions: list[str], plans: list[ColumnPlan]) -> list[str]:
        """Conditions splitting the read into ranges of `partition_column` (else the cursor
        column), in order; one empty one when the read is not split."""
        assert self.context is not None
        count = self.config.partitions or self.context.parallelism
        if self.context.parallelism <= 1 or count <= 1:
            return [""]
        cursor_column = self.context.incremental.cursor_column if self.context.incremental else None
        column = self.config.partition_column
        if cursor_column is not None and column not in (None, cursor_column):
            raise ConnectorError(
                "an incremental read can only be split on its cursor column (rows must arrive in cursor order)",
                key="source.partition_column",
                value=column,
                expected=cursor_column,
            )
        column = column or cursor_column
        if column is None:
            return [""]
        plan = self._plan_of(plans, column, "source.partition_column")
        arrow_type = plan.field.type
        if plan.kind != "text" or not (
            pa.types.is_integer(arrow_type)
            or pa.types.is_decimal(arrow_type)
            or pa.types.is_timestamp(arrow_type)
            or pa.types.is_date(arrow_type)
        ):
            return [""]  # no arithmetic to cut ranges with: one ordered read
        quoted = quote(column)
        where = " WHERE " + " AND ".join(conditions) if conditions else ""
        [(low, high)] = self._rows(
            f"SELECT MIN({quoted}), MAX({quoted}) FROM {self._relation()}{where}"
        )
        if low is None or low == high:
            return [""]
        if pa.types.is_timestamp(arrow_type):  # the session's clock is UTC: compare naive
            arrow_type = pa.timestamp(arrow_type.unit)
        low, high = pa.array([_text(low), _text(high)], pa.string()).cast(arrow_type).to_pylist()
        if pa.types.is_integer(arrow_type):
            edges = [low + (high - low) * i // count for i in range(1, count)]
        else:
            step = (high - low) / count
            edges = [low + step * i for i in range(1, count)]
        literal = self._sql_value
        result = []
        for index in range(count):
            parts = []
            if index:
                parts.append(f"{quoted} >= {literal(edges[index - 1])}")
            if index < count - 1:
                parts.append(f"{quoted} < {literal(edges[index])}")
            if not index:  # NULLs fall in no range: the first one reads them
                parts = [f"({parts[0]} OR {quoted} IS NULL)"]
            result.append(" AND ".join(parts))
        return result

    def estimate_rows(self) -> int | None:
        if self.config.table is None or self.conn is None:
            return None
        table = self._table()
        try:
            rows = self._rows(
                "SELECT TABLE_ROWS FROM information_schema.TABLES "
                f"WHERE TABLE_SCHEMA = {'%s' if table.schema else 'DATABASE()'} AND TABLE_NAME = %s",
                (*([table.schema] if table.schema else []), table.name),
            )
        except Exception:
            return None
        value = int(_text(rows[0][0])) if rows and rows[0][0] is not None else 0
        return value or None

    # -- destination: tables and state ----------------------------------------------
    def _table(self) -> TableName:
        role = self.context.role if self.context else "destination"
        if self.config.table is None:
            raise ConnectorError("a MySQL destination needs `table`", key=f"{role}.table")
        return TableName.parse(self.config.table)

    def _state_table(self) -> TableName:
        return self._table().sibling(STATE_TABLE)

    def _stage(self) -> TableName:
        """The stage the next batch is loaded into (merge: one per set of columns)."""
        return self._sibling(f":{len(self._sealed)}" if self._sealed else "")

    def _sibling(self, suffix: str) -> TableName:
        """This run's table `suffix` beside the destination table (a stage, …)."""
        assert self.context is not None
        table = self._table()
        return table.sibling(staging_name(table.name, f"{self.context.run_id}{suffix}"))

    def _exists(self, table: TableName) -> bool:
        return bool(self._info(table, "TABLE_NAME"))

    def _info(self, table: TableName, column: str) -> list[tuple[Any, ...]]:
        schema_sql = "%s" if table.schema else "DATABASE()"
        return self._rows(
            f"SELECT {column} FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = {schema_sql} AND TABLE_NAME = %s",
            (*([table.schema] if table.schema else []), table.name),
        )

    def _comment(self, table: TableName) -> str | None:
        rows = self._info(table, "TABLE_COMMENT")
        return _text(rows[0][0]) if rows else None

    def _take_run_lock(self) -> None:
        """Try, without waiting, to take the recipe's named lock on the server (one name per
        database and recipe, hashed to the 64 characters a lock name may have). Held until
        `close`; `begin` and `reset_state` refuse to run without it."""
        assert self.context is not None
        database = self._table().schema or self.config.database
        digest = hashlib.blake2b(
            f"{database}\0{self.context.recipe_name}".encode(), digest_size=16
        ).hexdigest()
        self._lock_name = f"dataloader:{digest}"
        [(taken,)] = self._rows("SELECT GET_LOCK(%s, 0)", (self._lock_name,))
        self._holds_run_lock = taken == 1

    def _check_run_lock(self) -> None:
        assert self.context is not None
        if self._holds_run_lock:
            return
        raise ConnectorError(
            f"another run of recipe {self.context.recipe_name!r} is loading into this database "
            f"({self.config.describe()}): another session holds the recipe's lock "
            f"{self._lock_name!r}; two runs of one recipe never load at once — run it again "
            "once that run ends",
            key="destination",
        )

    def _create_state_table(self) -> None:
        self._execute(
            f"CREATE TABLE IF NOT EXISTS {table_sql(self._state_table())} ("
            "recipe VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, "
            "state LONGTEXT NULL, pending LONGTEXT NULL, pending_run VARCHAR(255) NULL, "
            "updated_at DATETIME(6) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        )

    def _state_row(self) -> tuple[str | None, str | None, str | None] | None:
        assert self.context is not None
        if not self._exists(self._state_table()):
            return None
        rows = self._rows(
            f"SELECT state, pending, pending_run FROM {table_sql(self._state_table())} WHERE recipe = %s",
            (self.context.recipe_name,),
        )
        if not rows:
            return None
        state, pending, run = rows[0]
        return _text(state), _text(pending), _text(run)

    def _swapped_in(self, run_id: str) -> bool:
        """Whether the table in place is the replacement run `run_id` swapped in."""
        assert self.context is not None
        table = self._table()
        return self._comment(table) == stage_label(self.context.recipe_name, table.name, run_id)

    def load_state(self) -> State | None:
        import pymysql

        try:
            row = self._state_row()
            if row is None:
                return None
            state, pending, run = row
            if run is not None and self._swapped_in(run):
                state = pending
        except pymysql.err.MySQLError as exc:
            raise self._error("state read", exc) from exc
        return State.from_dict(json.loads(state)) if state else None

    def reset_state(self) -> None:
        assert self.context is not None
        self._check_run_lock()
        if self._exists(self._state_table()):
            self._execute(
                f"DELETE FROM {table_sql(self._state_table())} WHERE recipe = %s",
                (self.context.recipe_name,),
            )

    def begin(self, state: State) -> None:
        """Take over what a killed run of this recipe left: settle a pending overwrite
        state, drop the tables the run staged."""
        assert self.context is not None
        import pymysql

        self._check_run_lock()
        try:
            self._create_state_table()
            self._settle_pending()
            self._drop_dead_stages()
        except pymysql.err.MySQLError as exc:
            raise self._error("begin", exc) from exc

    def _settle_pending(self) -> None:
        assert self.context is not None
        row = self._state_row()
        if row is None or row[2] is None:
            return
        run = row[2]
        promote = "state = pending, " if self._swapped_in(run) else ""
        self._execute(
            f"UPDATE {table_sql(self._state_table())} SET {promote}pending = NULL, "
            "pending_run = NULL WHERE recipe = %s",
            (self.context.recipe_name,),
        )
        table = self._table()
        replaced = table.sibling(staging_name(table.name, f"{run}:replaced"))
        self._execute(f"DROP TABLE IF EXISTS {table_sql(replaced)}")

    def _drop_dead_stages(self) -> None:
        """Drop the staging tables labelled as this recipe's stages of its table: this run
        holds the recipe's lock, so no live run owns them."""
        assert self.context is not None
        table = self._table()
        schema_sql = "%s" if table.schema else "DATABASE()"
        stages = self._rows(
            "SELECT TABLE_NAME, TABLE_COMMENT FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = {schema_sql} AND TABLE_NAME LIKE %s",
            (*([table.schema] if table.schema else []), STAGING_PREFIX.replace("_", "\\_") + "%"),
        )
        for name, comment in stages:
            if stage_owner(_text(comment)) == (self.context.recipe_name, table.name):
                self._execute(f"DROP TABLE IF EXISTS {table_sql(table.sibling(_text(name)))}")

    def _columns(self, table: TableName) -> dict[str, str]:
        schema_sql = "%s" if table.schema else "DATABASE()"
        rows = self._rows(
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
            f"WHERE TABLE_SCHEMA = {schema_sql} AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
            (*([table.schema] if table.schema else []), table.name),
        )
        return {_text(name): _text(kind) for name, kind in rows}

    def _foreign_text(self, table: TableName) -> frozenset[str]:
        """The text columns of `table` whose character set is not utf8mb4."""
        schema_sql = "%s" if table.schema else "DATABASE()"
        rows = self._rows(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS "
            f"WHERE TABLE_SCHEMA = {schema_sql} AND TABLE_NAME = %s "
            "AND CHARACTER_SET_NAME NOT IN ('utf8mb4', 'binary')",
            (*([table.schema] if table.schema else []), table.name),
        )
        return frozenset(_text(name) for (name,) in rows)

    def _keys(self, schema: pa.Schema) -> tuple[str, ...]:
        assert self.context is not None
        tagged = tuple(f.name for f in schema if key_of(f) == "primary")
        return tagged or tuple(k for k in self.context.merge_keys if k in schema.names)

    def _create(
        self, table: TableName, schema: pa.Schema, keys: tuple[str, ...], *, ordinal: bool = False
    ) -> None:
        """CREATE TABLE `table` for `schema`, `keys` its primary key (or, with `ordinal`, an
        auto-increment column numbering the rows as loaded), labelled as this run's when
        it is one of its stages."""
        assert self.context is not None
        types = {
            f.name: column_type(f, key=f.name in keys, collation=self._collation) for f in schema
        }
        columns = [
            f"{quote(f.name)} {types[f.name]}"
            + (" NOT NULL" if f.name in keys or not f.nullable else "")
            for f in schema
        ]
        if ordinal:
            columns.append(f"{quote(ORDINAL)} BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY")
        elif keys:
            columns.append(f"PRIMARY KEY ({', '.join(quote(k) for k in keys)})")
        comment = ""
        if table.name.startswith(STAGING_PREFIX):
            label = stage_label(self.context.recipe_name, self._table().name, self.context.run_id)
            comment = f" COMMENT={self._sql_value(label)}"
        self._execute(
            f"CREATE TABLE {table_sql(table)} ({', '.join(columns)}) ENGINE=InnoDB "
            f"DEFAULT CHARSET=utf8mb4 COLLATE={self._collation}{comment}"
        )
        self._created[table_sql(table)] = types

    def _fit_stage(self, table: TableName, schema: pa.Schema, *, ordinal: bool) -> None:
        """Create this run's stage `table` for `schema`, or add the columns it lacks and
        retype those whose type changed (a stage holds only this run's rows)."""
        known = self._created.get(table_sql(table))
        keys = () if ordinal else self._keys(schema)
        if known is None:
            self._create(table, schema, keys, ordinal=ordinal)
            return
        clauses = []
        for f in schema:
            wanted = column_type(f, key=f.name in keys, collation=self._collation)
            if f.name not in known:
                clauses.append(f"ADD COLUMN {quote(f.name)} {wanted}")
            elif known[f.name] != wanted:
                clauses.append(f"MODIFY COLUMN {quote(f.name)} {wanted}")
            known[f.name] = wanted
        if clauses:
            self._execute(f"ALTER TABLE {table_sql(table)} {', '.join(clauses)}")

    def _fit_target(
        self, schema: pa.Schema, widen: frozenset[str] | set[str] = frozenset()
    ) -> None:
        """Create the destination table for `schema`, or add the columns it lacks and widen
        the `widen` ones. Runs before (never inside) the transaction moving the rows."""
        table = self._table()
        existing = self._columns(table)
        if not existing:
            self._create(table, schema, self._keys(schema))
            return
        keys = self._keys(schema)
        clauses = (
            self._widen_fractions(table, schema, existing, widen)
            + [
                f"ADD COLUMN {quote(f.name)} {column_type(f, key=f.name in keys, collation=self._collation)}"
                for f in schema
                if f.name not in existing
            ]
            + [
                f"MODIFY COLUMN {quote(f.name)} {column_type(f, key=f.name in keys, collation=self._collation)}"
                + (" NOT NULL" if f.name in keys or not f.nullable else "")
                for f in schema
                if f.name in existing and f.name in widen
            ]
        )
        if clauses:
            self._execute(f"ALTER TABLE {table_sql(table)} {', '.join(clauses)}")

    def _widen_fractions(
        self,
        table: TableName,
        schema: pa.Schema,
        existing: dict[str, str],
        widen: frozenset[str] | set[str],
    ) -> list[str]:
        """MODIFY clauses giving the DATETIME, TIMESTAMP and TIME columns of `table` that keep
        fewer fractional digits than `schema` sends six, their definition otherwise kept."""
        narrow = []
        for f in schema:
            kind = existing.get(f.name, "").lower()
            if f.name in widen or not (pa.types.is_timestamp(f.type) or pa.types.is_time(f.type)):
                continue
            match = re.fullmatch(r"(datetime|timestamp|time)(?:\((\d)\))?", kind)
            sent = {"s": 0, "ms": 3}.get(f.type.unit, 6)
            if match and int(match[2] or 0) < sent:
                narrow.append((f.name, match[1]))
        if not narrow:
            return []
        created = _text(self._rows(f"SHOW CREATE TABLE {table_sql(table)}")[0][1])
        lines = {line.strip().rstrip(","): line for line in created.splitlines()}
        clauses = []
        for name, base in narrow:
            prefix = f"{quote(name)} "
            [definition] = [d for d in lines if d.startswith(prefix)]
            rest = re.sub(rf"^{base}(\(\d\))?", "", definition[len(prefix) :], count=1)
            clauses.append(f"MODIFY COLUMN {prefix}{base.upper()}(6){rest}")
        return clauses

    def _check_unique_keys(self) -> None:
        """A merge needs a PRIMARY KEY or UNIQUE index on exactly the merge keys: that is what
        `ON DUPLICATE KEY UPDATE` matches rows by."""
        assert self.context is not None
        if self._unique_checked:
            return
        table = self._table()
        schema_sql = "%s" if table.schema else "DATABASE()"
        rows = self._rows(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
            f"WHERE TABLE_SCHEMA = {schema_sql} AND TABLE_NAME = %s AND NON_UNIQUE = 0",
            (*([table.schema] if table.schema else []), table.name),
        )
        indexes: dict[str, set[str]] = {}
        for index, column in rows:
            indexes.setdefault(_text(index), set()).add(_text(column))
        keys = set(self.context.merge_keys)
        if keys not in indexes.values():
            raise ConnectorError(
                f"table {table} has no PRIMARY KEY or UNIQUE index on the merge keys "
                f"{list(self.context.merge_keys)}: a MySQL merge (INSERT … ON DUPLICATE KEY "
                "UPDATE) matches rows by one",
                key="destination.merge_keys",
                value=list(self.context.merge_keys),
                expected=f"an index: ALTER TABLE {table_sql(table)} ADD UNIQUE "
                f"({', '.join(quote(k) for k in self.context.merge_keys)})",
            )
        self._unique_checked = True

    def _describe(self, table: TableName) -> pa.Schema | None:
        if not self._exists(table):
            return None
        plans = self.plan_columns(table_sql(table), table)
        schema_sql = "%s" if table.schema else "DATABASE()"
        rows = self._rows(
            "SELECT COLUMN_NAME, IS_NULLABLE = 'YES' OR COLUMN_DEFAULT IS NOT NULL "
            "OR EXTRA LIKE '%%auto_increment%%', COLUMN_KEY FROM information_schema.COLUMNS "
            f"WHERE TABLE_SCHEMA = {schema_sql} AND TABLE_NAME = %s",
            (*([table.schema] if table.schema else []), table.name),
        )
        # a NOT NULL column with a default may be left out: the default fills it
        shape = {_text(n): (bool(int(optional)), _text(key)) for n, optional, key in rows}
        fields = []
        for plan in plans:
            nullable, key = shape.get(plan.name, (True, ""))
            metadata = dict(plan.field.metadata or {})
            if key in ("PRI", "UNI"):
                metadata[KEY_TAG] = b"primary" if key == "PRI" else b"unique"
            fields.append(plan.field.with_nullable(nullable).with_metadata(metadata or None))
        return pa.schema(fields)

    def describe(self) -> pa.Schema | None:
        """The destination table as the MySQL source reads it; under overwrite, the
        replacement this run fills (None before it exists: the run writes a new table)."""
        assert self.context is not None
        import pymysql

        try:
            if self.context.write_mode == "overwrite":
                return None if self._replacement is None else self._describe(self._replacement)
            return self._describe(self._table())
        except pymysql.err.MySQLError as exc:
            raise self._error("describe", exc) from exc

    def apply_schema(self, plan: SchemaPlan) -> None:
        """Fit the table (under overwrite, this run's replacement) to `plan.target`, at once
        (MySQL commits DDL implicitly). Under merge and overwrite no rows are in a transaction
        (they wait in the stage or the replacement). Under append rows may wait in the open
        transaction: `_fit_direct` rolls it back, changes the table and loads the kept batch
        files again."""
        assert self.context is not None
        import pymysql

        try:
            if self.context.write_mode == "overwrite":
                self._replacement = self._replacement or self._sibling(":new")
                self._fit_stage(self._replacement, plan.target, ordinal=False)
            else:
                widened = {field.name for field in plan.widened()}
                self._fit_direct(plan.target, widened)
        except pymysql.err.MySQLError as exc:
            raise self._error("schema change", exc) from exc

    # -- destination: writes -------------------------------------------------------------
    def write_batch(self, batch: Any, state: State) -> None:
        """LOAD DATA the batch into this run's stage (under overwrite without merge keys,
        straight into the replacement table)."""
        assert self.context is not None
        data: pa.RecordBatch = batch.to_arrow()
        if data.num_rows == 0:
            return
        import pymysql

        mode = self.context.write_mode
        try:
            if mode == "append":
                self._append(data)
                return
            if mode == "overwrite":
                self._replacement = self._replacement or self._sibling(":new")
                self._fit_stage(self._replacement, data.schema, ordinal=False)
                if not self.context.merge_keys:
                    self._load(self._replacement, data)
                    return
            if mode == "merge" and self._staged and set(self._staged) != set(data.schema.names):
                # rows write only their batch's columns: each set of columns gets its stage
                self._sealed.append((self._stage(), self._staged))
                self._staged = {}
            stage = self._stage()
            self._fit_stage(stage, data.schema, ordinal=True)
            for f in data.schema:
                self._staged[f.name] = f
            self._load(stage, data)
            if mode == "overwrite":  # a merge recipe's full refresh: one row per key
                assert self._replacement is not None
                self._execute("START TRANSACTION")
                self._merge(stage, self._replacement)
                self._execute("COMMIT")
                self._drop_stage()
        except pymysql.err.MySQLError as exc:
            self.abort()
            raise self._error(f"{mode} write", exc) from exc

    def _load(self, table: TableName, data: pa.RecordBatch) -> None:
        """LOAD DATA LOCAL INFILE `data` into `table` from a temporary file."""
        path = self._write_file(data)
        try:
            self._load_file(table, path, data.schema.names)
        finally:
            os.unlink(path)

    def _write_file(self, data: pa.RecordBatch) -> str:
        """`data` as a new temporary `LOAD DATA` file; its path."""
        content = load_file_bytes(data)
        handle, path = tempfile.mkstemp(prefix="dl-mysql-", suffix=".tsv")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(memoryview(content))
        except BaseException:
            os.unlink(path)
            raise
        return path

    def _load_file(
        self,
        table: TableName,
        path: str,
        names: list[str],
        converted: frozenset[str] = frozenset(),
    ) -> None:
        """LOAD DATA LOCAL INFILE the file at `path` (columns `names`) into `table`; a load
        that warns (LOCAL downgrades errors to warnings) fails with the first warning.

        The file is read as bytes (binary columns stay as sent); its text is UTF-8, so the
        `converted` columns (text in another character set) are read into variables and
        converted from utf8mb4: a character their set lacks fails the load."""
        import pymysql

        columns = []
        assignments = []
        for i, name in enumerate(names):
            if name in converted:
                columns.append(f"@v{i}")
                assignments.append(f"{quote(name)} = CONVERT(@v{i} USING utf8mb4)")
            else:
                columns.append(quote(name))
        sql = (
            f"LOAD DATA LOCAL INFILE {self._sql_value(path)} INTO TABLE {table_sql(table)} "
            f"{LOAD_OPTIONS} ({', '.join(columns)})"
        )
        if assignments:
            sql += " SET " + ", ".join(assignments)
        cursor = self.conn.cursor()  # not `_execute`: this runs in the loader thread too
        with self.conn.allow_local_file(path):
            cursor.execute(sql)
        if cursor.warning_count:
            cursor.execute("SHOW WARNINGS LIMIT 1")
            [(_, code, message)] = cursor.fetchall()
            raise pymysql.err.DataError(int(code), _text(message))

    def _append(self, data: pa.RecordBatch) -> None:
        """Load the batch straight into the table, in the transaction its commit ends."""
        names = data.schema.names
        known = self._target_columns
        if known is None or any(name not in known for name in names):
            self._fit_direct(data.schema)
        path = self._write_file(data)  # while the previous batch's LOAD runs
        self._direct.append((path, names))
        if not self._in_transaction:
            self._execute("START TRANSACTION")
            self._in_transaction = True
        self._wait_load()
        if self._loader is None:
            self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mysql-load")
        self._loading = self._loader.submit(
            self._load_file, self._table(), path, names, self._converted
        )

    def _wait_load(self) -> None:
        """Wait for the LOAD in flight, if any; raise its error."""
        if self._loading is not None:
            loading, self._loading = self._loading, None
            loading.result()

    def _fit_direct(
        self, schema: pa.Schema, widen: frozenset[str] | set[str] = frozenset()
    ) -> None:
        """Fit the append target to `schema` (`_fit_target`); rows waiting in the open
        transaction are rolled back first and loaded again after the change."""
        known = self._target_columns
        if known is not None and not widen and all(name in known for name in schema.names):
            return  # nothing to change
        if self._in_transaction:
            self._wait_load()
            self.conn.rollback()
            self._in_transaction = False
        self._fit_target(schema, widen)
        table = self._table()
        self._target_columns = set(self._columns(table))
        self._converted = self._foreign_text(table)
        if self._direct:
            self._execute("START TRANSACTION")
            self._in_transaction = True
            for path, names in self._direct:
                self._load_file(table, path, names, self._converted)

    def _forget_direct(self) -> None:
        """Delete the kept batch files of the append transaction (committed or abandoned)."""
        with contextlib.suppress(Exception):
            self._wait_load()  # abandoned: its error is moot
        for path, _ in self._direct:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._direct = []
        self._in_transaction = False

    def _merge(
        self, stage: TableName, target: TableName, staged: dict[str, pa.Field] | None = None
    ) -> None:
        """Upsert the latest row per merge key of `stage` (columns `staged`, by default this
        stage's) into `target` (in the open transaction): latest by `dedup_sort`, then by the
        cursor, then the row loaded last. With `dedup_sort`, a stored row that wins over the
        incoming one stays as it is. Only the stage's columns are written."""
        assert self.context is not None
        keys = self.context.merge_keys
        names = list(self._staged if staged is None else staged)
        missing = [key for key in keys if key not in names]
        if missing:
            raise ConnectorError(
                f"merge key {missing[0]!r} is not a column of the incoming rows",
                key="destination.merge_keys",
                value=missing[0],
                expected=f"one of {names}",
            )
        winner = self.context.merge_order(names)
        order = []
        if winner is not None:
            column = quote(winner.column)
            order.append(f"{column} IS NULL, {column} {'DESC' if winner.descending else 'ASC'}")
        incremental = self.context.incremental
        if incremental is not None and incremental.cursor_column in names:
            column = quote(incremental.cursor_column)
            order.append(f"{column} IS NULL, {column} DESC")
        order.append(f"{quote(ORDINAL)} DESC")
        listed = ", ".join(quote(name) for name in names)
        # keys the target compares under another collation: rows equal there are one key
        foreign = self._key_collations(target)
        partition = ", ".join(
            f"CONVERT({quote(k)} USING {foreign[k][0]}) COLLATE {foreign[k][1]}"
            if k in foreign
            else quote(k)
            for k in keys
        )
        latest = (
            f"SELECT {listed} FROM (SELECT {listed}, ROW_NUMBER() OVER (PARTITION BY {partition} "
            f"ORDER BY {', '.join(order)}) AS {RANK} FROM {table_sql(stage)}) AS s WHERE {RANK} = 1"
        )
        stored = table_sql(target)
        # a key equal under the target's collation takes the winning row's spelling
        values = [k for k in keys if k in foreign] + [name for name in names if name not in keys]
        if winner is not None and winner.column in values:
            values.remove(winner.column)  # assigned last: later assignments see earlier ones
            values.append(winner.column)
        assignments = [f"{stored}.{quote(n)} = VALUES({quote(n)})" for n in values]
        if winner is not None and assignments:
            old = f"{stored}.{quote(winner.column)}"
            new = f"VALUES({quote(winner.column)})"
            operator = ">=" if winner.descending else "<="
            wins = f"({old} IS NULL OR ({new} IS NOT NULL AND {new} {operator} {old}))"
            assignments = [
                f"{stored}.{quote(n)} = IF({wins}, VALUES({quote(n)}), {stored}.{quote(n)})"
                for n in values
            ]
        if not assignments:
            first = quote(keys[0])
            assignments = [f"{stored}.{first} = {stored}.{first}"]
        self._execute(
            f"INSERT INTO {stored} ({listed}) {latest} ON DUPLICATE KEY UPDATE {', '.join(assignments)}"
        )

    def _key_collations(self, table: TableName) -> dict[str, tuple[str, str]]:
        """The merge keys of `table` in a collation other than this run's text collation:
        their character set and collation."""
        assert self.context is not None
        schema_sql = "%s" if table.schema else "DATABASE()"
        rows = self._rows(
            "SELECT COLUMN_NAME, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
            f"WHERE TABLE_SCHEMA = {schema_sql} AND TABLE_NAME = %s AND COLLATION_NAME IS NOT NULL",
            (*([table.schema] if table.schema else []), table.name),
        )
        keys = set(self.context.merge_keys)
        return {
            _text(name): (_text(charset), _text(collation))
            for name, charset, collation in rows
            if _text(name) in keys and _text(collation) != self._collation
        }

    def _drop_stage(self) -> None:
        for stage in [table for table, _ in self._sealed] + [self._stage()]:
            self._execute(f"DROP TABLE IF EXISTS {table_sql(stage)}")
            self._created.pop(table_sql(stage), None)
        self._sealed = []
        self._staged = {}

    def commit(self, state: State) -> None:
        assert self.context is not None
        import pymysql

        try:
            if self.context.write_mode == "overwrite":
                self._publish_overwrite(state)
            else:
                self._publish(state)
        except pymysql.err.MySQLError as exc:
            self.abort()
            raise self._error("commit", exc) from exc

    def _publish(self, state: State) -> None:
        """Append or merge: the loaded (append) or staged (merge) rows into the table and the
        state row, in one transaction."""
        assert self.context is not None
        if self._in_transaction:  # append: the rows are in the table, uncommitted
            self._save_state(state)
            self._execute("COMMIT")
            self._forget_direct()
            return
        stages = [*self._sealed, (self._stage(), self._staged)] if self._staged else []
        if stages:
            columns: dict[str, pa.Field] = {}
            for _, staged in stages:
                columns.update(staged)
            self._fit_target(pa.schema(list(columns.values())))
        if self._staged and self.context.write_mode == "merge":
            self._check_unique_keys()
        self._execute("START TRANSACTION")
        if self._staged:
            stage, target = self._stage(), self._table()
            if self.context.write_mode == "merge":
                for sealed, staged in stages:  # in the order they were loaded
                    self._merge(sealed, target, staged)
            else:
                listed = ", ".join(quote(name) for name in self._staged)
                self._execute(
                    f"INSERT INTO {table_sql(target)} ({listed}) SELECT {listed} FROM {table_sql(stage)} "
                    f"ORDER BY {quote(ORDINAL)}"
                )
        self._save_state(state)
        self._execute("COMMIT")
        if self._staged:
            self._drop_stage()

    def _save_state(self, state: State, *, pending: bool = False) -> None:
        """Upsert the recipe's state row (`pending`: as the pending state of this run's
        overwrite, leaving the committed one as it is)."""
        assert self.context is not None
        table = table_sql(self._state_table())
        document = json.dumps(state.progress())
        if pending:
            self._execute(
                f"INSERT INTO {table} (recipe, state, pending, pending_run, updated_at) "
                "VALUES (%s, NULL, %s, %s, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE "
                "pending = VALUES(pending), pending_run = VALUES(pending_run), updated_at = VALUES(updated_at)",
                (self.context.recipe_name, document, self.context.run_id),
            )
        else:
            self._execute(
                f"INSERT INTO {table} (recipe, state, pending, pending_run, updated_at) "
                "VALUES (%s, %s, NULL, NULL, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE "
                "state = VALUES(state), pending = NULL, pending_run = NULL, updated_at = VALUES(updated_at)",
                (self.context.recipe_name, document),
            )

    def _publish_overwrite(self, state: State) -> None:
        """Swap the replacement in for the table with the state: see the module's docstring.
        Nothing staged (no rows, no schema): the table is emptied with the state saved."""
        assert self.context is not None
        table = self._table()
        if self._replacement is None:
            self._execute("START TRANSACTION")
            if self._exists(table):
                self._execute(f"DELETE FROM {table_sql(table)}")
            self._save_state(state)
            self._execute("COMMIT")
            return
        replacement = self._replacement
        self._execute("START TRANSACTION")
        self._save_state(state, pending=True)
        self._execute("COMMIT")
        replaced = table.sibling(staging_name(table.name, f"{self.context.run_id}:replaced"))
        if self._exists(table):
            self._execute(
                f"RENAME TABLE {table_sql(table)} TO {table_sql(replaced)}, "
                f"{table_sql(replacement)} TO {table_sql(table)}"
            )
        else:
            self._execute(f"RENAME TABLE {table_sql(replacement)} TO {table_sql(table)}")
        self._replacement = None
        self._created.pop(table_sql(replacement), None)
        self._settle_pending()

    def abort(self) -> None:
        """Roll back, and drop what this run staged since the last commit (a lost connection
        leaves it to the next run's `begin`)."""
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self._wait_load()
            with contextlib.suppress(Exception):
                self.conn.rollback()
            if self.context is not None and self.context.role == "destination":
                stages = [table for table, _ in self._sealed]
                for table in [*stages, self._stage(), self._replacement]:
                    if table is not None:
                        with contextlib.suppress(Exception):
                            self._execute(f"DROP TABLE IF EXISTS {table_sql(table)}")
        self._created.clear()
        self._staged = {}
        self._sealed = []
        self._replacement = None
        self._unique_checked = False
        self._target_columns = None
        self._forget_direct()


def _text(value: Any) -> Any:
    """A value of an information_schema row as text (the server may send bytes)."""
    return value.decode() if isinstance(value, bytes | bytearray) else value
