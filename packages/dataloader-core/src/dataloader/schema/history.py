"""The schema history a recipe's state keeps: every change made to the destination table, as
a version, committed with the data that caused it.

`state.schema_history` holds `current` (the table's Arrow schema, serialized exactly),
`columns` (the current columns: `name`, `type`, `nullable`, `key`, `origin`) and `versions`,
oldest first: `{version, run_id, at, changes: [{kind, column, before, after, reason, sample}]}`.
A change's kind is `create`, `add_column`, `widen_type`, or, when an overwrite replaced the
table with another shape, `retype` and `drop_column`.
"""

from __future__ import annotations

import base64
from typing import Any

import pyarrow as pa

from dataloader.schema.plan import SchemaPlan, key_of
from dataloader.schema.types import TYPE_TAG, UUID_TAG, type_name

MAX_VERSIONS = 200


def current_schema(history: dict[str, Any]) -> pa.Schema | None:
    """The table's schema as the last recorded version left it; None before the first."""
    encoded = history.get("current")
    if not encoded:
        return None
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(encoded)))


def current_columns(history: dict[str, Any]) -> list[dict[str, Any]]:
    """The table's columns as the last version left them (`name`, `type`, `nullable`, `key`,
    `origin`)."""
    return list(history.get("columns", []))


def record(
    history: dict[str, Any], plan: SchemaPlan, run_id: str, at: str, declared: set[str]
) -> dict[str, Any] | None:
    """Record in `history` (in place) what `plan` changes from the recorded schema, as a new
    version; the version, or None when the table ends as recorded (an overwrite that created
    the table it replaced)."""
    versions: list[dict[str, Any]] = history.setdefault("versions", [])
    previous = current_schema(history)
    number = versions[-1]["version"] + 1 if versions else 1
    changes = _changes(previous, plan)
    if previous is not None and not changes:
        return None
    origins = {column["name"]: column["origin"] for column in history.get("columns", [])}
    for change in changes:
        if change["kind"] in ("create", "add_column"):
            column = change["column"]
            origins[column] = (
                "declared"
                if column in declared
                else "found in the destination"
                if change["reason"] == FOUND
                else f"inferred in version {number}"
            )
    version = {"version": number, "run_id": run_id, "at": at, "changes": changes}
    versions.append(version)
    del versions[:-MAX_VERSIONS]
    history["columns"] = [
        {
            "name": field.name,
            "type": type_word(field),
            "nullable": field.nullable,
            "key": key_of(field),
            "origin": origins.get(field.name, FOUND),
        }
        for field in plan.target
    ]
    history["current"] = base64.b64encode(plan.target.serialize().to_pybytes()).decode()
    return version


FOUND = "found in the destination"
"""The reason and origin of what the first version finds in a table that existed before."""


def _changes(previous: pa.Schema | None, plan: SchemaPlan) -> list[dict[str, Any]]:
    planned = {change.column: change for change in plan.changes}
    old = {field.name: field for field in previous} if previous is not None else None
    changes = []
    for field in plan.target:
        change = planned.get(field.name)
        reason = change.reason if change is not None else FOUND
        sample = change.sample if change is not None else None
        before = old.get(field.name) if old is not None else None
        if old is None:
            kind = "create"
        elif before is None:
            kind = "add_column"
        elif before.type != field.type:
            kind = "widen_type" if change is not None and change.kind == "widen_type" else "retype"
            reason = reason if kind == "widen_type" else REPLACED
        else:
            continue
        changes.append(_change(kind, field.name, before, field, reason, sample))
    if plan.create and old is not None:
        names = set(plan.target.names)
        changes += [
            _change("drop_column", name, field, None, REPLACED, None)
            for name, field in old.items()
            if name not in names
        ]
    return changes


REPLACED = "the table was replaced by an overwrite"


def _change(
    kind: str,
    column: str,
    before: pa.Field | None,
    after: pa.Field | None,
    reason: str,
    sample: str | None,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "column": column,
        "before": type_word(before) if before is not None else None,
        "after": type_word(after) if after is not None else None,
        "reason": reason,
        "sample": sample,
    }


def type_word(field: pa.Field) -> str:
    """A column's type in the recipe's words: `json` for text the table stores as JSON,
    `uuid` for text it stores as UUIDs (the row ids of normalized data)."""
    tag = (field.metadata or {}).get(TYPE_TAG)
    if tag in (b"json", b"jsonb"):
        return "json"
    if tag == UUID_TAG:
        return "uuid"
    return type_name(field.type)
