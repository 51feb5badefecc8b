"""Arrow <-> SQLAlchemy types, and the Python values each side takes.

Reading: a column's SQLAlchemy type (reflected, or `NullType` for a query's column) gives its
Arrow type (`arrow_type`); a column of unknown type is read as text (`str()` of each value),
and a query's column, whose type the driver seldom says, takes the type pyarrow infers from
its values (text when it cannot). Writing: an Arrow field gives the type its column is
created with (`column_type`) and the values bound for it (`python_values`).

SQLite has no decimal, time-zone or JSON storage of its own, so on SQLite:
- decimals live in `DECIMAL_TEXT(p, s)` columns (TEXT affinity: the digits as written, exact);
- a `TIMESTAMP` column holds UTC instants (read with zone UTC), `DATETIME` wall-clock times.
On other databases whose timestamps keep no zone (MySQL, MariaDB), instants are stored as UTC
wall time in a column commented `UTC_COMMENT`, which reads them back as instants.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, Inexact, InvalidOperation
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import UserDefinedType

from dataloader.schema.types import JSON_TAG, TYPE_TAG, UUID_TAG

UNCONSTRAINED_DECIMAL = pa.decimal128(38, 9)
SQLITE_DECIMAL = re.compile(r"^\s*DECIMAL_TEXT\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*$", re.I)
KEY_STRING_LENGTH = 255  # key columns of text: indexable everywhere (MySQL refuses TEXT keys)
UTC_COMMENT = "dataloader: UTC instants"
_ZONES_KEPT = frozenset({"postgresql", "mssql", "oracle"})  # dialects that store an offset


class SqliteDecimal(UserDefinedType[Decimal]):
    """An exact decimal on SQLite: TEXT affinity, the value's digits as written."""

    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        self.precision = precision
        self.scale = scale

    def get_col_spec(self, **kw: Any) -> str:
        return f"DECIMAL_TEXT({self.precision}, {self.scale})"


def is_mysql(dialect: Dialect) -> bool:
    return dialect.name in ("mysql", "mariadb")


def text_collation(dialect: Dialect) -> str | None:
    """The collation text keys and cursors compare under: code points, trailing spaces
    significant (MariaDB's `utf8mb4_bin` pads, so `'x' = 'x '`); None: the database's own."""
    if is_mysql(dialect) and getattr(dialect, "is_mariadb", False):
        return "utf8mb4_nopad_bin"
    if is_mysql(dialect):
        return "utf8mb4_bin"
    return None


def keeps_zones(dialect: Dialect) -> bool:
    """Whether the dialect's zoned timestamp stores the instant itself (else: UTC wall time)."""
    return dialect.name in _ZONES_KEPT


def arrow_type(
    sa_type: Any, dialect: Dialect, declared: str | None = None, comment: str | None = None
) -> pa.DataType | None:
    """The Arrow type a column of `sa_type` is read as; None when unknown (read as text, or
    inferred for a query). `declared` is the type as the table declares it (SQLite), `comment`
    the column's comment."""
    if declared is not None and dialect.name == "sqlite":
        match = SQLITE_DECIMAL.match(declared)
        if match:
            return _decimal(int(match.group(1)), int(match.group(2)))
        word = re.match(r"\s*(\w*)", declared)
        if word is not None and word.group(1).upper() not in dialect.ischema_names:
            return None  # SQLAlchemy guessed from SQLite's affinity: an unknown type, read as text
    if isinstance(sa_type, SqliteDecimal):
        return _decimal(sa_type.precision, sa_type.scale)
    if isinstance(sa_type, sa.Boolean):
        return pa.bool_()
    if (
        is_mysql(dialect)
        and type(sa_type).__name__ == "TINYINT"
        and getattr(sa_type, "display_width", None) == 1
    ):
        return pa.bool_()  # MySQL's BOOLEAN
    if isinstance(sa_type, sa.SmallInteger):
        return pa.int16()
    if isinstance(sa_type, sa.BigInteger):
        return pa.uint64() if getattr(sa_type, "unsigned", False) else pa.int64()
    if isinstance(sa_type, sa.Integer):
        return pa.int64() if dialect.name == "sqlite" else pa.int32()
    if isinstance(sa_type, sa.Float):
        return pa.float64()
    if isinstance(sa_type, sa.Numeric):
        if sa_type.precision is None:
            return UNCONSTRAINED_DECIMAL
        return _decimal(sa_type.precision, sa_type.scale or 0)
    if isinstance(sa_type, sa.DateTime):
        zoned = (
            bool(sa_type.timezone)
            or comment == UTC_COMMENT
            or (dialect.name == "sqlite" and isinstance(sa_type, sa.TIMESTAMP))
        )
        return pa.timestamp("us", tz="UTC" if zoned else None)
    if isinstance(sa_type, sa.Date):
        return pa.date32()
    if isinstance(sa_type, sa.Time):
        return pa.time64("us")
    if isinstance(sa_type, sa.Interval) or _python_type(sa_type) is timedelta:
        return pa.duration("us")  # Postgres' INTERVAL is no `Interval`, but says timedelta
    if _python_type(sa_type) is bytes:  # BLOB, BINARY, VARBINARY, MySQL's LONGBLOB, …
        return pa.binary()
    if isinstance(sa_type, sa.JSON | sa.Uuid | sa.String | sa.Enum):
        return pa.string()
    return None


def _python_type(sa_type: Any) -> type | None:
    try:
        return sa_type.python_type
    except NotImplementedError:
        return None


def type_tag(sa_type: Any) -> bytes | None:
    """The `pg_type` tag a described column carries: JSON and UUID columns hold text."""
    if isinstance(sa_type, sa.JSON):
        return JSON_TAG
    if isinstance(sa_type, sa.Uuid):
        return UUID_TAG
    return None


def _decimal(precision: int, scale: int) -> pa.DataType:
    if precision <= 38:
        return pa.decimal128(precision, scale)
    return pa.decimal256(min(precision, 76), scale)


def column_type(field: pa.Field, dialect: Dialect, *, key: bool = False) -> Any:
    """The SQLAlchemy type a column for `field` is created with (a `key` column of text gets
    a bounded length, so every database can index it)."""
    kind = field.type
    tag = (field.metadata or {}).get(TYPE_TAG)
    mysql = is_mysql(dialect)
    if pa.types.is_boolean(kind):
        return sa.Boolean()
    if pa.types.is_int8(kind) or pa.types.is_int16(kind) or pa.types.is_uint8(kind):
        return sa.SmallInteger()
    if pa.types.is_int32(kind) or pa.types.is_uint16(kind):
        return sa.Integer()
    if pa.types.is_uint64(kind) and mysql:
        from sqlalchemy.dialects.mysql import BIGINT

        return BIGINT(unsigned=True)
    if pa.types.is_integer(kind) or pa.types.is_duration(kind):
        return sa.BigInteger()  # uint64 above 2**63 is refused before insert; durations in unit
    if pa.types.is_floating(kind):
        return sa.Float() if pa.types.is_float32(kind) or pa.types.is_float16(kind) else sa.Double()
    if pa.types.is_decimal(kind):
        if dialect.name == "sqlite":
            return SqliteDecimal(kind.precision, kind.scale)
        return sa.Numeric(kind.precision, kind.scale)
    if pa.types.is_timestamp(kind):
        if mysql:
            from sqlalchemy.dialects.mysql import DATETIME

            return DATETIME(fsp=6)
        if dialect.name == "sqlite":
            return sa.TIMESTAMP() if kind.tz is not None else sa.DATETIME()
        return sa.DateTime(timezone=kind.tz is not None)
    if pa.types.is_date(kind):
        return sa.Date()
    if pa.types.is_time(kind):
        if mysql:
            from sqlalchemy.dialects.mysql import TIME

            return TIME(fsp=6)
        return sa.Time()
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return sa.LargeBinary(length=2**32 - 1) if mysql else sa.LargeBinary()
    if pa.types.is_fixed_size_binary(kind):
        return sa.LargeBinary()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if key:
            return sa.String(KEY_STRING_LENGTH, collation=text_collation(dialect))
        if tag == JSON_TAG:
            return sa.JSON()
        if tag == UUID_TAG:
            return sa.Uuid(as_uuid=False)
        if mysql:
            from sqlalchemy.dialects.mysql import LONGTEXT

            return LONGTEXT()
        return sa.Text()
    if pa.types.is_nested(kind) or pa.types.is_dictionary(kind):
        return sa.JSON()  # lists, structs and maps are written as JSON text
    return sa.Text()  # anything else: its text


def column_comment(field: pa.Field, dialect: Dialect) -> str | None:
    """The comment a column for `field` is created with: `UTC_COMMENT` on an instant's column
    where the database keeps no zone (SQLite says it by the type name instead)."""
    zoned = pa.types.is_timestamp(field.type) and field.type.tz is not None
    if zoned and not keeps_zones(dialect) and dialect.name != "sqlite":
        return UTC_COMMENT
    return None


def bind_type(sa_type: Any) -> Any:
    """The type values for a created column are bound as: JSON columns take the JSON text as
    it is, UUID columns their text."""
    if isinstance(sa_type, sa.JSON):
        return sa.Text()
    if isinstance(sa_type, sa.Uuid):
        return sa.String()
    return sa_type


def python_values(column: pa.Array, dialect: Dialect) -> list[Any]:
    """`column`'s values as the driver binds them for a column made by `column_type`."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        return python_values(column.cast(kind.value_type), dialect)
    if pa.types.is_duration(kind):
        return column.cast(pa.int64()).to_pylist()
    if pa.types.is_nested(kind):
        # Strict JSON built from the Arrow values: decimals stay exact numbers.
        from dataloader.normalize.json_text import to_json_text

        return to_json_text(column).to_pylist()
    if pa.types.is_decimal(kind) and dialect.name == "sqlite":
        return column.cast(pa.string()).to_pylist()  # the digits, scale kept ("0.10")
    if pa.types.is_timestamp(kind) and kind.tz is not None and not keeps_zones(dialect):
        return column.cast(pa.timestamp(kind.unit)).to_pylist()  # UTC wall time
    return column.to_pylist()


class InexactDecimal(ValueError):
    """A value its decimal column type cannot hold exactly (more fractional or whole digits)."""

    def __init__(self, value: Any, kind: pa.DataType) -> None:
        super().__init__(f"{value} does not fit decimal({kind.precision}, {kind.scale})")
        self.value = value
        self.kind = kind


def python_to_arrow(values: list[Any], kind: pa.DataType | None) -> pa.Array:
    """Values a driver returned, as an Arrow array of `kind` (None: inferred, else text)."""
    if kind is None:
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return pa.array([None if v is None else _text(v) for v in values], pa.string())
    convert = _converter(kind)
    if convert is not None:
        values = [None if v is None else convert(v) for v in values]
    return pa.array(values, type=kind)


def _text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def _converter(kind: pa.DataType) -> Callable[[Any], Any] | None:
    if pa.types.is_decimal(kind):
        step = Decimal(1).scaleb(-kind.scale)
        # Enough digits for any value of the type; a value it would round raises.
        exact = Context(prec=kind.precision + 2, traps=[Inexact, InvalidOperation])

        def convert(value: Any) -> Decimal:
            try:
                fitted = Decimal(str(value)).quantize(step, context=exact)
            except (Inexact, InvalidOperation):
                raise InexactDecimal(value, kind) from None
            if fitted.adjusted() >= kind.precision - kind.scale:
                raise InexactDecimal(value, kind)
            return fitted

        return convert
    if pa.types.is_timestamp(kind) and kind.tz is not None:
        return _as_utc
    if pa.types.is_string(kind):
        return lambda value: value if isinstance(value, str) else _text(value)
    if pa.types.is_binary(kind):
        return bytes
    if pa.types.is_boolean(kind):
        return bool
    return None


def _as_utc(value: datetime) -> datetime:
    """A zoned column's value: naive values are UTC wall time (how zone-less databases keep it)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
