"""`SQLiteDestination`: rows into a SQLite table by append, merge or overwrite, with the
engine's schema handling (`describe`, `apply_schema`, `write_quarantine`) and the child tables
of normalized nested data (`describe_child`, `apply_child_schema`, `write_child_batch`,
`delete_children`), which are tables beside the main one.

Everything between two commits is one SQLite transaction: the DDL of a schema change, the
rows of the main table and of every child table, the deletions of a merge's stale children,
the quarantined rows and the recipe's state (a row of `_dataloader_state`). `commit` makes all
of it visible at once and `abort` (or a killed process) leaves none of it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dataloader import BaseConnector, Capabilities, ConnectorError, State
from dataloader.schema.types import JSON_TAG, TYPE_TAG
from dataloader.sql import STATE_TABLE, quote_identifier, staging_name
from dataloader_example.config import SQLiteConfig
from dataloader_example.sqlite.schema import (
    add_columns,
    create_sql,
    describe_table,
    exists,
    register_functions,
    widen_columns,
)
from dataloader_example.sqlite.types import stored_values

if TYPE_CHECKING:
    from dataloader.schema.plan import SchemaPlan

QUARANTINE_SUFFIX = "__quarantine"
ROOT_ID = "_dl_root_id"  # a child row's root row: what a merge deletes children by


class SQLiteDestination(BaseConnector):
    """A SQLite destination. Under `overwrite` the run fills a stage table per table (the main
    one and each child table) that `commit` renames over it; under `merge` a row replaces the
    stored row of its key (columns it lacks keep their values), the last row of a key in a
    batch winning, and a merged row's child rows are deleted before its new ones are added."""

    name = "sqlite"
    config_model = SQLiteConfig
    capabilities = Capabilities(
        write=True,
        write_modes=("append", "overwrite", "merge"),
        transactional_state=True,
        quarantine=True,
        child_tables=True,
    )

    def __init__(self, config: SQLiteConfig) -> None:
        super().__init__(config)
        self.con: sqlite3.Connection | None = None
        # Under overwrite: per table written (the main one, child tables), its stage, once
        # created. The stages live in the run's one transaction: no crash leaves one.
        self._stages: dict[str, str] = {}

    # -- lifecycle ----------------------------------------------------------------------
    def open(self, context: Any) -> None:
        super().open(context)
        Path(self.config.database).parent.mkdir(parents=True, exist_ok=True)
        try:
            # Autocommit: this class says where transactions begin and end, DDL included.
            self.con = sqlite3.connect(self.config.database, isolation_level=None)
        except sqlite3.Error as exc:
            raise ConnectorError(
                f"cannot open SQLite database: {exc}",
                key="destination.database",
                value=self.config.database,
            ) from exc
        register_functions(self.con)

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None

    def is_transient(self, error: BaseException) -> bool:
        """Another connection held the database's write lock past the timeout: rows and state
        commit together, so a retry from the last commit is safe."""
        return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)

    def _sql(self) -> sqlite3.Connection:
        if self.con is None:
            raise ConnectorError("the SQLite destination is not open", key="destination")
        return self.con

    def _error(self, action: str, exc: Exception) -> ConnectorError:
        return ConnectorError(
            f"SQLite {action} failed on table {self.config.table!r} in {self.config.database}: {exc}",
            key="destination.table",
            value=self.config.table,
        )

    def _begin_transaction(self) -> None:
        con = self._sql()
        if not con.in_transaction:
            con.execute("BEGIN IMMEDIATE")  # the write lock now, not at the first write

    def _target(self, table: str) -> str:
        """The table this run writes `table`'s rows into: its stage under overwrite, else
        `table` itself."""
        assert self.context is not None
        if self.context.write_mode != "overwrite":
            return table
        return self._stages.setdefault(table, staging_name(table, self.context.run_id))

    # -- state --------------------------------------------------------------------------
    def load_state(self) -> State | None:
        assert self.context is not None
        con = self._sql()
        if not exists(con, STATE_TABLE):
            return None
        row = con.execute(
            f"SELECT state FROM {quote_identifier(STATE_TABLE)} WHERE recipe = ?",
            [self.context.recipe_name],
        ).fetchone()
        return State.from_dict(json.loads(row[0])) if row else None

    def reset_state(self) -> None:
        assert self.context is not None
        con = self._sql()
        if exists(con, STATE_TABLE):
            con.execute(
                f"DELETE FROM {quote_identifier(STATE_TABLE)} WHERE recipe = ?",
                [self.context.recipe_name],
            )

    def begin(self, state: State) -> None:
        assert self.context is not None
        if self.context.dedup_sort is not None:
            raise ConnectorError(
                "the SQLite example destination does not support `dedup_sort`",
                key="destination.dedup_sort",
                expected="no dedup_sort (the last row of a key in a batch wins)",
            )
        self._sql().execute(
            f"CREATE TABLE IF NOT EXISTS {quote_identifier(STATE_TABLE)} "
            "(recipe TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at TEXT NOT NULL)"
        )

    # -- schema -------------------------------------------------------------------------
    def describe(self) -> pa.Schema | None:
        """The table the run's rows go into: under overwrite a new stage, none yet."""
        return self._describe(self.config.table)

    def _describe(self, table: str) -> pa.Schema | None:
        assert self.context is not None
        if self.context.write_mode == "overwrite":
            return None
        try:
            return describe_table(self._sql(), table)
        except sqlite3.Error as exc:
            raise self._error(f"describe of {table!r}", exc) from exc

    def apply_schema(self, plan: SchemaPlan) -> None:
        """Create the table (under overwrite: the stage), add columns, or rewrite it with wider
        types, in the transaction the next rows and the state commit in."""
        self._apply(self.config.table, plan)

    def _apply(self, table: str, plan: SchemaPlan) -> None:
        assert self.context is not None
        try:
            self._begin_transaction()
            target = self._target(table)
            con = self._sql()
            if not exists(con, target):
                con.execute(create_sql(target, plan.target))
                if table != self.config.table and ROOT_ID in plan.target.names:
                    _index_root_ids(con, target)
                return
            add_columns(con, target, plan.added())
            scratch = staging_name(target, f"{self.context.run_id} rewrite")
            widen_columns(con, target, plan.widened(), scratch)
        except sqlite3.Error as exc:
            raise self._error(f"schema change of {table!r}", exc) from exc

    def write_quarantine(self, rows: pa.Table) -> None:
        """Insert `rows` into `<table>__quarantine`, created on first use, in the data's
        transaction."""
        if rows.num_rows == 0:
            return
        if "row" in rows.schema.names:  # the row is JSON text: keep it as such
            index = rows.schema.get_field_index("row")
            tagged = rows.schema.field(index).with_metadata({TYPE_TAG: JSON_TAG})
            rows = pa.Table.from_arrays(rows.columns, schema=rows.schema.set(index, tagged))
        table = self.config.table + QUARANTINE_SUFFIX
        try:
            self._begin_transaction()
            con = self._sql()
            if not exists(con, table):
                con.execute(create_sql(table, rows.schema))
            self._insert(table, rows)
        except sqlite3.Error as exc:
            raise self._error("quarantine write", exc) from exc

    # -- writes -------------------------------------------------------------------------
    def write_batch(self, batch: Any, state: State) -> None:
        assert self.context is not None
        data = batch.to_arrow()
        if data.num_rows == 0:
            return
        try:
            self._begin_transaction()
            table = self._target(self.config.table)
            if not exists(self._sql(), table):  # a caller that did not plan: shape of the rows
                self._sql().execute(create_sql(table, data.schema))
            if self.context.merge_keys:
                self._merge(table, data)
            else:
                self._insert(table, data)
        except sqlite3.Error as exc:
            raise self._error(f"{self.context.write_mode} write", exc) from exc

    def _insert(self, table: str, data: pa.Table | pa.RecordBatch) -> None:
        names = ", ".join(quote_identifier(name) for name in data.schema.names)
        marks = ", ".join("?" * data.num_columns)
        self._sql().executemany(
            f"INSERT INTO {quote_identifier(table)} ({names}) VALUES ({marks})",
            _rows(data),
        )

    def _merge(self, table: str, data: pa.Table | pa.RecordBatch) -> None:
        """Update the rows whose key is stored, insert the others."""
        assert self.context is not None
        names = data.schema.names
        keys = list(self.context.merge_keys)
        missing = [key for key in keys if key not in names]
        if missing:
            raise ConnectorError(
                f"merge key {missing[0]!r} is not a column of the incoming rows",
                key="destination.merge_keys",
                value=missing[0],
                expected=f"one of {names}",
            )
        positions = [names.index(key) for key in keys]
        latest = {tuple(row[i] for i in positions): row for row in _rows(data)}
        rows = list(latest.values())
        others = [i for i, name in enumerate(names) if name not in keys]
        match = " AND ".join(f"{quote_identifier(key)} = ?" for key in keys)
        quoted = quote_identifier(table)
        con = self._sql()
        if others:
            sets = ", ".join(f"{quote_identifier(names[i])} = ?" for i in others)
            con.executemany(
                f"UPDATE {quoted} SET {sets} WHERE {match}",
                [[row[i] for i in others] + [row[i] for i in positions] for row in rows],
            )
        columns = ", ".join(quote_identifier(name) for name in names)
        marks = ", ".join("?" * len(names))
        con.executemany(
            f"INSERT INTO {quoted} ({columns}) SELECT {marks} "
            f"WHERE NOT EXISTS (SELECT 1 FROM {quoted} WHERE {match})",
            [list(row) + [row[i] for i in positions] for row in rows],
        )

    # -- child tables -------------------------------------------------------------------
    def table_name(self) -> str | None:
        """The main table's name: child tables are named after it and created beside it."""
        return self.config.table

    def describe_child(self, table: str) -> pa.Schema | None:
        """The child table `table` as it is; None when it does not exist yet, and under
        overwrite (the run fills a new stage)."""
        return self._describe(table)

    def apply_child_schema(self, table: str, plan: SchemaPlan) -> None:
        """As `apply_schema`, for the child table `table`. A new child table gets an index on
        `_dl_root_id`, which a merge deletes by."""
        self._apply(table, plan)

    def write_child_batch(self, table: str, batch: Any, state: State) -> None:
        """Insert rows of the child table `table` (under overwrite: into its stage), in the
        transaction the main table's rows commit in. Never a merge: under merge the engine
        has deleted the merged roots' children first."""
        data = batch.to_arrow()
        if data.num_rows == 0:
            return
        try:
            self._begin_transaction()
            target = self._target(table)
            if not exists(self._sql(), target):  # a caller that did not plan: shape of the rows
                self._sql().execute(create_sql(target, data.schema))
            self._insert(target, data)
        except sqlite3.Error as exc:
            raise self._error(f"write of child table {table!r}", exc) from exc

    def delete_children(self, table: str, root_ids: pa.Array | None) -> None:
        """Delete the rows of child table `table` whose `_dl_root_id` is in `root_ids`, or with
        None (overwrite, a table this run wrote nothing to) every row, in the transaction the
        next commit commits. A table that does not exist has nothing to delete."""
        assert self.context is not None
        try:
            self._begin_transaction()
            con = self._sql()
            if root_ids is None:
                if exists(con, table):
                    con.execute(f"DELETE FROM {quote_identifier(table)}")
                return
            # Under overwrite (a merge recipe's full refresh) the old rows go with the swap:
            # only the stage, when this run has filled one, holds children to delete.
            overwrite = self.context.write_mode == "overwrite"
            target = self._stages.get(table) if overwrite else table
            if target is None or not exists(con, target) or len(root_ids) == 0:
                return
            con.execute(
                f"DELETE FROM {quote_identifier(target)} WHERE {quote_identifier(ROOT_ID)} "
                "IN (SELECT value FROM json_each(?))",
                [json.dumps(root_ids.to_pylist())],
            )
        except sqlite3.Error as exc:
            raise self._error(f"delete of children in {table!r}", exc) from exc

    def commit(self, state: State) -> None:
        assert self.context is not None
        try:
            self._begin_transaction()
            if self.context.write_mode == "overwrite":
                self._swap_in_stages()
            self._sql().execute(
                f"INSERT OR REPLACE INTO {quote_identifier(STATE_TABLE)} "
                "VALUES (?, ?, strftime('%Y-%m-%d %H:%M:%fZ', 'now'))",
                [self.context.recipe_name, json.dumps(state.progress())],
            )
            self._sql().execute("COMMIT")
        except sqlite3.Error as exc:
            self.abort()
            raise self._error("commit", exc) from exc

    def _swap_in_stages(self) -> None:
        """Each stage replaces its table; without one for the main table (no rows this run)
        the main table is emptied. A child table without a stage stays as it is (the engine
        empties it by `delete_children(table, None)`)."""
        con = self._sql()
        if self.config.table not in self._stages and exists(con, self.config.table):
            con.execute(f"DELETE FROM {quote_identifier(self.config.table)}")
        for table, stage in self._stages.items():
            con.execute(f"DROP TABLE IF EXISTS {quote_identifier(table)}")
            con.execute(
                f"ALTER TABLE {quote_identifier(stage)} RENAME TO {quote_identifier(table)}"
            )
        self._stages = {}

    def abort(self) -> None:
        self._stages = {}  # rolled back with the rest
        if self.con is not None and self.con.in_transaction:
            self.con.execute("ROLLBACK")


def _index_root_ids(con: sqlite3.Connection, table: str) -> None:
    """Index `table`'s `_dl_root_id`, so a merge's deletion of children does not scan it. The
    index is named after `table` (a stage's name is unique), and moves with a rename."""
    con.execute(
        f"CREATE INDEX {quote_identifier(table + '__' + ROOT_ID)} "
        f"ON {quote_identifier(table)} ({quote_identifier(ROOT_ID)})"
    )


def _rows(data: pa.Table | pa.RecordBatch) -> list[tuple[Any, ...]]:
    """The rows of `data` as tuples of the values SQLite stores."""
    return list(zip(*(stored_values(column) for column in data.columns), strict=True))
