"""The pieces of the Postgres destination that child tables of normalized nested data need:
the identifier limit, the owner label of a child table's stage, and the merge's deletion of
the children of merged parents.

Postgres cuts an identifier longer than 63 bytes (NAMEDATALEN - 1) to 63 without an error, so
two long column names could become one column: such a name is refused instead.
"""

from __future__ import annotations

import json

from dataloader import ConnectorError
from dataloader.sql import STAGE_LABEL, TableName, quote_identifier

MAX_IDENTIFIER_BYTES = 63
ROOT_ID = "_dl_root_id"  # the column of a child row naming its root row (`dataloader.normalize`)
ROOT_IDS = f"pg_temp.{quote_identifier('_dl_root_ids')}"  # the merged roots of one batch


def checked_identifier(name: str, what: str, key: str) -> str:
    """`name`, when Postgres keeps it whole; else a `ConnectorError` naming it (`what`: "table",
    "column of dst", …) and the recipe key it came from (`normalization`: a name the
    normalizer made)."""
    size = len(name.encode())
    nested = key == "normalization"
    if size > MAX_IDENTIFIER_BYTES:
        hint = " (`normalization.naming.max_identifier_length` cuts them)" if nested else ""
        raise ConnectorError(
            f"a Postgres {what} name is {size} bytes long; Postgres cuts names to "
            f"{MAX_IDENTIFIER_BYTES} bytes, which could make two names one",
            key=key,
            value=name,
            expected=f"at most {MAX_IDENTIFIER_BYTES} UTF-8 bytes{hint}",
        )
    return name


def checked_table(table: TableName, key: str) -> TableName:
    """`table`, when its schema and name each fit Postgres's identifier limit."""
    if table.schema is not None:
        checked_identifier(table.schema, "schema", key)
    checked_identifier(table.name, "table", key)
    return table


def child_stage_label(recipe: str, child: str, parent: str, run_id: str) -> str:
    """The comment marking a stage as `recipe`'s stage of child table `child` of the main table
    `parent` (the `dataloader.sql.stage_label` of `child`, plus its parent), so that `begin`,
    which knows only the main table, finds it."""
    return json.dumps(
        {STAGE_LABEL: {"recipe": recipe, "table": child, "run_id": run_id, "parent": parent}}
    )


def stage_parent(comment: str | None) -> tuple[str, str] | None:
    """The recipe and main table of a child table's stage label; None for any other comment."""
    try:
        label = json.loads(comment or "")[STAGE_LABEL]
        return label["recipe"], label["parent"]
    except (ValueError, TypeError, KeyError):
        return None


def root_id_index_sql(table: TableName) -> str:
    """The index that lets a merge find the children of its roots without reading the table
    (Postgres names it after the table)."""
    return f"CREATE INDEX ON {table.sql()} ({quote_identifier(ROOT_ID)})"


def delete_children_sql(table: TableName, column_type: str) -> str:
    """Delete the rows of `table` whose root is one of `ROOT_IDS`, the ids cast to the type of
    the table's `_dl_root_id` (uuid, or text): its index is used, its values are not cast."""
    root = quote_identifier(ROOT_ID)
    return (
        f"DELETE FROM {table.sql()} AS c USING {ROOT_IDS} AS r "
        f"WHERE c.{root} = CAST(r.{root} AS {column_type})"
    )
