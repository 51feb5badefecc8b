"""Values and counts as a person reads and writes them: ISO timestamps, not reprs."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from dataloader.state.model import State
from dataloader.state.nanotimestamp import NanoTimestamp


def display_value(value: Any) -> str:
    """`value` as it would be written in a recipe: timestamps, dates and times in ISO 8601
    (nanosecond timestamps with their 9 digits), decimals exactly, text in double quotes."""
    if isinstance(value, NanoTimestamp):
        return value.isoformat()
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, tuple):
        return "(" + ", ".join(display_value(item) for item in value) + ")"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "null"
    return repr(value) if isinstance(value, float) else str(value)


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """`1 batch`, `2 batches`, `1,000 rows`."""
    word = noun if count == 1 else plural_noun or f"{noun}s"
    return f"{count:,} {word}"


def describe_cursors(state: State) -> str:
    """`updated_at = 2024-06-01T10:00:00` for each cursor, and how many files were read."""
    parts = [f"{column} = {display_value(value)}" for column, value in state.cursor_values.items()]
    files = state.watermarks.get("files")
    if isinstance(files, dict) and files:
        complete = sum(
            1 for entry in files.values() if isinstance(entry, dict) and entry.get("complete")
        )
        parts.append(f"{plural(complete, 'file')} read")
        if complete < len(files):
            parts[-1] += f", {len(files) - complete} partly"
    return ", ".join(parts)
