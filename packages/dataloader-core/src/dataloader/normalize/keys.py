"""Row keys of normalized tables: one 128-bit hash per row, computed on whole Arrow columns.

Every value gets two 64-bit lanes, built with numpy on the Arrow buffers (no Python loop per
row or per value; loops run over columns, struct fields and nesting levels only):

- a null is a fixed marker (never the hash of a value of any type);
- fixed-width scalars are read as canonical 64- or 128-bit integers (integers by value, so
  `int32` 5 == `int64` 5 == `uint8` 5; floats as float64 bits with -0.0 read as 0.0 and every
  NaN alike; timestamps and durations as whole seconds plus nanoseconds, so the unit does not
  matter; times as nanoseconds; dates as days) and mixed with a tag of their family, so int 1,
  float 1.0, bool true and string "1" differ;
- strings and binaries are hashed over their bytes by two polynomial hashes (one mod 2**64,
  one mod the prime 2**31 - 1, which Thue-Morse strings do not break) computed with prefix sums
  and inverse powers, plus their length; decimals are hashed as their exact text (so the scale
  is part of the value: `1.50` in `decimal(5,2)` differs from `1.5` in `decimal(5,1)`);
- a struct folds its fields' lanes in order with the field names; a list sums its elements'
  lanes mixed with their positions over the list's segment, then mixes in the length (order
  matters; null, `[]` and `[null]` differ); maps are lists of key/value structs; dictionaries
  are hashed by value.

Timestamps hash by instant: the time zone is not part of the hash. Lanes are combined with the
murmur3 `fmix64` finalizer. All arithmetic is little-endian uint64 and wraps mod 2**64, so the
keys are the same on every platform, process and batching.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROW_ID = "_dl_id"
PARENT_ID = "_dl_parent_id"
ROOT_ID = "_dl_root_id"
LIST_INDEX = "_dl_list_idx"
KEY_COLUMNS = (ROW_ID, PARENT_ID, ROOT_ID, LIST_INDEX)

Lanes = np.ndarray
"""Shape (n, 2), dtype uint64: a 128-bit hash per row."""

_U64 = np.dtype("<u8")
_MASK64 = (1 << 64) - 1
_B64 = 0x100000001B3  # odd, so invertible mod 2**64
_PRIME = (1 << 31) - 1
_BP = 1_000_003
_BLOCK_BYTES = 1 << 18  # string bytes hashed per step: cache-sized, and bounds the power tables
_NANOS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}

_Pair = tuple[np.ndarray, np.ndarray]


@cache
def _const(name: str) -> tuple[np.uint64, np.uint64]:
    """Two stable 64-bit constants named by `name` (a tag, a field name)."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=16, person=b"dl-keys").digest()
    return (
        np.uint64(int.from_bytes(digest[:8], "little") | 1),
        np.uint64(int.from_bytes(digest[8:], "little") | 1),
    )


_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)
_S32 = np.uint64(32)


def _fmix(x: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finalizer (a bijection), on a fresh array."""
    x = x ^ (x >> _S33)
    x *= _M1
    x ^= x >> _S33
    x *= _M2
    x ^= x >> _S33
    return x


def _mix(lo: np.ndarray, hi: np.ndarray | None, tag: str) -> _Pair:
    """The lanes of values given as 128-bit words (`hi` None: 0), tagged by their family."""
    a0, a1 = _const(tag)
    b0, b1 = _const(tag + ":hi")
    lo = np.ascontiguousarray(lo, dtype=_U64)
    if hi is None:
        return _fmix(lo * a0 + b0), _fmix(lo * a1 + b1)
    hi = hi.astype(_U64)
    return _fmix(lo * a0 + (hi * b0 ^ a1)), _fmix(lo * a1 + (hi * b1 ^ a0))


def _combine(acc: _Pair, item: _Pair, name: str) -> _Pair:
    """Fold `item` (lanes already mixed, named by `name`) into `acc`; order-sensitive."""
    c0, c1 = _const(name)
    return _fmix(acc[0] * c0 + (item[0] ^ c1)), _fmix(acc[1] * c1 + (item[1] ^ c0))


def _apply_nulls(lanes: _Pair, array: pa.Array) -> _Pair:
    if array.null_count == 0:
        return lanes
    null = array.is_null().to_numpy(zero_copy_only=False)
    n0, n1 = _const("null")
    a, b = lanes[0].copy(), lanes[1].copy()
    a[null] = n0
    b[null] = n1
    return a, b


def _filled(array: pa.Array, value: object) -> np.ndarray:
    if array.null_count:
        array = array.fill_null(pa.scalar(value, array.type))
    return array.to_numpy(zero_copy_only=False)


class _Powers:
    """Growing tables of B**i and B**-i (mod 2**64 and mod _PRIME), shared by all calls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.p64 = np.ones(1, _U64)
        self.i64 = np.ones(1, _U64)
        self.pp = np.ones(1, _U64)
        self.ip = np.ones(1, _U64)

    def ensure(self, n: int) -> None:
        with self._lock:
            while len(self.p64) < n:
                size = len(self.p64)
                step64 = np.uint64(pow(_B64, size, 1 << 64))
                istep64 = np.uint64(pow(_B64, -size, 1 << 64))
                stepp = np.uint64(pow(_BP, size, _PRIME))
                istepp = np.uint64(pow(_BP, -size, _PRIME))
                p64 = np.concatenate([self.p64, self.p64 * step64])
                i64 = np.concatenate([self.i64, self.i64 * istep64])
                pp = np.concatenate([self.pp, self.pp * stepp % np.uint64(_PRIME)])
                ip = np.concatenate([self.ip, self.ip * istepp % np.uint64(_PRIME)])
                self.p64, self.i64, self.pp, self.ip = p64, i64, pp, ip


_POWERS = _Powers()


def _byte_sums(data: np.ndarray, offsets: np.ndarray) -> _Pair:
    """Polynomial hashes of the byte ranges data[offsets[i]:offsets[i+1]], each as if it
    started at position 0 (so a value's hash does not depend on where it sits)."""
    n = len(offsets) - 1
    s64 = np.empty(n, _U64)
    sp = np.empty(n, _U64)
    prime = np.uint64(_PRIME)
    row = 0
    while row < n:
        # the rows whose bytes start within the next block (at least one row)
        base = offsets[row]
        stop = int(np.searchsorted(offsets, base + _BLOCK_BYTES, side="right")) - 1
        stop = min(max(stop, row + 1), n)
        rel = (offsets[row : stop + 1] - base).astype(np.int64)
        length = int(rel[-1])
        _POWERS.ensure(length + 1)
        chunk = data[base : base + length]
        prefix = np.zeros(length + 1, _U64)
        terms = prefix[1:]
        np.multiply(chunk, _POWERS.p64[:length], out=terms)
        np.cumsum(terms, out=terms)
        starts, ends = rel[:-1], rel[1:]
        s64[row:stop] = (prefix[ends] - prefix[starts]) * _POWERS.i64[starts]
        # terms < 2**39 and at most 2**18 + one value's bytes of them: the sum cannot wrap
        # unless one value exceeds 2**24 bytes, so such blocks reduce per term first
        np.multiply(chunk, _POWERS.pp[:length], out=terms)
        if length > (1 << 24):
            terms %= prime
        np.cumsum(terms, out=terms)
        sums = (prefix[ends] - prefix[starts]) % prime
        sp[row:stop] = sums * _POWERS.ip[starts] % prime
        row = stop
    return s64, sp


def _binary_lanes(array: pa.Array, tag: str) -> _Pair:
    if pa.types.is_fixed_size_binary(array.type):
        array = array.cast(pa.binary())
    elif pa.types.is_string_view(array.type):
        array = array.cast(pa.large_string())
    elif pa.types.is_binary_view(array.type):
        array = array.cast(pa.large_binary())
    large = pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type)
    _, offset_buf, data_buf = array.buffers()
    offsets = np.frombuffer(offset_buf, dtype="<i8" if large else "<i4")
    offsets = offsets[array.offset : array.offset + len(array) + 1].astype(np.int64)
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    s64, sp = _byte_sums(data, offsets)
    length = np.diff(offsets).astype(_U64)
    c0, c1 = _const(tag)
    lane0 = _fmix(s64 * c0 + (length * c1 ^ c0))
    lane1 = _fmix((sp | length << _S32) * c1 + (s64 ^ c0))
    return lane0, lane1


def _int_lanes(array: pa.Array) -> _Pair:
    if pa.types.is_unsigned_integer(array.type):
        lo = _filled(array.cast(pa.uint64()), 0).astype(_U64)
        return _mix(lo, np.zeros(len(lo), _U64), "int")
    values = _filled(array.cast(pa.int64()), 0).astype(np.int64)
    hi = np.where(values < 0, np.uint64(_MASK64), np.uint64(0)).astype(_U64)
    return _mix(values.view(_U64), hi, "int")


def _float_lanes(array: pa.Array) -> _Pair:
    values = _filled(array.cast(pa.float64()), 0.0).astype("<f8")
    values[values == 0.0] = 0.0
    values[np.isnan(values)] = np.nan
    return _mix(values.view(_U64), None, "float")


def _instant_lanes(array: pa.Array, unit: str, tag: str) -> _Pair:
    values = _filled(array.cast(pa.int64()), 0).astype(np.int64)
    per_second = 1_000_000_000 // _NANOS[unit]
    seconds, rest = np.divmod(values, per_second)
    return _mix(seconds.view(_U64), (rest * _NANOS[unit]).view(_U64), tag)


def _record(fields: Sequence[tuple[str, pa.Array]], n: int, tag: str) -> _Pair:
    """The lanes of records: a sum over their fields of each non-null value mixed with its
    field's name. A null field counts as absent, and the fields' order does not count: a
    record reads the same when another record of its file adds a field, or a file lists its
    fields in another order."""
    total0, total1 = np.zeros(n, _U64), np.zeros(n, _U64)
    for name, child in fields:
        lane0, lane1 = _lanes(child)
        c0, c1 = _const("field:" + name)
        mixed0, mixed1 = _fmix(lane0 * c0 + c1), _fmix(lane1 * c1 + c0)
        # A dictionary's null values are not in its null_count, but they are nulls.
        if child.null_count or pa.types.is_dictionary(child.type):
            present = child.is_valid().to_numpy(zero_copy_only=False)
            mixed0 *= present
            mixed1 *= present
        total0 += mixed0
        total1 += mixed1
    return _mix(total0, total1, tag)


def _struct_lanes(array: pa.StructArray) -> _Pair:
    fields = [(field.name, child) for field, child in zip(array.type, array.flatten(), strict=True)]
    return _record(fields, len(array), "struct")


def _list_lanes(array: pa.Array) -> _Pair:
    if pa.types.is_map(array.type):
        item = pa.struct([array.type.key_field, array.type.item_field])
        array = array.cast(pa.list_(item))
    values = pc.list_flatten(array)
    lengths = _filled(pc.list_value_length(array), 0).astype(np.int64)
    # From the lengths, not `list_parent_indices`: a null list may span elements, which
    # `list_flatten` leaves out.
    parents = np.repeat(np.arange(len(array), dtype=np.int64), lengths)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    positions = np.arange(len(values), dtype=np.int64) - starts[parents]
    elements = _lanes(values)
    top = int(lengths.max(initial=0))
    sums = []
    for lane, c in zip(elements, _const("position"), strict=True):
        # a mixed word per position, looked up rather than mixed per element
        by_position = _fmix(np.arange(top, dtype=_U64) * c + c)
        prefix = np.zeros(len(values) + 1, _U64)
        np.cumsum(_fmix(lane + by_position[positions]), out=prefix[1:])
        sums.append(prefix[ends] - prefix[starts])
    return _combine(_mix(lengths.view(_U64), None, "list"), (sums[0], sums[1]), "elements")


def _lanes(array: pa.Array) -> _Pair:
    """The lanes of every value of `array`, nulls as the null marker."""
    t = array.type
    if isinstance(t, pa.BaseExtensionType):  # pyarrow's own (uuid, json) as well
        return _lanes(array.storage)
    if pa.types.is_dictionary(t):
        dictionary = _lanes(array.dictionary)
        indices = _filled(array.indices, 0).astype(np.int64)
        return _apply_nulls((dictionary[0][indices], dictionary[1][indices]), array)
    if pa.types.is_null(t):
        n0, n1 = _const("null")
        return np.full(len(array), n0, _U64), np.full(len(array), n1, _U64)
    if pa.types.is_boolean(t):
        lanes = _mix(_filled(array, False).astype(_U64), None, "bool")
    elif pa.types.is_integer(t):
        lanes = _int_lanes(array)
    elif pa.types.is_floating(t):
        lanes = _float_lanes(array)
    elif pa.types.is_decimal(t):
        lanes = _binary_lanes(array.cast(pa.string()), "decimal")
    elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        lanes = _binary_lanes(array, "string")
    elif (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    ):
        lanes = _binary_lanes(array, "binary")
    elif pa.types.is_date(t):
        days = _filled(array.cast(pa.date32()).cast(pa.int32()), 0).astype(np.int64)
        lanes = _mix(days.view(_U64), None, "date")
    elif pa.types.is_time(t):
        nanos = _filled(array.cast(pa.time64("ns")).cast(pa.int64()), 0).astype(np.int64)
        lanes = _mix(nanos.view(_U64), None, "time")
    elif pa.types.is_timestamp(t):
        lanes = _instant_lanes(array, t.unit, "timestamp")
    elif pa.types.is_duration(t):
        lanes = _instant_lanes(array, t.unit, "duration")
    elif pa.types.is_struct(t):
        lanes = _struct_lanes(array)
    elif (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
        or pa.types.is_list_view(t)
        or pa.types.is_large_list_view(t)
        or pa.types.is_map(t)
    ):
        lanes = _list_lanes(array)
    else:
        raise TypeError(f"cannot hash values of Arrow type {t} (no row key for this type)")
    return _apply_nulls(lanes, array)


def _stack(lanes: _Pair) -> Lanes:
    return np.ascontiguousarray(np.stack(lanes, axis=1), dtype=_U64)


def hash_rows(
    columns: Sequence[pa.Array | pa.ChunkedArray], names: Sequence[str] | None = None
) -> Lanes:
    """One 128-bit hash per row over `columns` (of one length, any Arrow type), each row read
    as a record: its null values count as absent, the columns' order does not count (as for
    the fields of a struct). The `row_hash` accelerator (`dataloader-rust`) computes it when
    installed, with the same values; `python_hash_rows` is the reference.

    :param names: the columns' names, which enter the hash (default: their positions).
    :returns: an (n, 2) uint64 array; the same rows give the same hashes whatever the batching.
    """
    from dataloader.registry import get_registry

    _check_columns(columns, names)
    accelerated = get_registry().accelerator("row_hash")
    if accelerated is not None:
        lanes = accelerated(columns, names)
        if lanes is not None:
            return lanes
    return python_hash_rows(columns, names)


def _check_columns(
    columns: Sequence[pa.Array | pa.ChunkedArray], names: Sequence[str] | None
) -> None:
    if names is not None and len(names) != len(columns):
        raise ValueError(f"hash_rows: {len(columns)} columns but {len(names)} names")
    if not columns:
        raise ValueError("hash_rows: no columns to hash")
    for i, column in enumerate(columns):
        if len(column) != len(columns[0]):
            raise ValueError(
                f"hash_rows: column {i} has {len(column)} rows, expected {len(columns[0])}"
            )


def python_hash_rows(
    columns: Sequence[pa.Array | pa.ChunkedArray], names: Sequence[str] | None = None
) -> Lanes:
    """`hash_rows` computed with numpy: the reference an accelerator must match."""
    _check_columns(columns, names)
    fields = []
    for i, column in enumerate(columns):
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        fields.append((names[i] if names is not None else str(i), column))
    return _stack(_record(fields, len(columns[0]), "row"))


def child_lanes(parent: Lanes, parent_indices: np.ndarray, positions: np.ndarray) -> Lanes:
    """The ids of list elements: the hash of their parent row's id and their position."""
    rows = np.take(parent, np.asarray(parent_indices, dtype=np.int64), axis=0)
    pos = np.asarray(positions, dtype=np.int64).view(_U64)
    c0, c1 = _const("child")
    return _stack(
        (_fmix(rows[:, 0] * c0 + (pos * c1 ^ c0)), _fmix(rows[:, 1] * c1 + (pos * c0 ^ c1)))
    )


def _hex_words() -> np.ndarray:
    """For every 16-bit value `v` (as two bytes read little-endian from big-endian data): its
    4 hex characters, most significant first, as one little-endian uint32."""
    v = np.arange(1 << 16, dtype=np.uint32)
    v = (v & 0xFF) << 8 | v >> 8  # the pair's first byte is the more significant
    digits = np.frombuffer(b"0123456789abcdef", np.uint8)
    text = np.stack(
        [digits[v >> 12 & 15], digits[v >> 8 & 15], digits[v >> 4 & 15], digits[v & 15]], 1
    )
    return np.ascontiguousarray(text).view("<u4").reshape(-1)


_HEX_WORDS = _hex_words()
_HEX_STEP = 1 << 16  # rows looked up per step: bounds the index temporaries to 4 MiB


_VERSION_CLEAR, _VERSION_8 = np.uint64(~0xF000 & (2**64 - 1)), np.uint64(0x8000)
_VARIANT_CLEAR, _VARIANT_RFC = np.uint64(2**62 - 1), np.uint64(1 << 63)
# The 32 hex characters in groups (start, end, where the group goes among the 36 of a UUID's
# text); the rest are dashes.
_UUID_GROUPS = ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24))


def uuid_words(lanes: Lanes) -> np.ndarray:
    """The hex digits of `uuid_text`, one row per row: an (n, 8) little-endian uint32 array
    whose bytes are the 32 digits (rows can be gathered with numpy, then made text by
    `uuid_text_of`). The 4 version bits become 8 and the 2 variant bits `10` (RFC 9562's
    UUIDv8): 122 bits of the hash remain."""
    n = len(lanes)
    marked = np.array(lanes, dtype=_U64).reshape(n, 2)
    marked[:, 0] = marked[:, 0] & _VERSION_CLEAR | _VERSION_8
    marked[:, 1] = marked[:, 1] & _VARIANT_CLEAR | _VARIANT_RFC
    words = marked.byteswap().view("<u2").reshape(n, 8)
    text = np.empty((n, 8), "<u4")
    for start in range(0, n, _HEX_STEP):
        part = words[start : start + _HEX_STEP].astype(np.intp)
        np.take(_HEX_WORDS, part, out=text[start : start + _HEX_STEP])
    return text


def uuid_text_of(words: np.ndarray) -> pa.StringArray:
    """A string array of the rows of `words` (as `uuid_words` gives): 36 characters each,
    `xxxxxxxx-xxxx-8xxx-yxxx-xxxxxxxxxxxx`."""
    n = len(words)
    if n * 36 > np.iinfo(np.int32).max:
        raise ValueError(f"uuid_text: {n} rows do not fit one string array; hash smaller batches")
    digits = np.ascontiguousarray(words, dtype="<u4").view(np.uint8).reshape(n, 32)
    text = np.full((n, 36), ord("-"), np.uint8)
    for start, end, to in _UUID_GROUPS:
        text[:, to : to + end - start] = digits[:, start:end]
    offsets = np.arange(0, 36 * n + 1, 36, dtype="<i4")
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text))


def uuid_text(lanes: Lanes) -> pa.StringArray:
    """Each row's 128-bit hash as UUID text (lowercase, version 8, RFC variant)."""
    return uuid_text_of(uuid_words(lanes))


def short_hash(text: str) -> str:
    """8 lowercase hex characters of a stable hash of `text` (for names, not rows)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
