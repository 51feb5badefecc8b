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
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from dataloader import Format, FormatWriter
from dataloader.schema.types import parse_type
from dataloader_filestore import json_types
from dataloader_filestore.format_options import (
    CsvOptions,
    JsonlOptions,
    ParquetOptions,
    TsvOptions,
)
from dataloader_filestore.inference import (
    ColumnTyper,
    TypeDrift,
    converted_from_text,
    typed_batches,
)
from dataloader_filestore.replay import Replay

BLOCK_SIZE = 16 << 20
PARSE_BLOCK_SIZE = 1 << 20  # of a JSONL piece after the first, parsed in parallel
SAMPLE_BYTES = 1 << 20  # read first for the sample, then more if it holds too few rows
PROBE_SIZES = (64 << 10, 1 << 20, BLOCK_SIZE)  # of the file's start read for its column names
BLOCK_ROWS = 1 << 16  # rows of a JSON array typed at a time
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
    """Re-cut a stream of record batches into batches of exactly `batch_size` rows (the last,
    and the last before a change of schema, may be short)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if pending and not batch.schema.equals(pending[0].schema):  # a column widened
            yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]
            pending, count = [], 0
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
# A value Arrow could not convert to the column's type, and the column it is in.
_MISFIT = re.compile(
    r"CSV column #(\d+): (?:Row #\d+: )?(?:CSV conversion error|Rescaling Decimal|Error converting)"
)
_UNDECODABLE = re.compile(
    r"CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to string: invalid UTF8"
)


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
        """The file's rows, undeclared columns typed from a sample of its first rows
        (`inference`). Arrow converts dates and timestamps as it reads, the typer the other
        columns, read as text; should a later date or timestamp not fit, the file is read
        again as text from the start. From a value that does not fit on, its column widens
        along the lattice (or the read fails naming the value)."""
        options: CsvOptions = self.options  # type: ignore[assignment]
        declared = {name: parse_type(kind) for name, kind in options.column_types.items()}
        replay = Replay(stream)
        names = self._column_names(replay, stream)
        if names is None:
            return
        undeclared = {name: "text" for name in names if name not in declared}
        typer = ColumnTyper(undeclared, options.infer_rows)
        sample = self._sample(replay, names, declared)
        replay.rewind(keep=False)
        if sample is not None:
            typer.infer(sample)
        if sample is None or not stream.seekable():  # the text is converted as it comes
            rows = self._as_text(replay, names, declared, typer, skip=0)
        else:
            rows = self._typed(replay, stream, names, declared, typer)
        try:
            yield from rebatch(rows, batch_size)
        except pa.ArrowInvalid as exc:
            raise self._located(self._undecodable(exc, names), stream) from None

    def _typed(
        self,
        replay: Replay,
        stream: IO[bytes],
        names: list[str],
        declared: dict[str, pa.DataType],
        typer: ColumnTyper,
    ) -> Iterator[pa.RecordBatch]:
        """The rows converted by Arrow to the sample's dates and timestamps, other columns
        read as text for `typer` to convert; as text from the start if a date or a timestamp
        does not fit."""
        types = {
            name: pa.string() if converted_from_text(kind) else kind
            for name, kind in typer.types.items()
        }
        done = 0
        stream.seek(0)  # seekable (see `read`): Arrow reads the file itself, not through Python
        try:
            reader = pacsv.open_csv(  # converts the first block already
                stream,
                read_options=self._read_options(BLOCK_SIZE),
                parse_options=self._parse_options(),
                convert_options=self._convert_options({**types, **declared}),
            )
            for batch in reader:
                done += batch.num_rows
                yield typer.apply(batch)
            return
        except pa.ArrowInvalid as exc:
            misfit = _MISFIT.search(str(exc))
            if misfit is None or names[int(misfit.group(1))] in declared:
                raise
            try:
                stream.seek(0)
            except (OSError, ValueError):
                name = names[int(misfit.group(1))]
                raise TypeDrift(
                    f"column {name!r} does not keep the {typer.types[name]} of its first "
                    f"{typer.sample_rows} rows, and the file cannot be read again to widen it "
                    f"({exc}): set `format_options.column_types: {{{name}: …}}`"
                ) from None
        yield from self._as_text(Replay(stream), names, declared, typer, skip=done)

    def _as_text(
        self,
        replay: Replay,
        names: list[str],
        declared: dict[str, pa.DataType],
        typer: ColumnTyper,
        *,
        skip: int,
    ) -> Iterator[pa.RecordBatch]:
        """The rows after the first `skip`, read as text and cast by `typer` (which widens a
        column when it must); its types are inferred from the first rows if it has none."""
        replay.rewind(keep=False)
        reader = pacsv.open_csv(
            replay,
            read_options=self._read_options(BLOCK_SIZE),
            parse_options=self._parse_options(),
            convert_options=self._convert_options(
                {**dict.fromkeys(typer.kinds, pa.string()), **declared}
            ),
        )
        if not typer.types:
            yield from typed_batches(reader, typer)
            return
        typer.rows = skip
        for batch in reader:
            if skip >= batch.num_rows:
                skip -= batch.num_rows
                continue
            batch, skip = batch.slice(skip), 0
            yield typer.apply(batch)

    def _sample(
        self, replay: Replay, names: list[str], declared: dict[str, pa.DataType]
    ) -> pa.Table | None:
        """The first `infer_rows` rows as text, from a copy of the file's start (cut after a
        line break); None when they cannot be read so (the file is then read as text)."""
        options: CsvOptions = self.options  # type: ignore[assignment]
        size = SAMPLE_BYTES
        while True:
            replay.rewind()
            head = replay.read(size)
            whole = len(head) < size
            cut = head if whole else head[: head.rfind(b"\n") + 1]
            try:
                table = pacsv.read_csv(
                    io.BytesIO(cut),
                    read_options=self._read_options(max(len(cut), 1)),
                    parse_options=self._parse_options(),
                    convert_options=self._convert_options(
                        {**dict.fromkeys(names, pa.string()), **declared}
                    ),
                )
            except pa.ArrowInvalid:
                table = None
            if table is not None and (whole or table.num_rows >= options.infer_rows):
                return table.slice(0, options.infer_rows)
            if size >= BLOCK_SIZE:
                return None
            size *= 4

    def _read_options(self, block_size: int) -> pacsv.ReadOptions:
        options: CsvOptions = self.options  # type: ignore[assignment]
        return pacsv.ReadOptions(
            block_size=block_size,
            column_names=options.column_names,
            autogenerate_column_names=not options.header and not options.column_names,
            encoding=options.encoding,
            # Single-threaded, Arrow numbers the rows in its errors (and reads no slower).
            use_threads=False,
        )

    def _parse_options(self) -> pacsv.ParseOptions:
        options: CsvOptions = self.options  # type: ignore[assignment]
        return pacsv.ParseOptions(
            delimiter=options.delimiter, quote_char=options.quote_char, newlines_in_values=True
        )

    def _convert_options(self, column_types: dict[str, pa.DataType]) -> pacsv.ConvertOptions:
        options: CsvOptions = self.options  # type: ignore[assignment]
        return pacsv.ConvertOptions(
            null_values=options.null_values,
            # An unquoted null marker is null in text columns too; a quoted one ("") is text.
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            column_types=column_types,
        )

    def _column_names(self, replay: Replay, stream: IO[bytes]) -> list[str] | None:
        """The file's column names, from its first 64 KiB (more if the header is longer); None
        for an empty file. Arrow is given a copy of that start cut after its last line break
        (it reads ahead: never the stream the file is then read from), and skips its rows."""
        options: CsvOptions = self.options  # type: ignore[assignment]
        if options.column_names:
            return list(options.column_names)
        for size in PROBE_SIZES:
            replay.rewind()
            head = replay.read(size)
            whole = len(head) < size
            if not whole:
                head = head[: head.rfind(b"\n") + 1]
                if not head:
                    continue
            read_options = self._read_options(size)
            read_options.skip_rows_after_names = (1 << 31) - 1  # every row: only names wanted
            try:
                try:
                    probe = pacsv.open_csv(
                        io.BytesIO(head),
                        read_options=read_options,
                        parse_options=self._parse_options(),
                        convert_options=self._convert_options({}),
                    )
                except pa.ArrowInvalid as exc:
                    if "straddl" not in str(exc) or not whole:
                        raise
                    # Arrow's skip runs past the end of a file that is a header only
                    read_options.skip_rows_after_names = 0
                    probe = pacsv.open_csv(
                        io.BytesIO(head),
                        read_options=read_options,
                        parse_options=self._parse_options(),
                        convert_options=self._convert_options({}),
                    )
                return probe.schema.names
            except pa.ArrowInvalid as exc:
                if "Empty CSV file" in str(exc):
                    return None
                if whole or size == PROBE_SIZES[-1]:
                    raise self._located(exc, stream) from None
        raise pa.ArrowInvalid(f"no line ends in the first {BLOCK_SIZE >> 20} MiB of the file")

    def _undecodable(self, error: pa.ArrowInvalid, names: list[str]) -> pa.ArrowInvalid:
        """Arrow's "invalid UTF8" turned into what to set, naming the column."""
        found = _UNDECODABLE.search(str(error))
        if found is None:
            return error
        options: CsvOptions = self.options  # type: ignore[assignment]
        name = names[int(found.group(1))]
        return pa.ArrowInvalid(
            f"column {name!r} holds text that is not {options.encoding}: set "
            "`format_options.encoding` to the file's encoding (e.g. latin-1), or "
            f"`column_types: {{{name}: binary}}` to load bytes"
        )

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
    """One JSON object per line, parsed by Arrow a piece of about `BLOCK_SIZE` bytes of whole
    lines at a time: Arrow's streaming reader reads ahead of its consumer without bound."""

    name = "jsonl"
    extensions = (".jsonl", ".ndjson")
    options_model = JsonlOptions

    def read(self, stream: IO[bytes], *, batch_size: int) -> Iterator[pa.RecordBatch]:
        options: JsonlOptions = self.options  # type: ignore[assignment]
        replay = Replay(stream)
        sample = json_types.sample_lines(replay, options.infer_rows, BLOCK_SIZE)
        replay.rewind(keep=False)
        declared = {name: parse_type(kind) for name, kind in options.column_types.items()}
        schema, strings, nested = json_types.sample_schema(sample, declared)
        # Arrow reads a number a double cannot hold as inf (refused) or 0.0: the lines are
        # searched for them as they are read.
        lines = json_types.RangeCheckedLines(replay, {field.name: field.type for field in schema})
        typer = ColumnTyper(strings, options.infer_rows)
        order = list(dict.fromkeys(key for row in sample for key in row))
        sampled = len(sample)
        del sample  # its rows as Python objects take several times their text's size
        try:
            checked = lines.checked(_parsed_lines(lines, schema))
            batches = typed_batches(json_types.in_order(checked, order, nested), typer)
            yield from rebatch(batches, batch_size)
        except pa.ArrowInvalid as exc:
            lines.check()
            raise json_types.drift(exc, schema, sampled) from None

    def write(self, batches: Iterable[pa.RecordBatch], stream: IO[bytes], schema: pa.Schema) -> int:
        return write_all(self.open_writer(stream, schema), batches)

    def open_writer(self, stream: IO[bytes], schema: pa.Schema) -> FormatWriter:
        return _JsonWriter(stream, array=False)


def _parsed_lines(stream: IO[bytes], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The JSON objects of `stream`, one a line, as Arrow's streaming reader types them: the
    fields of `schema` as it says, the others as the first piece of `BLOCK_SIZE` bytes shows
    them; after it a field of another type, or one it did not hold, fails to parse. One piece
    is held at a time."""
    options = pajson.ParseOptions(explicit_schema=schema) if len(schema) else None
    first = True
    for chunk in json_types.line_chunks(stream, BLOCK_SIZE):
        if chunk.isspace():
            continue
        # The first piece in one block, its types inferred from all of it; the others in
        # blocks parsed in parallel, or in one when a line is longer than a block.
        table = None if first else _read_json(chunk, PARSE_BLOCK_SIZE, options)
        if table is None:
            table = _read_json(chunk, len(chunk) + 1, options)
        assert table is not None
        if first:
            first = False
            options = pajson.ParseOptions(
                explicit_schema=table.schema, unexpected_field_behavior="error"
            )
        yield from table.to_batches()


def _read_json(
    data: bytes, block_size: int, options: pajson.ParseOptions | None
) -> pa.Table | None:
    """`data` parsed by Arrow in blocks of `block_size` bytes; None if a line is longer."""
    try:
        return pajson.read_json(
            pa.BufferReader(data),
            read_options=pajson.ReadOptions(block_size=block_size),
            parse_options=options,
        )
    except pa.ArrowInvalid as exc:
        if "straddles two block boundaries" in str(exc):
            return None
        raise


class JsonFormat(Format):
    """A JSON array of objects. The whole file is parsed at once: prefer JSONL for large data."""

    name = "json"
    extensions = (".json",)
    options_model = JsonlOptions

    def read(self, stream: IO[bytes], *, batch_size: int) -> Iterator[pa.RecordBatch]:
        text = stream.read()
        if not text.strip():
            return
        rows = json_types.loads(text)
        if isinstance(rows, dict):
            rows = [rows]
        if not isinstance(rows, list):
            raise ValueError(
                "a JSON file must hold an array of objects, "
                f"not {type(json_types.plain(rows)).__name__}"
            )
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                raise ValueError(
                    "a JSON file must hold an array of objects: "
                    f"item {index} is {type(json_types.plain(row)).__name__}"
                )
        if rows:
            yield from rebatch(self._typed(rows, json_types.may_be_out_of_range(text)), batch_size)

    def _typed(self, rows: list[dict[str, Any]], suspect: bool) -> Iterator[pa.RecordBatch]:
        """The rows as columns: top-level numbers and strings, and numbers inside objects and
        lists, typed as JSONL's are; the rest by Arrow. When the text is `suspect`, a number a
        double cannot hold is refused unless its column is declared text."""
        options: JsonlOptions = self.options  # type: ignore[assignment]
        sample = rows[: options.infer_rows]
        kinds = json_types.field_kinds(sample)
        declared = {name: parse_type(kind) for name, kind in options.column_types.items()}
        nested = json_types.NestedNumbers(sample, skip={*kinds, *declared}).widened(rows)
        if suspect:  # only the columns of `kinds` are converted from their text
            json_types.refuse_out_of_range(
                ((f"item {index}", row) for index, row in enumerate(rows)),
                {key: declared[key] for key in kinds if key in declared},
                declarable=kinds,
            )
        columns: dict[str, pa.Array] = {}
        # The columns of every object, in order of first appearance (as the JSONL reader
        # finds them).
        for key in dict.fromkeys(key for row in rows for key in row):
            values = [row.get(key) for row in rows]
            if key in kinds:
                columns[key] = pa.array(values, pa.string())
            elif key in nested:
                columns[key] = json_types.exact_array(values, nested[key])
            else:
                columns[key] = pa.array([json_types.plain(value) for value in values])
            if key in declared:
                columns[key] = pc.cast(columns[key], declared[key])
        table = pa.table(columns)
        typer = ColumnTyper(
            {key: kind for key, kind in kinds.items() if key not in declared}, options.infer_rows
        )
        yield from typed_batches(iter(table.to_batches(max_chunksize=BLOCK_ROWS)), typer)

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
