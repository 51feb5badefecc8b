"""Key values as SQL compares them: what a merge key is hashed and de-duplicated by.

A merge matches rows by SQL equality, under which `1`, `1.0` and `1.00` are one key, as are
`0.0` and `-0.0`, and a timestamp is the same instant whatever its unit. The row id a key gives
(`_dl_id`) must follow: a key read as decimal(3,1) in one run and decimal(4,2) in the next is
the same row, and its children must be replaced, not left behind under an id nobody has.
"""

from __future__ import annotations

from contextlib import suppress
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

_INT64_BOUND = 2.0**63


def key_text(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`array`'s values in one form per SQL-equal value: numbers as positional text (integral
    values without a fraction, no trailing fractional zeros, no exponent, no negative zero),
    dates as their midnight, timestamps at microseconds where that loses nothing and instants
    in UTC; other types as they are."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    kind = array.type
    if pa.types.is_dictionary(kind):
        array = array.dictionary_decode()
        kind = array.type
    if pa.types.is_integer(kind):
        return pc.cast(array, pa.string())
    if pa.types.is_floating(kind):
        values = pc.cast(array, pa.float64())
        integral = pc.and_(
            pc.equal(pc.floor(values), values), pc.less(pc.abs(values), _INT64_BOUND)
        )
        whole = pc.cast(pc.if_else(integral, values, 0.0), pa.int64())
        text = pc.if_else(integral, pc.cast(whole, pa.string()), pc.cast(values, pa.string()))
        return _positional(text)
    if pa.types.is_decimal(kind):
        return _positional(pc.cast(array, pa.string()))
    if pa.types.is_date(kind):
        array = pc.cast(array, pa.timestamp("us"))  # a date is its midnight
        kind = array.type
    if pa.types.is_timestamp(kind):
        unit = "us"
        with suppress(pa.ArrowInvalid):  # nanoseconds below a microsecond are kept
            array = pc.cast(array, pa.timestamp(unit, kind.tz))
        if kind.tz is not None:  # an instant: written in UTC, whatever zone it was read in
            array = pc.cast(array, pa.timestamp(array.type.unit, "UTC"))
        return pc.cast(array, pa.string())
    return array


def _positional(text: pa.Array) -> pa.Array:
    """Numbers' text in plain positional notation without trailing fractional zeros (`1E-7`,
    `1e+20` and `1.50` become `0.0000001`, `100000000000000000000` and `1.5`). Text already
    positional is handled vectorized; exponent forms, rare in keys, one value at a time."""
    exponent = pc.match_substring_regex(text, "[eE]")
    if pc.any(exponent).as_py():
        written = [
            format(Decimal(value), "f") if value is not None and marked else value
            for value, marked in zip(text.to_pylist(), exponent.to_pylist(), strict=True)
        ]
        text = pa.array(written, pa.string())
    text = pc.replace_substring_regex(text, r"(\.\d*?)0+$", r"\1")
    text = pc.replace_substring_regex(text, r"\.$", "")
    return pc.replace_substring_regex(text, r"^-0$", "0")
