"""The type-promotion lattice: the one place that decides which type holds the values of two.

`supertype(a, b, rules)` is the narrowest type that holds every value of both exactly, or None
when there is none under `rules`. The widening steps (docs/schema.md has the table):

- int8 → int16 → int32 → int64 → decimal(38,0); an integer meets decimal(p,s) as
  decimal(max(p - s, digits) + s, s), where int64 needs 19 digits;
- decimal(p1,s1) ⊔ decimal(p2,s2) = decimal(max(p1-s1, p2-s2) + max(s1,s2), max(s1,s2)),
  up to 76 digits;
- float16 → float32 → float64; an integer or a decimal meets a float only under `allow_float` (a float
  cannot hold every int64 or decimal exactly);
- date → timestamp; timestamps of one zone widen to the finer unit; a timestamp without a zone,
  or a date, meets one with a zone only under `naive_as_utc` (it is then read as UTC);
- null (a column of NULLs only) → anything;
- lists widen their elements, structs field by field (fields one side lacks are added);
- anything else → string only under `allow_text`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

_INT_DIGITS = {8: 3, 16: 5, 32: 10, 64: 19}
_SIGNED = (pa.int8(), pa.int16(), pa.int32(), pa.int64())
_UNITS = ("s", "ms", "us", "ns")
MAX_DECIMAL_DIGITS = 76


@dataclass(frozen=True)
class Rules:
    """Which steps of the lattice a recipe allows (`schema.evolution`)."""

    allow_float: bool = False
    allow_text: bool = False
    naive_as_utc: bool = False


def supertype(a: pa.DataType, b: pa.DataType, rules: Rules = Rules()) -> pa.DataType | None:
    """The narrowest type holding every value of `a` and of `b` exactly; None if none may."""
    if a == b:
        return a
    if pa.types.is_null(a):
        return b
    if pa.types.is_null(b):
        return a
    found = _numeric(a, b, rules) or _temporal(a, b, rules) or _nested(a, b, rules)
    if found is None and ((_is_string(a) and _is_string(b)) or (_is_binary(a) and _is_binary(b))):
        return a  # one type to a database: the column keeps its own
    if found is None and rules.allow_text and _textual(a) and _textual(b):
        return pa.string()
    return found


def widens(old: pa.DataType, new: pa.DataType, rules: Rules = Rules()) -> bool:
    """Whether a column of type `old` may become `new` without losing any value it holds."""
    return supertype(old, new, rules) == new


def _numeric(a: pa.DataType, b: pa.DataType, rules: Rules) -> pa.DataType | None:
    if not (_is_number(a) and _is_number(b)):
        return None
    if pa.types.is_floating(a) or pa.types.is_floating(b):
        if pa.types.is_floating(a) and pa.types.is_floating(b):
            return a if a.bit_width >= b.bit_width else b
        return pa.float64() if rules.allow_float else None
    if _is_int(a) and _is_int(b):
        if pa.types.is_signed_integer(a) and pa.types.is_signed_integer(b):
            return _SIGNED[max(_SIGNED.index(a), _SIGNED.index(b))]
        return _mixed_ints(a, b)
    return _decimal_of(_as_decimal(a), _as_decimal(b))


def _mixed_ints(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """Unsigned meets unsigned or signed: the narrowest signed (or decimal) holding both."""
    if pa.types.is_unsigned_integer(a) and pa.types.is_unsigned_integer(b):
        return a if a.bit_width >= b.bit_width else b
    need = max(t.bit_width * 2 if pa.types.is_unsigned_integer(t) else t.bit_width for t in (a, b))
    if need <= 64:
        return _SIGNED[[8, 16, 32, 64].index(need)]
    return pa.decimal128(20, 0)


def _as_decimal(t: pa.DataType) -> tuple[int, int]:
    """(integer digits, scale) a type needs."""
    if pa.types.is_decimal(t):
        return t.precision - t.scale, t.scale
    digits = _INT_DIGITS[t.bit_width]
    return (digits + 1 if pa.types.is_unsigned_integer(t) and t.bit_width == 64 else digits), 0


def _decimal_of(a: tuple[int, int], b: tuple[int, int]) -> pa.DataType | None:
    whole, scale = max(a[0], b[0]), max(a[1], b[1])
    precision = whole + scale
    if precision > MAX_DECIMAL_DIGITS:
        return None
    return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)


def _temporal(a: pa.DataType, b: pa.DataType, rules: Rules) -> pa.DataType | None:
    if pa.types.is_date(a) and pa.types.is_date(b):
        return pa.date32()
    if pa.types.is_date(a) and pa.types.is_timestamp(b):
        return b if b.tz is None or rules.naive_as_utc else None  # a date is no instant
    if pa.types.is_timestamp(a) and pa.types.is_date(b):
        return a if a.tz is None or rules.naive_as_utc else None
    if not (pa.types.is_timestamp(a) and pa.types.is_timestamp(b)):
        if pa.types.is_time(a) and pa.types.is_time(b):
            return a if _finer(a.unit, b.unit) == a.unit else b
        return None
    unit = _finer(a.unit, b.unit)
    if a.tz == b.tz:
        return pa.timestamp(unit, tz=a.tz)
    if a.tz is not None and b.tz is not None:
        return pa.timestamp(unit, tz="UTC")  # instants: any zone holds both
    return pa.timestamp(unit, tz="UTC") if rules.naive_as_utc else None


def _finer(u: str, v: str) -> str:
    return u if _UNITS.index(u) >= _UNITS.index(v) else v


def _nested(a: pa.DataType, b: pa.DataType, rules: Rules) -> pa.DataType | None:
    if _is_list(a) and _is_list(b):
        element = supertype(a.value_type, b.value_type, rules)
        return pa.list_(element) if element is not None else None
    if pa.types.is_struct(a) and pa.types.is_struct(b):
        fields: list[pa.Field] = []
        names_b = {b.field(i).name: b.field(i) for i in range(b.num_fields)}
        for i in range(a.num_fields):
            field = a.field(i)
            other = names_b.pop(field.name, None)
            if other is None:
                fields.append(field.with_nullable(True))
                continue
            merged = supertype(field.type, other.type, rules)
            if merged is None:
                return None
            fields.append(pa.field(field.name, merged, field.nullable or other.nullable))
        fields.extend(field.with_nullable(True) for field in names_b.values())
        return pa.struct(fields)
    return None


def _is_int(t: pa.DataType) -> bool:
    return pa.types.is_integer(t)


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t)


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


def _textual(t: pa.DataType) -> bool:
    """Types whose values have a faithful text form (not binary, not nested)."""
    return not (_is_binary(t) or _is_list(t) or pa.types.is_struct(t) or pa.types.is_map(t))
