"""Types of the top-level fields of JSON and JSONL rows, from the text of their values.

JSON numbers are kept as their text while a sample is parsed (`Number`), so that `3.50` can
become decimal(3,2) and a 30-digit integer decimal(30,0) instead of a double. A field whose
sampled values are all numbers is typed by the number rules of `inference.infer_type`, one whose
values are all strings by its date and timestamp rules (quoted numbers stay text); any other
field (nested, boolean, mixed) is left to Arrow's JSON reader.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import IO, Any

import pyarrow as pa

from dataloader_filestore.inference import TypeDrift, infer_type

_INTEGER = re.compile(r"-?\d+")
_CHUNK = 1 << 20


class Number(str):
    """A JSON number, as written."""


def loads(text: str | bytes) -> Any:
    """JSON, its numbers as `Number`s."""
    return json.loads(text, parse_float=Number, parse_int=Number)


def plain(value: Any) -> Any:
    """A value with its `Number`s turned into int or float, as `json.loads` gives them."""
    if isinstance(value, Number):
        return int(value) if _INTEGER.fullmatch(value) else float(value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def field_kinds(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Each top-level field's rules: `numbers`, `temporal`, or none (absent) when its values
    are neither all numbers nor all strings."""
    kinds: dict[str, str | None] = {}
    for row in rows:
        for key, value in row.items():
            if value is None:
                kinds.setdefault(key, "")
                continue
            kind = (
                "numbers"
                if isinstance(value, Number)
                else "temporal"
                if type(value) is str
                else None
            )
            seen = kinds.get(key, "")
            kinds[key] = kind if seen in ("", kind) else None
    return {key: kind for key, kind in kinds.items() if kind}


def sample_lines(stream: IO[bytes], rows: int, limit: int) -> list[dict[str, Any]]:
    """The first `rows` JSON objects of a JSONL stream (reading at most `limit` bytes), their
    numbers as `Number`s; the sample stops at the first line that is not an object."""
    data, ended = b"", False
    while data.count(b"\n") < rows and len(data) < limit:
        chunk = stream.read(_CHUNK)
        if not chunk:
            ended = True
            break
        data += chunk
    lines = data.split(b"\n")
    if not ended:
        lines.pop()  # cut by the sample's end
    sample: list[dict[str, Any]] = []
    for line in lines:
        if len(sample) == rows:
            break
        if not line.strip():
            continue
        try:
            row = loads(line)
        except ValueError:
            break
        if not isinstance(row, dict):
            break
        sample.append(row)
    return sample


def sample_schema(
    rows: list[dict[str, Any]], declared: dict[str, pa.DataType]
) -> tuple[pa.Schema, dict[str, str]]:
    """What Arrow's JSON reader is told of the sample's fields: declared ones as declared,
    number fields as their inferred type (Arrow converts the numbers' text exactly), string
    fields as text; and the string fields, for a `ColumnTyper` to find their dates and
    timestamps. Fields typed null (only nulls sampled) are left to Arrow."""
    fields = dict(declared)
    strings: dict[str, str] = {}
    for key, kind in field_kinds(rows).items():
        if key in fields:
            continue
        if kind == "temporal":
            fields[key], strings[key] = pa.string(), kind
            continue
        values = pa.array([row.get(key) for row in rows], pa.string())
        found = infer_type(values, kinds=kind)
        if not pa.types.is_null(found):
            fields[key] = found
    return pa.schema(list(fields.items())), strings


def drift(error: pa.ArrowInvalid, schema: pa.Schema, rows: int) -> Exception:
    """Arrow's "failed to convert" error naming the column(s) of the type it names."""
    message = str(error)
    names = [field.name for field in schema if str(field.type) in message]
    if not names or "convert JSON" not in message:
        return error
    column = names[0] if len(names) == 1 else " or ".join(repr(name) for name in names)
    return TypeDrift(
        f"column {column!r}: {message} (the type was inferred from the first {rows} rows): set "
        f"`format_options.column_types: {{{names[0]}: …}}`, or a larger "
        "`format_options.infer_rows`"
    )


def in_order(batches: Iterable[pa.RecordBatch], order: list[str]) -> Iterator[pa.RecordBatch]:
    """The batches with the columns of `order` first, in that order (Arrow's reader puts the
    fields it was told of before those it found)."""
    for batch in batches:
        names = batch.schema.names
        present = set(names)
        first = [name for name in order if name in present]
        chosen = set(first)
        yield batch.select(first + [name for name in names if name not in chosen])
