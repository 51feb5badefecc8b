"""Column types of text formats (CSV, TSV, JSON, JSONL), inferred from a sample of their text.

The rule (docs/files.md, "Types of CSV, TSV, JSON and JSONL columns"): a column takes the first
of these types that its first values look like and every value of the sample is written as and
casts to, else text. Decided with pyarrow compute over whole columns:

- integers (`42`, `-7`, `+5`) → int64, or decimal(p,0) when one overflows int64;
- numbers in positional notation with a point (`3.50`, `12.1`, `-0.5`), with or without
  integers → decimal(p,s): s the most digits after the point, p the most before it plus s
  (decimal256 past 38 digits);
- numbers in exponent form (`1e5`), `inf`, `nan`, and any number needing more than 76 digits
  → float64;
- a number written with leading zeros (`007`, `-01`, `007.50`) is an identifier: text;
- `true`/`false` → bool; `2024-05-17` → date;
- ISO timestamps with an offset (`Z`, `+02:00`) → timestamp with zone UTC; without one (dates
  among them allowed) → timestamp; in µs, or ns when a value has more than six fractional digits.

A later batch is converted to the inferred type by the same patterns (`convert`: Arrow alone
reads `007` as 7, `0x10` as 16 and `1` as true); when a value does not fit, the column widens to
the lattice's supertype of the two (`dataloader.schema.lattice`), or the read fails naming the
column and the value. Nothing is rounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from dataloader.schema.lattice import MAX_DECIMAL_DIGITS, supertype

DECIMAL128_DIGITS = 38
_HEAD = 256  # values a candidate is tried on first, before the whole sample

_DIGITS = r"(0|[1-9]\d*)"  # no leading zeros: `007` is an identifier
_INT = rf"^[+-]?{_DIGITS}$"
_POSITIONAL = rf"^[+-]?({_DIGITS}(\.\d*)?|\.\d+)$"
_FLOAT = (
    rf"^[+-]?(({_DIGITS}(\.\d*)?|\.\d+)([eE][+-]?\d+)?"
    r"|[iI][nN][fF]([iI][nN][iI][tT][yY])?|[nN][aA][nN])$"
)
_BOOL = r"^([tT][rR][uU][eE]|[fF][aA][lL][sS][eE])$"
_DATE = r"^\d{4}-\d{2}-\d{2}$"
_CLOCK = r"[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?"
_ZONED = r"^\d{4}-\d{2}-\d{2}" + _CLOCK + r"(Z|[+-]\d{2}(:?\d{2})?)$"
_NAIVE = r"^\d{4}-\d{2}-\d{2}(" + _CLOCK + ")?$"  # dates among timestamps too


class TypeDrift(ValueError):
    """A value that does not fit its column's inferred type, nor any type both fit in."""


def _head_matches(values: pa.Array, pattern: str) -> bool:
    return bool(pc.all(pc.match_substring_regex(values.slice(0, _HEAD), pattern)).as_py())


def _written_as(to: pa.DataType) -> str | None:
    """The pattern every value read as `to` must match (None: Arrow's cast is as strict)."""
    if pa.types.is_integer(to):
        return _INT
    if pa.types.is_decimal(to):
        return _POSITIONAL
    if pa.types.is_floating(to):
        return _FLOAT
    if pa.types.is_boolean(to):
        return _BOOL
    return None


def convert(strings: pa.Array, to: pa.DataType) -> pa.Array:
    """`strings` cast to `to`, each value read as the rule reads it; raises ArrowInvalid when
    one is not written as a `to` (Arrow's cast alone takes `007`, `0x10`, `1` for true)."""
    pattern = _written_as(to)
    if pattern is not None:
        matches = pc.match_substring_regex(strings, pattern)
        if not pc.all(matches, min_count=0).as_py():
            raise pa.ArrowInvalid(f"a value is not written as a {to}")
    if pa.types.is_integer(to) and pc.any(pc.starts_with(strings, "+")).as_py():
        strings = pc.utf8_ltrim(strings, characters="+")  # Arrow reads no `+` in an integer
    return pc.cast(strings, to)


def converted_from_text(kind: pa.DataType) -> bool:
    """Whether a reader hands a column of this inferred type to `ColumnTyper` as text: a column
    of nulls only, booleans (Arrow's reader takes `1` for true) and decimals past 38 digits
    (Arrow's reader reads none). Integers, decimals and floats Arrow converts as it reads, at
    its speed: past the sample it also takes `007` for 7, ` 12` for 12 and `0x10` for 16 in a
    column the sample typed integer (docs/files.md)."""
    return (
        pa.types.is_null(kind)
        or pa.types.is_boolean(kind)
        or (pa.types.is_decimal(kind) and kind.precision > DECIMAL128_DIGITS)
    )


def _fits(values: pa.Array, to: pa.DataType) -> bool:
    try:
        convert(values, to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _exact(precision: int, scale: int) -> pa.DataType:
    """decimal(precision, scale), or float64 past the widest decimal."""
    if precision > MAX_DECIMAL_DIGITS:
        return pa.float64()
    if precision > DECIMAL128_DIGITS:
        return pa.decimal256(precision, scale)
    return pa.decimal128(precision, scale)


def _integer(values: pa.Array) -> list[pa.DataType]:
    digits = pc.max(pc.utf8_length(pc.utf8_ltrim(values, characters="+-"))).as_py()
    if digits <= 18:
        return [pa.int64()]
    return [pa.int64(), _exact(digits, 0)]


def _decimal(values: pa.Array) -> list[pa.DataType]:
    unsigned = pc.utf8_ltrim(values, characters="+-")
    length = pc.utf8_length(unsigned)
    point = pc.find_substring(unsigned, ".")
    has_point = pc.greater_equal(point, 0)
    scale = pc.max(pc.if_else(has_point, pc.subtract(pc.subtract(length, point), 1), 0)).as_py()
    whole = pc.max(pc.if_else(has_point, point, length)).as_py()
    return [_exact(max(whole + scale, 1), scale)]


def _timestamps(tz: str | None) -> Callable[[pa.Array], list[pa.DataType]]:
    return lambda _: [pa.timestamp("us", tz=tz), pa.timestamp("ns", tz=tz)]


# Each rule: a pattern the first values must match, then the types to try in order; the
# first one every value of the sample converts to (`convert`) is the column's.
_Rule = tuple[str, Callable[[pa.Array], list[pa.DataType]]]
_NUMBERS: list[_Rule] = [
    (_INT, _integer),
    (_POSITIONAL, _decimal),
    (_FLOAT, lambda _: [pa.float64()]),
]
_TEMPORAL: list[_Rule] = [
    (_DATE, lambda _: [pa.date32()]),
    (_ZONED, _timestamps("UTC")),
    (_NAIVE, _timestamps(None)),
]
_TEXT = [*_NUMBERS, (_BOOL, lambda _: [pa.bool_()]), *_TEMPORAL]


def infer_type(strings: pa.Array | pa.ChunkedArray, *, kinds: str = "text") -> pa.DataType:
    """The type of a column of strings by the rule above; `kinds` is `text` (every rule),
    `numbers` (the text of JSON numbers) or `temporal` (JSON strings: dates, timestamps)."""
    if isinstance(strings, pa.ChunkedArray):
        strings = strings.combine_chunks()
    values = pc.drop_null(strings)
    if len(values) == 0:
        return pa.null()
    rules = {"text": _TEXT, "numbers": _NUMBERS, "temporal": _TEMPORAL}[kinds]
    for pattern, candidates in rules:
        if _head_matches(values, pattern):
            for found in candidates(values):
                if _fits(values, found):
                    return found
    return pa.float64() if kinds == "numbers" else pa.string()


def first_misfit(strings: pa.Array, to: pa.DataType) -> tuple[int, str]:
    """The first value of `strings` that does not cast to `to` (searched by halves)."""
    low, high = 0, len(strings)
    while high - low > 1:
        middle = (low + high) // 2
        if _fits(strings.slice(low, middle - low), to):
            low = middle
        else:
            high = middle
    return low, strings[low].as_py()


class ColumnTyper:
    """Casts the string columns of a file's batches to the types inferred from its first
    `sample_rows` rows, widening a column when a later value needs it. `kinds` maps each
    column to type to the rules it follows (see `infer_type`)."""

    def __init__(self, kinds: dict[str, str], sample_rows: int) -> None:
        self.kinds = kinds
        self.sample_rows = sample_rows
        self.types: dict[str, pa.DataType] = {}
        self.rows = 0  # rows cast so far (to number the row of a misfit)

    def infer(self, sample: pa.Table) -> None:
        """Decide each column's type from the sample (its first `sample_rows` rows)."""
        head = sample.slice(0, self.sample_rows)
        for name, kinds in self.kinds.items():
            self.types[name] = infer_type(head.column(name), kinds=kinds)

    def apply(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The batch with each of the columns cast to its type (widened if it must be)."""
        arrays = list(batch.columns)
        for name in self.kinds:
            index = batch.schema.get_field_index(name)
            arrays[index] = self._cast(name, batch.column(index))
        self.rows += batch.num_rows
        return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)

    def _cast(self, name: str, strings: pa.Array) -> pa.Array:
        if not pa.types.is_string(strings.type):
            return strings  # typed by the reader already
        current = self.types[name]
        if pa.types.is_null(current) and strings.null_count == len(strings):
            return pa.nulls(len(strings))
        if not pa.types.is_null(current):
            try:
                return convert(strings, current)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        found = infer_type(strings, kinds=self.kinds[name])
        wider = supertype(current, found)
        if wider is None or not _fits(strings, wider):
            row, value = first_misfit(strings, current)
            raise TypeDrift(
                f"column {name!r}: value {value!r} (data row {self.rows + row + 1}) does not fit "
                f"{_name(current)}, the type inferred from the rows before it, and "
                f"{_name(current)} and {_name(found)} have no common type that keeps every "
                f"value: set `format_options.column_types: {{{name}: …}}`, or a larger "
                "`format_options.infer_rows`"
            )
        self.types[name] = wider
        return convert(strings, wider)


def _name(kind: pa.DataType) -> str:
    return "null" if pa.types.is_null(kind) else str(kind)


def typed_batches(
    batches: Iterator[pa.RecordBatch], typer: ColumnTyper
) -> Iterator[pa.RecordBatch]:
    """The batches with `typer`'s columns typed: the first `sample_rows` rows are held to infer
    the types, then every batch is cast as it comes."""
    held: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        held.append(batch)
        rows += batch.num_rows
        if rows >= typer.sample_rows:
            break
    if not held:
        return
    typer.infer(pa.Table.from_batches(held))
    for batch in held:
        yield typer.apply(batch)
    for batch in batches:
        yield typer.apply(batch)
