"""`NanoTimestamp`: a timestamp with nanoseconds, the cursor value of an Arrow `timestamp[ns]`.

Python's `datetime` stops at microseconds, and pyarrow only gives nanoseconds back as a pandas
`Timestamp` when pandas happens to be installed. A cursor must survive a round trip through the
state exactly, with or without pandas, so a nanosecond cursor is held as this value instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import total_ordering
from typing import Any

_EPOCH = datetime(1970, 1, 1)
_ISO = re.compile(r"^(?P<head>.+T\d\d:\d\d:\d\d)\.(?P<nanos>\d{9})(?P<offset>Z|[+-]\d\d:\d\d)?$")


@total_ordering
@dataclass(frozen=True, eq=False)
class NanoTimestamp:
    """`nanos` since the Unix epoch (UTC when `tz` is set; wall time when it is None)."""

    nanos: int
    tz: str | None = None

    @classmethod
    def from_datetime(cls, value: datetime, tz: str | None = None) -> NanoTimestamp:
        """`value` (a `datetime`, or a pandas `Timestamp` with its nanoseconds) exactly."""
        extra = int(getattr(value, "nanosecond", 0))
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        micros = (value - _EPOCH) // timedelta(microseconds=1)
        return cls(micros * 1000 + extra, tz)

    def isoformat(self) -> str:
        """`YYYY-MM-DDTHH:MM:SS.nnnnnnnnn`, with `+00:00` when the timestamp has a time zone."""
        seconds, nanos = divmod(self.nanos, 1_000_000_000)
        wall = _EPOCH + timedelta(seconds=seconds)
        return f"{wall.isoformat(timespec='seconds')}.{nanos:09d}" + ("+00:00" if self.tz else "")

    @classmethod
    def fromisoformat(cls, text: str, tz: str | None = None) -> NanoTimestamp:
        """Inverse of `isoformat` (any offset is converted to UTC)."""
        match = _ISO.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a timestamp with 9 fractional digits")
        base = datetime.fromisoformat(match["head"] + (match["offset"] or ""))
        return cls(cls.from_datetime(base).nanos + int(match["nanos"]), tz)

    def _other(self, other: Any) -> NanoTimestamp | None:
        """`other` as a NanoTimestamp, when it is a timestamp at all."""
        if isinstance(other, NanoTimestamp):
            return other
        if isinstance(other, datetime):
            return NanoTimestamp.from_datetime(other, "UTC" if other.tzinfo else None)
        return None

    def __eq__(self, other: object) -> bool:
        that = self._other(other)
        if that is None:
            return NotImplemented
        return self.nanos == that.nanos and (self.tz is None) == (that.tz is None)

    def __lt__(self, other: Any) -> bool:
        that = self._other(other)
        return NotImplemented if that is None else self.nanos < that.nanos

    def __hash__(self) -> int:
        return hash((self.nanos, self.tz is None))

    def __repr__(self) -> str:
        zone = f", tz={self.tz!r}" if self.tz else ""
        return f"NanoTimestamp({self.isoformat()!r}{zone})"
