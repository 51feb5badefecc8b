"""`RedshiftConnector` (experimental): write through a staging table, read with a cursor or
UNLOAD.

A destination's rows go into a temporary staging table (`dataloader.sql.staging_name`), filled
by `COPY … FORMAT AS PARQUET` from the Parquet files each batch was uploaded as (with
`staging`), else by multi-row INSERT statements. At each commit, one transaction:
- merge: one row per merge key is kept in the stage (the last read, or `dedup_sort`'s
  winner), then `DELETE FROM target USING stage WHERE keys match` and `INSERT … SELECT`:
  Redshift's documented staging-table merge (whole rows are replaced);
- append: `INSERT … SELECT` from the stage;
- overwrite: the run's first commit drops and recreates the table (Redshift DDL is
  transactional), later ones append;
- the recipe's row in `_dataloader_state` (DELETE + INSERT: there is no upsert) and COMMIT.
The staged S3 objects are deleted after the commit (and after an abort).

Redshift has no advisory locks: instead, the commit locks the state table and refuses to go on
when the recipe's state is no longer the one this run started from (another run committed).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dataloader import ArrowBatch, BaseConnector, Capabilities, ConnectorError, State
from dataloader.incremental import window_for
from dataloader.sql import TableName, database_error, quote_identifier, staging_name
from dataloader_redshift import statements as sql
from dataloader_redshift.config import RedshiftConfig
from dataloader_redshift.plugin import CAPABILITIES
from dataloader_redshift.s3 import S3Staging
from dataloader_redshift.statements import Statement
from dataloader_redshift.types import arrow_type, arrow_type_of_oid

if TYPE_CHECKING:
    from dataloader.schema.plan import SchemaPlan

ORDINAL = "_dl_ordinal"  # the stage's extra column: the order rows were read in
MAX_PARAMETERS = 32767  # bind parameters redshift_connector sends in one statement


class RedshiftConnector(BaseConnector):
    """Amazon Redshift source and destination (experimental: never run against a cluster)."""

    name = "redshift"
    config_model = RedshiftConfig
    capabilities = Capabilities.model_validate(CAPABILITIES)

    def __init__(self, config: RedshiftConfig) -> None:
        super().__init__(config)
        self.conn: Any = None
        self._errors: tuple[type[BaseException], ...] = ()
        self._s3: S3Staging | None = None
        self._schema: pa.Schema | None = None  # the table's columns, as planned
        self._stage: TableName | None = None  # created in the open transaction
        self._ordinal = 0
        self._loads = 0  # COPYs of this run: the S3 folder of the next one is `load-<n>`
        self._uploaded = 0  # objects in that folder
        self._copied: list[str] = []  # folders COPYed in the open transaction
        self._replaced = False  # overwrite: the table was replaced by a commit of this run
        self._started_from: str | None = None  # the state document this run began from
        self._state_loaded = False  # load_state() read `_started_from`
        self._stage_fields: pa.Schema | None = None  # the stage's columns, in its order

    # -- connection -------------------------------------------------------------------
    def connect(self) -> tuple[Any, tuple[type[BaseException], ...]]:
        """A DB-API connection (autocommit off) and the driver's error classes."""
        import redshift_connector

        config = self.config
        keys: dict[str, Any] = {
            "database": config.database,
            "port": config.port,
            "ssl": config.ssl,
            "timeout": config.timeout,
        }
        if config.iam:
            keys.update(
                iam=True,
                db_user=config.user,
                cluster_identifier=config.cluster_identifier,
                region=config.region,
                profile=config.profile,
                host=config.host,
            )
        else:
            assert config.password is not None
            keys.update(
                host=config.host, user=config.user, password=config.password.get_secret_value()
            )
        connection = redshift_connector.connect(
            **{key: value for key, value in keys.items() if value is not None}
        )
        return connection, (redshift_connector.Error,)

    def open(self, context: Any) -> None:
        super().open(context)
        try:
            self.conn, self._errors = self.connect()
        except Exception as exc:
            raise self._error("connect", exc) from exc
        if self.config.staging is not None:
            self._s3 = S3Staging(self.config.staging, context.recipe_name, context.run_id)

    def close(self) -> None:
        self._remove_staged()
        if self.conn is None:
            return
        connection, self.conn = self.conn, None
        with contextlib.suppress(Exception):
            connection.rollback()
        with contextlib.suppress(Exception):
            connection.close()

    def _error(
        self, action: str, exc: BaseException, statement: Statement | None = None
    ) -> ConnectorError:
        return database_error(
            "Redshift",
            action,
            exc,
            role=self.context.role if self.context else "destination",
            table=self.config.table,
            server=self.config.describe(),
            statement=None if statement is None else statement.shown(),
        )

    def _run(self, statement: Statement) -> Any:
        cursor = self.conn.cursor()
        try:
            cursor.execute(statement.sql, statement.params or None)
        except self._errors as exc:
            raise self._error("statement", exc, statement) from exc
        return cursor

    def _rows(self, statement: Statement) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._run(statement).fetchall()]

    # -- source -----------------------------------------------------------------------
    def _relation(self) -> str:
        if self.config.query is not None:
            return f"({self.config.query}) AS src"
        return self._table().sql()

    def _plan(self) -> pa.Schema:
        """The read's columns and their Arrow types, from a query that returns no rows."""
        cursor = self._run(Statement(f"SELECT * FROM {self._relation()} LIMIT 0"))
        fields = []
        for column in cursor.description:
            name, oid = column[0], column[1]
            precision = column[4] if len(column) > 4 else None
            scale = column[5] if len(column) > 5 else None
            fields.append(pa.field(_text(name), arrow_type_of_oid(int(oid), precision, scale)))
        return pa.schema(fields)

    def _read_query(self, state: State, schema: pa.Schema) -> Statement:
        """The SELECT of the read: the incremental window (its ties included as the engine
        asks) inlined as literals, ordered by the cursor column. It has no bind parameters,
        so neither driver rewrites the query's `%`: it is sent, and UNLOADed, as written."""
        assert self.context is not None
        incremental = self.context.incremental
        if incremental is None:
            return Statement(f"SELECT * FROM {self._relation()}")
        text = f"SELECT * FROM {self._relation()}"
        if incremental.strategy != "cursor":
            raise ConnectorError(
                "Redshift sources support the `cursor` incremental strategy only",
                key="source.incremental.strategy",
                value=incremental.strategy,
            )
        window = window_for(incremental, state.cursor_values, state.cursor_boundaries)
        if window.column not in schema.names:
            raise ConnectorError(
                f"cursor column {window.column!r} is not a column of "
                f"{self.config.table or 'the query'}",
                key="source.incremental.cursor_column",
                value=window.column,
                expected=f"one of {schema.names}",
            )
        column_type = schema.field(window.column).type
        column = quote_identifier(window.column)

        def literal(bound: pa.Scalar) -> str:
            try:
                return sql.read_literal(bound.as_py())
            except ValueError as exc:
                raise ConnectorError(
                    str(exc), key="source.incremental.cursor_column", value=window.column
                ) from exc

        condition = window.sql_condition(column, column_type, literal)
        if condition is not None:
            text += f" WHERE {condition}"
        text += f" ORDER BY {column} NULLS FIRST"
        return Statement(text)

    def read_batches(self, state: State) -> Iterator[ArrowBatch]:
        assert self.context is not None
        schema = self._plan()
        statement = self._read_query(state, schema)
        if self.config.unload:
            yield from self._unload(statement, schema)
            return
        cursor = self._run(statement)
        size = self.context.batch_size
        while True:
            try:
                rows = cursor.fetchmany(size)
            except self._errors as exc:
                raise self._error("read", exc, statement) from exc
            if not rows:
                break
            columns = list(zip(*rows, strict=True))
            arrays = [
                pa.array(list(values), type=field.type)
                for values, field in zip(columns, schema, strict=True)
            ]
            yield ArrowBatch(
                pa.RecordBatch.from_arrays(arrays, schema=schema), {"source": "redshift"}
            )
        self.conn.rollback()

    def _unload(self, statement: Statement, schema: pa.Schema) -> Iterator[ArrowBatch]:
        """UNLOAD the read to Parquet in the staging area, then read the files in order and
        delete them. An ordered (incremental) read unloads with PARALLEL OFF."""
        assert self._s3 is not None and self.context is not None and self.config.staging
        unload = sql.unload_parquet(
            statement.sql,
            self._s3.location("unload"),
            self.config.staging,
            parallel=self.context.incremental is None,
        )
        self._run(unload)
        self.conn.commit()
        try:
            for table in self._s3.read("unload"):
                table = table.select(schema.names).cast(schema)
                for batch in table.to_batches(max_chunksize=self.context.batch_size):
                    yield ArrowBatch(batch, {"source": "redshift"})
        finally:
            self._s3.remove("unload")

    # -- destination: state -------------------------------------------------------------
    def _table(self) -> TableName:
        if self.config.table is None:
            raise ConnectorError("a Redshift destination needs `table`", key="destination.table")
        table = TableName.parse(self.config.table)
        for part in (table.schema, table.name):
            if part is not None and part != part.lower():
                role = self.context.role if self.context else "destination"
                raise ConnectorError(
                    f"table {self.config.table!r} has upper-case letters: Redshift folds "
                    "identifiers to lower case (unless enable_case_sensitive_identifier is on), "
                    "so the table would not be found by its name",
                    key=f"{role}.table",
                    value=self.config.table,
                    expected="a lower-case schema and table name",
                )
        return table

    def _exists(self, table: TableName) -> bool:
        statement = Statement(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = %s AND "
            + ("table_schema = %s" if table.schema else "table_schema = current_schema()"),
            (table.name, table.schema) if table.schema else (table.name,),
        )
        return bool(self._rows(statement)[0][0])

    def _stored_state(self) -> str | None:
        assert self.context is not None
        if not self._exists(sql.state_table(self._table())):
            return None
        rows = self._rows(sql.select_state(self._table(), self.context.recipe_name))
        return str(rows[0][0]) if rows else None

    def load_state(self) -> State | None:
        document = self._stored_state()
        self.conn.rollback()
        # The commit checks against this read: the state the engine resumes from.
        self._started_from = document
        self._state_loaded = True
        return State.from_dict(json.loads(document)) if document else None

    def reset_state(self) -> None:
        assert self.context is not None
        if self._exists(sql.state_table(self._table())):
            self._run(sql.delete_state(self._table(), self.context.recipe_name))
        self.conn.commit()

    # -- destination: writes -------------------------------------------------------------
    def begin(self, state: State) -> None:
        table = self._table()
        if table.schema:
            self._run(Statement(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(table.schema)}"))
        if not self._state_loaded:
            self._started_from = self._stored_state()
        self.conn.commit()

    def describe(self) -> pa.Schema | None:
        assert self.context is not None
        if self.context.write_mode == "overwrite" and not self._replaced:
            self.conn.rollback()
            return None
        rows = self._rows(sql.columns_of(self._table()))
        self.conn.rollback()
        if not rows:
            return None
        return pa.schema(
            pa.field(_text(name), arrow_type(_text(kind), precision, scale), nullable=null == "YES")
            for name, kind, precision, scale, null in rows
        )

    def apply_schema(self, plan: SchemaPlan) -> None:
        assert self.context is not None
        widened = plan.widened()
        if widened:
            names = ", ".join(field.name for field in widened)
            raise ConnectorError(
                f"the rows need wider types for {names} in {self._table()}: the experimental "
                "Redshift connector cannot change a column's type (Redshift only widens "
                "VARCHAR, outside a transaction)",
                key="destination.table",
                value=names,
            )
        staged_before = self._schema
        self._schema = plan.target
        overwriting = self.context.write_mode == "overwrite" and not self._replaced
        if not overwriting:
            if plan.create:
                self._run(sql.create_table(self._table(), plan.target))
            else:
                for field in plan.added():
                    self._run(sql.add_column(self._table(), field))
        if self._stage is not None and staged_before is not None:
            # Rows staged so far keep their columns: load the uploaded files first, then
            # give the stage the new columns.
            self._load_uploads()
            for field in plan.target:
                if field.name not in staged_before.names:
                    self._run(sql.add_column(self._stage, field))
                    assert self._stage_fields is not None
                    self._stage_fields = self._stage_fields.append(field)

    def _stage_schema(self) -> pa.Schema:
        assert self._schema is not None
        return self._schema.append(pa.field(ORDINAL, pa.int64()))

    def _ensure_stage(self) -> TableName:
        assert self.context is not None
        if self._stage is None:
            stage = TableName(None, staging_name(self._table().name, self.context.run_id))
            self._run(sql.drop_table(stage))
            self._stage_fields = self._stage_schema()
            self._run(sql.create_table(stage, self._stage_fields, temporary=True))
            self._stage = stage
        return self._stage

    def write_batch(self, batch: Any, state: State) -> None:
        assert self.context is not None
        record = batch.to_arrow() if hasattr(batch, "to_arrow") else batch
        if self._schema is None:
            self._schema = record.schema
        if self.context.write_mode == "merge":
            missing = [key for key in self.context.merge_keys if key not in record.schema.names]
            if missing:
                raise ConnectorError(
                    f"merge keys {missing} are not columns of the incoming rows",
                    key="destination.merge_keys",
                    value=missing,
                    expected=f"columns of {record.schema.names}",
                )
        stage = self._ensure_stage()
        table = self._staged(pa.Table.from_batches([record]))
        self._ordinal += table.num_rows
        if self._s3 is not None:
            self._s3.upload(self._part(), f"{self._uploaded:06d}", table)
            self._uploaded += 1
            return
        self._insert(stage, table)

    def _staged(self, table: pa.Table) -> pa.Table:
        """The rows as the stage holds them: every column in the stage's order (NULL where the
        batch has none), and their ordinals. COPY of Parquet matches columns by position, and
        a column added to the stage later comes after the ordinal."""
        schema = self._stage_fields if self._stage_fields is not None else self._stage_schema()
        arrays = []
        for field in schema:
            if field.name == ORDINAL:
                arrays.append(
                    pa.array(range(self._ordinal, self._ordinal + table.num_rows), pa.int64())
                )
            elif field.name in table.column_names:
                column = table.column(field.name)
                _refuse_nanoseconds(field.name, column)
                arrays.append(column.cast(field.type))
            else:
                arrays.append(pa.nulls(table.num_rows, field.type))
        return pa.Table.from_arrays(arrays, schema=schema)

    def _insert(self, stage: TableName, table: pa.Table) -> None:
        """Multi-row INSERTs of `config.insert_rows` rows each (fewer when the row has many
        columns: a statement takes at most `MAX_PARAMETERS`): the path without S3."""
        step = max(1, min(self.config.insert_rows, MAX_PARAMETERS // table.num_columns))
        for start in range(0, table.num_rows, step):
            chunk = table.slice(start, step)
            rows = zip(*(column.to_pylist() for column in chunk.columns), strict=True)
            statement = sql.insert_values(stage, chunk.schema, chunk.num_rows)
            params = tuple(value for row in rows for value in row)
            cursor = self.conn.cursor()
            try:
                cursor.execute(statement.sql, params)
            except self._errors as exc:
                raise self._error("insert", exc, statement) from exc

    def _part(self) -> str:
        return f"load-{self._loads:06d}"

    def _load_uploads(self) -> None:
        """COPY the Parquet files uploaded since the last COPY into the stage. They are
        deleted after the commit (or the abort)."""
        if self._s3 is None or not self._uploaded or self.config.staging is None:
            return
        stage = self._ensure_stage()
        part = self._part()
        self._copied.append(part)
        self._loads += 1
        self._uploaded = 0
        self._run(sql.copy_parquet(stage, self._s3.location(part), self.config.staging))

    def _remove_staged(self) -> None:
        """Delete the staged objects of the transaction (COPYed or not): after its commit,
        abort, or the connector's close. A failure to delete fails nothing: the run's folder
        is then left for an S3 lifecycle rule."""
        if self._s3 is None:
            return
        parts = self._copied + ([self._part()] if self._uploaded else [])
        self._copied = []
        if self._uploaded:
            self._loads += 1
            self._uploaded = 0
        for part in parts:
            with contextlib.suppress(Exception):
                self._s3.remove(part)

    def commit(self, state: State) -> None:
        assert self.context is not None
        target = self._table()
        try:
            self._check_state_unchanged()
            self._load_uploads()
            if self._stage is not None:
                self._apply_stage(target, self._stage)
            elif self.context.write_mode == "overwrite" and not self._replaced:
                self._replace(target, None)
            for statement in sql.save_state(
                target,
                self.context.recipe_name,
                json.dumps(state.progress()),
                datetime.now(UTC).replace(tzinfo=None),
            ):
                self._run(statement)
            self.conn.commit()
        except self._errors as exc:
            self.abort()
            raise self._error("commit", exc) from exc
        except BaseException:
            self.abort()
            raise
        self._started_from = json.dumps(state.progress())
        self._stage = None
        self._remove_staged()
        if self.context.write_mode == "overwrite":
            self._replaced = True

    def _check_state_unchanged(self) -> None:
        """Lock the state table and refuse to commit when the recipe's state is not the one
        this run began from or last committed: another run of the recipe committed meanwhile."""
        assert self.context is not None
        state_table = sql.state_table(self._table())
        self._run(sql.create_state_table(self._table()))
        self._run(Statement(f"LOCK {state_table.sql()}"))
        stored = self._stored_state()
        if stored is not None and self._started_from is not None:
            unchanged = json.loads(stored) == json.loads(self._started_from)
        else:
            unchanged = stored == self._started_from
        if not unchanged:
            raise ConnectorError(
                f"another run of recipe {self.context.recipe_name!r} committed to "
                f"{self._table()} at {self.config.describe()} since this run began: two runs "
                "of one recipe must not load at once — run it again once the other ends",
                key="destination",
            )

    def _apply_stage(self, target: TableName, stage: TableName) -> None:
        assert self.context is not None and self._schema is not None
        columns = list(self._schema.names)
        keys = list(self.context.merge_keys)
        mode = self.context.write_mode
        order = self.context.merge_order(columns) if keys else None
        text = [key for key in keys if _is_text(self._schema.field(key).type)]
        if keys:
            ranking = ([order.sort_key()] if order else []) + [f"{quote_identifier(ORDINAL)} DESC"]
            kept = TableName(None, staging_name(target.name, f"{self.context.run_id}/kept"))
            for statement in sql.dedup_stage(
                stage, [*columns, ORDINAL], keys, ", ".join(ranking), kept=kept, text_keys=text
            ):
                self._run(statement)
        if mode == "overwrite" and not self._replaced:
            self._replace(target, stage)
        else:
            if mode == "merge":
                self._run(sql.delete_matching(target, stage, columns, keys, order, text))
            # With dedup_sort, a stored row that wins against the staged one stays.
            unless = keys if mode == "merge" and order is not None else ()
            self._run(sql.append_from_stage(target, stage, columns, unless, text))
        self._run(sql.drop_table(stage))

    def _replace(self, target: TableName, stage: TableName | None) -> None:
        """Overwrite's first commit: the table anew, with the stage's rows (none: empty)."""
        if self._schema is None:
            if self._exists(target):
                self._run(sql.delete_all(target))
            return
        self._run(sql.drop_table(target))
        self._run(sql.create_table(target, self._schema))
        if stage is not None:
            self._run(sql.append_from_stage(target, stage, list(self._schema.names)))

    def abort(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.rollback()
        self._stage = None  # a temporary table created in the transaction: gone
        self._remove_staged()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _refuse_nanoseconds(name: str, column: Any) -> None:
    """Redshift keeps microseconds: refuse a nanosecond timestamp with sub-µs digits."""
    kind = column.type
    if not pa.types.is_timestamp(kind) or kind.unit != "ns":
        return
    try:
        column.cast(pa.timestamp("us", kind.tz))
    except pa.ArrowInvalid:
        raise ConnectorError(
            f"column {name!r} has timestamps with nanoseconds: Redshift keeps microseconds "
            "and would drop the digits",
            key="destination",
            value=name,
            expected="timestamps in whole microseconds (cast the column to timestamp[us])",
        ) from None
