"""What the engine asks a destination to do to its table before a batch is written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa

ChangeKind = Literal["create", "add_column", "widen_type"]
KEY_TAG = b"dataloader.key"
"""Field metadata key of a column that is part of the table's key: value `primary` or `unique`."""


@dataclass(frozen=True)
class ColumnChange:
    """One change to a destination table.

    :param kind: `create` (the column of a new table), `add_column` or `widen_type`.
    :param column: the column's name.
    :param before: its type before (None for `create` and `add_column`).
    :param after: its type after.
    :param reason: why, in words (`new column in the rows`, `a value needs decimal(20,1)`).
    :param sample: a value (as text) of the batch that triggered the change, or None.
    """

    kind: ChangeKind
    column: str
    before: pa.DataType | None
    after: pa.DataType
    reason: str
    sample: str | None = None


@dataclass(frozen=True)
class SchemaPlan:
    """The changes to make, and the table they lead to.

    :param create: the table does not exist yet: create it as `target` says.
    :param target: the table's whole schema after the changes: every column's Arrow type, its
        nullability (`field.nullable`), a `pg_type` tag for JSON/UUID text, and a
        `dataloader.key` tag (`primary`/`unique`) on key columns.
    :param changes: the changes, in column order (for `create`, one per column).
    """

    create: bool
    target: pa.Schema
    changes: tuple[ColumnChange, ...]

    def added(self) -> list[pa.Field]:
        """The fields of `add_column` changes, as in `target`."""
        return [self.target.field(c.column) for c in self.changes if c.kind == "add_column"]

    def widened(self) -> list[pa.Field]:
        """The fields of `widen_type` changes, with their new type, as in `target`."""
        return [self.target.field(c.column) for c in self.changes if c.kind == "widen_type"]


def key_of(field: pa.Field) -> str | None:
    """`primary` or `unique` for a key column of a described or planned schema, else None."""
    value = (field.metadata or {}).get(KEY_TAG)
    return value.decode() if value else None


def as_text(value: Any, limit: int = 80) -> str:
    """A value as a history or error shows it: its text, cut to `limit` characters."""
    text = (
        value if isinstance(value, str) else repr(value) if isinstance(value, bytes) else str(value)
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"
