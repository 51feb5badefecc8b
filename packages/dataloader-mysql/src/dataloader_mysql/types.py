"""MySQL/MariaDB ↔ Arrow types.

Reads decide each column's Arrow type from the result's column metadata (type code, flags,
length, scale, character set), never from the values. Tables the connector creates get the
MySQL type of each Arrow type (`column_type`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

from dataloader import ConnectorError
from dataloader.schema.types import JSON_TAG, TYPE_TAG

# Wire type codes (the protocol's `MYSQL_TYPE_*`).
DECIMAL, TINY, SHORT, LONG, FLOAT, DOUBLE, NULL, TIMESTAMP, LONGLONG, INT24 = range(10)
DATE, TIME, DATETIME, YEAR, NEWDATE, VARCHAR, BIT = range(10, 17)
JSON, NEWDECIMAL, ENUM, SET = 245, 246, 247, 248
TINY_BLOB, MEDIUM_BLOB, LONG_BLOB, BLOB, VAR_STRING, STRING, GEOMETRY = range(249, 256)
UNSIGNED_FLAG = 32
BINARY_CHARSET = 63
TEXTUAL = {VARCHAR, TINY_BLOB, MEDIUM_BLOB, LONG_BLOB, BLOB, VAR_STRING, STRING, ENUM, SET}

MAX_PRECISION, MAX_SCALE = 65, 30
UTC_COMMENT = "dataloader:utc"
"""Comment of a DATETIME column written from timestamps with a zone: it holds UTC instants."""
KEY_TEXT = "VARCHAR(768)"  # 768 utf8mb4 characters: InnoDB's 3072-byte index limit
KEY_BINARY = "VARBINARY(3072)"

_INTS = {TINY: 8, SHORT: 16, INT24: 32, LONG: 32, LONGLONG: 64}


@dataclass(frozen=True)
class ColumnPlan:
    """How one result column is selected (`select_sql`) and turned into Arrow (`field`).

    `kind` says how the raw value arrives: `text` (the server's text of it, cast by Arrow),
    `bytes` (binary strings), `bool` (an integer, nonzero is true), `time` (microseconds
    since midnight, selected by `select_sql`), `bits` (an unsigned integer) or `float` (a
    FLOAT, selected as the double of the same value).
    """

    name: str
    field: pa.Field
    kind: str

    def select_sql(self, quoted: str) -> str:
        if self.kind == "time":
            return f"ROUND(TIME_TO_SEC({quoted}) * 1000000)"
        if self.kind == "bits":
            return f"CAST({quoted} AS UNSIGNED)"
        if self.kind == "float":  # FLOAT's own text keeps 6 digits; as a double it is exact
            return f"({quoted} + 0e0)"
        return quoted


def decimal_type(precision: int, scale: int) -> pa.DataType:
    precision = max(precision, 1)
    if precision <= 38:
        return pa.decimal128(precision, scale)
    return pa.decimal256(precision, scale)


def plan_column(
    name: str,
    type_code: int,
    flags: int,
    length: int,
    scale: int,
    charset: int,
    *,
    json: bool = False,
    utc: bool = False,
) -> ColumnPlan:
    """The plan of a result column from its metadata; `json` and `utc` come from the table's
    definition (a MariaDB JSON column is LONGTEXT on the wire; `UTC_COMMENT` marks DATETIME
    columns of instants)."""
    unsigned = bool(flags & UNSIGNED_FLAG)

    def plain(arrow_type: pa.DataType, kind: str = "text", tag: bytes | None = None) -> ColumnPlan:
        metadata = {TYPE_TAG: tag} if tag else None
        return ColumnPlan(name, pa.field(name, arrow_type, metadata=metadata), kind)

    if type_code == TINY and length == 1 and not unsigned:
        return plain(pa.bool_(), "bool")  # TINYINT(1): MySQL's BOOLEAN
    if type_code in _INTS:
        bits = _INTS[type_code]
        return plain(_int_type(bits, unsigned))
    if type_code == FLOAT:
        return plain(pa.float32(), "float")
    if type_code == DOUBLE:
        return plain(pa.float64())
    if type_code in (DECIMAL, NEWDECIMAL):
        precision = length - (1 if scale else 0) - (0 if unsigned else 1)
        return plain(decimal_type(precision, scale))
    if type_code in (DATE, NEWDATE):
        return plain(pa.date32())
    if type_code == DATETIME:
        return plain(pa.timestamp("us", tz="UTC" if utc else None))
    if type_code == TIMESTAMP:
        return plain(pa.timestamp("us", tz="UTC"))  # the session's time zone is UTC
    if type_code == TIME:
        return plain(pa.time64("us"), "time")
    if type_code == YEAR:
        return plain(pa.int16())
    if type_code == BIT:
        return plain(pa.bool_() if length == 1 else pa.uint64(), "bits")
    if type_code == JSON:
        return plain(pa.string(), tag=JSON_TAG)
    if type_code == GEOMETRY:
        return plain(pa.binary(), "bytes")
    if type_code in TEXTUAL:
        if charset == BINARY_CHARSET and type_code not in (ENUM, SET):
            return plain(pa.binary(), "bytes")
        return plain(pa.string(), tag=JSON_TAG if json else None)
    if type_code == NULL:
        return plain(pa.string())
    raise ConnectorError(
        f"column {name!r} has MySQL type code {type_code}, which this connector cannot read",
        key="source.query",
        value=name,
        expected="numbers, decimals, dates, times, text, binary, BIT, ENUM, SET or JSON",
    )


def _int_type(bits: int, unsigned: bool) -> pa.DataType:
    return {
        (8, False): pa.int8(),
        (16, False): pa.int16(),
        (32, False): pa.int32(),
        (64, False): pa.int64(),
        (8, True): pa.uint8(),
        (16, True): pa.uint16(),
        (32, True): pa.uint32(),
        (64, True): pa.uint64(),
    }[(bits, unsigned)]


_SQL_INTS = {8: "TINYINT", 16: "SMALLINT", 32: "INT", 64: "BIGINT"}


BIN_COLLATION = "utf8mb4_bin"  # PAD SPACE: 'x' = 'x ' (MySQL 5.7, MariaDB before 10.2)


def text_collation(version: str) -> str:
    """The binary utf8mb4 collation without trailing-space padding on a server whose
    `SELECT VERSION()` is `version`: MariaDB 10.2+ `utf8mb4_nopad_bin`, MySQL 8+
    `utf8mb4_0900_bin`; older servers only have the PAD SPACE `utf8mb4_bin`. MariaDB's
    handshake prefixes its version with `5.5.5-`."""
    numbers = re.match(r"(?:5\.5\.5-)?(\d+)\.(\d+)", version)
    major, minor = (int(numbers[1]), int(numbers[2])) if numbers else (0, 0)
    if "mariadb" in version.lower():
        return "utf8mb4_nopad_bin" if (major, minor) >= (10, 2) else BIN_COLLATION
    return "utf8mb4_0900_bin" if major >= 8 else BIN_COLLATION


def column_type(field: pa.Field, *, key: bool = False, collation: str = BIN_COLLATION) -> str:
    """The MySQL type of a column created for `field`; `key` columns get indexable types.

    Text is utf8mb4 with the binary `collation` (`text_collation`): compared and ordered by
    code point, so `a` and `A` (and, without padding, `x` and `x `) are two merge keys and
    text cursors order as the engine does.
    """
    t = field.type
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        sql = _SQL_INTS[t.bit_width]
        return f"{sql} UNSIGNED" if pa.types.is_unsigned_integer(t) else sql
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "FLOAT"
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_decimal(t):
        if t.precision > MAX_PRECISION or t.scale > MAX_SCALE or t.scale < 0:
            raise ConnectorError(
                f"column {field.name!r} is {t}, which MySQL's DECIMAL cannot hold",
                key="destination.table",
                value=field.name,
                expected=f"a decimal of at most {MAX_PRECISION} digits and {MAX_SCALE} after the point",
            )
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        if (field.metadata or {}).get(TYPE_TAG) in (b"json", b"jsonb"):
            return "JSON"
        text = KEY_TEXT if key else "LONGTEXT"
        return f"{text} CHARACTER SET utf8mb4 COLLATE {collation}"
    if pa.types.is_fixed_size_binary(t) and t.byte_width <= 255:
        return f"BINARY({t.byte_width})"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return KEY_BINARY if key else "LONGBLOB"
    if pa.types.is_binary_view(t):
        return KEY_BINARY if key else "LONGBLOB"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_time(t):
        return "TIME(6)"
    if pa.types.is_timestamp(t):
        return f"DATETIME(6) COMMENT '{UTC_COMMENT}'" if t.tz else "DATETIME(6)"
    if pa.types.is_nested(t):
        return "JSON"
    raise ConnectorError(
        f"column {field.name!r} is {t}, which has no MySQL type here",
        key="destination.table",
        value=field.name,
        expected="numbers, decimals, text, binary, dates, times, timestamps or nested data",
    )
