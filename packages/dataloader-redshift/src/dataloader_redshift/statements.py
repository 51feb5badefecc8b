"""The SQL the Redshift connector runs, built with SQLAlchemy and compiled by the
`sqlalchemy-redshift` dialect (`redshift+redshift_connector`, paramstyle `format`).

Each builder returns a `Statement`: the SQL text with `%s` placeholders and its parameters,
which the connection executes as they are. COPY, UNLOAD and reads carry no parameters (their
values are literals), so their text is sent exactly as built. `Statement.shown()` is the text
for logs, errors and golden files: parameters inlined, credentials masked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from functools import cache
from typing import Any

import pyarrow as pa

from dataloader.sql import STATE_TABLE, MergeOrder, TableName
from dataloader_redshift.config import RedshiftStaging
from dataloader_redshift.types import column_type

STATE_COLUMNS = ("recipe", "state", "updated_at")
_PLACEHOLDER = re.compile(r"%%|%s")
_SECRET_IN_CREDENTIALS = re.compile(r"(aws_secret_access_key=|token=)[^;']*")


@cache
def dialect() -> Any:
    """The Redshift dialect every statement is compiled with."""
    from sqlalchemy_redshift.dialect import RedshiftDialect_redshift_connector

    return RedshiftDialect_redshift_connector()


@dataclass(frozen=True)
class Statement:
    """SQL text (`%s` placeholders) and its parameters."""

    sql: str
    params: tuple[Any, ...] = ()

    def shown(self) -> str:
        """The statement with its parameters inlined as literals and credentials masked."""
        text = self.sql
        if self.params:
            values = iter(self.params)
            text = _PLACEHOLDER.sub(
                lambda match: "%" if match.group() == "%%" else _literal(next(values)), text
            )
        text = _SECRET_IN_CREDENTIALS.sub(r"\1***", text)
        return "\n".join(line.rstrip() for line in text.strip().splitlines() if line.strip())


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return read_literal(value)
    return "'" + str(value).replace("'", "''") + "'"


def compile_statement(clause: Any) -> Statement:
    """Compile a SQLAlchemy clause with the Redshift dialect."""
    compiled = clause.compile(dialect=dialect())
    names = getattr(compiled, "positiontup", None) or []
    return Statement(str(compiled).strip(), tuple(compiled.params[name] for name in names))


def table_of(name: TableName, schema: pa.Schema, *, temporary: bool = False) -> Any:
    """A SQLAlchemy `Table` for `name` with one column per field of `schema`."""
    import sqlalchemy as sa

    columns = [
        sa.Column(field.name, column_type(field.name, field.type), nullable=field.nullable)
        for field in schema
    ]
    prefixes = ["TEMPORARY"] if temporary else []
    return sa.Table(
        name.name,
        sa.MetaData(),
        *columns,
        schema=name.schema,
        prefixes=prefixes,
        quote=True,
        quote_schema=True,
    )


def create_table(name: TableName, schema: pa.Schema, *, temporary: bool = False) -> Statement:
    """`CREATE [TEMPORARY] TABLE` for `schema`'s columns."""
    from sqlalchemy.schema import CreateTable

    return compile_statement(CreateTable(table_of(name, schema, temporary=temporary)))


def add_column(name: TableName, field: pa.Field) -> Statement:
    """`ALTER TABLE … ADD COLUMN` (Redshift adds one column per statement)."""
    preparer = dialect().identifier_preparer
    table = table_of(name, pa.schema([]))
    type_sql = column_type(field.name, field.type).compile(dialect=dialect())
    return Statement(
        f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN "
        f"{preparer.quote(field.name)} {type_sql}"
    )


def drop_table(name: TableName) -> Statement:
    from sqlalchemy.schema import DropTable

    return compile_statement(DropTable(table_of(name, pa.schema([])), if_exists=True))


def insert_values(stage: TableName, schema: pa.Schema, rows: int) -> Statement:
    """A multi-row `INSERT … VALUES (…), (…)` of `rows` rows (parameters added by the caller)."""
    preparer = dialect().identifier_preparer
    table = table_of(stage, pa.schema([]))
    columns = ", ".join(preparer.quote(name) for name in schema.names)
    row = "(" + ", ".join(["%s"] * len(schema)) + ")"
    return Statement(
        f"INSERT INTO {preparer.format_table(table)} ({columns}) VALUES " + ", ".join([row] * rows)
    )


def copy_parquet(stage: TableName, location: str, staging: RedshiftStaging) -> Statement:
    """`COPY stage FROM 's3://…' WITH CREDENTIALS AS '…' FORMAT AS PARQUET`.

    Redshift matches Parquet columns to the stage's by position (the files hold every column
    of the stage, in its order), and refuses REGION for columnar formats: the bucket must be
    in the cluster's region. Sent without bind parameters (Redshift takes none in COPY): the
    location and credentials are quoted literals.
    """
    preparer = dialect().identifier_preparer
    table = preparer.format_table(table_of(stage, pa.schema([])))
    return Statement(
        f"COPY {table} FROM {quote_literal(location)}\n"
        f"WITH CREDENTIALS AS {quote_literal(credentials(staging))}\n"
        "FORMAT AS PARQUET"
    )


def unload_parquet(
    query: str, location: str, staging: RedshiftStaging, *, parallel: bool = True
) -> Statement:
    """`UNLOAD ('query') TO 's3://…' CREDENTIALS '…' FORMAT AS PARQUET ALLOWOVERWRITE`, and
    `PARALLEL OFF` when the files must hold the rows in the query's order.

    `query` is sent as written (values already inlined), quoted as one literal; the
    statement has no bind parameters (Redshift takes none in UNLOAD)."""
    lines = [
        f"UNLOAD ({quote_literal(query)}) TO {quote_literal(location)}",
        f"CREDENTIALS {quote_literal(credentials(staging))}",
        "FORMAT AS PARQUET",
        "ALLOWOVERWRITE",
    ]
    if not parallel:
        lines.append("PARALLEL OFF")
    if staging.region is not None:
        lines.append(f"REGION {quote_literal(staging.region)}")
    return Statement("\n".join(lines))


def quote_literal(text: str) -> str:
    """`text` as a Redshift string literal in COPY and UNLOAD: single quotes doubled and
    backslashes doubled (a backslash escapes the next character in Redshift's literals)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def read_literal(value: Any) -> str:
    """`value` as a SQL literal that Redshift and PostgreSQL read alike, for a read's window
    (inlined: the read is sent without parameters, so its `%` stay as written).

    A backslash becomes `CHR(92)` (Redshift escapes with it, PostgreSQL does not); infinite
    and NaN floats are the quoted words cast to float."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "'NaN'::float8"
        if math.isinf(value):
            return "'Infinity'::float8" if value > 0 else "'-Infinity'::float8"
        return repr(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"a cursor value of {value} has no Redshift literal")
        return str(value)
    if isinstance(value, datetime):
        return "'" + value.isoformat(sep=" ") + "'"
    if isinstance(value, date | time):
        return "'" + value.isoformat() + "'"
    parts = str(value).replace("'", "''").split("\\")
    return " || CHR(92) || ".join(f"'{part}'" for part in parts)


def credentials(staging: RedshiftStaging) -> str:
    """The CREDENTIALS string: `aws_iam_role=…` or the keys (secrets unmasked)."""
    if staging.iam_role is not None:
        return f"aws_iam_role={staging.iam_role}"
    assert staging.access_key_id is not None and staging.secret_access_key is not None
    text = (
        f"aws_access_key_id={staging.access_key_id};"
        f"aws_secret_access_key={staging.secret_access_key.get_secret_value()}"
    )
    if staging.session_token is not None:
        text += f";token={staging.session_token.get_secret_value()}"
    return text


def same_keys(left: Any, right: Any, keys: Sequence[str], text_keys: Sequence[str]) -> Any:
    """`left.k = right.k AND …`; for a text key also `OCTET_LENGTH(left.k) =
    OCTET_LENGTH(right.k)`: Redshift ignores trailing blanks when it compares VARCHARs
    ("Character types", r_Character_types.html, "Significance of trailing blanks"), while
    OCTET_LENGTH counts them (r_OCTET_LENGTH.html), so 'a' and 'a ' stay two keys."""
    import sqlalchemy as sa

    terms = []
    for key in keys:
        terms.append(left.c[key] == right.c[key])
        if key in text_keys:
            terms.append(sa.func.octet_length(left.c[key]) == sa.func.octet_length(right.c[key]))
    return sa.and_(*terms)


def append_from_stage(
    target: TableName,
    stage: TableName,
    columns: Sequence[str],
    unless_keys: Sequence[str] = (),
    text_keys: Sequence[str] = (),
) -> Statement:
    """`INSERT INTO target (cols) SELECT cols FROM stage`; with `unless_keys`, only the rows
    whose key the target does not hold (`WHERE NOT EXISTS`; text keys compared exactly)."""
    import sqlalchemy as sa

    target_table = _bare(target, columns)
    stage_table = _bare(stage, columns)
    select = sa.select(*[stage_table.c[name] for name in columns])
    if unless_keys:
        same = same_keys(target_table, stage_table, unless_keys, text_keys)
        select = select.where(~sa.exists().where(same))
    return compile_statement(sa.insert(target_table).from_select(list(columns), select))


def delete_matching(
    target: TableName,
    stage: TableName,
    columns: Sequence[str],
    keys: Sequence[str],
    order: MergeOrder | None = None,
    text_keys: Sequence[str] = (),
) -> Statement:
    """`DELETE FROM target USING stage WHERE target.k = stage.k AND …`: Redshift's staging-table
    merge, step one (the rows the stage replaces). With `order` (`dedup_sort`), only the stored
    rows the staged one wins against."""
    import sqlalchemy as sa

    target_table = _bare(target, columns)
    stage_table = _bare(stage, columns)
    condition = same_keys(target_table, stage_table, keys, text_keys)
    if order is not None:
        preparer = dialect().identifier_preparer
        wins = order.replaces(
            preparer.format_table(stage_table), preparer.format_table(target_table)
        )
        condition = sa.and_(condition, sa.text(wins))
    return compile_statement(sa.delete(target_table).where(condition))


def delete_all(target: TableName) -> Statement:
    """`DELETE FROM target` (not TRUNCATE: in Redshift, TRUNCATE commits the transaction)."""
    import sqlalchemy as sa

    return compile_statement(sa.delete(_bare(target, ())))


def dedup_stage(
    stage: TableName,
    columns: Sequence[str],
    keys: Sequence[str],
    order: str,
    *,
    kept: TableName,
    text_keys: Sequence[str] = (),
) -> list[Statement]:
    """Keep one row per merge key in the stage (`columns` and the ordinal column): the first
    by `order`, an ORDER BY list. A text key partitions with its OCTET_LENGTH too (see
    `same_keys`). `kept` names the second temporary table.

    Rebuilds the stage through a second temporary table, as Redshift has no `DELETE … USING`
    on a window; run before the merge so that `INSERT … SELECT` adds one row per key.
    """
    preparer = dialect().identifier_preparer
    quoted = [preparer.quote(name) for name in columns]
    partition = ", ".join(
        f"{preparer.quote(key)}, OCTET_LENGTH({preparer.quote(key)})"
        if key in text_keys
        else preparer.quote(key)
        for key in keys
    )
    stage_sql = preparer.format_table(table_of(stage, pa.schema([])))
    kept_sql = preparer.format_table(table_of(kept, pa.schema([])))
    listed = ", ".join(quoted)
    return [
        Statement(
            f"CREATE TEMPORARY TABLE {kept_sql} AS SELECT {listed} FROM (SELECT {listed}, "
            f"ROW_NUMBER() OVER (PARTITION BY {partition} ORDER BY {order}) AS _dl_rank "
            f"FROM {stage_sql}) AS ranked WHERE _dl_rank = 1"
        ),
        Statement(f"DELETE FROM {stage_sql}"),
        Statement(f"INSERT INTO {stage_sql} ({listed}) SELECT {listed} FROM {kept_sql}"),
        Statement(f"DROP TABLE {kept_sql}"),
    ]


def _bare(name: TableName, columns: Sequence[str]) -> Any:
    import sqlalchemy as sa

    return sa.Table(
        name.name,
        sa.MetaData(),
        *[sa.Column(column, quote=True) for column in columns],
        schema=name.schema,
        quote=True,
        quote_schema=True,
    )


def state_table(target: TableName) -> TableName:
    return target.sibling(STATE_TABLE)


def create_state_table(target: TableName) -> Statement:
    """The recipe state table, beside the data: one row per recipe, its state as JSON text."""
    preparer = dialect().identifier_preparer
    table = preparer.format_table(table_of(state_table(target), pa.schema([])))
    return Statement(
        f"CREATE TABLE IF NOT EXISTS {table} (recipe VARCHAR(512) NOT NULL, "
        "state VARCHAR(65535) NOT NULL, updated_at TIMESTAMP NOT NULL)"
    )


def select_state(target: TableName, recipe: str) -> Statement:
    preparer = dialect().identifier_preparer
    table = preparer.format_table(table_of(state_table(target), pa.schema([])))
    return Statement(f"SELECT state FROM {table} WHERE recipe = %s", (recipe,))


def save_state(
    target: TableName, recipe: str, document: str, updated_at: datetime
) -> list[Statement]:
    """Replace the recipe's state row: DELETE then INSERT (Redshift has no upsert), both in
    the transaction that commits the data. `updated_at` is a UTC time without zone."""
    preparer = dialect().identifier_preparer
    table = preparer.format_table(table_of(state_table(target), pa.schema([])))
    return [
        Statement(f"DELETE FROM {table} WHERE recipe = %s", (recipe,)),
        Statement(
            f"INSERT INTO {table} (recipe, state, updated_at) VALUES (%s, %s, %s)",
            (recipe, document, updated_at),
        ),
    ]


def delete_state(target: TableName, recipe: str) -> Statement:
    preparer = dialect().identifier_preparer
    table = preparer.format_table(table_of(state_table(target), pa.schema([])))
    return Statement(f"DELETE FROM {table} WHERE recipe = %s", (recipe,))


def columns_of(target: TableName) -> Statement:
    """The table's columns from `information_schema.columns`, in order."""
    sql = (
        "SELECT column_name, data_type, numeric_precision, numeric_scale, is_nullable "
        "FROM information_schema.columns WHERE table_name = %s"
    )
    params: tuple[Any, ...] = (target.name,)
    if target.schema is not None:
        sql += " AND table_schema = %s"
        params += (target.schema,)
    else:
        sql += " AND table_schema = current_schema()"
    return Statement(sql + " ORDER BY ordinal_position", params)
