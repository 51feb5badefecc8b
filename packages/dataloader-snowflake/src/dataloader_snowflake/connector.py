"""`SnowflakeConnector`: read a table or query into Arrow; write by staging Parquet.

Each batch is written as a Parquet file, staged (`PUT` into a temporary internal stage of the
session, or uploaded to S3), and `COPY INTO` a staging table of this run (MATCH_BY_COLUMN_NAME).
At each commit, DDL first (Snowflake commits every DDL statement on its own): the target and
`_DATALOADER_STATE` are created or given the staged columns. Then one transaction,
`BEGIN` … `COMMIT`, moves the rows and saves the recipe's state:
- append: `INSERT INTO target SELECT … FROM stage`;
- overwrite: `DELETE FROM target` + `INSERT` (DML, so the replacement is atomic with the state);
- merge: the stage reduced to one row per key (`QUALIFY ROW_NUMBER()`), then `DELETE` of the
  target rows of those keys + `INSERT`.
The staging table and the staged files are removed after the commit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dataloader import ArrowBatch, BaseConnector, Capabilities, ConnectorError, State
from dataloader.incremental import window_for
from dataloader.schema.plan import KEY_TAG, SchemaPlan
from dataloader.sql import (
    STAGING_PREFIX,
    TableName,
    database_error,
    quote_identifier,
    stage_label,
    stage_owner,
    staging_name,
)
from dataloader_snowflake.config import S3Stage, SnowflakeConfig
from dataloader_snowflake.types import (
    arrow_type_of,
    from_snowflake,
    literal,
    number_type,
    snowflake_type,
    to_stageable,
)

log = logging.getLogger(__name__)
STATE_TABLE = "_DATALOADER_STATE"  # upper case: Snowflake's unquoted name resolves to it
ORDINAL = "__dl_ordinal"
VARCHAR_MAX = 16_777_216
# Driver errors of the connection itself (no answer, 5xx): the engine reconnects and resumes.
_TRANSIENT_ERRNOS = frozenset({250001, 250002, 250003, 250005})
_TRANSIENT_NAMES = frozenset(
    {
        "InternalServerError",
        "ServiceUnavailableError",
        "GatewayTimeoutError",
        "BadGatewayError",
        "RequestTimeoutError",
        "TooManyRequests",
        "OtherHTTPRetryableError",
        "RequestExceedMaxRetryError",
    }
)


class StateConflict(ConnectorError):
    """Another run of the recipe committed after this one loaded its state."""


class SnowflakeConnector(BaseConnector):
    """Snowflake source and destination."""

    name = "snowflake"
    config_model = SnowflakeConfig
    capabilities = Capabilities(
        read=True,
        write=True,
        write_modes=("append", "overwrite", "merge"),
        incremental=True,
        transactional_state=True,
        max_identifier_length=255,
        experimental=True,
    )

    def __init__(self, config: SnowflakeConfig) -> None:
        super().__init__(config)
        self.conn: Any = None
        self.config: SnowflakeConfig = config
        self._staging: TableName | None = None
        self._staged_columns: dict[str, str] = {}  # column -> Snowflake type, in order
        self._stage_name: str | None = None  # the internal stage, once created
        self._files: list[str] = []  # staged since the last commit (keys or stage paths)
        self._sequence = 0
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        # The version of the state row `load_state` returned (0: no row): the commit's
        # compare-and-set. None until `load_state` ran.
        self._version: int | None = None
        self._target_types: dict[str, str] = {}  # the target's columns as `describe` saw them
        self._alters: dict[str, str] = {}  # column -> wider type, applied at the next commit
        # The statement running, as it may be shown (credentials masked): named by `_error`
        # when it fails, forgotten when it succeeds.
        self._running: str | None = None

    # -- lifecycle -------------------------------------------------------------------
    def open(self, context: Any) -> None:
        super().open(context)
        import snowflake.connector

        try:
            arguments = self.config.connect_arguments()
        except ValueError as exc:
            raise ConnectorError(str(exc), key=f"{context.role}.private_key") from None
        try:
            self.conn = snowflake.connector.connect(**arguments)
        except snowflake.connector.Error as exc:
            raise self._error("connect", exc) from None

    def close(self) -> None:
        connection, self.conn = self.conn, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.rollback()
            with contextlib.suppress(Exception):
                connection.close()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def _error(self, action: str, exc: Exception, table: str | None = None) -> ConnectorError:
        """`exc` as a `ConnectorError`, naming the statement that failed (masked), if any."""
        statement, self._running = self._running, None
        return database_error(
            "Snowflake",
            action,
            exc,
            role=self.context.role if self.context else "source",
            table=self.config.table,
            server=self.config.describe(),
            where=table,
            message=getattr(exc, "msg", None) or str(exc),
            statement=statement,
        )

    def is_transient(self, error: BaseException) -> bool:
        """A lost connection, a request without answer or a 5xx from Snowflake (anywhere in
        the error's chain): worth a reconnect. SQL errors are not."""
        import snowflake.connector

        seen: BaseException | None = error
        while seen is not None:
            if isinstance(seen, ConnectionError | TimeoutError):
                return True
            if isinstance(seen, snowflake.connector.Error) and (
                type(seen).__name__ in _TRANSIENT_NAMES or seen.errno in _TRANSIENT_ERRNOS
            ):
                return True
            seen = seen.__cause__ or seen.__context__
        return False

    def _execute(self, sql: str, params: tuple[Any, ...] | None = None) -> Any:
        """Run `sql`; `params` are bound by the server (`?` placeholders), never spliced into
        the SQL text."""
        return self._run(sql, sql, params)

    def _run(self, sql: str, shown: str, params: tuple[Any, ...] | None = None) -> Any:
        """Run `sql`, logged at DEBUG and named by errors as `shown`."""
        log.debug("Snowflake statement: %s", shown)
        self._running = shown
        cursor = self.conn.cursor()
        cursor.execute(sql, params)
        self._running = None
        return cursor

    # -- names ------------------------------------------------------------------------
    def _table(self) -> TableName:
        if self.config.table is None:
            raise ConnectorError("a Snowflake destination needs `table`", key="destination.table")
        return TableName.parse(self.config.table)

    def _state_table(self) -> TableName:
        return self._table().sibling(STATE_TABLE)

    def _exists(self, table: TableName) -> bool:
        return bool(self._columns(table))

    def _columns(self, table: TableName) -> list[str]:
        schema = table.schema or self.config.schema_
        rows = self._execute(
            "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS "
            f"WHERE TABLE_SCHEMA ILIKE {literal(schema)} AND TABLE_NAME = {literal(table.name)} "
            "ORDER BY ORDINAL_POSITION"
        ).fetchall()
        return [row[0] for row in rows]

    # -- source ----------------------------------------------------------------------
    def _relation(self) -> str:
        if self.config.query:
            return f"({self.config.query}) AS src"
        return TableName.parse(self.config.table or "").sql()

    def _arrow_type_of(self, column: str) -> pa.DataType:
        """The Arrow type the read gives `column`, from a one-row probe of the relation."""
        cursor = self._execute(f"SELECT {quote_identifier(column)} FROM {self._relation()} LIMIT 1")
        if not cursor.rowcount:  # no rows: any bound reads nothing anyway
            return pa.string()
        # fetch_arrow_all concatenates with the connector's pandas-gated pyarrow: not here.
        table = next(iter(cursor.fetch_arrow_batches(force_microsecond_precision=True)))
        return from_snowflake(table).schema.field(0).type

    def _source_query(self, state: State) -> str:
        assert self.context is not None
        conditions = [f"({self.config.where})"] if self.config.where else []
        order_by = ""
        incremental = self.context.incremental
        if incremental is not None:
            if incremental.strategy != "cursor":
                raise ConnectorError(
                    "Snowflake sources support the `cursor` incremental strategy only",
                    key="source.incremental.strategy",
                    value=incremental.strategy,
                )
            window = window_for(incremental, state.cursor_values, state.cursor_boundaries)
            column = quote_identifier(window.column)
            arrow_type = self._arrow_type_of(window.column)
            # Snowflake compares text by its UTF-8 bytes unless a collation is set: code-point
            # order, the order the engine checks.
            condition = window.sql_condition(
                column, arrow_type, lambda bound: literal(bound.as_py())
            )
            if condition is not None:
                conditions.append(condition)
            order_by = f" ORDER BY {column} NULLS LAST"
        sql = f"SELECT * FROM {self._relation()}"
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        return sql + order_by

    def read_batches(self, state: State) -> Iterator[ArrowBatch]:
        assert self.context is not None
        import snowflake.connector

        try:
            cursor = self._execute(self._source_query(state))
            if not cursor.rowcount:
                # The connector builds an empty result's Arrow schema with pandas, which is
                # not a dependency: an empty read yields no batch instead.
                return
            for table in cursor.fetch_arrow_batches(force_microsecond_precision=True):
                for batch in from_snowflake(table).to_batches(self.context.batch_size):
                    if batch.num_rows:
                        yield ArrowBatch(batch, {"source": "snowflake"})
        except snowflake.connector.Error as exc:
            raise self._error("read", exc) from None

    def estimate_rows(self) -> int | None:
        if self.config.table is None or self.conn is None:
            return None
        table = TableName.parse(self.config.table)
        try:
            rows = self._execute(
                "SELECT ROW_COUNT FROM INFORMATION_SCHEMA.TABLES WHERE "
                f"TABLE_SCHEMA ILIKE {literal(table.schema or self.config.schema_)} "
                f"AND TABLE_NAME = {literal(table.name)}"
            ).fetchall()
        except Exception:
            return None
        return int(rows[0][0]) if rows and rows[0][0] else None

    # -- destination: state ------------------------------------------------------------
    def load_state(self) -> State | None:
        """The recipe's committed state; its row's version is what `commit` compares with."""
        assert self.context is not None
        columns = self._columns(self._state_table())
        self._version = 0
        if not columns:
            return None
        version = "COALESCE(VERSION, 0)" if "VERSION" in columns else "0"
        rows = self._execute(
            f"SELECT STATE, {version} FROM {self._state_table().sql()} WHERE RECIPE = ?",
            (self.context.recipe_name,),
        ).fetchall()
        if not rows:
            return None
        self._version = int(rows[0][1])
        return State.from_dict(json.loads(rows[0][0]))

    def reset_state(self) -> None:
        assert self.context is not None
        self._version = 0
        if self._exists(self._state_table()):
            self._execute(
                f"DELETE FROM {self._state_table().sql()} WHERE RECIPE = ?",
                (self.context.recipe_name,),
            )

    def _ensure_state_table(self) -> None:
        self._execute(
            f"CREATE TABLE IF NOT EXISTS {self._state_table().sql()} "
            "(RECIPE VARCHAR NOT NULL PRIMARY KEY, STATE VARCHAR NOT NULL, "
            "UPDATED_AT TIMESTAMP_TZ NOT NULL, VERSION NUMBER(38,0))"
        )
        if "VERSION" not in self._columns(self._state_table()):  # a table of an older release
            self._execute(
                f"ALTER TABLE {self._state_table().sql()} ADD COLUMN VERSION NUMBER(38,0)"
            )

    def _save_state(self, state: State) -> None:
        """In the open transaction: the recipe's row set to `state` with the next version, if
        it still has the version this run started from; a `StateConflict` otherwise."""
        assert self.context is not None
        if self._version is None:
            raise ConnectorError(
                "the Snowflake destination commits only after `load_state`",
                key="destination.table",
            )
        table = self._state_table().sql()
        recipe = self.context.recipe_name
        text = json.dumps(state.progress())
        version = self._version + 1
        if self._version == 0:
            changed = self._execute(
                f"INSERT INTO {table} (RECIPE, STATE, UPDATED_AT, VERSION) "
                "SELECT ?, ?, CURRENT_TIMESTAMP(), ? "
                f"WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE RECIPE = ?)",
                (recipe, text, version, recipe),
            ).rowcount
        else:
            changed = self._execute(
                f"UPDATE {table} SET STATE = ?, UPDATED_AT = CURRENT_TIMESTAMP(), VERSION = ? "
                "WHERE RECIPE = ? AND COALESCE(VERSION, 0) = ?",
                (text, version, recipe, self._version),
            ).rowcount
        if changed != 1:
            raise StateConflict(
                f"another run of recipe {recipe!r} committed to {self._table().name} after this "
                f"run started (state version {self._version} is gone): this run's rows are "
                "rolled back; run the recipe again",
                key="destination.table",
            )
        self._version = version

    # -- destination: writes -----------------------------------------------------------
    def begin(self, state: State) -> None:
        """Drop staging tables a killed run of this recipe left behind (their owner is in
        their comment), and create the table's schema when it is missing."""
        assert self.context is not None
        import snowflake.connector

        table = self._table()
        try:
            if table.schema:
                self._execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(table.schema)}")
            rows = self._execute(
                "SELECT TABLE_NAME, COMMENT FROM INFORMATION_SCHEMA.TABLES WHERE "
                f"TABLE_SCHEMA ILIKE {literal(table.schema or self.config.schema_)} "
                f"AND STARTSWITH(TABLE_NAME, {literal(STAGING_PREFIX)})"
            ).fetchall()
            mine = (self.context.recipe_name, table.name)
            for name, comment in rows:
                if stage_owner(comment) == mine:
                    self._execute(f"DROP TABLE IF EXISTS {table.sibling(name).sql()}")
        except snowflake.connector.Error as exc:
            raise self._error("begin", exc) from None

    def write_batch(self, batch: Any, state: State) -> None:
        assert self.context is not None
        data: pa.RecordBatch = batch.to_arrow()
        if data.num_rows == 0:
            return
        import snowflake.connector

        self._check_names(data.schema)
        try:
            self._fit_staging(data.schema)
            first = self._sequence << 32
            self._sequence += 1
            ordinals = pa.array(range(first, first + data.num_rows), pa.int64())
            staged = to_stageable(data).append_column(ORDINAL, ordinals)
            file = self._write_parquet(staged)
            self._copy(file)
        except snowflake.connector.Error as exc:
            error = self._error(
                f"{self.context.write_mode} write", exc
            )  # before `abort` runs statements of its own
            self.abort()
            raise error from None

    def _check_names(self, schema: pa.Schema) -> None:
        """MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE pairs Parquet and table columns: two
        columns whose names differ only in case cannot both be loaded."""
        seen: dict[str, str] = {}
        for name in schema.names:
            other = seen.setdefault(name.upper(), name)
            if other != name or name == ORDINAL:
                raise ConnectorError(
                    f"columns {other!r} and {name!r} differ only in case (or use the reserved "
                    f"name {ORDINAL!r}): Snowflake's COPY INTO matches Parquet columns to table "
                    "columns without case",
                    key="destination.table",
                    value=name,
                    expected="column names unique without case",
                )

    def _fit_staging(self, schema: pa.Schema) -> None:
        """Create this run's staging table for `schema`, or add the columns it lacks (DDL,
        committed on its own: the stage is private to this run until the data commit)."""
        assert self.context is not None
        wanted = {field.name: snowflake_type(field) for field in schema}
        if self._staging is None:
            table = self._table()
            self._staging = table.sibling(staging_name(table.name, self.context.run_id))
            columns = [
                f"{quote_identifier(n)} {'VARCHAR' if t == 'VARIANT' else t}"
                for n, t in wanted.items()
            ]
            columns.append(f"{quote_identifier(ORDINAL)} NUMBER(38,0)")
            label = stage_label(self.context.recipe_name, table.name, self.context.run_id)
            self._execute(
                f"CREATE TRANSIENT TABLE {self._staging.sql()} ({', '.join(columns)}) "
                f"COMMENT = {literal(label)}"
            )
            self._staged_columns = dict(wanted)
            return
        for name, kind in wanted.items():
            if name not in self._staged_columns:
                stored = "VARCHAR" if kind == "VARIANT" else kind
                self._execute(
                    f"ALTER TABLE {self._staging.sql()} ADD COLUMN {quote_identifier(name)} {stored}"
                )
                self._staged_columns[name] = kind

    def _write_parquet(self, data: pa.RecordBatch) -> Path:
        if self._workdir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix="dl_snowflake_")
        path = Path(self._workdir.name) / f"part-{self._sequence:06d}.parquet"
        pq.write_table(pa.Table.from_batches([data]), path)
        return path

    def _run_prefix(self) -> str:
        assert self.context is not None
        return f"{self.context.run_id}"

    def _copy(self, file: Path) -> None:
        """Stage `file` and COPY it into the staging table; the local file is then removed."""
        assert self._staging is not None
        stage = self.config.stage
        if isinstance(stage, S3Stage):
            bucket, prefix = stage.bucket_and_prefix()
            key = "/".join(part for part in (prefix, self._run_prefix(), file.name) if part)
            self._s3().upload_file(str(file), bucket, key)
            self._files.append(key)
        else:
            if self._stage_name is None:
                self._stage_name = quote_identifier(staging_name("files", self._run_prefix()))
                self._execute(f"CREATE OR REPLACE TEMPORARY STAGE {self._stage_name}")
            location = f"@{self._stage_name}/{self._run_prefix()}"
            self._execute(f"PUT 'file://{file.as_posix()}' {location} AUTO_COMPRESS=FALSE")
            self._files.append(f"{self._run_prefix()}/{file.name}")
        file.unlink()
        self._execute_copy(self._copy_sql(self._files[-1]))

    def _copy_sql(self, staged: str) -> str:
        """The COPY INTO statement loading one staged file into the staging table.

        For S3 with keys, the credentials are in the statement (Snowflake's syntax); the
        connector logs the statement, and names it in errors, with them replaced by `***`."""
        assert self._staging is not None
        stage = self.config.stage
        options = (
            "FILE_FORMAT = (TYPE = PARQUET USE_LOGICAL_TYPE = TRUE BINARY_AS_TEXT = FALSE) "
            "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE"
        )
        if isinstance(stage, S3Stage):
            bucket, _ = stage.bucket_and_prefix()
            folder, _, name = staged.rpartition("/")
            source = literal(f"s3://{bucket}/{folder}/")
            if stage.storage_integration:
                access = f" STORAGE_INTEGRATION = {stage.storage_integration}"
            elif stage.aws_access_key_id and stage.aws_secret_access_key:
                token = (
                    f" AWS_TOKEN = {literal(stage.aws_session_token.get_secret_value())}"
                    if stage.aws_session_token
                    else ""
                )
                access = (
                    f" CREDENTIALS = (AWS_KEY_ID = {literal(stage.aws_access_key_id)} "
                    f"AWS_SECRET_KEY = {literal(stage.aws_secret_access_key.get_secret_value())}"
                    f"{token})"
                )
            else:
                access = ""  # a bucket Snowflake can read without credentials
            return (
                f"COPY INTO {self._staging.sql()} FROM {source}{access} "
                f"FILES = ({literal(name)}) {options}"
            )
        return f"COPY INTO {self._staging.sql()} FROM @{self._stage_name}/{staged} {options}"

    def _execute_copy(self, sql: str) -> Any:
        """Run a COPY whose text may hold credentials: logged and named in errors masked."""
        return self._run(sql, self._masked(sql))

    def _masked(self, sql: str) -> str:
        """`sql` with this config's secrets replaced by `***`."""
        stage = self.config.stage
        if isinstance(stage, S3Stage):
            for secret in (stage.aws_secret_access_key, stage.aws_session_token):
                if secret is not None:
                    sql = sql.replace(secret.get_secret_value(), "***")
        return sql

    def _s3(self) -> Any:
        import boto3

        stage = self.config.stage
        assert isinstance(stage, S3Stage)
        return boto3.client(
            "s3",
            endpoint_url=stage.endpoint_url,
            region_name=stage.region or "us-east-1",
            aws_access_key_id=stage.aws_access_key_id,
            aws_secret_access_key=(
                stage.aws_secret_access_key.get_secret_value()
                if stage.aws_secret_access_key
                else None
            ),
            aws_session_token=(
                stage.aws_session_token.get_secret_value() if stage.aws_session_token else None
            ),
        )

    def _fit_target(self) -> None:
        """Create the target with the staged columns, or add those it lacks (DDL)."""
        target = self._table()
        existing = self._columns(target)
        columns = self._staged_columns
        if not existing:
            parts = [f"{quote_identifier(n)} {t}" for n, t in columns.items()]
            self._execute(f"CREATE TABLE IF NOT EXISTS {target.sql()} ({', '.join(parts)})")
            return
        for name, kind in columns.items():
            if name not in existing:
                self._execute(
                    f"ALTER TABLE {target.sql()} ADD COLUMN {quote_identifier(name)} {kind}"
                )
        alters, self._alters = self._alters, {}
        alters.update(self._longer_texts(target))
        for name, kind in alters.items():
            self._execute(
                f"ALTER TABLE {target.sql()} ALTER COLUMN {quote_identifier(name)} "
                f"SET DATA TYPE {kind}"
            )

    def _longer_texts(self, target: TableName) -> dict[str, str]:
        """VARCHAR(n) columns of the target the staged text is longer than: their new type."""
        limits = {}
        for name, kind in self._describe_types(target).items():
            length = number_type(kind)
            if (
                kind.startswith("VARCHAR")
                and length is not None
                and length[0] < VARCHAR_MAX
                and self._staged_columns.get(name) == "VARCHAR"
            ):
                limits[name] = length[0]
        if not limits or self._staging is None:
            return {}
        longest = ", ".join(f"MAX(LENGTH({quote_identifier(n)}))" for n in limits)
        row = self._execute(f"SELECT {longest} FROM {self._staging.sql()}").fetchone()
        return {
            name: f"VARCHAR({int(found)})"
            for (name, limit), found in zip(limits.items(), row, strict=True)
            if found is not None and int(found) > limit
        }

    def _describe_types(self, table: TableName) -> dict[str, str]:
        """`DESCRIBE TABLE`: each column's Snowflake type, e.g. `NUMBER(10,2)`."""
        return {row[0]: row[1] for row in self._describe_rows(table)}

    def _describe_rows(self, table: TableName) -> list[tuple[Any, ...]]:
        return list(self._execute(f"DESCRIBE TABLE {table.sql()}").fetchall())

    def _selected(self, alias: str = "") -> str:
        """The staged columns as the target takes them: VARIANT parsed from its JSON text."""
        prefix = f"{alias}." if alias else ""
        parts = []
        for name, kind in self._staged_columns.items():
            quoted = f"{prefix}{quote_identifier(name)}"
            variant = kind == "VARIANT" or self._target_types.get(name) in (
                "VARIANT",
                "OBJECT",
                "ARRAY",
            )
            parts.append(f"PARSE_JSON({quoted})" if variant else quoted)
        return ", ".join(parts)

    def move_sql(self) -> list[str]:
        """The DML of a commit that moves the staged rows into the target (in the transaction)."""
        assert self.context is not None and self._staging is not None
        target, stage = self._table().sql(), self._staging.sql()
        names = ", ".join(quote_identifier(n) for n in self._staged_columns)
        mode = self.context.write_mode
        keys = self.context.merge_keys
        if not keys:
            statements = [f"DELETE FROM {target}"] if mode == "overwrite" else []
            statements.append(
                f"INSERT INTO {target} ({names}) SELECT {self._selected()} FROM {stage}"
            )
            return statements
        missing = [key for key in keys if key not in self._staged_columns]
        if missing:
            raise ConnectorError(
                f"merge key {missing[0]!r} is not a column of the incoming rows",
                key="destination.merge_keys",
                value=missing[0],
                expected=f"one of {list(self._staged_columns)}",
            )
        order = []
        winner = self.context.merge_order(list(self._staged_columns))
        if winner is not None:
            order.append(winner.sort_key())
        incremental = self.context.incremental
        if incremental is not None and incremental.cursor_column in self._staged_columns:
            order.append(f"{quote_identifier(incremental.cursor_column)} DESC NULLS LAST")
        order.append(f"{quote_identifier(ORDINAL)} DESC")
        partition = ", ".join(quote_identifier(k) for k in keys)
        latest = (
            f"SELECT * FROM {stage} QUALIFY ROW_NUMBER() OVER "
            f"(PARTITION BY {partition} ORDER BY {', '.join(order)}) = 1"
        )
        match = " AND ".join(f"t.{quote_identifier(k)} = s.{quote_identifier(k)}" for k in keys)
        statements = [f"DELETE FROM {target}"] if mode == "overwrite" else []
        if mode != "overwrite":
            wins = f" AND {winner.replaces('s', 't')}" if winner is not None else ""
            # Rows a stored row wins over (`dedup_sort`) are neither deleted nor inserted.
            statements.append(
                f"DELETE FROM {stage} AS s WHERE EXISTS (SELECT 1 FROM {target} AS t "
                f"WHERE {match} AND NOT ({winner.replaces('s', 't')}))"
                if winner is not None
                else ""
            )
            statements.append(
                f"DELETE FROM {target} AS t WHERE EXISTS (SELECT 1 FROM ({latest}) AS s "
                f"WHERE {match}{wins})"
            )
        statements.append(
            f"INSERT INTO {target} ({names}) SELECT {self._selected('s')} FROM ({latest}) AS s"
        )
        return [statement for statement in statements if statement]

    def commit(self, state: State) -> None:
        assert self.context is not None
        import snowflake.connector

        try:
            # DDL: each statement commits on its own in Snowflake, so before the transaction.
            self._ensure_state_table()
            if self._staging is not None:
                self._fit_target()
                moves = self.move_sql()
            elif self.context.write_mode == "overwrite" and self._exists(self._table()):
                moves = [f"DELETE FROM {self._table().sql()}"]  # nothing staged: emptied
            else:
                moves = []
            self._execute("BEGIN")
            for statement in moves:
                self._execute(statement)
            self._save_state(state)
            self._execute("COMMIT")
        except snowflake.connector.Error as exc:
            error = self._error("commit", exc)  # before `abort` runs statements of its own
            self.abort()
            raise error from None
        except StateConflict:
            self.abort()
            raise
        self._cleanup()

    def _cleanup(self) -> None:
        """After a commit or an abort: drop the staging table, remove the staged files."""
        staging, self._staging = self._staging, None
        files, self._files = self._files, []
        self._staged_columns = {}
        if self.conn is None:
            return
        with contextlib.suppress(Exception):
            if staging is not None:
                self._execute(f"DROP TABLE IF EXISTS {staging.sql()}")
        if isinstance(self.config.stage, S3Stage) and files:
            bucket, _ = self.config.stage.bucket_and_prefix()
            with contextlib.suppress(Exception):
                self._s3().delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": key} for key in files]}
                )
        elif self._stage_name is not None and files:
            # The temporary stage goes with the session anyway: a REMOVE that fails is only
            # reported (fakesnow cannot run REMOVE).
            try:
                self._execute(self.remove_sql())
            except Exception as exc:
                log.warning(
                    "staged files under %s could not be removed (they go with the session's "
                    "temporary stage): %s",
                    self._stage_name,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                )

    def remove_sql(self) -> str:
        """The REMOVE of this run's files in the internal stage."""
        return f"REMOVE @{self._stage_name}/{self._run_prefix()}/"

    def abort(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.cursor().execute("ROLLBACK")
        self._cleanup()

    def describe(self) -> pa.Schema | None:
        """The target table as it is (also under overwrite: its rows are replaced in place,
        its columns kept): each column's type as the Snowflake source reads it, its
        nullability, and its primary or unique key; None when there is no table yet."""
        assert self.context is not None
        import snowflake.connector

        table = self._table()
        self._target_types = {}
        try:
            if not self._exists(table):
                return None
            rows = self._describe_rows(table)
        except snowflake.connector.Error as exc:
            raise self._error("describe", exc) from None
        fields = []
        for row in rows:
            name, kind, nullable, primary, unique = row[0], row[1], row[3], row[5], row[6]
            arrow_type, metadata = arrow_type_of(name, kind)
            if primary == "Y" or unique == "Y":
                metadata[KEY_TAG] = b"primary" if primary == "Y" else b"unique"
            fields.append(pa.field(name, arrow_type, nullable != "N", metadata or None))
            self._target_types[name] = kind
        return pa.schema(fields)

    def apply_schema(self, plan: SchemaPlan) -> None:
        """Check the widenings of `plan` against what Snowflake can change in place (a
        NUMBER's precision, keeping its scale); they are made with the next commit's DDL.
        New columns are added at that commit too; a new table is created by it."""
        for field in plan.widened():
            old = self._target_types.get(field.name)
            if old is None:
                continue  # a column this run adds: created with its new type
            new = snowflake_type(field)
            if new == old or (old.startswith("VARCHAR") and new == "VARCHAR"):
                continue
            before, after = number_type(old), number_type(new)
            if (
                old.startswith("NUMBER")
                and new.startswith("NUMBER")
                and before is not None
                and after is not None
                and before[1] == after[1]
            ):
                if after[0] > before[0]:
                    self._alters[field.name] = new
                continue
            raise ConnectorError(
                f"column {field.name!r} of {self._table().name} is {old}; the rows need {new}, "
                "and Snowflake can change a column's type only to a NUMBER of more digits with "
                "the same scale, or a longer VARCHAR",
                key="destination.table",
                value=field.name,
                expected=f"values that fit {old}",
            )

    def table_name(self) -> str | None:
        return self._table().name if self.config.table else None
