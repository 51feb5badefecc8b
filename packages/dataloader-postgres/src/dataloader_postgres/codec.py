"""COPY codecs: how rows cross the wire between Postgres and Arrow.

`CsvCopyCodec` is the pure-Python codec: `COPY … TO STDOUT (FORMAT csv)` parsed by pyarrow's
streaming CSV reader (through a pipe, so memory stays bounded), and Arrow written as CSV into
`COPY … FROM STDIN`. Values CSV cannot carry directly (bytea, arrays, intervals) are converted
column-wise with numpy/pyarrow, never row by row on the read path. A faster codec (the Rust
plugin's binary COPY) implements the same `CopyCodec` protocol.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson

from dataloader import ConnectorError
from dataloader.normalize.json_text import to_json_text
from dataloader.sql import quote_identifier
from dataloader_postgres.types import ColumnPlan

PIPE_CHUNK = 1 << 20
CSV_BLOCK = 8 << 20


class CopyCodec(Protocol):
    """Moves Arrow data in and out of Postgres over COPY, on a DB-API (psycopg2) connection."""

    def read(
        self, connection: Any, query: str, plans: Sequence[ColumnPlan], batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        """Yield the rows of `query` as record batches of at most `batch_size` rows."""
        ...

    def write(self, connection: Any, table_sql: str, batch: pa.RecordBatch) -> None:
        """Append `batch` to the table `table_sql` (already quoted) inside the open transaction."""
        ...


class CsvCopyCodec:
    """The pure-Python codec: CSV over COPY, parsed and written by pyarrow."""

    name = "csv"

    # -- read ----------------------------------------------------------------------------
    def read(
        self, connection: Any, query: str, plans: Sequence[ColumnPlan], batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        select = ", ".join(
            expression
            for plan in plans
            for expression in plan.select_sql(quote_identifier(plan.name))
        )
        copy_sql = f"COPY (SELECT {select} FROM ({query}) AS q) TO STDOUT WITH (FORMAT csv)"
        csv_names: list[str] = []
        csv_types: dict[str, pa.DataType] = {}
        for index, plan in enumerate(plans):
            for part, arrow_type in enumerate(plan.csv_types()):
                name = f"c{index}_{part}"
                csv_names.append(name)
                csv_types[name] = arrow_type
        read_fd, write_fd = os.pipe()
        failure: list[BaseException] = []

        def pump() -> None:
            try:
                with os.fdopen(write_fd, "wb", buffering=PIPE_CHUNK) as sink:
                    connection.cursor().copy_expert(copy_sql, sink, size=PIPE_CHUNK)
            except BaseException as exc:  # reported by the reading side
                failure.append(_connection_loss(connection, exc))

        thread = threading.Thread(target=pump, name="pg-copy-out", daemon=True)
        thread.start()
        source = os.fdopen(read_fd, "rb", buffering=PIPE_CHUNK)
        finished = False
        try:
            try:
                reader = pacsv.open_csv(
                    source,
                    read_options=pacsv.ReadOptions(column_names=csv_names, block_size=CSV_BLOCK),
                    # A one-column row holding NULL is an empty line: keep it.
                    parse_options=pacsv.ParseOptions(
                        newlines_in_values=True, ignore_empty_lines=False
                    ),
                    convert_options=pacsv.ConvertOptions(
                        column_types=csv_types,
                        null_values=[""],
                        true_values=["t"],
                        false_values=["f"],
                        strings_can_be_null=True,
                        quoted_strings_can_be_null=False,
                    ),
                )
            except pa.ArrowInvalid as exc:
                empty = "Empty CSV file" in str(exc)
                # At the end of the stream the pump has ended (or is ending): its failure, if
                # any, is the cause. Otherwise it may be blocked on the pipe: `finally` cancels.
                if empty or not thread.is_alive():
                    thread.join()
                    if failure:
                        raise failure[0] from None
                if empty:
                    finished = True
                    return
                raise _oversized_row(exc) from None
            pending: list[pa.RecordBatch] = []
            count = 0
            rows_read = 0
            for raw in _rows_in_blocks(reader):
                decoded = decode(raw, plans, first_row=rows_read)
                rows_read += raw.num_rows
                while decoded.num_rows:
                    take = min(batch_size - count, decoded.num_rows)
                    pending.append(decoded.slice(0, take))
                    decoded = decoded.slice(take)
                    count += take
                    if count == batch_size:
                        yield _combine(pending)
                        pending, count = [], 0
            if count:
                yield _combine(pending)
            finished = True
        finally:
            if not finished and thread.is_alive():
                connection.cancel()
            source.close()
            thread.join()
            if failure and finished:
                raise failure[0]

    # -- write ---------------------------------------------------------------------------
    def write(self, connection: Any, table_sql: str, batch: pa.RecordBatch) -> None:
        columns = ", ".join(quote_identifier(name) for name in batch.schema.names)
        buffer = io.BytesIO()
        pacsv.write_csv(
            encode(in_microseconds(batch)),
            buffer,
            pacsv.WriteOptions(include_header=False, quoting_style="needed"),
        )
        buffer.seek(0)
        connection.cursor().copy_expert(
            f"COPY {table_sql} ({columns}) FROM STDIN WITH (FORMAT csv)", buffer, size=PIPE_CHUNK
        )


def _oversized_row(exc: pa.ArrowInvalid) -> Exception:
    """pyarrow's CSV reader parses blocks of `CSV_BLOCK` bytes and cannot read a row larger
    than one: that limit, said in the connector's terms."""
    if "straddl" not in str(exc):
        return exc
    return ConnectorError(
        f"Postgres read: a row is larger than the CSV codec's {CSV_BLOCK >> 20} MiB block "
        "(a very long text, bytea or array value)",
        key="codec",
        value="csv",
        expected="`codec: binary` (dataloader-rust), which reads rows of any size, or the "
        "large column trimmed or left out in `query`",
    )


def _rows_in_blocks(reader: Any) -> Iterator[pa.RecordBatch]:
    try:
        yield from reader
    except pa.ArrowInvalid as exc:
        raise _oversized_row(exc) from None


def choose_codec(setting: str) -> CopyCodec:
    """The codec a recipe's `codec:` asks for: `csv`; `binary`, which the `dataloader-rust`
    accelerator provides; or `auto`, binary when that accelerator is installed and enabled.

    :raises ConnectorError: for `binary` without the accelerator.
    """
    if setting == "csv":
        return CsvCopyCodec()
    from dataloader.registry import get_registry

    accelerated = get_registry().accelerator("postgres_copy_codec")
    if accelerated is not None:
        return accelerated()
    if setting == "binary":
        raise ConnectorError(
            "`codec: binary` needs the binary COPY codec of dataloader-rust, which is not "
            "installed (or is disabled by DATALOADER_DISABLE_PLUGINS)",
            key="codec",
            value=setting,
            expected="`pip install dataloader-rust`, or `codec: csv` / `auto`",
        )
    return CsvCopyCodec()


def _connection_loss(connection: Any, exc: BaseException) -> BaseException:
    """psycopg2 reports a connection lost in the middle of `COPY … TO STDOUT` as a bare
    `DatabaseError` ("error with status PGRES_COPY_OUT and no message from the libpq"); once
    psycopg2 has marked the connection broken, report it as the `OperationalError` it is."""
    import psycopg2

    if (
        type(exc) is psycopg2.DatabaseError
        and getattr(exc, "pgcode", None) is None
        and getattr(connection, "closed", 0)
    ):
        lost = psycopg2.OperationalError(
            f"could not receive data from server: connection lost during COPY ({exc})"
        )
        lost.__cause__ = exc
        return lost
    return exc


def _combine(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


# -- decoding: CSV columns → Arrow columns ------------------------------------------------
def decode(raw: pa.RecordBatch, plans: Sequence[ColumnPlan], first_row: int = 0) -> pa.RecordBatch:
    """The CSV columns of `raw` as the Arrow columns `plans` describe.

    :param first_row: how many rows of the stream came before `raw` (for row numbers in errors).
    :raises ConnectorError: for a value Arrow cannot hold (`24:00:00`, infinity, a numeric with
        too many digits, NaN in a decimal) naming the column, the value and what to do about it,
        or for a multi-dimensional array naming the column and the row. The first bad value in
        row order is reported (the leftmost in its row), as the binary codec reports it.
    """
    arrays: list[pa.Array] = []
    failures: list[tuple[int, int, UnreadableValue | UnsupportedArray]] = []
    position = 0
    for number, plan in enumerate(plans):
        width = len(plan.csv_types())
        parts = [raw.column(position + i) for i in range(width)]
        position += width
        try:
            if plan.kind == "bytea":
                arrays.append(hex_to_binary(parts[0]))
            elif plan.kind == "interval":
                arrays.append(build_intervals(*parts, element=plan))
            elif plan.kind == "array":
                assert plan.element is not None
                arrays.append(json_to_lists(parts[0], plan.element, plan.name))
            elif parts[0].type == plan.field.type:
                arrays.append(parts[0])
            else:
                arrays.append(_from_text(parts[0], plan))
        except (UnreadableValue, UnsupportedArray) as bad:
            failures.append((bad.index, number, bad))
    if failures:
        _, _, first = min(failures, key=lambda failure: failure[:2])
        if isinstance(first, UnsupportedArray):
            raise ConnectorError(_unsupported_message(first, first_row)) from None
        raise ConnectorError(_unreadable_message(first)) from None
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema([plan.field for plan in plans]))


class UnreadableValue(ValueError):
    """A value as Postgres printed it that has no Arrow value of its column's type."""

    def __init__(self, value: str, plan: ColumnPlan, column: str, index: int = 0) -> None:
        super().__init__(f"{column}: {value!r} does not fit {plan.field.type}")
        self.value = value
        self.plan = plan
        self.column = column
        self.index = index  # the row (of the array decoded) holding it


class UnsupportedArray(ValueError):
    """A multi-dimensional array, which is not read as a list."""

    def __init__(self, column: str, index: int, dimensions: int) -> None:
        super().__init__(f"{column}: a {dimensions}-dimensional array")
        self.column = column
        self.index = index
        self.dimensions = dimensions


def _unsupported_message(bad: UnsupportedArray, first_row: int) -> str:
    return (
        f"Postgres read: column {_debug_quoted(bad.column)}, row {first_row + bad.index + 1}: "
        f"a {bad.dimensions}-dimensional array (only one-dimensional arrays are read as "
        "lists): cast the column in `query` (e.g. `col::text`)"
    )


def _debug_quoted(name: str) -> str:
    """`name` in double quotes with `\\`, `"` and control characters escaped (as the binary
    codec quotes column names)."""
    escapes = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0"}
    out = []
    for char in name:
        if char in escapes:
            out.append(escapes[char])
        elif ord(char) < 32 or ord(char) == 127:
            out.append(f"\\u{{{ord(char):x}}}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _unreadable_message(bad: UnreadableValue) -> str:
    arrow_type = bad.plan.field.type
    where = f"an element of column {bad.column!r}" if bad.plan.name != bad.column else None
    subject = where or f"column {bad.column!r}"
    head = f"{subject} holds {bad.value!r}, which {arrow_type} cannot hold"
    if pa.types.is_time(arrow_type):
        hint = (
            "Arrow's time of day ends at 23:59:59.999999 and Postgres' 24:00:00 has no "
            "time64 value; select the column cast in `query` (e.g. `col::text`, or "
            "`LEAST(col, '23:59:59.999999')` to clamp it)"
        )
    elif pa.types.is_decimal(arrow_type) and bad.plan.field.metadata:
        hint = (
            f"numeric without precision is read as {arrow_type} (at most "
            f"{arrow_type.precision - arrow_type.scale} digits before the point and "
            f"{arrow_type.scale} after, no NaN or Infinity); set `unconstrained_numeric: string` "
            "to keep every value exactly (or `float`), or cast the column to numeric(p,s) "
            "in `query`"
        )
    elif pa.types.is_decimal(arrow_type):
        hint = (
            "an Arrow decimal holds no NaN or Infinity; filter the value out or cast the "
            "column (e.g. to float8 or text) in `query`"
        )
    else:
        hint = "cast the column in `query` to a type that holds it"
    return f"Postgres read: {head}: {hint}"


def _validity(array: pa.Array) -> pa.Buffer | None:
    if array.null_count == 0:
        return None
    valid = np.asarray(pc.is_valid(array).to_numpy(zero_copy_only=False), dtype=bool)
    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def _string_parts(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (relative, int64) and data bytes of a string/binary array."""
    array = array.cast(pa.large_binary()) if not pa.types.is_large_binary(array.type) else array
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64)[
        array.offset : array.offset + len(array) + 1
    ]
    data = (
        np.frombuffer(buffers[2], dtype=np.uint8)
        if buffers[2] is not None
        else np.zeros(0, np.uint8)
    )
    return offsets - offsets[0], data[offsets[0] : offsets[-1]]


_HEX_VALUE = np.zeros(256, dtype=np.uint8)
_HEX_VALUE[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10, dtype=np.uint8)
_HEX_VALUE[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16, dtype=np.uint8)
_HEX_VALUE[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16, dtype=np.uint8)
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", np.uint8)


def hex_to_binary(array: pa.Array) -> pa.Array:
    """Postgres `\\x0a1b…` text into binary values, without a Python loop."""
    offsets, data = _string_parts(array)
    lengths = np.diff(offsets)
    keep = np.ones(len(data), dtype=bool)
    starts = offsets[:-1][lengths >= 2]
    keep[starts] = False
    keep[starts + 1] = False
    digits = _HEX_VALUE[data[keep]]
    decoded = (digits[0::2] << 4) | digits[1::2]
    new_offsets = np.concatenate([[0], np.cumsum(np.maximum(lengths - 2, 0) // 2)]).astype(np.int64)
    result = pa.Array.from_buffers(
        pa.large_binary(),
        len(array),
        [_validity(array), pa.py_buffer(new_offsets), pa.py_buffer(decoded.tobytes())],
    )
    return result.cast(pa.binary())


def binary_to_hex(array: pa.Array) -> pa.Array:
    """Binary values into Postgres `\\x…` text, without a Python loop."""
    offsets, data = _string_parts(array)
    lengths = np.diff(offsets)
    new_offsets = np.concatenate([[0], np.cumsum(lengths * 2 + 2)]).astype(np.int64)
    out = np.empty(int(new_offsets[-1]), dtype=np.uint8)
    starts = new_offsets[:-1]
    out[starts] = ord("\\")
    out[starts + 1] = ord("x")
    owner = np.repeat(np.arange(len(array)), lengths)
    relative = np.arange(len(data)) - offsets[:-1][owner] if len(data) else np.zeros(0, np.int64)
    position = starts[owner] + 2 + relative * 2
    out[position] = _HEX_DIGITS[data >> 4]
    out[position + 1] = _HEX_DIGITS[data & 15]
    return pa.Array.from_buffers(
        pa.large_string(),
        len(array),
        [_validity(array), pa.py_buffer(new_offsets), pa.py_buffer(out.tobytes())],
    )


_MICROS_PER_HOUR = 3_600_000_000
# An interval's time part whose nanoseconds overflow int64 (as month_day_nano holds them).
_MAX_INTERVAL_MICROS = np.iinfo(np.int64).max // 1000


def build_intervals(
    months: pa.Array,
    days: pa.Array,
    hours: pa.Array,
    within_hour: pa.Array,
    *,
    element: ColumnPlan,
    column: str | None = None,
) -> pa.Array:
    """Integer columns (months, days, whole hours, microseconds within the hour) into a
    month_day_nano interval column.

    :raises UnreadableValue: for the first interval whose time part has no int64 nanoseconds.
    """
    packed = np.zeros(len(months), dtype=_MONTH_DAY_NANO)
    packed["months"] = pc.fill_null(months, 0).to_numpy()
    packed["days"] = pc.fill_null(days, 0).to_numpy()
    # Exact: whole hours times an hour never exceed the int64 time part they come from.
    micros = (
        pc.fill_null(hours, 0).to_numpy().astype(np.int64) * _MICROS_PER_HOUR
        + pc.fill_null(within_hour, 0).to_numpy()
    )
    too_long = np.abs(micros) > _MAX_INTERVAL_MICROS
    if too_long.any():
        row = int(np.argmax(too_long))
        text = _interval_text(
            int(packed["months"][row]), int(packed["days"][row]), int(micros[row])
        )
        raise UnreadableValue(text, element, column or element.name, row)
    packed["nanos"] = micros * 1000
    return pa.Array.from_buffers(
        pa.month_day_nano_interval(),
        len(months),
        [_validity(months), pa.py_buffer(packed.tobytes())],
    )


def _interval_text(months: int, days: int, micros: int) -> str:
    """An interval as Postgres prints it with IntervalStyle postgres (`1 year -2 days
    +03:04:05.6`): the value of an error message."""
    words: list[str] = []
    negative_before = False
    years, month = int(months / 12), months - int(months / 12) * 12
    for value, unit in ((years, "year"), (month, "mon"), (days, "day")):
        if value:
            sign = "+" if negative_before and value > 0 else ""
            words.append(f"{sign}{value} {unit}{'' if value == 1 else 's'}")
            negative_before = value < 0
    if not words or micros:
        sign = "-" if micros < 0 else ("+" if negative_before else "")
        size = abs(micros)
        seconds, fraction = divmod(size, 1_000_000)
        clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if fraction:
            clock += "." + f"{fraction:06d}".rstrip("0")
        words.append(sign + clock)
    return " ".join(words)


def json_to_lists(array: pa.Array, element: ColumnPlan, column: str | None = None) -> pa.Array:
    """The JSON arrays an array plan selects (`ColumnPlan.select_sql`) into an Arrow list column
    of the element's type: parsed by Arrow's JSON reader, the elements decoded column-wise.
    `column` names the array column in errors.

    :raises UnreadableValue: for the first element (in row order) its type cannot hold.
    :raises UnsupportedArray: for a multi-dimensional array (nested JSON, `[[…]]`), unless an
        element of an earlier row is unreadable.
    """
    name = column or element.name
    arrow_type = pa.list_(element.field.type)
    if len(array) == 0:
        return pa.array([], type=arrow_type)
    interval = element.kind == "interval"
    # An interval element is itself a JSON array of numbers: nested are `[["…`, `[[null`, `[[[`.
    pattern = r'^\[\[(\[|"|n)' if interval else r"^\[\["
    nested = pc.fill_null(pc.match_substring_regex(array, pattern), False)
    if pc.any(nested).as_py():
        row = pc.index(nested, True).as_py()
        json_to_lists(array.slice(0, row), element, column)  # an earlier row's error first
        text = array[row].as_py()
        raise UnsupportedArray(name, row, len(text) - len(text.lstrip("[")))
    parsed_type = pa.list_(pa.list_(pa.int64()) if interval else pa.string())
    lines = pc.binary_join_element_wise('{"v":', pc.fill_null(array, "null"), "}\n", "")
    _, data = _string_parts(lines)
    table = pajson.read_json(
        pa.BufferReader(pa.py_buffer(data.tobytes())),
        parse_options=pajson.ParseOptions(explicit_schema=pa.schema([("v", parsed_type)])),
    )
    lists = table.column("v").combine_chunks()
    try:
        if interval:
            months, days, hours, within = (pc.list_element(lists.values, i) for i in range(4))
            values = build_intervals(
                months.cast(pa.int32()), days.cast(pa.int32()), hours, within, element=element
            )
        else:
            values = _from_text(lists.values, element)
    except UnreadableValue as bad:
        row = pc.list_parent_indices(lists)[bad.index].as_py()
        raise UnreadableValue(bad.value, element, name, row) from None
    return pa.ListArray.from_arrays(lists.offsets, values, type=arrow_type, mask=lists.is_null())


def _from_text(text: pa.Array, element: ColumnPlan, column: str | None = None) -> pa.Array:
    """Values as Postgres prints them (`value::text`) into the element's Arrow type.

    :raises UnreadableValue: for the first value the type cannot hold, named by `column`
        (the element's own name when not given).
    """
    arrow_type = element.field.type
    if element.kind == "bytea":
        return hex_to_binary(text)
    if pa.types.is_string(arrow_type):
        return text
    try:
        return _cast_text(text, arrow_type)
    except pa.ArrowInvalid:
        pass
    if pa.types.is_date(arrow_type) or pa.types.is_timestamp(arrow_type):
        values, bad = _parse_instants(text, arrow_type)
        if bad is None:
            return values
    else:
        bad = _first_unreadable(text, arrow_type)
    raise UnreadableValue(str(text[bad].as_py()), element, column or element.name, bad)


def _cast_text(text: pa.Array, arrow_type: pa.DataType) -> pa.Array:
    if pa.types.is_time(arrow_type):  # Arrow casts no string to time: through a timestamp
        stamps = pc.binary_join_element_wise("1970-01-01 ", text, "")
        return stamps.cast(pa.timestamp("us")).cast(arrow_type)
    return text.cast(arrow_type)


def _first_unreadable(text: pa.Array, arrow_type: pa.DataType) -> int:
    """The index of the first value of `text` that does not cast to `arrow_type` (one is known
    to fail)."""
    low, high = 0, len(text)
    while high - low > 1:  # [low, high) holds a failing value
        middle = (low + high) // 2
        try:
            _cast_text(text.slice(low, middle - low), arrow_type)
            low = middle
        except pa.ArrowInvalid:
            high = middle
    return low


# Dates and timestamps as Postgres prints them (DateStyle ISO, TimeZone UTC), BC and years past
# 9999 included; `infinity` and `-infinity` do not match.
_INSTANT = (
    r"^(?P<year>\d{4,})-(?P<month>\d\d)-(?P<day>\d\d)"
    r"(?: (?P<hour>\d\d):(?P<minute>\d\d):(?P<second>\d\d)(?:\.(?P<fraction>\d{1,6}))?"
    r"(?:\+00)?)?(?P<bc> BC)?$"
)
_INT64_MAX = np.iinfo(np.int64).max


def _parse_instants(text: pa.Array, arrow_type: pa.DataType) -> tuple[pa.Array, int | None]:
    """Dates or timestamps Arrow's parser refuses (BC, years past 9999), decoded column-wise in
    the proleptic Gregorian calendar; with the index of the first value the type cannot hold
    (infinity, or past timestamp[us]'s year 294247), or None."""
    parts = pc.extract_regex(text, _INSTANT)
    matched = parts.is_valid()

    def number(field: str) -> np.ndarray:
        digits = pc.fill_null(parts.field(field), "0")
        digits = pc.if_else(pc.equal(digits, ""), "0", digits)
        return np.asarray(digits.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)

    bc = np.asarray(
        pc.fill_null(pc.equal(parts.field("bc"), " BC"), False).to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    year = number("year")
    year = np.where(bc, 1 - year, year)
    month, day = number("month"), number("day")
    # Days since 1970-01-01 of a proleptic Gregorian date (eras of 400 years from 0000-03-01).
    year = year - (month <= 2)
    era = np.floor_divide(year, 400)
    year_of_era = year - era * 400
    day_of_year = (153 * np.where(month > 2, month - 3, month + 9) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days = era * 146_097 + day_of_era - 719_468
    valid = np.asarray(pc.is_valid(text).to_numpy(zero_copy_only=False), dtype=bool)
    unreadable = valid & ~np.asarray(matched.to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_date(arrow_type):
        unreadable |= valid & ((days < -(2**31)) | (days >= 2**31))
        storage = np.where(unreadable, 0, days).astype(np.int32)
    else:
        seconds = days * 86_400 + number("hour") * 3600 + number("minute") * 60 + number("second")
        fraction = pc.utf8_rpad(pc.fill_null(parts.field("fraction"), ""), 6, "0")
        micros = np.asarray(fraction.cast(pa.int64()).to_numpy(zero_copy_only=False), np.int64)
        limit = (_INT64_MAX - micros) // 1_000_000
        unreadable |= valid & ((seconds > limit) | (seconds < -limit))
        storage = np.where(unreadable, 0, seconds) * 1_000_000 + np.where(unreadable, 0, micros)
    bad = int(np.argmax(unreadable)) if unreadable.any() else None
    values = pa.Array.from_buffers(
        arrow_type, len(text), [_validity(text), pa.py_buffer(storage.tobytes())]
    )
    return values, bad


# -- encoding: Arrow columns → CSV the COPY parser accepts ---------------------------------
_MONTH_DAY_NANO = np.dtype([("months", "<i4"), ("days", "<i4"), ("nanos", "<i8")])


def interval_text(array: pa.Array) -> pa.Array:
    """month_day_nano intervals as Postgres interval input (`1 mons 2 days 3 microseconds`)."""
    packed = np.frombuffer(array.buffers()[1], dtype=_MONTH_DAY_NANO)[
        array.offset : array.offset + len(array)
    ]
    nulls = np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    fields = [
        pa.array(values, mask=nulls).cast(pa.string())
        for values in (packed["months"], packed["days"], packed["nanos"] // 1000)
    ]
    return pc.binary_join_element_wise(
        fields[0], " mons ", fields[1], " days ", fields[2], " microseconds", ""
    )


def array_literals(array: pa.Array) -> pa.Array:
    """A list column as Postgres array literals (`{"a",NULL,"b"}`), column-wise."""
    if array.null_count == len(array):
        return pa.nulls(len(array), pa.string())
    # Offsets from 0 and the values they cover: a sliced list column shares its parent's buffers.
    offsets = array.offsets
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    offsets = pc.subtract(offsets, pa.scalar(start, offsets.type))
    values = array.values.slice(start, end - start)
    if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        items = array_literals(values)  # a sub-array is written unquoted: `{{1,2},{3,4}}`
    else:
        text = _copy_text(values)
        text = text if pa.types.is_string(text.type) else text.cast(pa.string())
        escaped = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
        items = pc.binary_join_element_wise('"', escaped, '"', "")
    items = pc.fill_null(items, "NULL")
    builder = pa.LargeListArray if pa.types.is_large_list(array.type) else pa.ListArray
    lists = builder.from_arrays(offsets, items, mask=array.is_null())
    return pc.binary_join_element_wise("{", pc.binary_join(lists, ","), "}", "")


def _copy_text(array: pa.Array) -> pa.Array:
    """A column in a form Postgres' input accepts: text where Arrow's own form is not."""
    kind = array.type
    if isinstance(kind, pa.BaseExtensionType):
        return _copy_text(array.storage)
    if pa.types.is_string_view(kind):
        return array.cast(pa.large_string())
    if pa.types.is_binary_view(kind):
        return binary_to_hex(array.cast(pa.large_binary()))
    if (
        pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
    ):
        return binary_to_hex(array)
    if pa.types.is_duration(kind):
        try:
            micros = array.cast(pa.duration("us")).cast(pa.int64())
        except pa.ArrowInvalid:
            raise ValueError(
                f"a {kind} value finer than the microseconds of a Postgres interval"
            ) from None
        return pc.binary_join_element_wise(micros.cast(pa.string()), " microseconds", "")
    if kind == pa.month_day_nano_interval():
        return interval_text(array)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return array_literals(array)
    if pa.types.is_struct(kind) or pa.types.is_map(kind):
        # Strict JSON from the Arrow values: numbers stay numbers (not their text), instants
        # RFC 3339 — as later runs write them into the same jsonb column (dataloader.schema).
        return to_json_text(array)
    if pa.types.is_dictionary(kind):
        return _copy_text(array.cast(kind.value_type))
    if pa.types.is_timestamp(kind) and kind.tz is not None and kind.tz != "UTC":
        # pyarrow prints a zone's offset in whole minutes (Berlin's 1890 +00:53:28 as +0053),
        # which would move the instant: in UTC it is exact.
        array = array.cast(pa.timestamp(kind.unit, "UTC"))
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return _calendar_text(array)
    if pa.types.is_time(kind):
        return _clock_text(array)
    return array


def _clock_text(array: pa.Array) -> pa.Array:
    """A time column as written to COPY: Arrow's own form, but the end of the day (which
    Postgres' time holds and pyarrow prints as out of range) as `24:00:00`."""
    kind = array.type
    per_day = 86_400 * _UNITS_PER_SECOND[kind.unit]
    raw = array.cast(pa.int32() if pa.types.is_time32(kind) else pa.int64()).cast(pa.int64())
    highest = pc.max(raw).as_py()
    if highest is None or highest < per_day:
        return array
    midnight = pc.fill_null(pc.equal(raw, per_day), False)
    text = pc.if_else(midnight, pa.scalar(None, kind), array).cast(pa.string())
    return pc.if_else(midnight, "24:00:00", text)


_UNITS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
# Days from 1970-01-01 to 0001-01-01 and to 9999-12-31: the years pyarrow writes as Postgres
# reads them. Outside them it writes `-4712-11-24` (Postgres wants `4713-11-24 BC`) or wraps
# the year past 32767, so those values are written here.
_FIRST_DAY, _LAST_DAY = -719_162, 2_932_896


def _calendar_text(array: pa.Array) -> pa.Array:
    """A date or timestamp column as written to COPY: Arrow's own form when every value lies in
    years 0001 to 9999, else text, Postgres' form (`4713-11-24 BC`, `200000-06-01 00:00:00+00`)
    for the values outside them. date64 is floored to whole days, as the binary codec does."""
    kind = array.type
    if pa.types.is_date(kind):
        per_day = 86_400_000 if pa.types.is_date64(kind) else 1
        per_second = 0
    else:
        per_second = _UNITS_PER_SECOND[kind.unit]
        per_day = 86_400 * per_second
    raw = (array.cast(pa.int32()) if pa.types.is_date32(kind) else array).cast(pa.int64())
    first, last = _FIRST_DAY * per_day, (_LAST_DAY + 1) * per_day - 1
    bounds = pc.min_max(raw)
    lowest, highest = bounds["min"].as_py(), bounds["max"].as_py()
    # date64 from 1970 on: pyarrow's truncation is the floor.
    floor = max(first, 0) if pa.types.is_date64(kind) else first
    if lowest is None or (lowest >= floor and highest <= last):
        return array
    outside = pc.fill_null(pc.or_(pc.less(raw, first), pc.greater(raw, last)), False)
    if pa.types.is_date64(kind):
        # Floored, not truncated toward zero: -1 ms is 1969-12-31.
        days = pc.divide(raw, per_day)
        days = pc.subtract(days, pc.greater(pc.multiply(days, per_day), raw).cast(pa.int64()))
        days = pc.if_else(outside, 0, days)
        array = pc.if_else(
            outside, pa.scalar(None, pa.date32()), days.cast(pa.int32()).cast(pa.date32())
        )
    if not pc.any(outside).as_py():
        return array
    text = pc.if_else(outside, pa.scalar(None, array.type), array).cast(pa.string())
    rows = np.flatnonzero(np.asarray(outside.to_numpy(zero_copy_only=False), dtype=bool))
    values = raw.fill_null(0).to_numpy()
    rendered = text.to_pylist()
    for row in rows:
        rendered[row] = _far_text(int(values[row]), per_day, per_second, kind)
    return pa.array(rendered, pa.string())


def _far_text(value: int, per_day: int, per_second: int, kind: pa.DataType) -> str:
    """One date or timestamp outside years 0001 to 9999 in Postgres' input form."""
    days, within = divmod(value, per_day)
    year, month, day = _civil_date(days)
    era = ""
    if year <= 0:
        year, era = 1 - year, " BC"
    text = f"{year:04d}-{month:02d}-{day:02d}"
    if per_second:
        seconds, fraction = divmod(within, per_second)
        minutes, second = divmod(seconds, 60)
        text += f" {minutes // 60:02d}:{minutes % 60:02d}:{second:02d}"
        if fraction:
            digits = len(str(per_second)) - 1
            text += f".{fraction:0{digits}d}".rstrip("0")
        if kind.tz is not None:
            text += "+00"
    return text + era


def _civil_date(days: int) -> tuple[int, int, int]:
    """Proleptic Gregorian (year, month, day) of `days` after 1970-01-01, for any year
    (astronomical numbering: year 0 is 1 BC), where `datetime` stops at 1 to 9999."""
    shifted = days + 719_468
    era, day_of_era = divmod(shifted, 146_097)
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * month_index + 2) // 5 + 1
    month = month_index + 3 if month_index < 10 else month_index - 9
    year = year_of_era + era * 400 + (1 if month <= 2 else 0)
    return year, month, day


def untranslatable_value(batch: pa.RecordBatch, encoding: str) -> tuple[str, int, str] | None:
    """The first (column, row, character) of `batch` that Postgres' `encoding` cannot hold, as
    COPY would send it; None if every value fits. Row by row: only called on that error."""
    import psycopg2.extensions

    codec = psycopg2.extensions.encodings.get(encoding.upper().replace("-", "_"))
    if codec is None:
        return None
    for name, array in zip(batch.schema.names, encode(batch).columns, strict=True):
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
            continue
        for row, text in enumerate(array.to_pylist()):
            if text is None:
                continue
            try:
                text.encode(codec)
            except UnicodeEncodeError as exc:
                return name, row, text[exc.start]
    return None


def in_microseconds(batch: pa.RecordBatch) -> pa.RecordBatch:
    """`batch` with nanosecond timestamps and times in microseconds, Postgres' precision, at
    the top level and inside lists.

    Postgres would round the digits it cannot keep (`.9999996` becomes the next second, two
    distinct keys one): a value with sub-microsecond digits is an error naming its column.
    """
    arrays = list(batch.columns)
    for index, array in enumerate(arrays):
        target = _microsecond_type(array.type)
        if target is None:
            continue
        nanos = _nanosecond_values(array)
        as_int = nanos.cast(pa.int64())
        lost = pc.fill_null(pc.not_equal(pc.multiply(pc.divide(as_int, 1000), 1000), as_int), False)
        if pc.any(lost).as_py():
            name = batch.schema.names[index]
            raise ConnectorError(
                f"column {name!r} holds nanoseconds (e.g. {_nanos_text(nanos.filter(lost)[0])}) "
                "that Postgres cannot store: its timestamps and times keep microseconds, and "
                "it would round the rest silently",
                key="destination",
                value=name,
                expected="values in whole microseconds (round or truncate them at the source, "
                "e.g. date_trunc('microseconds', …) in a `query:`)",
            )
        arrays[index] = array.cast(target)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _microsecond_type(kind: pa.DataType) -> pa.DataType | None:
    """`kind` with its nanosecond timestamps and times (top level or list items) in
    microseconds; None when it holds none."""
    if (pa.types.is_timestamp(kind) or pa.types.is_time64(kind)) and kind.unit == "ns":
        return pa.timestamp("us", kind.tz) if pa.types.is_timestamp(kind) else pa.time64("us")
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        item = _microsecond_type(kind.value_type)
        if item is None:
            return None
        field = kind.value_field.with_type(item)
        if pa.types.is_fixed_size_list(kind):
            return pa.list_(field, kind.list_size)
        return pa.large_list(field) if pa.types.is_large_list(kind) else pa.list_(field)
    return None


def _nanosecond_values(array: pa.Array) -> pa.Array:
    """The nanosecond values of a column: itself, or its list items (of every depth) flattened."""
    while not (pa.types.is_timestamp(array.type) or pa.types.is_time64(array.type)):
        array = pc.list_flatten(array)
    return array


def _nanos_text(value: pa.Scalar) -> str:
    """A nanosecond timestamp or time as text, without pandas (which `as_py` would need)."""
    nanos = value.cast(pa.int64()).as_py()
    seconds, fraction = divmod(nanos, 1_000_000_000)
    if pa.types.is_timestamp(value.type):
        whole = pa.scalar(seconds, pa.timestamp("s")).as_py().isoformat()
        return f"{whole}.{fraction:09d}" + (" UTC" if value.type.tz else "")
    return f"{seconds} s and {fraction} ns after midnight"


def encode(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Columns converted where Postgres' CSV input needs another text form."""
    arrays = []
    for name, array in zip(batch.schema.names, batch.columns, strict=True):
        try:
            arrays.append(_copy_text(array))
        except ValueError as exc:
            if isinstance(exc, pa.ArrowException):
                raise
            raise ValueError(f"column {name!r}: {exc}") from exc
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
