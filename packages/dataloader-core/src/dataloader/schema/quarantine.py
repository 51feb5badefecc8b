"""The rows a destination's quarantine keeps: each rejected row as JSON, with the rule it broke."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

QUARANTINE_SUFFIX = "__quarantine"
"""The quarantine table beside a destination table is named `<table>__quarantine`."""
QUARANTINE_SCHEMA = pa.schema(
    [
        ("row", pa.string()),
        ("rule", pa.string()),
        ("column", pa.string()),
        ("run_id", pa.string()),
        ("quarantined_at", pa.timestamp("us", tz="UTC")),
    ]
)


def quarantine_rows(rejected: Sequence[tuple[pa.Table, str, str]], run_id: str) -> pa.Table:
    """`(rows, rule, column)` groups as the table `write_quarantine` takes (QUARANTINE_SCHEMA)."""
    rows: list[str] = []
    rules: list[str] = []
    columns: list[str] = []
    for table, rule, column in rejected:
        rows += json_rows(table)
        rules += [rule] * table.num_rows
        columns += [column] * table.num_rows
    at = datetime.now(UTC)
    return pa.table(
        [rows, rules, columns, [run_id] * len(rows), [at] * len(rows)], schema=QUARANTINE_SCHEMA
    )


def json_rows(table: pa.Table) -> list[str]:
    """Each row of `table` as a JSON object, every value kept: decimals and times as their
    text, NaN and infinities as strings (JSON has none), bytes as hex, nanoseconds whole."""
    values = {name: _column_values(table.column(name)) for name in table.column_names}
    return [
        json.dumps(
            {name: values[name][i] for name in table.column_names},
            ensure_ascii=False,
            allow_nan=False,
            default=_text,
        )
        for i in range(table.num_rows)
    ]


def _column_values(column: pa.ChunkedArray) -> list[Any]:
    try:
        values = column.to_pylist()
    except (ValueError, OverflowError):  # no exact Python value (nanoseconds): Arrow's text
        return pc.cast(column, pa.string()).to_pylist()
    return [_json_safe(value) for value in values]


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime) or hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
