"""DuckDB tables as Arrow schemas and back: what the connector's `describe` reports, and the
DDL its `apply_schema` runs.

DuckDB changes a column's type in place (`ALTER … TYPE`, transactional like any DDL) unless
the column is part of a constraint other than NOT NULL or the table has an index; such a
table is rewritten instead: copied into a new table of the new shape, which replaces it, all
inside the caller's transaction. Either way a widening never depends on the session's time
zone: DuckDB's cast reads a naive timestamp (or a date) becoming TIMESTAMPTZ in that zone, and
writes TIMESTAMPTZ as text in it, so such columns are converted by an expression that reads
and writes them in UTC.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from dataloader import ConnectorError
from dataloader.schema.plan import KEY_TAG
from dataloader.schema.types import TYPE_TAG
from dataloader.sql import TableName, quote_identifier

# Text columns tagged with the source's type (`pg_type`, as the Postgres source tags uuid and
# json) are created with DuckDB's own type; a DuckDB column of that type is read with the tag,
# so a database destination recreates it. Other tags stay VARCHAR.
_TAGGED_TYPES = {"uuid": "UUID", "json": "JSON", "jsonb": "JSON"}
_TAG_OF_TYPE = {"UUID": "uuid", "JSON": "json"}
_SHAPE_VIEW = "_dl_shape"
# Constraints a table rewrite carries over (NOT NULL travels with the column).
_KEPT_CONSTRAINTS = ("PRIMARY KEY", "UNIQUE", "CHECK")


def exists(con: Any, table: TableName) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = coalesce(?, current_schema())",
        [table.name, table.schema],
    ).fetchall()
    return bool(rows[0][0])


def describe_table(con: Any, table: TableName) -> pa.Schema | None:
    """`table` as an Arrow schema: types as reading it gives them (UUID and JSON columns tagged),
    except that TIMESTAMPTZ is in UTC, not the session's zone (it stores instants: the zone is
    only how a read shows them); nullability from NOT NULL, primary key and single-column
    unique columns tagged `dataloader.key`. None when the table does not exist."""
    if not exists(con, table):
        return None
    columns = con.execute(f"DESCRIBE {table.sql()}").fetchall()
    schema = con.sql(f"SELECT * FROM {table.sql()} LIMIT 0").to_arrow_table().schema
    schema = tagged_schema(schema, [row[1] for row in columns]) or schema
    keys = _keys(con, table)
    fields = []
    for field, (_, _, null, *_) in zip(schema, columns, strict=True):
        field = field.with_type(_in_utc(field.type)).with_nullable(null == "YES")
        if field.name in keys:
            field = field.with_metadata({**(field.metadata or {}), KEY_TAG: keys[field.name]})
        fields.append(field)
    return pa.schema(fields)


def _in_utc(kind: pa.DataType) -> pa.DataType:
    """`kind` with its timestamps with a zone (also inside lists and structs) in UTC."""
    if pa.types.is_timestamp(kind) and kind.tz is not None:
        return pa.timestamp(kind.unit, tz="UTC")
    if pa.types.is_list(kind):
        return pa.list_(kind.value_field.with_type(_in_utc(kind.value_type)))
    if pa.types.is_struct(kind):
        return pa.struct([f.with_type(_in_utc(f.type)) for f in kind.fields])
    return kind


def _keys(con: Any, table: TableName) -> dict[str, bytes]:
    """Per key column, `primary` or `unique`. A unique constraint over several columns makes
    none of them a key on its own, so it tags none."""
    rows = con.execute(
        "SELECT constraint_type, constraint_column_names FROM duckdb_constraints() "
        "WHERE database_name = current_database() AND schema_name = coalesce(?, current_schema()) "
        "AND table_name = ? AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')",
        [table.schema, table.name],
    ).fetchall()
    keys: dict[str, bytes] = {}
    for kind, names in rows:
        if kind == "PRIMARY KEY":
            keys.update(dict.fromkeys(names, b"primary"))
        elif len(names) == 1:
            keys.setdefault(names[0], b"unique")
    return keys


def column_types(con: Any, fields: list[pa.Field]) -> list[str]:
    """The DuckDB type each Arrow field is stored as: DuckDB's own reading of the Arrow type,
    or the type a `pg_type` tag names (UUID, JSON, lists of them)."""
    if not fields:
        return []
    plain = [
        field.with_type(field.type.value_type) if pa.types.is_dictionary(field.type) else field
        for field in fields
    ]
    too_wide = [f for f in plain if pa.types.is_decimal(f.type) and f.type.precision > 38]
    if too_wide:
        raise ConnectorError(
            f"column {too_wide[0].name!r} needs {too_wide[0].type}; DuckDB keeps decimals of up to 38 digits",
            key="destination.table",
            value=too_wide[0].name,
            expected="decimal(p,s) with p <= 38",
        )
    finer = [f for f in plain if pa.types.is_duration(f.type) and f.type.unit == "ns"]
    if finer:  # DuckDB reads them into an INTERVAL, which keeps microseconds: 123 ns become 0
        raise ConnectorError(
            f"column {finer[0].name!r} holds nanosecond durations; DuckDB's INTERVAL keeps "
            "microseconds",
            key="destination.table",
            value=finer[0].name,
            expected="durations in s, ms or us (a `cast` step to int keeps nanoseconds)",
        )
    con.register(_SHAPE_VIEW, pa.schema(plain).empty_table())
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {_SHAPE_VIEW}").fetchall()
    finally:
        con.unregister(_SHAPE_VIEW)
    return [tagged_type(field) or row[1] for field, row in zip(fields, described, strict=True)]


def create_sql(con: Any, table: TableName, schema: pa.Schema) -> str:
    """`CREATE TABLE` for `schema`: NOT NULL for fields that are not nullable, PRIMARY KEY over
    the `primary` fields, UNIQUE on each `unique` one."""
    parts = []
    for field, kind in zip(schema, column_types(con, list(schema)), strict=True):
        parts.append(
            f"{quote_identifier(field.name)} {kind}{'' if field.nullable else ' NOT NULL'}"
        )
    keyed = [(field.name, (field.metadata or {}).get(KEY_TAG)) for field in schema]
    primary = [quote_identifier(name) for name, key in keyed if key == b"primary"]
    if primary:
        parts.append(f"PRIMARY KEY ({', '.join(primary)})")
    parts.extend(f"UNIQUE ({quote_identifier(name)})" for name, key in keyed if key == b"unique")
    return f"CREATE TABLE {table.sql()} ({', '.join(parts)})"


def add_columns(con: Any, table: TableName, fields: list[pa.Field]) -> None:
    """Add `fields` as nullable columns: the rows already there have no value for them."""
    for field, kind in zip(fields, column_types(con, fields), strict=True):
        con.execute(f"ALTER TABLE {table.sql()} ADD COLUMN {quote_identifier(field.name)} {kind}")


def widen_columns(con: Any, table: TableName, fields: list[pa.Field], scratch: str) -> None:
    """Give the columns of `fields` their (wider) types: in place where DuckDB can, otherwise by
    rewriting the table (through `scratch`, a free table name in its schema)."""
    if not fields:
        return
    types = dict(zip((f.name for f in fields), column_types(con, fields), strict=True))
    columns = ", ".join(quote_identifier(name) for name in types)
    before = con.sql(f"SELECT {columns} FROM {table.sql()} LIMIT 0").to_arrow_table().schema
    readings = {
        field.name: reading
        for field in fields
        if (
            reading := _in_utc_as(
                quote_identifier(field.name), before.field(field.name).type, field.type
            )
        )
    }
    if _needs_rewrite(con, table, set(types)):
        _rewrite(con, table, types, readings, table.sibling(scratch))
        return
    for name, kind in types.items():
        using = f" USING {readings[name]}" if name in readings else ""
        con.execute(
            f"ALTER TABLE {table.sql()} ALTER COLUMN {quote_identifier(name)} TYPE {kind}{using}"
        )


def _in_utc_as(value: str, old: pa.DataType, new: pa.DataType, depth: int = 0) -> str | None:
    """An expression giving `value` (of type `old`) as `new` with its zone-less timestamps and
    dates that become instants read as UTC, and its instants that become text written in UTC
    (also inside lists and structs). None when DuckDB's cast involves no time zone."""
    if _is_instant(new) and (pa.types.is_date(old) or pa.types.is_timestamp(old)):
        if _is_instant(old):
            return None
        naive = f"CAST({value} AS TIMESTAMP)" if pa.types.is_date(old) else value
        return f"timezone('UTC', {naive})"
    if _is_instant(old) and (pa.types.is_string(new) or pa.types.is_large_string(new)):
        utc = f"CAST(timezone('UTC', {value}) AS VARCHAR) || '+00'"
        return f"CASE WHEN isfinite({value}) THEN {utc} ELSE CAST({value} AS VARCHAR) END"
    if _is_list(old) and _is_list(new):
        element = f"__dl_element{depth}"
        inner = _in_utc_as(element, old.value_type, new.value_type, depth + 1)
        return None if inner is None else f"list_transform({value}, lambda {element}: {inner})"
    if pa.types.is_struct(old) and pa.types.is_struct(new):
        # the struct's own fields, converted; the target type's cast adds the new ones as NULL
        members, converted = [], False
        for field in old:
            member = f"struct_extract({value}, {sql_string(field.name)})"
            index = new.get_field_index(field.name)
            inner = (
                _in_utc_as(member, field.type, new.field(index).type, depth) if index >= 0 else None
            )
            converted = converted or inner is not None
            members.append(f"{quote_identifier(field.name)} := {inner or member}")
        if converted:
            packed = f"struct_pack({', '.join(members)})"
            return f"CASE WHEN {value} IS NULL THEN NULL ELSE {packed} END"
    return None


def _is_instant(kind: pa.DataType) -> bool:
    return pa.types.is_timestamp(kind) and kind.tz is not None


def _is_list(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind)


def _needs_rewrite(con: Any, table: TableName, columns: set[str]) -> bool:
    """DuckDB refuses `ALTER … TYPE` on a column in a key or CHECK constraint, and on any column
    of a table with an index."""
    where = (
        "WHERE database_name = current_database() AND schema_name = coalesce(?, current_schema()) "
        "AND table_name = ?"
    )
    params = [table.schema, table.name]
    if con.execute(f"SELECT count(*) FROM duckdb_indexes() {where}", params).fetchall()[0][0]:
        return True
    constrained = con.execute(
        f"SELECT constraint_column_names FROM duckdb_constraints() {where} AND constraint_type <> 'NOT NULL'",
        params,
    ).fetchall()
    return any(columns.intersection(names) for (names,) in constrained)


def _rewrite(
    con: Any, table: TableName, types: dict[str, str], readings: dict[str, str], scratch: TableName
) -> None:
    """Replace `table` with a copy whose columns in `types` have those types (their values
    converted by the expressions of `readings` where given, cast otherwise); its other column
    types, NOT NULLs, defaults, key and CHECK constraints, indexes and comments stay."""
    where = (
        "WHERE database_name = current_database() AND schema_name = coalesce(?, current_schema()) "
        "AND table_name = ?"
    )
    params = [table.schema, table.name]
    parts = []
    for name, kind, null, _, default, *_ in con.execute(f"DESCRIBE {table.sql()}").fetchall():
        column = f"{quote_identifier(name)} {types.get(name, kind)}"
        column += "" if null == "YES" else " NOT NULL"
        column += "" if default is None else f" DEFAULT {default}"
        parts.append(column)
    constraints = con.execute(
        f"SELECT constraint_text FROM duckdb_constraints() {where} AND constraint_type IN "
        f"({', '.join(repr(kind) for kind in _KEPT_CONSTRAINTS)}) ORDER BY constraint_index",
        params,
    ).fetchall()
    parts.extend(text for (text,) in constraints)
    indexes = con.execute(f"SELECT sql FROM duckdb_indexes() {where}", params).fetchall()
    comment = con.execute(f"SELECT comment FROM duckdb_tables() {where}", params).fetchall()[0][0]
    column_comments = con.execute(
        f"SELECT column_name, comment FROM duckdb_columns() {where} AND comment IS NOT NULL",
        params,
    ).fetchall()
    con.execute(f"CREATE TABLE {scratch.sql()} ({', '.join(parts)})")
    converted = ", ".join(
        f"{reading} AS {quote_identifier(name)}" for name, reading in readings.items()
    )
    star = f"* REPLACE ({converted})" if converted else "*"
    con.execute(f"INSERT INTO {scratch.sql()} BY NAME SELECT {star} FROM {table.sql()}")
    con.execute(f"DROP TABLE {table.sql()}")
    con.execute(f"ALTER TABLE {scratch.sql()} RENAME TO {quote_identifier(table.name)}")
    if comment:
        con.execute(f"COMMENT ON TABLE {table.sql()} IS {sql_string(comment)}")
    for name, text in column_comments:
        column = f"{table.sql()}.{quote_identifier(name)}"
        con.execute(f"COMMENT ON COLUMN {column} IS {sql_string(text)}")
    for (index_sql,) in indexes:
        if index_sql:
            con.execute(index_sql)


def tagged_type(field: pa.Field) -> str | None:
    """The DuckDB type a tagged text column is created with (None: as Arrow says)."""
    tag = (field.metadata or {}).get(TYPE_TAG, b"").decode()
    if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
        return _TAGGED_TYPES.get(tag)
    if pa.types.is_list(field.type) and pa.types.is_string(field.type.value_type):
        element = _TAGGED_TYPES.get(tag.removesuffix("[]")) if tag.endswith("[]") else None
        return f"{element}[]" if element else None
    return None


def typed_star(schema: pa.Schema) -> str:
    """A star expression's `REPLACE (…)` that casts the tagged text columns of `schema` to their
    DuckDB type; empty when there are none."""
    casts = [
        f"CAST({quote_identifier(field.name)} AS {kind}) AS {quote_identifier(field.name)}"
        for field in schema
        if (kind := tagged_type(field)) is not None
    ]
    return f" REPLACE ({', '.join(casts)})" if casts else ""


def tagged_schema(schema: pa.Schema, types: list[str]) -> pa.Schema | None:
    """`schema` (a result's, whose DuckDB column types are `types`) with its UUID and JSON
    columns, and lists of them, tagged `uuid`/`json`: DuckDB exports them as plain strings.
    None when there are none."""
    fields, tagged = [], False
    for field, kind in zip(schema, types, strict=True):
        element = kind.removesuffix("[]")
        if element in _TAG_OF_TYPE:
            tag = _TAG_OF_TYPE[element] + kind[len(element) :]
            field = field.with_metadata({**(field.metadata or {}), TYPE_TAG: tag.encode()})
            tagged = True
        fields.append(field)
    return pa.schema(fields) if tagged else None


def sql_string(text: str) -> str:
    """`text` as a SQL string literal (DuckDB's COMMENT takes no parameters)."""
    return "'" + text.replace("'", "''") + "'"
