"""SQL helpers shared by database connectors: identifier quoting, table names, the names and
owner labels of staging tables, and driver errors as `ConnectorError`s."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from dataloader.errors import ConnectorError

STATE_TABLE = "_dataloader_state"
STAGING_PREFIX = "_dl_stage_"
STAGE_LABEL = "dataloader_stage"  # the key of a staging table's comment: its owner
NAME_BYTES = 63  # Postgres cuts longer identifiers; two stages must not become one name


def quote_identifier(name: str) -> str:
    """`name` as a double-quoted SQL identifier; any embedded quote is doubled."""
    if "\x00" in name:
        raise ValueError("an identifier cannot contain a NUL character")
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableName:
    """A possibly schema-qualified table name, as written in a recipe (`schema.table`)."""

    schema: str | None
    name: str

    @classmethod
    def parse(cls, text: str) -> TableName:
        """Split `schema.table`; parts may be double-quoted to hold dots, spaces or capitals."""
        parts: list[str] = []
        current, quoted, i = "", False, 0
        while i < len(text):
            char = text[i]
            if quoted:
                if char == '"' and i + 1 < len(text) and text[i + 1] == '"':
                    current += '"'
                    i += 1
                elif char == '"':
                    quoted = False
                else:
                    current += char
            elif char == '"':
                if current:
                    raise ValueError(
                        f'{text!r} is not a table name: a quote may only open a whole part (write `"My ""Odd"" Name"`)'
                    )
                quoted = True
            elif char == ".":
                parts.append(current)
                current = ""
            else:
                current += char
            i += 1
        parts.append(current)
        if quoted or len(parts) > 2 or not all(parts):
            raise ValueError(f"{text!r} is not a table name; expected `table` or `schema.table`")
        return cls(parts[0], parts[1]) if len(parts) == 2 else cls(None, parts[0])

    def sql(self) -> str:
        quoted = quote_identifier(self.name)
        return f"{quote_identifier(self.schema)}.{quoted}" if self.schema else quoted

    def sibling(self, name: str) -> TableName:
        """Another table in the same schema."""
        return TableName(self.schema, name)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


def database_error(
    system: str,
    action: str,
    error: BaseException,
    *,
    role: str,
    table: str | None,
    server: str,
    where: str | None = None,
    message: str | None = None,
    statement: str | None = None,
) -> ConnectorError:
    """A database driver's `error` as the `ConnectorError` a SQL connector raises:
    `<system> <action> failed on <table> at <server>: <the first line of the message>`.

    :param role: the connector's role (`source`, `destination`): the error names the key
        `<role>.table`, or `<role>.query` when no `table` is configured; a failed `connect`
        names the section itself (no table is involved yet).
    :param table: the configured table, None for a query.
    :param server: where the connection goes, as the connector's config describes it (without
        secrets).
    :param where: the table the failed statement was on, when not `table` (the state table).
    :param message: the driver's message, when `str(error)` is not it; the error's type name
        stands for an empty one.
    :param statement: the failed statement as it may be shown, added on a line of its own.
    """
    text = (str(error) if message is None else message).strip()
    detail = text.splitlines()[0] if text else type(error).__name__
    shown = f"{system} {action} failed on {where or table or 'query'} at {server}: {detail}"
    if statement is not None:
        shown += f"\nwhile running: {statement}"
    if action == "connect":
        return ConnectorError(shown, key=role)
    return ConnectorError(shown, key=f"{role}.table" if table else f"{role}.query")


def staging_name(table: str, run_id: str) -> str:
    """The name of the staging table a run fills for `table` (a table's own name, no schema).

    Unique per table and run, and at most `NAME_BYTES` bytes, so no database cuts two stages
    into one name: the prefix, as much of `table` as fits, and a digest of table and run.
    """
    digest = hashlib.sha256(json.dumps([table, run_id]).encode()).hexdigest()[:16]
    room = NAME_BYTES - len(STAGING_PREFIX) - len(digest) - 1
    readable = table.encode()[:room].decode(errors="ignore")
    return f"{STAGING_PREFIX}{readable}_{digest}"


def stage_label(recipe: str, table: str, run_id: str) -> str:
    """The comment that marks a staging table as the stage of `recipe`'s run into `table`.

    Written in the transaction that creates the stage, so no stage exists without one."""
    return json.dumps({STAGE_LABEL: {"recipe": recipe, "table": table, "run_id": run_id}})


def stage_owner(comment: str | None) -> tuple[str, str] | None:
    """The recipe and table a staging table's label names; None for a table without one."""
    try:
        label = json.loads(comment or "")[STAGE_LABEL]
        return label["recipe"], label["table"]
    except (ValueError, TypeError, KeyError):
        return None


@dataclass(frozen=True)
class MergeOrder:
    """Which of two rows of one merge key wins a merge, by a column (`destination.dedup_sort`).

    The highest value wins (`descending`, the default) or the lowest; a NULL never wins over a
    value; between equal values, or two NULLs, the row read later wins, so a tie still merges.
    """

    column: str
    descending: bool = True

    def sort_key(self) -> str:
        """An ORDER BY term that puts the winner of each key first."""
        direction = "DESC" if self.descending else "ASC"
        return f"{quote_identifier(self.column)} {direction} NULLS LAST"

    def replaces(self, incoming: str, stored: str) -> str:
        """A condition: the row aliased `incoming` wins over (replaces) the one aliased
        `stored`: true or false, never NULL (it may be negated); true when they are equal."""
        column = quote_identifier(self.column)
        new, old = f"{incoming}.{column}", f"{stored}.{column}"
        operator = ">=" if self.descending else "<="
        return f"({old} IS NULL OR ({new} IS NOT NULL AND {new} {operator} {old}))"
