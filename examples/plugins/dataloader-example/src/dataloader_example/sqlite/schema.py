"""SQLite tables as Arrow schemas and back: what the destination's `describe` reports and the
DDL its `apply_schema` runs, always inside the caller's transaction (SQLite's DDL is
transactional: a rollback undoes a CREATE, an ADD COLUMN and a whole rewrite).

SQLite cannot change a column's type (`ALTER TABLE` only adds, drops and renames), so a
widening rewrites the table: a new table of the new shape is filled from the old one (each
widened value converted by `widen_value`, a function registered on the connection), the old
one dropped, the new one renamed, its indexes recreated.
"""

from __future__ import annotations

import sqlite3

import pyarrow as pa

from dataloader.schema.plan import KEY_TAG
from dataloader.sql import quote_identifier
from dataloader_example.sqlite.types import arrow_field, declared_type, widened_value

WIDEN_FUNCTION = "dataloader_widen"


def register_functions(con: sqlite3.Connection) -> None:
    """Make `dataloader_widen(value, before, after)` callable in this connection's SQL."""
    con.create_function(WIDEN_FUNCTION, 3, widened_value, deterministic=True)


def exists(con: sqlite3.Connection, table: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", [table]
    ).fetchone()
    return bool(row[0])


def describe_table(con: sqlite3.Connection, table: str) -> pa.Schema | None:
    """`table` as an Arrow schema: each column's type from its declared type, nullable unless
    NOT NULL, primary key columns and single-column UNIQUE columns tagged `dataloader.key`.
    None when there is no such table."""
    if not exists(con, table):
        return None
    keys = _unique_columns(con, table)
    fields = []
    for _, name, declared, notnull, _, pk in con.execute(
        f"PRAGMA table_info({quote_identifier(table)})"
    ):
        field = arrow_field(name, declared).with_nullable(not notnull)
        key = b"primary" if pk else keys.get(name)
        if key is not None:
            field = field.with_metadata({**(field.metadata or {}), KEY_TAG: key})
        fields.append(field)
    return pa.schema(fields)


def _unique_columns(con: sqlite3.Connection, table: str) -> dict[str, bytes]:
    """The columns a one-column UNIQUE constraint or unique index covers, as `unique`."""
    return {
        columns[0]: b"unique"
        for columns in _unique_sets(con, table, ("u", "c"))
        if len(columns) == 1 and columns[0] is not None
    }


def _unique_sets(con: sqlite3.Connection, table: str, origins: tuple[str, ...]) -> list[list[str]]:
    """The columns of each full unique index of `table` made as `origins` say: `u` a UNIQUE
    constraint, `c` a CREATE UNIQUE INDEX."""
    sets = []
    for _, index, unique, origin, partial in con.execute(
        f"PRAGMA index_list({quote_identifier(table)})"
    ):
        if unique and not partial and origin in origins:
            info = con.execute(f"PRAGMA index_info({quote_identifier(index)})").fetchall()
            sets.append([row[2] for row in sorted(info)])
    return sets


def create_sql(table: str, schema: pa.Schema) -> str:
    """`CREATE TABLE` for `schema`: NOT NULL where a field is not nullable, PRIMARY KEY over the
    `primary` fields, UNIQUE on each `unique` one."""
    parts = [
        f"{quote_identifier(f.name)} {declared_type(f)}{'' if f.nullable else ' NOT NULL'}"
        for f in schema
    ]
    keyed = [(f.name, (f.metadata or {}).get(KEY_TAG)) for f in schema]
    primary = [quote_identifier(name) for name, key in keyed if key == b"primary"]
    if primary:
        parts.append(f"PRIMARY KEY ({', '.join(primary)})")
    parts.extend(f"UNIQUE ({quote_identifier(name)})" for name, key in keyed if key == b"unique")
    return f"CREATE TABLE {quote_identifier(table)} ({', '.join(parts)})"


def add_columns(con: sqlite3.Connection, table: str, fields: list[pa.Field]) -> None:
    """Add `fields` as nullable columns: the rows already there have no value for them."""
    for field in fields:
        con.execute(
            f"ALTER TABLE {quote_identifier(table)} "
            f"ADD COLUMN {quote_identifier(field.name)} {declared_type(field)}"
        )


def widen_columns(
    con: sqlite3.Connection, table: str, fields: list[pa.Field], scratch: str
) -> None:
    """Give the columns of `fields` their wider types by rewriting `table` through `scratch` (a
    free table name). Column order, NOT NULL, defaults, the primary key, one-column UNIQUE
    constraints and indexes stay; CHECK constraints, foreign keys and triggers of a table made
    by hand are not carried over."""
    if not fields:
        return
    new = {field.name: declared_type(field) for field in fields}
    columns = con.execute(f"PRAGMA table_info({quote_identifier(table)})").fetchall()
    unique = _unique_sets(con, table, ("u",))
    indexes = [
        sql
        for (sql,) in con.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
            [table],
        )
    ]
    parts, selected = [], []
    for _, name, declared, notnull, default, _ in columns:
        column = quote_identifier(name)
        parts.append(
            f"{column} {new.get(name, declared)}"
            + (" NOT NULL" if notnull else "")
            + ("" if default is None else f" DEFAULT {default}")
        )
        selected.append(
            f"{WIDEN_FUNCTION}({column}, {_literal(declared)}, {_literal(new[name])})"
            if name in new
            else column
        )
    primary = [quote_identifier(row[1]) for row in sorted(columns, key=lambda r: r[5]) if row[5]]
    if primary:
        parts.append(f"PRIMARY KEY ({', '.join(primary)})")
    parts.extend(f"UNIQUE ({', '.join(map(quote_identifier, cols))})" for cols in unique)
    names = ", ".join(quote_identifier(row[1]) for row in columns)
    con.execute(f"CREATE TABLE {quote_identifier(scratch)} ({', '.join(parts)})")
    con.execute(
        f"INSERT INTO {quote_identifier(scratch)} ({names}) "
        f"SELECT {', '.join(selected)} FROM {quote_identifier(table)}"
    )
    con.execute(f"DROP TABLE {quote_identifier(table)}")
    con.execute(f"ALTER TABLE {quote_identifier(scratch)} RENAME TO {quote_identifier(table)}")
    for sql in indexes:
        con.execute(sql)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
