"""The schema history a recipe's state keeps: every change applied to the destination table, as
a version, committed with the data that caused it.

`state.schema` holds `current` (the table's Arrow schema, serialized exactly) and `versions`,
oldest first: `{version, run_id, at, changes: [{kind, column, before, after, reason, sample}],
columns: [{name, type, nullable, key, origin}]}`.
"""

from __future__ import annotations

import base64
from typing import Any

import pyarrow as pa

from dataloader.schema.plan import SchemaPlan, key_of
from dataloader.schema.types import type_name

MAX_VERSIONS = 1000


def current_schema(history: dict[str, Any]) -> pa.Schema | None:
    """The table's schema as the last recorded version left it; None before the first."""
    encoded = history.get("current")
    if not encoded:
        return None
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(encoded)))


def record(
    history: dict[str, Any], plan: SchemaPlan, run_id: str, at: str, declared: set[str]
) -> dict[str, Any]:
    """Add `plan` to `history` as a new version (in place); the version."""
    versions: list[dict[str, Any]] = history.setdefault("versions", [])
    number = versions[-1]["version"] + 1 if versions else 1
    origins = (
        {column["name"]: column["origin"] for column in versions[-1]["columns"]} if versions else {}
    )
    for change in plan.changes:
        if change.kind != "widen_type":
            origins[change.column] = (
                "declared" if change.column in declared else f"inferred in version {number}"
            )
    version = {
        "version": number,
        "run_id": run_id,
        "at": at,
        "changes": [
            {
                "kind": change.kind,
                "column": change.column,
                "before": type_name(change.before) if change.before is not None else None,
                "after": type_name(change.after),
                "reason": change.reason,
                "sample": change.sample,
            }
            for change in plan.changes
        ],
        "columns": [
            {
                "name": field.name,
                "type": type_name(field.type),
                "nullable": field.nullable,
                "key": key_of(field),
                "origin": origins.get(field.name, "found in the destination"),
            }
            for field in plan.target
        ],
    }
    versions.append(version)
    del versions[:-MAX_VERSIONS]
    history["current"] = base64.b64encode(plan.target.serialize().to_pybytes()).decode()
    return version
