"""The built-in file formats: CSV, TSV, JSON (an array of objects), JSONL and Parquet."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from dataloader import Format, FormatWriter
from dataloader.schema.types import parse_type
from dataloader_filestore.format_options import (
    CsvOptions,
    JsonlOptions,
    ParquetOptions,
    TsvOptions,
)

BLOCK_SIZE = 16 << 20  # type inference looks at the first block: make it large
# A Parquet row group, unless `row_group_size` says otherwise: this many rows at most, and
# closed once the rows held for it take this much memory as Arrow data.
ROW_GROUP_ROWS = 1 << 20
ROW_GROUP_BYTES = 64 << 20


def write_all(writer: FormatWriter, batches: Iterable[pa.RecordBatch]) -> int:
    """`Format.write` through the format's own writer: every batch, then close."""
    for batch in batches:
        writer.write_batch(batch)
    return writer.close()


def rebatch(batches: Iterable[pa.RecordBatch], batch_size: int) -> Iterator[pa.RecordBatch]:
    """Re-cut a stream of record batches into batches of exactly `batch_size` rows (the last may be short)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        while batch.num_rows:
            take = min(batch_size - count, batch.num_rows)
            pending.append(batch.slice(0, take))
            count += take
            batch = batch.slice(take)
            if count == batch_size:
                yield (
                    pa.Table.from_batches(pending)
                    .combine_chunks()
                    .to_batches(max_chunksize=batch_size)[0]
                )
                pending, count = [], 0
    if count:
        yield (
            pa.Table.from_batches(pending).combine_chunks().to_batches(max_chunksize=batch_size)[0]
        )


# How Arrow's single-threaded CSV reader names the row of an error: the header is row 1 and
# blank lines are not rows.
_ARROW_ROW = re.compile(r"Row #(\d+): ")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _line_of_row(stream: IO[bytes], options: CsvOptions, row: int) -> int | None:
    """The line on which CSV row `row` (counted as Arrow does) starts, found by reading the file
    again from its start; None when the stream cannot be rewound or read as CSV here."""
    try:
        if not stream.seekable():
            return None
        stream.seek(0)
        text = io.TextIOWrapper(stream, encoding=options.encoding, newline="")  # type: ignore[type-var]
    except (OSError, ValueError, LookupError):
        return None
    try:
        records = csv.reader(text, delimiter=options.delimiter, quotechar=options.quote_char)
        count, start = 0, 1
        for record in records:
            if record:  # a blank line is not a row
                count += 1
                if count == row:
                    return start
            start = records.line_num + 1
    except (csv.Error, OSError, ValueError):
        return None
    finally:
        text.detach()
    return None


class CsvFormat(Format):
    """CSV with a header row; quoted fields may hold delimiters, quotes and newlines."""

    name = "csv"
    extensions = (".csv",)
    options_model = CsvOptions

    def read(self, stream: IO[bytes], *, batch_size: int) -> Iterator[pa.RecordBatch]:
        options: CsvOptions = self.options  # type: ignore[assignment]
        read_options = pacsv.ReadOptions(
            block_size=BLOCK_SIZE,
            column_names=options.column_names,
            autogenerate_column_names=not options.header and not options.column_names,
            encoding=options.encoding,
            # Single-threaded, Arrow numbers the rows in its errors (and reads no slower).
            use_threads=False,
        )
        parse_options = pacsv.ParseOptions(
            delimiter=options.delimiter, quote_char=options.quote_char, newlines_in_values=True
        )
        convert_options = pacsv.ConvertOptions(
            null_values=options.null_values,
            # An unquoted null marker is null in text columns too; a quoted one ("") is text.
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            column_types={name: parse_type(kind) for name, kind in options.column_types.items()},
        )
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                return
            raise self._located(exc, stream) from None
        undeclared_bytes = [
            field.name
            for field in reader.schema
            if pa.types.is_binary(field.type) and field.name not in options.column_types
        ]
        if undeclared_bytes:  # Arrow reads text that is not UTF-8 as bytes, without a word
            raise pa.ArrowInvalid(
                f"column {undeclared_bytes[0]!r} holds text that is not {options.encoding} "
                "(read as bytes, it would land in the table as escaped bytes): set "
                "`format_options.encoding` to the file's encoding (e.g. latin-1), or "
                f"`column_types: {{{undeclared_bytes[0]}: binary}}` to load bytes"
            )
        try:
            yield from rebatch(reader, batch_size)
        except pa.ArrowInvalid as exc:
            raise self._located(exc, stream) from None

    def _located(self, error: pa.ArrowInvalid, stream: IO[bytes]) -> Exception:
        """Arrow's error with its `Row #N` (a count of records) turned into the line it starts
        on, or into `row N` when the file cannot be read again to find that line."""
        message = str(error)
        found = _ARROW_ROW.search(message)
        if found is None:
            return error
        row = int(found.group(1))
        line = _line_of_row(stream, self.options, row)  # type: ignore[arg-type]
        options: CsvOptions = self.options  # type: ignore[assignment]
        header = " (the header is row 1)" if options.header and not options.column_names else ""
        where = f"line {line}" if line is not None else f"row {row}{header}"
        detail = message[found.end() :]
        return pa.ArrowInvalid(message[: found.start()] + where + ": " + _lower_first(detail))

    def write(self, batches: Iterable[pa.RecordBatch], stream: IO[bytes], schema: pa.Schema) -> int:
        return write_all(self.open_writer(stream, schema), batches)

    def open_writer(self, stream: IO[bytes], schema: pa.Schema) -> FormatWriter:
        return _CsvWriter(stream, schema, self.options)  # type: ignore[arg-type]


class _CsvWriter(FormatWriter):
    """The header, then each batch's rows as it comes."""

    def __init__(self, stream: IO[bytes], schema: pa.Schema, options: CsvOptions) -> None:
        write_options = pacsv.WriteOptions(
            include_header=options.header, delimiter=options.delimiter, quoting_style="needed"
        )
        self._writer = pacsv.CSVWriter(stream, schema, write_options=write_options)
        self._rows = 0

    def write_batch(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)
        self._rows += batch.num_rows

    def close(self) -> int:
        self._writer.close()
        return self._rows


class TsvFormat(CsvFormat):
    """Tab-separated values: CSV whose delimiter is a tab unless `delimiter` says otherwise."""

    name = "tsv"
    extensions = (".tsv",)
    options_model = TsvOptions


class ParquetFormat(Format):
    """Apache Parquet, read row group by row group; written in row groups of `row_group_size`
    rows, or by default of up to 1Mi rows and 64 MiB of Arrow data, whatever the batches."""

    name = "parquet"
    extensions = (".parquet", ".pq")
    options_model = ParquetOptions

    def read(self, stream: IO[bytes], *, batch_size: int) -> Iterator[pa.RecordBatch]:
        yield from pq.ParquetFile(stream).iter_batches(batch_size=batch_size)

    def write(self, batches: Iterable[pa.RecordBatch], stream: IO[bytes], schema: pa.Schema) -> int:
        return write_all(self.open_writer(stream, schema), batches)

    def open_writer(self, stream: IO[bytes], schema: pa.Schema) -> FormatWriter:
        return _ParquetWriter(stream, schema, self.options)  # type: ignore[arg-type]


class _ParquetWriter(FormatWriter):
    """Batches are held until they make a row group, which is then written whole."""

    def __init__(self, stream: IO[bytes], schema: pa.Schema, options: ParquetOptions) -> None:
        self._writer = pq.ParquetWriter(stream, schema, compression=options.compression)
        self._max_rows = options.row_group_size or ROW_GROUP_ROWS
        self._max_bytes = None if options.row_group_size else ROW_GROUP_BYTES
        self._held: list[pa.RecordBatch] = []
        self._held_rows = self._held_bytes = self._rows = 0

    def write_batch(self, batch: pa.RecordBatch) -> None:
        while batch.num_rows:
            take = min(batch.num_rows, self._max_rows - self._held_rows)
            piece, batch = batch.slice(0, take), batch.slice(take)
            self._held.append(piece)
            self._held_rows += take
            self._held_bytes += piece.nbytes
            if self._held_rows >= self._max_rows or (
                self._max_bytes is not None and self._held_bytes >= self._max_bytes
            ):
                self._flush()

    def _flush(self) -> None:
        if self._held:
            group = pa.Table.from_batches(self._held)
            self._writer.write_table(group, row_group_size=group.num_rows)
            self._rows += group.num_rows
        self._held, self._held_rows, self._held_bytes = [], 0, 0

    def close(self) -> int:
        self._flush()
        self._writer.close()
        return self._rows

    @property
    def buffered_bytes(self) -> int:
        return self._held_bytes


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _json_lines(batch: pa.RecordBatch) -> Iterator[str]:
    for row in batch.to_pylist():
        yield json.dumps(row, default=_json_default, ensure_ascii=False)


class JsonlFormat(Format):
    """One JSON object per line; read with Arrow's streaming JSON reader."""

    name = "jsonl"
    extensions = (".jsonl", ".ndjson")
    options_model = JsonlOptions

    def read(self, stream: IO[bytes], *, batch_size: int) -> Iterator[pa.RecordBatch]:
        try:
            reader = pajson.open_json(
                stream, read_options=pajson.ReadOptions(block_size=BLOCK_SIZE)
            )
        except pa.ArrowInvalid as exc:
            if "Empty JSON stream" in str(exc):
                return  # an empty or blank file holds no rows
            raise
        yield from rebatch(reader, batch_size)

    def write(self, batches: Iterable[pa.RecordBatch], stream: IO[bytes], schema: pa.Schema) -> int:
        return write_all(self.open_writer(stream, schema), batches)

    def open_writer(self, stream: IO[bytes], schema: pa.Schema) -> FormatWriter:
        return _JsonWriter(stream, array=False)


class JsonFormat(Format):
    """A JSON array of objects. The whole file is parsed at once: prefer JSONL for large data."""

    name = "json"
    extensions = (".json",)
    options_model = JsonlOptions

    def read(self, stream: IO[bytes], *, batch_size: int) -> Iterator[pa.RecordBatch]:
        text = stream.read()
        if not text.strip():
            return
        rows = json.loads(text)
        if isinstance(rows, dict):
            rows = [rows]
        if not isinstance(rows, list):
            raise ValueError(
                f"a JSON file must hold an array of objects, not {type(rows).__name__}"
            )
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                raise ValueError(
                    f"a JSON file must hold an array of objects: item {index} is {type(row).__name__}"
                )
        if rows:
            # The columns of every object, in order of first appearance (as the JSONL reader
            # finds them); `Table.from_pylist` would take the first object's keys only.
            columns = pa.array(rows)
            yield from pa.Table.from_struct_array(columns).to_batches(max_chunksize=batch_size)

    def write(self, batches: Iterable[pa.RecordBatch], stream: IO[bytes], schema: pa.Schema) -> int:
        return write_all(self.open_writer(stream, schema), batches)

    def open_writer(self, stream: IO[bytes], schema: pa.Schema) -> FormatWriter:
        return _JsonWriter(stream, array=True)


class _JsonWriter(FormatWriter):
    """JSON objects, one a line: bare (JSONL) or as the items of one array (JSON). Row by row:
    Arrow has no JSON writer. Prefer Parquet or CSV for bulk output."""

    def __init__(self, stream: IO[bytes], *, array: bool) -> None:
        self._stream, self._array, self._rows = stream, array, 0
        if array:
            stream.write(b"[")

    def write_batch(self, batch: pa.RecordBatch) -> None:
        if self._array:
            first = "\n" if self._rows == 0 else ",\n"
            text = first + ",\n".join(_json_lines(batch))
        else:
            text = "".join(line + "\n" for line in _json_lines(batch))
        if batch.num_rows:
            self._stream.write(text.encode("utf-8"))
        self._rows += batch.num_rows

    def close(self) -> int:
        if self._array:
            self._stream.write(b"\n]\n")
        return self._rows


BUILTIN_FORMATS: list[type[Format]] = [CsvFormat, TsvFormat, ParquetFormat, JsonlFormat, JsonFormat]
