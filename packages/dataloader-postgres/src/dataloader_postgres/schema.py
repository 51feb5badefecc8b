"""A Postgres table's schema as Arrow fields, and the DDL that fits a table to a planned schema.

A table is described as the source reads it (the same Arrow types and `pg_type` tags), with
each column's nullability and key. The DDL here is run by the connector inside its write
transaction, so a change commits or rolls back with the rows (Postgres's ALTER TABLE, ADD
COLUMN and ALTER COLUMN … TYPE included, are transactional).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pyarrow as pa

from dataloader.schema.lattice import Rules, supertype
from dataloader.schema.plan import KEY_TAG, key_of
from dataloader.sql import TableName, quote_identifier
from dataloader_postgres.types import ColumnPlan, pg_type_for

# Per column: NOT NULL, and `primary` (part of the primary key) or `unique` (a one-column
# unique index or constraint, not partial, not on an expression); INCLUDE columns are no key.
CONSTRAINTS_SQL = """
SELECT a.attname, a.attnotnull, (
    SELECT CASE WHEN bool_or(i.indisprimary) THEN 'primary'
                WHEN bool_or(i.indisunique AND i.indnkeyatts = 1) THEN 'unique' END
    FROM pg_index i
    WHERE i.indrelid = a.attrelid AND (i.indisprimary OR i.indisunique)
      AND i.indpred IS NULL AND i.indexprs IS NULL
      AND a.attnum = ANY((i.indkey::int2[])[0:i.indnkeyatts - 1])
)
FROM pg_attribute a
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


def described(
    plans: Sequence[ColumnPlan], constraints: Iterable[tuple[str, bool, str | None]]
) -> pa.Schema:
    """The table's schema: each column as read (`plans`), with its nullability and key tag
    from `constraints` (rows of `CONSTRAINTS_SQL`)."""
    facts = {name: (not_null, key) for name, not_null, key in constraints}
    fields = []
    for plan in plans:
        not_null, key = facts.get(plan.name, (False, None))
        field = plan.field.with_nullable(not not_null)
        if key:
            field = field.with_metadata({**(field.metadata or {}), KEY_TAG: key.encode()})
        fields.append(field)
    return pa.schema(fields)


def column_sql(field: pa.Field) -> str:
    """`"name" type [NOT NULL]`: the column of a CREATE TABLE or ADD COLUMN."""
    not_null = "" if field.nullable else " NOT NULL"
    return f"{quote_identifier(field.name)} {pg_type_for(field)}{not_null}"


def create_table_sql(table: TableName, schema: pa.Schema, fallback_key: Sequence[str] = ()) -> str:
    """CREATE TABLE for `schema`: NOT NULL where a field is not nullable, the `primary`-tagged
    fields as the primary key (else `fallback_key`, when given), UNIQUE on `unique`-tagged ones."""
    primary = [field.name for field in schema if key_of(field) == "primary"] or list(fallback_key)
    parts = [column_sql(field) for field in schema]
    if primary:
        parts.append(f"PRIMARY KEY ({', '.join(quote_identifier(name) for name in primary)})")
    parts.extend(
        f"UNIQUE ({quote_identifier(field.name)})"
        for field in schema
        if key_of(field) == "unique" and field.name not in primary
    )
    return f"CREATE TABLE {table.sql()} ({', '.join(parts)})"


def fit_clauses(
    existing: Mapping[str, pa.Field], target: pa.Schema, *, empty: bool = False
) -> list[str]:
    """The ALTER TABLE clauses that make a table with columns `existing` hold `target`: ADD
    COLUMN for the missing ones, ALTER COLUMN … TYPE for those whose type cannot hold the
    target's exactly (a wider type the table already has is kept). Values are converted with
    `USING`, unless the table is `empty` (any type may then replace any other).
    """
    clauses = []
    for field in target:
        have = existing.get(field.name)
        if have is None:
            clauses.append(f"ADD COLUMN {column_sql(field)}")
            continue
        if pg_type_for(have) == pg_type_for(field) or holds(have.type, field.type):
            continue
        quoted = quote_identifier(field.name)
        using = f"NULL::{pg_type_for(field)}" if empty else converted(quoted, have.type, field)
        clauses.append(f"ALTER COLUMN {quoted} TYPE {pg_type_for(field)} USING {using}")
    return clauses


def holds(have: pa.DataType, wanted: pa.DataType) -> bool:
    """Whether a column of type `have` already holds every value of type `wanted` exactly (a
    timestamp with a zone holds one without, read as UTC, as the writes store it)."""
    return supertype(have, wanted, Rules(naive_as_utc=True)) == have


def converted(quoted: str, before: pa.DataType, after: pa.Field) -> str:
    """The `USING` expression turning column `quoted` of type `before` into `after`'s type.

    A timestamp without a zone (or a date) becoming one with a zone is read as UTC, as Arrow
    reads it, not in the session's zone.
    """
    if pa.types.is_timestamp(after.type) and after.type.tz is not None:
        if pa.types.is_date(before):
            return f"{quoted}::timestamp AT TIME ZONE 'UTC'"
        if pa.types.is_timestamp(before) and before.tz is None:
            return f"{quoted} AT TIME ZONE 'UTC'"
    return f"{quoted}::{pg_type_for(after)}"
