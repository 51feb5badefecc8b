"""Durations written in recipes: `30`, `"90s"`, `"15m"`, `"2h"`, `"1d"`, or ISO 8601 (`"PT1H30M"`)."""

from __future__ import annotations

import re

_SHORT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h|d|w)?\s*$")
_SHORT_SECONDS = {
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
    None: 1,
}
# ISO 8601 durations of fixed length: weeks, or days and a time part. Years and months are
# refused: they have no fixed number of seconds.
_ISO = re.compile(
    r"^P(?:(?P<w>\d+(?:[.,]\d+)?)W"
    r"|(?:(?P<d>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:[.,]\d+)?)H)?(?:(?P<m>\d+(?:[.,]\d+)?)M)?(?:(?P<s>\d+(?:[.,]\d+)?)S)?)?)$",
    re.IGNORECASE,
)
_ISO_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
EXPECTED = (
    "a number, '90s', '15m', '2h', '1d', or an ISO 8601 duration in weeks, days, hours, "
    "minutes or seconds such as 'PT1H' or 'P1D'"
)


def parse_duration(value: float | str) -> float:
    """Seconds (or plain units, for a bare number) in `value`.

    :raises ValueError: `value` is negative, or not one of the forms in `EXPECTED`.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; expected {EXPECTED}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{value!r} is a negative duration; expected {EXPECTED}")
        return float(value)
    text = value.strip()
    short = _SHORT.match(text)
    if short:
        return float(short.group(1)) * _SHORT_SECONDS[short.group(2)]
    iso = _ISO.match(text)
    if iso and text.upper() not in ("P", "PT") and not text.upper().endswith("T"):
        return sum(
            float(amount.replace(",", ".")) * _ISO_SECONDS[unit]
            for unit, amount in iso.groupdict().items()
            if amount is not None
        )
    raise ValueError(f"{value!r} is not a duration; expected {EXPECTED}")
