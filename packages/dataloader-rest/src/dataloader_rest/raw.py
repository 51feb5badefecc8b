"""Records kept as JSON text until their batch is converted: the fast path of JSON pages.

With the accelerator that fills the `rest_json_records` slot installed (`dataloader-rust`),
a page's records array is found in the response bytes and goes to Arrow in native code when
its batch is sent, never becoming Python objects; the rest of the body is parsed as usual
(with the array left empty) for the paginator. The path is taken only where nothing reads
the records from the body: a `data_selector` made of keys, a built-in paginator whose paths
stay out of the records, no parent fields carried in. Whatever the native code does not
convert exactly as `records_to_table` would (mixed types, exponents, NaN, a lone surrogate,
…) it declines, and those records are parsed and converted the usual way.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

import httpx
import pyarrow as pa

from dataloader.registry import get_registry
from dataloader_rest.pages import PageRequest, Paginator
from dataloader_rest.paginators import BUILTIN_PAGINATORS
from dataloader_rest.records import records_to_table, table_from_columns
from dataloader_rest.selectors import SelectorError, parse_path

SLOT = "rest_json_records"
# Paginators that read the body only at their option paths (`*_path`); `auto` once it has
# picked one of them. Others (starting_after reads the records, plugins are unknown) do not
# get the fast path.
_PATH_PAGINATORS = frozenset(
    {"offset", "page_number", "cursor", "next_url", "link_header", "single_page"}
)
_BUILTIN = frozenset(BUILTIN_PAGINATORS)
_DECODER = json.JSONDecoder(parse_float=Decimal)


class JsonRecords(Protocol):
    """What the class in the `rest_json_records` accelerator slot makes."""

    def locate(self, content: bytes, keys: Sequence[str]) -> tuple[int, int, int] | None:
        """The byte span and item count of the array of objects at `keys` in the JSON
        document `content`; None when it is not one, or not in the exact subset."""

    def to_arrays(self, content: bytes) -> tuple[list[str], list[pa.Array]] | None:
        """The columns `records_to_table` builds (before instants) from the JSON array of
        objects `content`, or None to leave it to `records_to_table`."""


class RawRecords(NamedTuple):
    """A page's records array as it came (JSON text, UTF-8) and how many records it holds."""

    text: bytes
    count: int

    def parse(self) -> list[dict[str, Any]]:
        return json.loads(self.text.decode("utf-8"), parse_float=Decimal)  # type: ignore[no-any-return]

    def first(self) -> dict[str, Any]:
        """The first record, parsed alone (the array holds at least one)."""
        text = self.text.decode("utf-8")
        start = text.index("{")
        return _DECODER.raw_decode(text, start)[0]  # type: ignore[no-any-return]


Records = list[dict[str, Any]] | RawRecords


def accelerator() -> JsonRecords | None:
    """The installed native converter (the slot holds its class), or None."""
    native = get_registry().accelerator(SLOT)
    return None if native is None else native()  # type: ignore[no-any-return]


def record_keys(selector: str | None) -> list[str] | None:
    """The keys `selector` follows when it is keys only (no index, no wildcard), else None."""
    if selector is None:
        return None
    try:
        segments = parse_path(selector)
    except SelectorError:
        return None
    if not all(isinstance(s, str) and s != "*" for s in segments):
        return None
    return [str(s) for s in segments]


def leaves_records(paginator: Paginator, request: PageRequest, keys: Sequence[str]) -> bool:
    """Whether `paginator` reads nothing of the body under (or above) the records at `keys`:
    then an empty array in their place changes nothing it decides."""
    if type(paginator) not in _BUILTIN:
        return False
    name, options = paginator.name, paginator.options.model_dump()
    if name == "auto":
        picked = request.state.get("auto")
        if picked is None:
            return False  # the first page decides, from the whole body
        # `auto`'s own options (`total_path`, …) apply beside those of the one it picked.
        name, options = picked["type"], {**options, **picked.get("options", {})}
    if name not in _PATH_PAGINATORS:
        return False
    for option, path in options.items():
        if not option.endswith("_path") or path is None:
            continue
        if not isinstance(path, str):
            return False
        other = record_keys(path)
        if other is None:
            try:
                other = [str(s) for s in parse_path(path)]
            except SelectorError:
                return False
        overlap = min(len(other), len(keys))
        if other[:overlap] == list(keys[:overlap]):
            return False
    return True


def split_page(
    native: JsonRecords, response: httpx.Response, keys: Sequence[str]
) -> tuple[Any, RawRecords] | None:
    """The body with its records array emptied, and that array as text; None when the body
    is not UTF-8 JSON the native code takes as a whole (the page is then read as usual)."""
    content = response.content
    if response.charset_encoding:
        # As `bodies` reads it: the declared charset, or httpx's default for one unknown.
        if codecs.lookup(response.encoding or "utf-8").name != "utf-8":
            return None
    elif json.detect_encoding(content) != "utf-8":
        return None  # UTF-16/32, or a byte order mark
    found = native.locate(content, keys)
    if found is None:
        return None
    start, end, count = found
    try:
        body = json.loads(
            (content[:start] + b"[]" + content[end:]).decode("utf-8"), parse_float=Decimal
        )
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return body, RawRecords(content[start:end], count)


def same_records(a: Records, b: Records) -> bool:
    """Whether two pages hold the same records, as parsed (the text may differ in key order
    or spacing). Pages of text are told apart by their count and first record first, so a
    listing's pages are not all parsed to compare them."""
    if isinstance(a, RawRecords) and isinstance(b, RawRecords):
        if a.count != b.count:
            return False
        if a.text == b.text:
            return True
        if a.count and not _alike(a.first(), b.first()):
            return False
    return _alike(_parsed(a), _parsed(b))


def _alike(a: Any, b: Any) -> bool:
    """Equal as JSON values: of one type too, so `1`, `1.0` and `true` differ (Python's `==`
    takes them for one another)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_alike(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(_alike(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def table_of(parts: Sequence[Records], native: JsonRecords | None) -> pa.Table:
    """The records of consecutive pages as one table, as `records_to_table` builds it."""
    if native is not None and parts and all(isinstance(p, RawRecords) for p in parts):
        texts = [p.text.strip()[1:-1].strip() for p in parts if p.count]  # type: ignore[union-attr]
        converted = native.to_arrays(b"[" + b",".join(texts) + b"]")
        if converted is not None:
            return table_from_columns(*converted)
    records: list[dict[str, Any]] = []
    for part in parts:
        records.extend(_parsed(part))
    return records_to_table(records)


def _parsed(records: Records) -> list[dict[str, Any]]:
    return records.parse() if isinstance(records, RawRecords) else records
