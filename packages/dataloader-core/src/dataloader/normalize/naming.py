"""Names of flattened columns and child tables: cut to the destination's identifier limit,
and kept apart when two paths give one name."""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

from dataloader.errors import DataLoaderError
from dataloader.normalize.keys import short_hash

COLLISION_KEY = "normalization.naming.on_collision"
# DuckDB (and Postgres, unquoted) take identifiers that differ in ASCII case only for one.
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_HASH_SUFFIX_BYTES = 9  # "_" + 8 hex characters


class NormalizationError(DataLoaderError):
    """Nested data cannot be normalized as configured: a name collision, a key column that is
    missing or nested, a name that cannot be made to fit."""


def _cut(name: str, max_bytes: int) -> str:
    """The longest prefix of `name` of at most `max_bytes` UTF-8 bytes, on a character
    boundary."""
    encoded = name.encode("utf-8")
    if len(encoded) <= max_bytes:
        return name
    return encoded[: max(max_bytes, 0)].decode("utf-8", errors="ignore")


def fit_identifier(name: str, limit: int | None) -> str:
    """`name` when it fits in `limit` UTF-8 bytes; otherwise cut on a character boundary to
    `limit - 9` bytes and ended with `_` + 8 hex characters of a stable hash of the full name.

    :param name: the full identifier.
    :param limit: the longest identifier in bytes; None for no limit.
    """
    if limit is None or len(name.encode("utf-8")) <= limit:
        return name
    return f"{_cut(name, limit - _HASH_SUFFIX_BYTES)}_{short_hash(name)}"


def _suffixed(name: str, label: str, limit: int | None) -> str:
    suffix = f"_{short_hash(label)}"
    if limit is None:
        return name + suffix
    return _cut(name, limit - len(suffix.encode("utf-8"))) + suffix


@dataclass(frozen=True)
class NameRequest:
    """One name wanted in one namespace (the columns of a table, or all table names).

    :param name: the full name, before any cut.
    :param path: the path it comes from (its segments count for who yields in a collision;
        reserved names, like the row keys, have the empty path and never yield).
    :param label: how messages show the path; its hash is the collision suffix.
    """

    name: str
    path: tuple[str, ...]
    label: str


def assign_names(
    requests: Sequence[NameRequest], limit: int | None, on_collision: str, what: str
) -> list[str]:
    """The final name of every request, in order: cut to `limit` (reserved names, with the
    empty path, are kept as they are), and on a collision either an error (`fail`) or the more
    nested path (ties: the later) suffixed (`suffix`). Names that differ only in ASCII case
    collide: DuckDB, and Postgres without quotes, take them for one.

    :param what: what the names are, for messages (`column of table "customers"`).
    :raises NormalizationError: on a collision under `fail`, or one a suffix cannot resolve.
    """
    names = [fit_identifier(r.name, limit) if r.path else r.name for r in requests]
    taken: dict[str, int] = {}
    losers: list[int] = []
    for index in sorted(range(len(requests)), key=lambda i: (len(requests[i].path), i)):
        first = taken.setdefault(_folded(names[index]), index)
        if first == index:
            continue
        if on_collision != "suffix" or not requests[index].path:
            _collision(requests[first], requests[index], names[first], names[index], what)
        losers.append(index)
    for index in losers:
        names[index] = _suffixed(requests[index].name, requests[index].label, limit)
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        first = seen.setdefault(_folded(name), index)
        if first != index:
            _collision(requests[first], requests[index], names[first], name, what)
    return names


def _folded(name: str) -> str:
    return name.translate(_ASCII_LOWER)


def _collision(first: NameRequest, second: NameRequest, name: str, other: str, what: str) -> None:
    names = (
        f"both give the {what} name {name!r}"
        if name == other
        else f"give the {what} names {name!r} and {other!r}, which differ only in case "
        "(one name to DuckDB, and to Postgres unquoted)"
    )
    raise NormalizationError(
        f"{first.label} and {second.label} {names}",
        key=COLLISION_KEY,
        expected="distinct names: rename a field, set a table_name, or on_collision: suffix",
        context={"paths": [first.label, second.label], "name": name},
    )
