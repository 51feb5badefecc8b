"""Paths into JSON bodies: where a page's records, its cursor or its total are.

A path is a small JSONPath subset: `$` (the whole body), `$.a.b` or `a.b` (keys),
`a[0].b` (a list index, negative from the end), `$.data[*]` or `data.*` (every item of a
list or every value of an object), and `$['a.b']` for a key that is not a plain name.
"""

from __future__ import annotations

import re
from typing import Any

from dataloader.errors import ConnectorError

_MISSING: Any = object()
_WILDCARD = "*"

# Keys under which APIs commonly put a page's records, most common first.
RECORD_KEYS: tuple[str, ...] = (
    "data",
    "items",
    "results",
    "records",
    "entries",
    "values",
    "rows",
    "objects",
    "elements",
    "list",
    "hits",
    "content",
    "value",  # OData
    "nodes",
    "edges",
    "docs",
)
# Wrappers an API may nest its listing in (`{"data": {"items": [...]}}`, `hits.hits`).
_WRAPPER_KEYS: tuple[str, ...] = ("data", "result", "results", "response", "hits", "payload")

_TOKEN = re.compile(
    r"""
    \.?(?P<name>[A-Za-z_$@\-][\w$@\-]*)     # .name (the dot optional at the start)
    | \.?\*                                  # .* or *
    | \[\s*(?P<index>-?\d+)\s*\]             # [0]
    | \[\s*\*\s*\]                           # [*]
    | \[\s*(?P<quote>['"])(?P<key>(?:\\.|(?!(?P=quote)).)*)(?P=quote)\s*\]  # ['a.b']
    """,
    re.VERBOSE,
)


class SelectorError(ConnectorError):
    """A path does not match a body, or a body's records cannot be found."""


def parse_path(path: str) -> list[str | int]:
    """The segments of `path`: keys (str), list indexes (int) and `*` for every item."""
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
    segments: list[str | int] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise SelectorError(
                f"invalid path {path!r} at {text[position:]!r}",
                expected="a path like `data`, `$.meta.next`, `items[0].id` or `$.data[*]`",
            )
        if match.group("name") is not None:
            segments.append(match.group("name"))
        elif match.group("index") is not None:
            segments.append(int(match.group("index")))
        elif match.group("quote") is not None:
            segments.append(re.sub(r"\\(.)", r"\1", match.group("key")))
        else:
            segments.append(_WILDCARD)
        if match.group("name") is not None and position > 0 and text[position] != ".":
            raise SelectorError(f"invalid path {path!r}: a `.` is missing before {segments[-1]!r}")
        position = match.end()
    return segments


def format_path(segments: list[str | int]) -> str:
    """The path text of `segments` (`$`, `$.data`, `$['a.b'][0]`)."""
    text = "$"
    for segment in segments:
        if isinstance(segment, int):
            text += f"[{segment}]"
        elif segment == _WILDCARD:
            text += "[*]"
        elif re.fullmatch(r"[A-Za-z_][\w]*", segment):
            text += f".{segment}"
        else:
            text += "[" + repr(segment) + "]"
    return text


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _step(value: Any, segment: str | int, path: str, where: str) -> Any:
    """`value[segment]`; `_MISSING` when the key or index is not there."""
    if isinstance(segment, int):
        if not isinstance(value, list):
            raise SelectorError(
                f"path {path!r}: {where} is {_describe(value)}, not a list, so [{segment}] "
                "cannot be taken"
            )
        return value[segment] if -len(value) <= segment < len(value) else _MISSING
    if not isinstance(value, dict):
        if value is None:
            return _MISSING
        raise SelectorError(
            f"path {path!r}: {where} is {_describe(value)}, not an object, so key "
            f"{segment!r} cannot be taken"
        )
    return value.get(segment, _MISSING)


def _missing(path: str, segment: str | int, where: str, value: Any) -> SelectorError:
    if isinstance(segment, int):
        detail = f"has no item [{segment}] (it holds {len(value)})"
    elif isinstance(value, dict):
        keys = ", ".join(repr(key) for key in list(value)[:20]) or "none"
        more = f" and {len(value) - 20} more" if len(value) > 20 else ""
        detail = f"has no key {segment!r} (keys present: {keys}{more})"
    else:
        detail = f"is null, so key {segment!r} is missing"
    return SelectorError(f"path {path!r}: {where} {detail}")


def select(body: Any, path: str, *, default: Any = _MISSING) -> Any:
    """The value at `path` in `body`.

    After a wildcard the result is the list of every match. A missing key or index (or a
    null on the way) raises `SelectorError` naming the missing segment and the keys present,
    unless `default` is given, which is then returned. A segment that does not fit the value
    (a key taken from a list) always raises.
    """
    segments = parse_path(path)
    matches = [body]
    spread = False
    walked: list[str | int] = []
    for segment in segments:
        where = format_path(walked)
        if segment == _WILDCARD:
            items: list[Any] = []
            for match in matches:
                if isinstance(match, list):
                    items.extend(match)
                elif isinstance(match, dict):
                    items.extend(match.values())
                elif match is None:
                    continue
                else:
                    raise SelectorError(
                        f"path {path!r}: {where} is {_describe(match)}, so [*] cannot be taken"
                    )
            matches = items
            spread = True
        else:
            found = []
            for match in matches:
                value = _step(match, segment, path, where)
                if value is _MISSING:
                    if default is not _MISSING:
                        return default
                    raise _missing(path, segment, where, match)
                found.append(value)
            matches = found
        walked.append(segment)
    return matches if spread else matches[0]


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _find(body: dict[str, Any], prefix: list[str | int], depth: int) -> tuple[list, str] | None:
    common = [key for key in RECORD_KEYS if isinstance(body.get(key), list)]
    if len(common) > 1:
        # `{"data": [...], "values": [1, 2]}`: prefer the lists of objects.
        common = [key for key in common if _is_records(body[key])] or common
    if len(common) == 1:
        return body[common[0]], format_path([*prefix, common[0]])
    if len(common) > 1:
        raise SelectorError(
            "the records of the response are ambiguous: several lists under "
            + ", ".join(repr(key) for key in common)
            + "; set `data_selector`"
        )
    others = [key for key, value in body.items() if _is_records(value)]
    if len(others) == 1:
        return body[others[0]], format_path([*prefix, others[0]])
    if len(others) > 1:
        raise SelectorError(
            "the records of the response are ambiguous: several lists of objects under "
            + ", ".join(repr(key) for key in others)
            + "; set `data_selector`"
        )
    if depth > 0:
        for key in _WRAPPER_KEYS:
            if isinstance(body.get(key), dict):
                found = _find(body[key], [*prefix, key], depth - 1)
                if found is not None:
                    return found
    # Some APIs write an empty listing as null (`"items": null`).
    nulls = [key for key in RECORD_KEYS if key in body and body[key] is None]
    if len(nulls) == 1:
        return [], format_path([*prefix, nulls[0]])
    return None


def find_records(body: Any) -> tuple[list[Any], str]:
    """The list of records in `body` and the path it was found at.

    A top-level list is the records (`$`). In an object: the one list under a common key
    (`data`, `items`, `results`, `records`, …), else the only list of objects among its
    values, else the same one level down in a wrapper (`data`, `result`, `response`, …).
    Several candidates, or none, raise `SelectorError` naming them.
    """
    if isinstance(body, list):
        return body, "$"
    if not isinstance(body, dict):
        raise SelectorError(
            f"cannot find records in a response body that is {_describe(body)}; set `data_selector`"
        )
    found = _find(body, [], depth=1)
    if found is None:
        lists = [key for key, value in body.items() if isinstance(value, list)]
        candidates = (
            "lists found under " + ", ".join(repr(key) for key in lists)
            if lists
            else "keys present: " + (", ".join(repr(key) for key in list(body)[:20]) or "none")
        )
        raise SelectorError(
            f"cannot find the records of the response: no list of objects ({candidates}); "
            "set `data_selector`"
        )
    return found
