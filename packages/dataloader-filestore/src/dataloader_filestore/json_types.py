"""Types of the top-level fields of JSON and JSONL rows, from the text of their values.

JSON numbers are kept as their text while a sample is parsed (`Number`), so that `3.50` can
become decimal(3,2) and a 30-digit integer decimal(30,0) instead of a double. A field whose
sampled values are all numbers is typed by the number rules of `inference.infer_type`, one whose
values are all strings by its date and timestamp rules (quoted numbers stay text). Numbers
inside objects and lists (`NestedNumbers`) follow the same number rules, path by path: Arrow's
reader would make every one a float64. Anything else (booleans, strings inside nested values,
a path whose sampled values mix kinds) is left to Arrow's JSON reader.

A number a double cannot hold is refused (`NumberOutOfRange`) wherever it would become one:
past the largest double it would load as inf, below the smallest as 0.0. Within the normal
range a double keeps 15 to 17 significant digits, the usual rounding of a float64 column; below
it (a subnormal) ever fewer, so a subnormal is loaded only when it reads back as the number
written (`1e-310`, not `1.2345678901234567e-310`). Only a column declared as text holds such a
number: a decimal holds at most 76 digits.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Collection, Iterable, Iterator, Mapping
from decimal import Decimal
from typing import IO, Any, NoReturn

import pyarrow as pa
import pyarrow.compute as pc

from dataloader.schema.lattice import supertype
from dataloader_filestore.inference import TypeDrift, convert, first_misfit, infer_type

_INTEGER = re.compile(r"-?\d+")
_CHUNK = 1 << 20
# A JSON number that may be out of a double's range, where a value starts: an exponent of
# three digits or more, or 200 digits in a row (a two-digit exponent moves the point less than
# 100 places, and a double spans about 308 either way). Searched by RE2 (pyarrow) first.
_FAR = r"[:\[,]\s*-?(\d{200}|\d*\.\d{200}|\d+(\.\d+)?[eE][+-]?\d{3})"
_FAR_BYTES = re.compile(_FAR.encode())


class Number(str):
    """A JSON number, as written."""


class NumberOutOfRange(ValueError):
    """A JSON number a double cannot hold, in a column that would make it one."""


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
) -> tuple[pa.Schema, dict[str, str], NestedNumbers]:
    """What Arrow's JSON reader is told of the sample's fields: declared ones as declared,
    number fields as their inferred type (Arrow converts the numbers' text exactly), string
    fields as text, object and list fields as the types of the numbers inside them; the string
    fields, for a `ColumnTyper` to find their dates and timestamps; and the nested numbers, to
    put the read structs' fields back in order (`in_order`). Fields typed null (only nulls
    sampled) are left to Arrow."""
    fields = dict(declared)
    strings: dict[str, str] = {}
    kinds = field_kinds(rows)
    for key, kind in kinds.items():
        if key in fields:
            continue
        if kind == "temporal":
            fields[key], strings[key] = pa.string(), kind
            continue
        values = pa.array([row.get(key) for row in rows], pa.string())
        found = infer_type(values, kinds=kind)
        if not pa.types.is_null(found):
            fields[key] = found
    nested = NestedNumbers(rows, skip={*fields, *kinds})
    fields.update(nested.types)
    return pa.schema(list(fields.items())), strings, nested


class _Path:
    """What a sample holds at one path inside nested values: the kinds of its values (`number`,
    `object`, `list`, or a Python type name), the numbers' text, the objects' fields in order
    of first appearance, the lists' elements; and the first value of another kind than the
    first value's."""

    __slots__ = ("fields", "items", "kinds", "numbers", "odd")

    def __init__(self) -> None:
        self.kinds: set[str] = set()
        self.numbers: list[str] = []
        self.fields: dict[str, _Path] = {}
        self.items: _Path | None = None
        self.odd: Any = None

    def add(self, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Number):
            kind = "number"
            self.numbers.append(value)
        elif isinstance(value, dict):
            kind = "object"
            for key, item in value.items():
                self.fields.setdefault(key, _Path()).add(item)
        elif isinstance(value, list):
            kind = "list"
            if self.items is None:
                self.items = _Path()
            for item in value:
                self.items.add(item)
        else:
            kind = type(value).__name__
        if self.kinds and kind not in self.kinds and self.odd is None:
            self.odd = value
        self.kinds.add(kind)


class NestedNumbers:
    """The types of the numbers inside the object and list fields of a sample of JSON rows, by
    the number rules of top-level fields (`3.50` → decimal(3,2), a 20-digit integer →
    decimal(20,0)), path by path: a struct of just the fields that hold numbers, a list of its
    elements' type. A path whose sampled values mix kinds, or hold no number, is left out (to
    Arrow's JSON reader), as is a field in `skip`."""

    def __init__(self, rows: list[dict[str, Any]], skip: Collection[str] = ()) -> None:
        self.rows = len(rows)
        self._paths: dict[str, _Path] = {}
        for row in rows:
            for key, value in row.items():
                if key not in skip:
                    self._paths.setdefault(key, _Path()).add(value)
        self.types: dict[str, pa.DataType] = {}
        for key, path in self._paths.items():
            found = self._type(path, key, None) if path.kinds in ({"object"}, {"list"}) else None
            if found is not None:
                self.types[key] = found

    def widened(self, rows: list[dict[str, Any]]) -> dict[str, pa.DataType]:
        """The types again over every row (the sample's first): a later number outside its
        path's type widens it as a top-level column widens, else `TypeDrift`."""
        every = {key: _Path() for key in self.types}
        for row in rows:
            for key, path in every.items():
                path.add(row.get(key))
        return {key: self._type(self._paths[key], key, every[key]) for key in self.types}

    def arranged(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The batch with the fields of its typed structs in the sample's order (Arrow's reader
        puts a struct's fields it was told of before those it found)."""
        for key in self.types:
            index = batch.schema.get_field_index(key)
            if index < 0:
                continue
            column = batch.column(index)
            wanted = _ordered(column.type, self._paths[key])
            if wanted != column.type:
                batch = batch.set_column(index, pa.field(key, wanted), rearranged(column, wanted))
        return batch

    def _type(self, path: _Path, name: str, every: _Path | None) -> pa.DataType | None:
        if len(path.kinds) != 1:
            return None
        (kind,) = path.kinds
        if every is not None and every.kinds != path.kinds:
            self._misfit(name, every.odd, kind)
        if kind == "number":
            return self._number(path, name, every)
        if kind == "object":
            fields = []
            for key, child in path.fields.items():
                inner = every.fields[key] if every is not None else None
                found = self._type(child, f"{name}.{key}", inner)
                if found is not None:
                    fields.append(pa.field(key, found))
            return pa.struct(fields) if fields else None
        if kind == "list" and path.items is not None:
            inner = every.items if every is not None else None
            found = self._type(path.items, name, inner)
            return pa.list_(found) if found is not None else None
        return None

    def _number(self, path: _Path, name: str, every: _Path | None) -> pa.DataType:
        sampled = infer_type(pa.array(path.numbers, pa.string()), kinds="numbers")
        if every is None:
            return sampled
        values = pa.array(every.numbers, pa.string())
        wider = supertype(sampled, infer_type(values, kinds="numbers"))
        if wider is not None:
            try:
                convert(values, wider)
                return wider
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        _, value = first_misfit(values, sampled)
        self._misfit(name, Number(value), str(sampled))

    def _misfit(self, name: str, value: Any, kind: str) -> NoReturn:
        top = name.split(".")[0]
        shown = str(value) if isinstance(value, Number) else plain(value)  # as written
        raise TypeDrift(
            f"column {name!r}: value {shown!r} does not fit {kind}, the type inferred "
            f"from the first {self.rows} rows, and no type holds both exactly: set "
            f"`format_options.column_types: {{{top}: …}}`, or a larger "
            "`format_options.infer_rows`"
        )


def rearranged(array: pa.Array, wanted: pa.DataType) -> pa.Array:
    """`array` as `wanted`, a type of the same fields in another order, without copying
    values: structs are rebuilt from their (reordered) children, lists from their offsets."""
    kind = array.type
    if kind.equals(wanted):
        return array
    mask = array.is_null() if array.null_count else None
    if pa.types.is_struct(kind) and pa.types.is_struct(wanted):
        children = [rearranged(array.field(field.name), field.type) for field in wanted]
        return pa.StructArray.from_arrays(children, fields=list(wanted), mask=mask)
    if pa.types.is_list(kind) and pa.types.is_list(wanted):
        values = rearranged(array.values, wanted.value_type)
        offsets = array.offsets
        if mask is not None and array.offset:  # Arrow takes a mask with unsliced offsets only
            offsets = pa.array(offsets.to_numpy(zero_copy_only=False))
        return pa.ListArray.from_arrays(offsets, values, type=wanted, mask=mask)
    return pc.cast(array, wanted)


def _ordered(kind: pa.DataType, path: _Path) -> pa.DataType:
    """`kind` with its structs' fields in the order `path` saw them first."""
    if pa.types.is_struct(kind):
        found = {field.name: field for field in (kind.field(i) for i in range(kind.num_fields))}
        names = [name for name in path.fields if name in found]
        names += [name for name in found if name not in path.fields]
        return pa.struct(
            [
                found[name].with_type(_ordered(found[name].type, path.fields[name]))
                if name in path.fields
                else found[name]
                for name in names
            ]
        )
    if pa.types.is_list(kind) and path.items is not None:
        item = kind.value_field
        return pa.list_(item.with_type(_ordered(item.type, path.items)))
    return kind


def exact_array(values: list[Any], kind: pa.DataType) -> pa.Array:
    """Nested JSON values (their numbers `Number`s) as an array whose number leaves are of
    `kind` (as `NestedNumbers` types them); the rest typed as pyarrow infers it."""
    array = pa.array([_exact(value, kind) for value in values])
    return pc.cast(array, _merged(array.type, kind))


def _exact(value: Any, kind: pa.DataType) -> Any:
    if isinstance(value, Number):
        if pa.types.is_integer(kind):
            return int(value)
        if pa.types.is_decimal(kind):
            return Decimal(value)
        if pa.types.is_floating(kind):
            return float(value)
    if isinstance(value, dict) and pa.types.is_struct(kind):
        return {
            key: _exact(item, kind.field(key).type)
            if kind.get_field_index(key) >= 0
            else plain(item)
            for key, item in value.items()
        }
    if isinstance(value, list) and pa.types.is_list(kind):
        return [_exact(item, kind.value_type) for item in value]
    return plain(value)


def _merged(found: pa.DataType, kind: pa.DataType) -> pa.DataType:
    """The type pyarrow inferred (`found`) with the number leaves of `kind`."""
    if pa.types.is_struct(found) and pa.types.is_struct(kind):
        fields = []
        for field in (found.field(i) for i in range(found.num_fields)):
            index = kind.get_field_index(field.name)
            if index >= 0:
                field = field.with_type(_merged(field.type, kind.field(index).type))
            fields.append(field)
        return pa.struct(fields)
    if pa.types.is_list(found) and pa.types.is_list(kind):
        item = found.value_field
        return pa.list_(item.with_type(_merged(item.type, kind.value_type)))
    if pa.types.is_struct(kind) or pa.types.is_list(kind):
        return found
    return kind


def _leaves(name: str, kind: pa.DataType) -> Iterator[tuple[str, pa.DataType]]:
    """The paths (`s.big`; a list's elements at the list's path) and types of `kind`'s leaves."""
    if pa.types.is_struct(kind):
        for field in (kind.field(i) for i in range(kind.num_fields)):
            yield from _leaves(f"{name}.{field.name}", field.type)
    elif pa.types.is_list(kind):
        yield from _leaves(name, kind.value_type)
    else:
        yield name, kind


def drift(error: pa.ArrowInvalid, schema: pa.Schema, rows: int) -> Exception:
    """Arrow's "failed to convert" error naming the column(s), or the paths inside nested
    columns, of the type it names."""
    message = str(error)
    leaves = [leaf for field in schema for leaf in _leaves(field.name, field.type)]
    names = [name for name, kind in leaves if str(kind) in message]
    if not names or "convert JSON" not in message:
        return error
    column = names[0] if len(names) == 1 else " or ".join(repr(name) for name in names)
    top = names[0].split(".")[0]
    return TypeDrift(
        f"column {column!r}: {message} (the type was inferred from the first {rows} rows): set "
        f"`format_options.column_types: {{{top}: …}}`, or a larger "
        "`format_options.infer_rows`"
    )


def in_order(
    batches: Iterable[pa.RecordBatch], order: list[str], nested: NestedNumbers | None = None
) -> Iterator[pa.RecordBatch]:
    """The batches with the columns of `order` first, in that order (Arrow's reader puts the
    fields it was told of before those it found), and the fields of `nested`'s structs in the
    sample's order."""
    for batch in batches:
        if nested is not None:
            batch = nested.arranged(batch)
        names = batch.schema.names
        present = set(names)
        first = [name for name in order if name in present]
        chosen = set(first)
        yield batch.select(first + [name for name in names if name not in chosen])


def out_of_range(text: str) -> bool:
    """Whether a double cannot hold the JSON number `text`: it overflows to infinity, or it is
    not zero and becomes zero or a subnormal that does not read back as `text`."""
    value = float(text)
    if math.isinf(value):
        return True
    if value == 0.0 or abs(value) < sys.float_info.min:
        return Decimal(repr(value)) != Decimal(text)
    return False


def may_be_out_of_range(data: bytes) -> bool:
    """Whether the JSON text `data` may hold a number out of a double's range (a fast search
    over the bytes, by RE2; strings that look like such numbers are found too)."""
    if not data:
        return False
    offsets = pa.array([0, len(data)], pa.int64()).buffers()[1]
    array = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)]
    )  # one value: the bytes, not copied
    return bool(pc.any(pc.match_substring_regex(array, _FAR)).as_py())


def _far_numbers(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    """The paths (a list's elements at the list's path) and text of the numbers in `value` a
    double cannot hold."""
    if isinstance(value, Number):
        if out_of_range(value):
            yield path, str(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _far_numbers(item, (*path, key))
    elif isinstance(value, list):
        for item in value:
            yield from _far_numbers(item, path)


def _leaf(types: Mapping[str, pa.DataType], path: tuple[str, ...]) -> pa.DataType | None:
    """The type at `path` in `types` (a list's elements at the list's path); None if absent."""
    kind = types.get(path[0])
    for key in path[1:]:
        while kind is not None and pa.types.is_list(kind):
            kind = kind.value_type
        if kind is None or not pa.types.is_struct(kind) or kind.get_field_index(key) < 0:
            return None
        kind = kind.field(key).type
    while kind is not None and pa.types.is_list(kind):
        kind = kind.value_type
    return kind


def _holds(kind: pa.DataType | None, text: str) -> bool:
    """Whether a column of `kind` holds the number `text` exactly."""
    if kind is None:
        return False
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return True
    if pa.types.is_decimal(kind):
        value = Decimal(text).normalize()
        scale = max(-value.as_tuple().exponent, 0)  # type: ignore[operator]
        whole = max(value.adjusted() + 1, 0)
        return scale <= kind.scale and whole <= kind.precision - kind.scale
    return False


def refuse_out_of_range(
    rows: Iterable[tuple[str, dict[str, Any]]],
    holding: Mapping[str, pa.DataType],
    declarable: Collection[str] = (),
) -> None:
    """Raise `NumberOutOfRange` for the first number of `rows` (each with its place, `line 3`)
    a double cannot hold, unless its column's type in `holding` holds it; the message advises
    declaring a string column for the top-level fields in `declarable`, else quoting."""
    for place, row in rows:
        for key, value in row.items():
            for path, text in _far_numbers(value, (key,)):
                if not _holds(_leaf(holding, path), text):
                    name = ".".join(path)
                    advice = (
                        f"set `format_options.column_types: {{{key}: string}}`"
                        if len(path) == 1 and key in declarable
                        else "write it as a JSON string (in quotes)"
                    )
                    raise NumberOutOfRange(
                        f"column {name!r}: value {text!r} ({place}) is out of the range of a "
                        f"double, it would load as {float(text)!r}: a double holds 0 and "
                        f"magnitudes from {sys.float_info.min!r} to {sys.float_info.max!r} "
                        "(below that, subnormals that read back as written). To load its "
                        f"text, {advice}; a decimal holds 76 digits at most"
                    )


def line_chunks(stream: IO[bytes], size: int) -> Iterator[bytes]:
    """The bytes of `stream` in pieces of whole lines, one from each `size` bytes read (a line
    longer than that whole in one piece); the last piece holds what follows the last line end.
    """
    tail = b""
    while data := stream.read(size):
        data = tail + data
        cut = data.rfind(b"\n") + 1
        chunk, tail = data[:cut], data[cut:]
        del data  # one copy of the piece held while it is parsed, not two
        if chunk:
            yield chunk
    if tail:
        yield tail


class RangeCheckedLines:
    """A JSONL stream, read through: each complete line that may hold a number out of a
    double's range is parsed, and the first such number (not in a column of `holding` that
    holds it) kept as `found`. The reader calls `check` before it hands a batch on."""

    def __init__(self, source: IO[bytes], holding: Mapping[str, pa.DataType]) -> None:
        self._source = source
        self._holding = holding
        self._tail = b""  # the last line read so far, not yet whole
        self._lines = 0  # lines before the tail
        self.found: NumberOutOfRange | None = None
        self.closed = False

    def read(self, size: int | None = -1) -> bytes:
        data = self._source.read(size)
        if self.found is None:
            self._scan(data)
        return data

    def _scan(self, data: bytes) -> None:
        if data:
            region = self._tail + data
            cut = region.rfind(b"\n") + 1
            region, self._tail = region[:cut], region[cut:]
        else:
            region, self._tail = self._tail, b""
        if may_be_out_of_range(region):
            try:
                refuse_out_of_range(self._suspects(region), self._holding)
            except NumberOutOfRange as exc:
                self.found = exc
        self._lines += region.count(b"\n")

    def _suspects(self, region: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
        """The lines of `region` that may hold a number out of range, parsed, with their
        place (lines that do not parse are left to the reader)."""
        line, counted = self._lines + 1, 0
        for match in _FAR_BYTES.finditer(region):
            start = region.rfind(b"\n", 0, match.start()) + 1
            if start < counted:
                continue  # a line parsed already
            line += region.count(b"\n", counted, start)
            end = region.find(b"\n", start)
            counted = end if end >= 0 else len(region)
            try:
                row = loads(region[start:counted])
            except ValueError:
                continue
            if isinstance(row, dict):
                yield f"line {line}", row

    def check(self) -> None:
        """Raise the number out of range found so far, if any."""
        if self.found is not None:
            raise self.found

    def checked(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """`batches`, each handed on only once `check` passes after it was read."""
        for batch in batches:
            self.check()
            yield batch
        self.check()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True
