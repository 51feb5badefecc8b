"""Rows between MySQL and Arrow, column-wise.

Reads take the server's text of each value (no per-value Python conversion: the connection
decodes nothing) and let Arrow cast each column to the type its metadata gave. Writes turn
each Arrow column into the text `LOAD DATA` reads — tab-separated, backslash-escaped, `\\N`
for NULL — and join them into one file's bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataloader import ConnectorError
from dataloader.normalize.json_text import to_json_text
from dataloader_mysql.types import ColumnPlan

DAY_MICROS = 86_400_000_000
# Order matters: the backslash first, so the escapes added after it stay single.
_ESCAPES = [(b"\\", b"\\\\"), (b"\t", b"\\t"), (b"\n", b"\\n"), (b"\r", b"\\r"), (b"\x00", b"\\0")]
NULL_TEXT = b"\\N"
LOAD_OPTIONS = (
    "CHARACTER SET binary FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n'"
)


def read_batches(
    cursor: Any, plans: Sequence[ColumnPlan], batch_size: int
) -> Iterator[pa.RecordBatch]:
    """Fetch from an executed (streaming) cursor, `batch_size` rows per Arrow batch."""
    schema = pa.schema([plan.field for plan in plans])
    while True:
        rows = cursor.fetchmany(batch_size)
        if not rows:
            return
        columns = list(zip(*rows, strict=True))
        yield pa.record_batch(
            [decode(plan, values) for plan, values in zip(plans, columns, strict=True)],
            schema=schema,
        )


def decode(plan: ColumnPlan, values: Sequence[Any]) -> pa.Array:
    """One column's raw values (text, or bytes for binary columns) as `plan.field.type`."""
    target = plan.field.type
    if plan.kind == "bytes":
        return pa.array(values, pa.binary())
    text = pa.array(values, pa.string())
    try:
        if plan.kind == "bool":
            return pc.not_equal(text.cast(pa.int64()), 0)
        if plan.kind == "time":
            micros = text.cast(pa.int64())
            outside = pc.or_(pc.less(micros, 0), pc.greater_equal(micros, DAY_MICROS))
            if pc.any(outside).as_py():
                raise ConnectorError(
                    f"column {plan.name!r} holds a TIME outside 00:00:00 to 23:59:59.999999, "
                    "which an Arrow time of day cannot hold",
                    key="source.query",
                    value=plan.name,
                    expected="TIME values within one day, or a query that converts them",
                )
            return micros.view(pa.time64("us"))
        if pa.types.is_timestamp(target) and target.tz is not None:
            return text.cast(pa.timestamp(target.unit)).view(target)
        return text if pa.types.is_string(target) else text.cast(target)
    except pa.ArrowInvalid as exc:
        raise ConnectorError(
            f"column {plan.name!r} holds a value that is not a valid {target}: {exc}",
            key="source.query",
            value=plan.name,
            expected=f"values {target} can hold (no zero dates such as 0000-00-00)",
        ) from exc


def escaped(array: pa.Array, *, plain: bool = False) -> pa.Array:
    """A binary array of each value's `LOAD DATA` text; NULL as `\\N`. `plain`: the text
    holds no byte that needs an escape (numbers, dates), so it is not searched for one."""
    data = array.cast(pa.large_binary())
    if not plain:
        for old, new in _ESCAPES:
            data = pc.replace_substring(data, old, new)
    return data.fill_null(NULL_TEXT)


def _plain_text(arrow_type: pa.DataType) -> bool:
    """Whether the `column_text` of this type is always free of backslashes, tabs, line
    breaks and NUL bytes."""
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return (
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_decimal(arrow_type)
        or pa.types.is_boolean(arrow_type)
        or pa.types.is_temporal(arrow_type)
    )


def column_text(field: pa.Field, array: pa.Array) -> pa.Array:
    """`array` as the text MySQL reads into a column created for `field` (unescaped)."""
    t = array.type
    if pa.types.is_dictionary(t):
        array, t = array.dictionary_decode(), t.value_type
    if pa.types.is_boolean(t):
        return array.cast(pa.int8()).cast(pa.string())
    if pa.types.is_floating(t):
        finite = pc.is_finite(array)
        if not pc.all(pc.or_kleene(finite, array.is_null())).as_py():
            raise ConnectorError(
                f"column {field.name!r} holds NaN or an infinity, which MySQL cannot store",
                key="destination.table",
                value=field.name,
                expected="finite numbers or NULL (replace NaN with a transform)",
            )
        if t.bit_width < 64:
            # float32's shortest text can exceed FLOAT's range once parsed (3.4028235e+38 >
            # FLT_MAX); its exact value as a double cannot, and rounds back to the same float
            array = array.cast(pa.float64())
        return array.cast(pa.string())
    if pa.types.is_timestamp(t):
        if t.tz is not None:
            array = array.view(pa.timestamp(t.unit))
        if t.unit == "ns":
            try:
                array = array.cast(pa.timestamp("us"))
            except pa.ArrowInvalid as exc:
                raise ConnectorError(
                    f"column {field.name!r} holds timestamps with nanoseconds, which "
                    "DATETIME(6) would cut to microseconds",
                    key="destination.table",
                    value=field.name,
                    expected="timestamps with at most microseconds",
                ) from exc
        return array.cast(pa.string())
    if pa.types.is_time(t) and t.unit == "ns":
        array = array.cast(pa.time64("us"))
    if pa.types.is_nested(t):
        return to_json_text(array)
    if pa.types.is_fixed_size_binary(t) or pa.types.is_binary_view(t):
        return array.cast(pa.binary())
    if pa.types.is_string_view(t):
        return array.cast(pa.string())
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return array
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return array
    return array.cast(pa.string())


def load_file_bytes(batch: pa.RecordBatch) -> pa.Buffer:
    """The batch as the bytes of a `LOAD DATA` file (`LOAD_OPTIONS`), one line per row."""
    columns = [
        escaped(column_text(field, column), plain=_plain_text(column.type))
        for field, column in zip(batch.schema, batch.columns, strict=True)
    ]
    empty = pa.scalar(b"", pa.large_binary())
    tab, newline = pa.scalar(b"\t", pa.large_binary()), pa.scalar(b"\n", pa.large_binary())
    lines = pc.binary_join_element_wise(*columns, tab) if len(columns) > 1 else columns[0]
    lines = pc.binary_join_element_wise(lines, empty, newline)
    _, offsets, data = lines.buffers()
    if data is None:
        return pa.py_buffer(b"")
    bounds = np.frombuffer(offsets, dtype=np.int64)
    start, end = int(bounds[lines.offset]), int(bounds[lines.offset + len(lines)])
    return data.slice(start, end - start)
