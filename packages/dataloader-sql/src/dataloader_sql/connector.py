"""`SqlConnector`: any SQLAlchemy database as a source and destination.

Reads stream the table or query (`stream_results`, `yield_per`) into Arrow batches. Writes
bind `INSERT … VALUES` batches through `executemany` (SQLAlchemy's insertmanyvalues, or the
driver's own batching). The one rule of the destination: rows reach the target table only in
the commit's transaction, which also writes the recipe's row of `_dataloader_state`.

- append: on a database whose DDL is transactional (SQLite, Postgres), straight into the
  target inside the open transaction; elsewhere through the stage;
- merge: rows go to a staging table; the commit deletes the target's rows of the staged keys
  and inserts the latest staged row of each key (the row read last wins);
- overwrite: rows go to a staging table; the commit replaces the target with them —
  drop, create and fill where DDL is transactional, delete and fill elsewhere.

Where DDL commits implicitly (MySQL, MariaDB, …), every table the run needs (state table,
stage, the target and its new columns) is created or altered outside the data's
transaction, before rows are written: an implicit commit then publishes only staged rows,
never target rows without their state. `abort` empties the stage, so those rows are dropped.

Each run has its own stage, named by `dataloader.sql.staging_name` from the table and the
run id, so two runs never write into one stage. Where DDL is transactional the stage is
created and dropped inside the data's transaction: it never outlives a commit or a kill.
Elsewhere it is labelled with `stage_label` (a table comment) and dropped at `close`; a killed
run's stage is dropped by the next run of the recipe only while that run holds the recipe's
run lock (MySQL/MariaDB `GET_LOCK`), which a live run keeps: a second run while one is live is
refused. A database with neither (no lock known) refuses a run while a stage of the recipe is
left, naming it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from dataloader import ArrowBatch, BaseConnector, Capabilities, ConnectorError, State
from dataloader.incremental import CursorWindow, window_for
from dataloader.schema.plan import KEY_TAG
from dataloader.schema.types import TYPE_TAG
from dataloader.secrets import register_url_password
from dataloader.sql import (
    STAGING_PREFIX,
    STATE_TABLE,
    TableName,
    database_error,
    stage_label,
    stage_owner,
    staging_name,
)
from dataloader_sql.config import SqlConfig
from dataloader_sql.types import (
    SQLITE_DECIMAL,
    InexactDecimal,
    SqliteDecimal,
    arrow_type,
    bind_type,
    column_comment,
    column_type,
    is_mysql,
    python_to_arrow,
    python_values,
    text_collation,
    type_tag,
)

if TYPE_CHECKING:
    from dataloader.schema.plan import SchemaPlan

ORDINAL = "__dl_ordinal"
TRANSACTIONAL_DDL = frozenset({"sqlite", "postgresql"})  # tested; others take the staged path


class SqlConnector(BaseConnector):
    """A source and destination for any database SQLAlchemy has a dialect for."""

    name = "sql"
    config_model = SqlConfig
    capabilities = Capabilities(
        read=True,
        write=True,
        write_modes=("append", "overwrite", "merge"),
        incremental=True,
        transactional_state=True,
    )

    def __init__(self, config: SqlConfig) -> None:
        super().__init__(config)
        self.engine: Any = None
        self.conn: Any = None
        self._stage: TableName | None = None
        self._stage_schema: pa.Schema | None = None  # the stage's columns, ORDINAL aside
        self._ordinal = 0
        self._known: dict[TableName, set[str]] = {}  # columns each table has, once looked up
        self._staged: set[str] = set()  # columns staged rows have: the others keep defaults
        self._dialect: Any = None  # kept after close: `is_transient` judges errors with it
        self._base: str | None = None  # the state row this run started from (its text)
        self._base_known = False
        self._pending: str | None = None  # the state row this commit writes
        self._digits: dict[TableName, dict[str, int]] = {}  # fractional digits, where fewer than 6

    # -- lifecycle -------------------------------------------------------------------
    def open(self, context: Any) -> None:
        super().open(context)
        url = self.config.url.get_secret_value()
        register_url_password(url)
        try:
            self.engine = sa.create_engine(
                url, connect_args=dict(self.config.connect_args), poolclass=sa.pool.NullPool
            )
            self._dialect = self.engine.dialect
            if self.engine.dialect.name == "sqlite":
                _transactional_sqlite(self.engine)
            self.conn = self.engine.connect()
        except ImportError as exc:
            self.close()
            raise ConnectorError(
                f"the driver of {self.config.describe()} is not installed ({exc})",
                key=f"{context.role}.url",
                expected="the dialect's driver installed beside dataloader-sql",
            ) from exc
        except TypeError as exc:
            # The driver's connect() refused an argument: its message names it, never a value.
            self.close()
            raise ConnectorError(
                f"the driver of {self.config.describe()} refused `connect_args`: {exc}",
                key=f"{context.role}.connect_args",
                expected="keyword arguments the driver's connect() takes",
            ) from None
        except sa.exc.NoSuchModuleError as exc:
            self.close()
            raise ConnectorError(
                f"SQLAlchemy has no dialect for {self.config.describe()}",
                key=f"{context.role}.url",
                expected="a URL whose dialect SQLAlchemy or an installed package provides",
            ) from exc
        except sa.exc.SQLAlchemyError as exc:
            self.close()
            raise self._error("connect", exc) from exc

    def close(self) -> None:
        if self.conn is not None:
            connection, self.conn = self.conn, None
            try:
                connection.rollback()
                if self._stage is not None:
                    self._drop(connection, self._stage)
                    connection.commit()
            except sa.exc.SQLAlchemyError:
                pass  # a lost connection: the next run's `begin` drops the stage
            finally:
                connection.close()
        self._stage, self._stage_schema = None, None
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None

    def is_transient(self, error: BaseException) -> bool:
        """A lost connection (the dialect's own test, e.g. MySQL 2006/2013): worth a retry.
        A lost COMMIT acknowledgement is settled by the engine from the state row."""
        cause = error.__cause__ if isinstance(error, ConnectorError) else error
        if not isinstance(cause, sa.exc.DBAPIError):
            return False
        if cause.connection_invalidated:
            return True
        dialect = self._dialect
        if dialect is None or not isinstance(cause.orig, BaseException):
            return False
        try:
            return bool(dialect.is_disconnect(cause.orig, None, None))
        except Exception:  # a dialect that cannot judge without its connection
            return False

    @property
    def dialect(self) -> Any:
        return self.engine.dialect

    def _error(self, action: str, exc: BaseException, table: str | None = None) -> ConnectorError:
        # The driver's message: SQLAlchemy's own ends with the statement and its parameters.
        return database_error(
            "SQL",
            action,
            exc,
            role=self.context.role if self.context else "source",
            table=self.config.table,
            server=self.config.describe(),
            where=table,
            message=str(getattr(exc, "orig", None) or exc),
        )

    # -- SQL text ----------------------------------------------------------------------
    def _q(self, name: str) -> str:
        return self.dialect.identifier_preparer.quote_identifier(name)

    def _sql(self, table: TableName) -> str:
        name = self._q(table.name)
        return f"{self._q(table.schema)}.{name}" if table.schema else name

    def _table(self) -> TableName:
        if self.config.table is None:
            raise ConnectorError("a `sql` destination needs `table`", key="destination.table")
        return TableName.parse(self.config.table)

    def _exists(self, table: TableName) -> bool:
        return sa.inspect(self.conn).has_table(table.name, schema=table.schema)

    def _columns(self, table: TableName) -> list[tuple[str, Any, str | None, bool]]:
        """Each column of `table`: name, SQLAlchemy type, declared type (SQLite) or comment
        (elsewhere), nullable (or with a default: rows may lack it)."""
        columns = sa.inspect(self.conn).get_columns(table.name, schema=table.schema)
        declared: dict[str, str] = {}
        if self.dialect.name == "sqlite":
            prefix = f"{self._q(table.schema)}." if table.schema else ""
            pragma = f"PRAGMA {prefix}table_info({self._q(table.name)})"
            declared = {row[1]: row[2] for row in self.conn.exec_driver_sql(pragma)}
        return [
            (
                c["name"],
                c["type"],
                declared.get(c["name"], c.get("comment")),
                bool(c.get("nullable", True)) or c.get("default") is not None,
            )
            for c in columns
        ]

    def _arrow_type(self, sa_type: Any, note: str | None) -> pa.DataType | None:
        """A column's Arrow type, from its type and its declared type (SQLite) or comment."""
        if self.dialect.name == "sqlite":
            return arrow_type(sa_type, self.dialect, declared=note)
        return arrow_type(sa_type, self.dialect, comment=note)

    # -- source ----------------------------------------------------------------------
    def _relation(self) -> str:
        if self.config.query is not None:
            return f"({self.config.query}) src"
        return self._sql(TableName.parse(self.config.table or ""))

    def _source_types(self) -> dict[str, tuple[Any, pa.DataType | None]]:
        """Per column of a table: its SQLAlchemy type and Arrow type (a query: none known)."""
        if self.config.query is not None:
            return {}
        table = TableName.parse(self.config.table or "")
        if not self._exists(table):
            raise ConnectorError(
                f"table {table} does not exist at {self.config.describe()}",
                key="source.table",
                value=self.config.table,
            )
        return {
            name: (sa_type, self._arrow_type(sa_type, note) or pa.string())
            for name, sa_type, note, _ in self._columns(table)
        }

    def _probe_type(self, column: str) -> pa.DataType | None:
        """A query's cursor column type, from one of its values (the driver rarely says)."""
        stmt = (
            sa.select(sa.literal_column(self._q(column)))
            .select_from(sa.text(self._relation()))
            .where(sa.literal_column(self._q(column)).is_not(None))
            .limit(1)
        )
        row = self.conn.execute(stmt).first()
        return None if row is None else python_to_arrow([row[0]], None).type

    def _window_sql(
        self, window: CursorWindow, sa_type: Any, kind: pa.DataType, declared: str | None
    ) -> tuple[list[str], list[Any], str]:
        """The window's WHERE conditions, their bound parameters, and the ORDER BY term."""
        cursor = self._q(window.column)
        if declared is not None and SQLITE_DECIMAL.match(declared):
            cursor = f"CAST({cursor} AS NUMERIC)"  # text digits compare as numbers
        if pa.types.is_string(kind) and is_mysql(self.dialect):
            # code-point order with trailing spaces significant, as the engine's
            cursor = f"{cursor} COLLATE {text_collation(self.dialect)}"
        params: list[Any] = []
        bind = bind_type(sa_type) if sa_type is not None else None
        # `sql_condition` binds the lower bound first, then the upper one.
        names = ["dl_lower", "dl_upper"] if window.bounds(kind)[0] is not None else ["dl_upper"]

        def parameter(bound: pa.Scalar) -> str:
            name = names[len(params)]
            [value] = python_values(pa.array([bound.as_py()], kind), self.dialect)
            params.append(sa.bindparam(name, value, type_=bind))
            return f":{name}"

        # NaN is tested only where the database has it: MySQL reads `= 'NaN'` as `= 0`.
        nan = "'NaN'" if self.dialect.name == "postgresql" else None
        condition = window.sql_condition(
            self._q(window.column), kind, parameter, compared=cursor, nan=nan
        )
        return ([] if condition is None else [condition]), params, cursor

    def read_batches(self, state: State) -> Iterator[ArrowBatch]:
        assert self.context is not None
        try:
            yield from self._read(state)
        except sa.exc.SQLAlchemyError as exc:
            raise self._error("read", exc) from exc
        finally:
            if self.conn is not None:
                self.conn.rollback()

    def _read(self, state: State) -> Iterator[ArrowBatch]:
        assert self.context is not None
        types = self._source_types()
        sql = f"SELECT * FROM {self._relation()}"
        params: list[Any] = []
        incremental = self.context.incremental
        if incremental is not None:
            if incremental.strategy != "cursor":
                raise ConnectorError(
                    "`sql` sources support the `cursor` incremental strategy only",
                    key="source.incremental.strategy",
                    value=incremental.strategy,
                )
            window = window_for(incremental, state.cursor_values, state.cursor_boundaries)
            sa_type, kind = types.get(window.column, (None, None))
            if self.config.table is not None and window.column not in types:
                raise ConnectorError(
                    f"cursor column {window.column!r} is not a column of {self.config.table}",
                    key="source.incremental.cursor_column",
                    value=window.column,
                    expected=f"one of {list(types)}",
                )
            declared = None
            if self.config.table is not None and self.dialect.name == "sqlite":
                table = TableName.parse(self.config.table)
                declared = {n: d for n, _, d, _ in self._columns(table)}.get(window.column)
            kind = kind or self._probe_type(window.column)
            order = self._q(window.column)
            if kind is not None:
                conditions, params, order = self._window_sql(window, sa_type, kind, declared)
                if conditions:
                    sql += " WHERE " + " AND ".join(conditions)
            sql += f" ORDER BY {order}"
        stmt = sa.text(sql).bindparams(*params)
        typed = {name: _read_type(sa_type) for name, (sa_type, _) in types.items()}
        stmt = stmt.columns(**{name: t for name, t in typed.items() if t is not None})
        size = self.context.batch_size
        result = self.conn.execution_options(stream_results=True, yield_per=size).execute(stmt)
        names = list(result.keys())
        kinds: list[pa.DataType | None] = [types.get(name, (None, None))[1] for name in names]
        for rows in result.partitions(size):
            arrays = []
            for index, values in enumerate(zip(*rows, strict=True)):
                try:
                    array = python_to_arrow(list(values), kinds[index])
                except InexactDecimal as exc:
                    raise self._inexact(names[index], exc) from None
                if kinds[index] is None and not pa.types.is_null(array.type):
                    kinds[index] = array.type  # a query's column: typed by its first values
                arrays.append(array)
            yield ArrowBatch(pa.record_batch(arrays, names=names), {"source": "sql"})

    def _inexact(self, column: str, exc: InexactDecimal) -> ConnectorError:
        kind = exc.kind
        where = "source.query" if self.config.query is not None else "source.table"
        return ConnectorError(
            f"column {column!r} read as decimal({kind.precision}, {kind.scale}) holds "
            f"{exc.value}, which that type would round: no value is rounded silently",
            key=where,
            value=self.config.query or self.config.table,
            expected="a column declared with the precision and scale of its values, or a "
            f"`query` that casts {column!r} to one (or to text)",
        )

    # -- destination: state ------------------------------------------------------------
    def _state_table(self) -> TableName:
        return self._table().sibling(STATE_TABLE)

    def load_state(self) -> State | None:
        assert self.context is not None
        try:
            if not self._exists(self._state_table()):
                return None
            row = self.conn.execute(
                sa.text(f"SELECT state FROM {self._sql(self._state_table())} WHERE recipe = :r"),
                {"r": self.context.recipe_name},
            ).first()
        except sa.exc.SQLAlchemyError as exc:
            raise self._error("state read", exc, str(self._state_table())) from exc
        finally:
            self.conn.rollback()
        self._base, self._base_known = (row[0] if row else None), True
        return State.from_dict(json.loads(row[0])) if row else None

    def _state_text(self) -> str | None:
        """The recipe's state row as committed now (None: none)."""
        assert self.context is not None
        row = self.conn.execute(
            sa.text(f"SELECT state FROM {self._sql(self._state_table())} WHERE recipe = :r"),
            {"r": self.context.recipe_name},
        ).first()
        return row[0] if row else None

    def reset_state(self) -> None:
        assert self.context is not None
        if self._exists(self._state_table()):
            self.conn.execute(
                sa.text(f"DELETE FROM {self._sql(self._state_table())} WHERE recipe = :r"),
                {"r": self.context.recipe_name},
            )
        self.conn.commit()
        self._base, self._base_known = None, True

    def _save_state(self, state: State) -> None:
        assert self.context is not None
        table = self._sql(self._state_table())
        recipe = self.context.recipe_name
        text = json.dumps(state.progress())
        # Compare-and-set: the row must still be the one this run started from. A concurrent
        # run that committed first changed it (or inserted it): this run commits nothing.
        if self._base is None:
            try:
                with self.conn.begin_nested():
                    self.conn.execute(
                        sa.text(
                            f"INSERT INTO {table} (recipe, state, updated_at) VALUES (:r, :s, :t)"
                        ),
                        {"r": recipe, "s": text, "t": _now()},
                    )
                changed = 1
            except sa.exc.IntegrityError:
                changed = 0
        else:
            changed = self.conn.execute(
                sa.text(
                    f"UPDATE {table} SET state = :s, updated_at = :t "
                    "WHERE recipe = :r AND state = :base"
                ),
                {"r": recipe, "s": text, "t": _now(), "base": self._base},
            ).rowcount
        if changed != 1:
            raise ConnectorError(
                f"another run of recipe {recipe!r} committed to {self._table()} since this run "
                "began: this run commits nothing (its rows would land twice)",
                key="destination.table",
                expected="one run of a recipe at a time; run it again to load what is new",
            )
        self._pending = text

    # -- destination: tables -------------------------------------------------------------
    def begin(self, state: State) -> None:
        """Drop the stage a killed run of this recipe left, and create the state table, each
        committed on its own: where DDL commits implicitly it must precede the data."""
        assert self.context is not None
        if self.context.dedup_sort is not None:
            raise ConnectorError(
                "the `sql` connector merges by read order only (the row read last wins)",
                key="destination.dedup_sort",
                expected="no `dedup_sort` with a `sql` destination",
            )
        try:
            if not self._transactional_ddl():
                self._claim()
            if not self._exists(self._state_table()):
                self._create_state_table()
            self.conn.commit()
            if not self._base_known:  # `load_state` not called: the row as it is now
                self._base, self._base_known = self._state_text(), True
                self.conn.rollback()
        except sa.exc.SQLAlchemyError as exc:
            self.conn.rollback()
            raise self._error("begin", exc) from exc

    def _claim(self) -> None:
        """Take the recipe's run lock (MySQL/MariaDB) and drop the stages its killed runs left;
        without a lock, refuse to run while such a stage is left (its run may be live)."""
        assert self.context is not None
        recipe = self.context.recipe_name
        table = self._table()
        if is_mysql(self.dialect):
            scope = [table.schema or self.engine.url.database, table.name, recipe]
            digest = hashlib.sha256(json.dumps(scope).encode()).hexdigest()[:40]
            taken = self.conn.execute(
                sa.text("SELECT GET_LOCK(:name, 0)"), {"name": f"dataloader:{digest}"}
            ).scalar()
            if taken != 1:
                raise ConnectorError(
                    f"another run of recipe {recipe!r} is loading {table} now: this run "
                    "does not start",
                    key="destination.table",
                    expected="one run of a recipe at a time; run it again once that one ends",
                )
            for stage in self._leftovers():
                self._drop(self.conn, stage)
            self.conn.commit()
            return
        left = self._leftovers()
        if left:
            raise ConnectorError(
                f"recipe {recipe!r} has a stage {left[0]} left by another run, which may still "
                f"be loading {table}; {self.dialect.name} gives no run lock to tell",
                key="destination.table",
                expected="one run of a recipe at a time; drop the stage by hand once no run "
                "of the recipe is going",
            )

    def _leftovers(self) -> list[TableName]:
        """The stages of this recipe's runs into the target, other than this run's: the
        tables named with the staging prefix whose label (comment) names recipe and table."""
        assert self.context is not None
        table = self._table()
        inspector = sa.inspect(self.conn)
        owner = (self.context.recipe_name, table.name)
        found = []
        for name in inspector.get_table_names(schema=table.schema):
            if not name.startswith(STAGING_PREFIX) or name == self._stage_name().name:
                continue
            comment = inspector.get_table_comment(name, schema=table.schema).get("text")
            if stage_owner(comment) == owner:
                found.append(table.sibling(name))
        return found

    def _stage_name(self) -> TableName:
        assert self.context is not None
        table = self._table()
        return table.sibling(staging_name(table.name, self.context.run_id))

    def _create_state_table(self) -> None:
        state = sa.Table(
            self._state_table().name,
            sa.MetaData(),
            sa.Column("recipe", sa.String(255), primary_key=True),
            sa.Column("state", column_type(pa.field("s", pa.string()), self.dialect)),
            sa.Column("updated_at", sa.DateTime()),
            schema=self._state_table().schema,
        )
        try:
            state.create(self.conn, checkfirst=True)
        except sa.exc.SQLAlchemyError:
            self.conn.rollback()
            if not self._exists(self._state_table()):
                raise
            # a concurrent run created it between the check and the CREATE: it is there

    def _drop(self, connection: Any, table: TableName) -> None:
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {self._sql(table)}")

    def _transactional_ddl(self) -> bool:
        return self.dialect.name in TRANSACTIONAL_DDL

    def _uses_stage(self) -> bool:
        assert self.context is not None
        return self.context.write_mode != "append" or not self._transactional_ddl()

    def describe(self) -> pa.Schema | None:
        """The target table (under overwrite: this run's stage once opened, else none), with
        its column types, nullability and primary-key columns tagged."""
        assert self.context is not None
        if self.context.write_mode == "overwrite":
            return self._stage_schema if self._stage is not None else None
        table = self._table()
        try:
            if not self._exists(table):
                return None
            keys = set(
                sa.inspect(self.conn)
                .get_pk_constraint(table.name, schema=table.schema)
                .get("constrained_columns")
                or ()
            )
            fields = []
            for name, sa_type, note, nullable in self._columns(table):
                kind = self._arrow_type(sa_type, note) or pa.string()
                metadata: dict[bytes, bytes] = {}
                if name in keys:
                    metadata[KEY_TAG] = b"primary"
                tag = type_tag(sa_type)
                if tag is not None:
                    metadata[TYPE_TAG] = tag
                fields.append(pa.field(name, kind, nullable, metadata or None))
            return pa.schema(fields)
        except sa.exc.SQLAlchemyError as exc:
            self.abort()
            raise self._error("describe", exc) from exc

    def apply_schema(self, plan: SchemaPlan) -> None:
        """Fit the target (append, merge; overwrite where DDL is not transactional) and the
        stage to `plan.target`."""
        assert self.context is not None
        try:
            if self.context.write_mode != "overwrite" or not self._transactional_ddl():
                self._fit(self._table(), plan.target, self.context.merge_keys, plan.widened())
            if self._uses_stage():
                self._fit_stage(plan.target, plan.widened())
        except sa.exc.SQLAlchemyError as exc:
            self.abort()
            raise self._error("schema change", exc) from exc

    def _fit(
        self,
        table: TableName,
        schema: pa.Schema,
        keys: tuple[str, ...] = (),
        widened: list[pa.Field] | None = None,
    ) -> None:
        """Create `table` for `schema` (primary key `keys`), or add the columns it lacks and
        widen those of `widened`."""
        if not self._exists(table):
            self._create(table, schema, keys)
            return
        columns = self._columns(table)
        existing = {name for name, *_ in columns}
        if is_mysql(self.dialect):
            from sqlalchemy.dialects.mysql import DATETIME, TIME, TIMESTAMP

            self._digits[table] = {
                name: sa_type.fsp or 0
                for name, sa_type, *_ in columns
                if isinstance(sa_type, DATETIME | TIME | TIMESTAMP) and (sa_type.fsp or 0) < 6
            }
        for field in schema:
            if field.name not in existing:
                spec = column_type(field, self.dialect).compile(dialect=self.dialect)
                comment = column_comment(field, self.dialect)
                if comment is not None and is_mysql(self.dialect):
                    spec += f" COMMENT '{comment}'"
                self.conn.exec_driver_sql(
                    f"ALTER TABLE {self._sql(table)} ADD COLUMN {self._q(field.name)} {spec}"
                )
        for field in widened or ():
            if field.name in existing:
                self._widen(table, field)
        self._known[table] = existing | set(schema.names)

    def _widen(self, table: TableName, field: pa.Field) -> None:
        spec = column_type(field, self.dialect).compile(dialect=self.dialect)
        column = self._q(field.name)
        if self.dialect.name == "sqlite":
            return  # SQLite stores any value in any column: nothing to widen
        if is_mysql(self.dialect):
            sql = f"ALTER TABLE {self._sql(table)} MODIFY COLUMN {column} {spec}"
        elif self.dialect.name == "postgresql":
            sql = f"ALTER TABLE {self._sql(table)} ALTER COLUMN {column} TYPE {spec}"
        else:
            raise ConnectorError(
                f"the `sql` connector cannot widen column {field.name!r} of {table} on "
                f"{self.dialect.name}",
                key="destination.table",
                expected="a column type that holds the new values, changed by hand",
            )
        self.conn.exec_driver_sql(sql)

    def _create(
        self,
        table: TableName,
        schema: pa.Schema,
        keys: tuple[str, ...],
        indexed: tuple[str, ...] = (),
        comment: str | None = None,
    ) -> None:
        """Create `table` with primary key `keys` and table comment `comment`; `indexed`
        columns get a key's (indexable) type without being a key."""
        keys = tuple(key for key in keys if key in schema.names)
        columns = [
            sa.Column(
                field.name,
                column_type(field, self.dialect, key=field.name in keys or field.name in indexed),
                nullable=field.nullable and field.name not in keys,
                comment=column_comment(field, self.dialect),
                autoincrement=False,  # an integer key is the data's: never generated (MySQL 0)
            )
            for field in schema
        ]
        if keys:
            columns.append(sa.PrimaryKeyConstraint(*keys))  # type: ignore[arg-type]
        sa.Table(table.name, sa.MetaData(), *columns, schema=table.schema, comment=comment).create(
            self.conn
        )
        self._known[table] = set(schema.names)

    def _fit_stage(self, schema: pa.Schema, widened: list[pa.Field] | None = None) -> None:
        """Create this run's stage for `schema` (with an ordinal column: which row came last),
        or add the columns it lacks."""
        assert self.context is not None
        table = self._table()
        if self._stage is None:
            self._stage = self._stage_name()
            self._drop(self.conn, self._stage)
            keys = [key for key in self.context.merge_keys if key in schema.names]
            label = None
            if not self._transactional_ddl():  # it may outlive the run: say whose it is
                label = stage_label(self.context.recipe_name, table.name, self.context.run_id)
            self._create(
                self._stage,
                schema.append(pa.field(ORDINAL, pa.int64(), nullable=False)),
                (),
                indexed=tuple(keys),  # MySQL indexes no TEXT column without a prefix length
                comment=label,
            )
            if keys:  # the commit looks staged rows up by key: index them
                digest = hashlib.sha256(self._stage.name.encode()).hexdigest()[:16]
                columns = ", ".join(self._q(name) for name in (*keys, ORDINAL))
                index = self._q(f"_dl_ix_{digest}")
                on = f"{self._q(self._stage.schema)}." if self._stage.schema else ""
                if (
                    self.dialect.name == "sqlite"
                ):  # SQLite names the index's schema, not the table's
                    index, target = on + index, self._q(self._stage.name)
                else:
                    target = self._sql(self._stage)
                self.conn.exec_driver_sql(f"CREATE INDEX {index} ON {target} ({columns})")
            self._stage_schema = schema
            return
        assert self._stage_schema is not None
        self._fit(self._stage, schema, widened=widened)
        merged = list(self._stage_schema)
        known = {field.name: index for index, field in enumerate(merged)}
        for field in schema:
            if field.name in known:
                merged[known[field.name]] = field
            else:
                merged.append(field)
        self._stage_schema = pa.schema(merged)

    # -- destination: writes -----------------------------------------------------------
    def write_batch(self, batch: Any, state: State) -> None:
        assert self.context is not None
        data: pa.RecordBatch = batch.to_arrow()
        if data.num_rows == 0:
            return
        mode = self.context.write_mode
        keys = self.context.merge_keys
        if mode == "merge":
            missing = [key for key in keys if key not in data.schema.names]
            if missing:
                raise ConnectorError(
                    f"merge key {missing[0]!r} is not a column of the incoming rows",
                    key="destination.merge_keys",
                    value=missing[0],
                    expected=f"one of {data.schema.names}",
                )
        try:
            if self._uses_stage():
                if self._stage is None or not self._known.get(self._stage, set()).issuperset(
                    data.schema.names
                ):
                    if mode != "overwrite" or not self._transactional_ddl():
                        self._fit(self._table(), data.schema, keys)
                    self._fit_stage(data.schema)
                assert self._stage is not None
                self._check_fractions(data)
                self._insert(self._stage, data, ordinal=True)
                self._staged.update(data.schema.names)
            else:
                table = self._table()
                if not self._known.get(table, set()).issuperset(data.schema.names):
                    self._fit(table, data.schema, keys)
                self._check_fractions(data)
                self._insert(table, data)
        except sa.exc.SQLAlchemyError as exc:
            self.abort()
            raise self._error(f"{mode} write", exc) from exc

    def _check_fractions(self, data: pa.RecordBatch) -> None:
        """Refuse instants and times whose sub-second digits the target column would cut:
        nanoseconds anywhere (columns keep microseconds), and digits beyond an existing MySQL
        column's fractional precision (`DATETIME` keeps none, `DATETIME(3)` three)."""
        table = self._table()
        digits = self._digits.get(table, {})
        for field, column in zip(data.schema, data.columns, strict=True):
            kind = field.type
            if pa.types.is_uint64(kind) and not is_mysql(self.dialect):
                self._check_signed(table, field.name, column)
            if not (pa.types.is_timestamp(kind) or pa.types.is_time(kind)):
                continue
            per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[kind.unit]
            keeps = digits.get(field.name, 6)
            if per_second <= 10**keeps or column.null_count == len(column):
                continue
            ticks = np.asarray(column.cast(pa.int64()).fill_null(0))
            cut = np.flatnonzero(ticks % (per_second // 10**keeps))
            if cut.size == 0:
                continue
            whole = " (whole microseconds)" if keeps == 6 else ""
            raise ConnectorError(
                f"column {field.name!r} of {table} keeps {keeps} fractional digits of a "
                f"second{whole}: row {int(cut[0])} of the batch has more and would lose them",
                key="destination.table",
                expected=f"values with at most {keeps} fractional digits, or a column that "
                "keeps them (e.g. `DATETIME(6)`/`TIME(6)` on MySQL)",
            )

    def _check_signed(self, table: TableName, name: str, column: pa.Array) -> None:
        """A uint64 column goes to a signed BIGINT (MySQL aside: BIGINT UNSIGNED)."""
        import pyarrow.compute as pc

        top = pc.max(column).as_py()
        if top is not None and top > 2**63 - 1:
            raise ConnectorError(
                f"column {name!r} of {table} is a signed 64-bit integer on "
                f"{self.dialect.name}: the uint64 value {top} does not fit",
                key="destination.table",
                expected="uint64 values up to 2**63 - 1, or a cast of the column to a decimal "
                "or text",
            )

    def _insert(self, table: TableName, data: pa.RecordBatch, *, ordinal: bool = False) -> None:
        """`INSERT … VALUES` the batch's rows, bound in one `executemany` of the driver.

        The statement is compiled by SQLAlchemy for the dialect, and each column's values go
        through its type's bind processor once, as a column: SQLAlchemy's own executemany
        builds every row's parameters one by one, which cost more than the driver's insert.
        """
        names = list(data.schema.names)
        columns = [bind_type(column_type(field, self.dialect)) for field in data.schema]
        values = [python_values(data.column(i), self.dialect) for i in range(data.num_columns)]
        if ordinal:
            names.append(ORDINAL)
            columns.append(sa.BigInteger())
            values.append(list(range(self._ordinal, self._ordinal + data.num_rows)))
            self._ordinal += data.num_rows
        # Bound by position (`p0`, `p1`, …): column names need not be valid parameter names.
        keys = [f"p{i}" for i in range(len(names))]
        target = sa.table(table.name, *(sa.column(n) for n in names), schema=table.schema)
        stmt = target.insert().values(
            {
                name: sa.bindparam(key, type_=kind)
                for name, key, kind in zip(names, keys, columns, strict=True)
            }
        )
        compiled = stmt.compile(dialect=self.dialect)
        bound: dict[str, list[Any]] = {}
        for key, kind, column in zip(keys, columns, values, strict=True):
            process = kind.dialect_impl(self.dialect).bind_processor(self.dialect)
            bound[key] = column if process is None else [process(v) for v in column]
        if compiled.positional:
            order = [bound[key] for key in compiled.positiontup or ()]
            rows: list[Any] = list(zip(*order, strict=True))
        else:
            names_in_sql = [compiled.bind_names[compiled.binds[key]] for key in keys]
            rows = [
                dict(zip(names_in_sql, row, strict=True))
                for row in zip(*bound.values(), strict=True)
            ]
        self.conn.exec_driver_sql(compiled.string, rows)

    def commit(self, state: State) -> None:
        assert self.context is not None
        try:
            mode = self.context.write_mode
            if mode == "overwrite":
                self._replace_target()
            elif self._stage is not None:
                self._move_stage(mode == "merge")
            stage = self._stage
            if stage is not None and self._transactional_ddl():
                self._drop(self.conn, stage)  # gone with the commit, or back on a rollback
            elif stage is not None:
                self.conn.exec_driver_sql(f"DELETE FROM {self._sql(stage)}")
            self._save_state(state)
            self.conn.commit()
            self._base = self._pending
            if stage is not None and self._transactional_ddl():
                self._stage, self._stage_schema = None, None
                self._known.pop(stage, None)
        except ConnectorError:
            self.abort()
            raise
        except sa.exc.SQLAlchemyError as exc:
            self.abort()
            raise self._error("commit", exc) from exc
        self._ordinal = 0
        self._staged.clear()

    def _latest(self, columns: list[str]) -> str:
        """SELECT of the stage's rows, only the last one staged of each merge key."""
        assert self.context is not None and self._stage is not None
        stage = self._sql(self._stage)
        column_list = ", ".join(f"s.{self._q(name)}" for name in columns)
        keys = self.context.merge_keys
        sql = f"SELECT {column_list} FROM {stage} s"
        if keys:
            match = " AND ".join(f"n.{self._q(k)} = s.{self._q(k)}" for k in keys)
            ordinal = self._q(ORDINAL)
            sql += (
                f" WHERE NOT EXISTS (SELECT 1 FROM {stage} n WHERE {match} "
                f"AND n.{ordinal} > s.{ordinal})"
            )
        return sql

    def _move_stage(self, merge: bool) -> None:
        assert self.context is not None and self._stage_schema is not None
        assert self._stage is not None
        target = self._sql(self._table())
        columns = [name for name in self._stage_schema.names if name in self._staged]
        if not columns:
            return  # nothing staged
        if merge:
            stage = self._sql(self._stage)
            keys = self.context.merge_keys
            if len(keys) == 1:  # a semi-join: every database probes the target's key with it
                key = self._q(keys[0])
                self.conn.exec_driver_sql(
                    f"DELETE FROM {target} WHERE {key} IN (SELECT {key} FROM {stage})"
                )
            else:
                match = " AND ".join(f"s.{self._q(k)} = {target}.{self._q(k)}" for k in keys)
                self.conn.exec_driver_sql(
                    f"DELETE FROM {target} WHERE EXISTS (SELECT 1 FROM {stage} s WHERE {match})"
                )
        column_list = ", ".join(self._q(name) for name in columns)
        self.conn.exec_driver_sql(f"INSERT INTO {target} ({column_list}) {self._latest(columns)}")

    def _replace_target(self) -> None:
        """Under overwrite: the target holds exactly the staged rows (none: it is emptied)."""
        assert self.context is not None
        table = self._table()
        if self._stage is None or self._stage_schema is None:
            if self._exists(table):
                self.conn.exec_driver_sql(f"DELETE FROM {self._sql(table)}")
            return
        if self._transactional_ddl():
            self._drop(self.conn, table)
            self._create(table, self._stage_schema, self.context.merge_keys)
        else:
            self.conn.exec_driver_sql(f"DELETE FROM {self._sql(table)}")
        self._move_stage(merge=False)

    def abort(self) -> None:
        """Roll back, and empty the stage: where DDL commits implicitly, staged rows may have
        been committed with it."""
        self._known.clear()
        self._ordinal = 0
        self._staged.clear()
        if self.conn is None:
            return
        try:
            self.conn.rollback()
            if self._stage is not None and self._exists(self._stage):
                self.conn.exec_driver_sql(f"DELETE FROM {self._sql(self._stage)}")
                self.conn.commit()
            else:
                self.conn.rollback()  # the look-up's read transaction: SQLite locks with it
                self._stage, self._stage_schema = None, None  # rolled back with its creation
        except sa.exc.SQLAlchemyError:
            self._stage = None  # a lost connection: `begin` drops it next time


def _read_type(sa_type: Any) -> Any:
    """The type a column is read through; None: its values come raw. Exact decimals and JSON
    come raw (SQLAlchemy would make floats of SQLite's numbers, and objects of JSON text)."""
    if sa_type is None or isinstance(sa_type, sa.Numeric | sa.Float | sa.JSON | SqliteDecimal):
        return None
    return sa_type


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC).replace(tzinfo=None)


def _transactional_sqlite(engine: Any) -> None:
    """Make pysqlite's transactions SQLite's own: BEGIN before DDL too (the driver otherwise
    commits before each CREATE, ALTER and DROP), as SQLAlchemy's documentation shows."""

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")
