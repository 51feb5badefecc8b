"""Lossless JSON encoding of state values: types and full precision survive a round trip."""

from __future__ import annotations

import base64
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from dataloader.state.nanotimestamp import NanoTimestamp


def _encode_nanos(value: NanoTimestamp) -> dict[str, Any]:
    encoded: dict[str, Any] = {"$timestamp_ns": value.isoformat()}
    if value.tz is not None:
        encoded["tz"] = value.tz
    return encoded


def encode_value(value: Any) -> Any:
    """A JSON-safe form of `value`; `decode_value` gives the same value back."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, NanoTimestamp):
        return _encode_nanos(value)
    if isinstance(value, datetime) and getattr(value, "nanosecond", 0):  # a pandas Timestamp
        zone = value.tzinfo
        tz = (
            None if zone is None else getattr(zone, "key", None) or getattr(zone, "zone", str(zone))
        )
        return _encode_nanos(NanoTimestamp.from_datetime(value, tz))
    if isinstance(value, datetime):
        encoded: dict[str, Any] = {"$datetime": value.isoformat(timespec="microseconds")}
        if isinstance(value.tzinfo, ZoneInfo):
            encoded["zone"] = value.tzinfo.key
        return encoded
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, time):
        return {"$time": value.isoformat(timespec="microseconds")}
    if isinstance(value, timedelta):
        return {
            "$timedelta_us": (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
        }
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, tuple):
        return {"$tuple": [encode_value(item) for item in value]}
    if isinstance(value, list):
        return [encode_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): encode_value(item) for key, item in value.items()}
    raise TypeError(f"cannot store a value of type {type(value).__name__} in state: {value!r}")


def decode_value(value: Any) -> Any:
    """Inverse of `encode_value`."""
    if isinstance(value, list):
        return [decode_value(item) for item in value]
    if not isinstance(value, dict):
        return value
    if "$decimal" in value:
        return Decimal(value["$decimal"])
    if "$datetime" in value:
        parsed = datetime.fromisoformat(value["$datetime"])
        if "zone" in value:
            parsed = parsed.astimezone(ZoneInfo(value["zone"]))
        return parsed
    if "$timestamp_ns" in value:
        return NanoTimestamp.fromisoformat(value["$timestamp_ns"], value.get("tz"))
    if "$date" in value:
        return date.fromisoformat(value["$date"])
    if "$time" in value:
        return time.fromisoformat(value["$time"])
    if "$timedelta_us" in value:
        return timedelta(microseconds=value["$timedelta_us"])
    if "$bytes" in value:
        return base64.b64decode(value["$bytes"])
    if "$float" in value:
        return float(value["$float"])
    if "$tuple" in value:
        return tuple(decode_value(item) for item in value["$tuple"])
    return {key: decode_value(item) for key, item in value.items()}
