"""Arrow <-> Redshift types.

Writes: each Arrow type becomes a SQLAlchemy type the `sqlalchemy-redshift` dialect renders
(`BIGINT`, `VARCHAR(65535)`, `TIMESTAMPTZ`, …). Reads: a column's type, as
`information_schema.columns` or the wire protocol's type OID names it, becomes an Arrow type.
Nested values (lists, structs) have no portable Redshift type here and are refused with an
error naming the column (Redshift's `SUPER` is not supported yet).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from dataloader import ConnectorError

MAX_VARCHAR = 65535  # bytes: Redshift's longest VARCHAR
MAX_PRECISION = 38


def column_type(name: str, arrow_type: pa.DataType) -> Any:
    """The SQLAlchemy type (rendered by the Redshift dialect) of a column of `arrow_type`."""
    import sqlalchemy as sa
    from sqlalchemy_redshift.dialect import TIMESTAMPTZ

    t = arrow_type
    if pa.types.is_boolean(t):
        return sa.Boolean()
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return sa.SmallInteger()
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return sa.Integer()
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return sa.BigInteger()
    if pa.types.is_uint64(t):
        return sa.Numeric(20, 0)
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return sa.REAL()
    if pa.types.is_float64(t):
        return sa.Double()
    if pa.types.is_decimal(t):
        if t.precision > MAX_PRECISION:
            raise ConnectorError(
                f"column {name!r} is {t}: Redshift's DECIMAL holds at most {MAX_PRECISION} digits",
                key="destination.table",
                value=str(t),
                expected=f"decimal precision <= {MAX_PRECISION}",
            )
        return sa.Numeric(t.precision, t.scale)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return sa.VARCHAR(MAX_VARCHAR)
    if pa.types.is_date(t):
        return sa.Date()
    if pa.types.is_timestamp(t):
        return TIMESTAMPTZ() if t.tz is not None else sa.TIMESTAMP()
    if pa.types.is_time(t):
        return sa.Time()
    raise ConnectorError(
        f"column {name!r} is {t}, which the experimental Redshift connector cannot write",
        key="destination.table",
        value=str(t),
        expected="a boolean, integer, float, decimal, string, date, time or timestamp column",
    )


def arrow_type(
    data_type: str, precision: int | None = None, scale: int | None = None
) -> pa.DataType:
    """The Arrow type of a Redshift column, from `information_schema.columns.data_type`."""
    name = data_type.lower()
    if name in ("smallint", "int2"):
        return pa.int16()
    if name in ("integer", "int", "int4"):
        return pa.int32()
    if name in ("bigint", "int8"):
        return pa.int64()
    if name in ("real", "float4"):
        return pa.float32()
    if name in ("double precision", "float8", "float"):
        return pa.float64()
    if name in ("numeric", "decimal"):
        if precision is None or precision > MAX_PRECISION:
            return pa.decimal128(MAX_PRECISION, scale if scale is not None else 9)
        return pa.decimal128(precision, scale or 0)
    if name in ("boolean", "bool"):
        return pa.bool_()
    if name == "date":
        return pa.date32()
    if name in ("timestamp without time zone", "timestamp"):
        return pa.timestamp("us")
    if name in ("timestamp with time zone", "timestamptz"):
        return pa.timestamp("us", tz="UTC")
    if name in ("time without time zone", "time"):
        return pa.time64("us")
    return pa.string()


# The wire protocol's type OIDs (Redshift uses PostgreSQL's) for the read side.
OID_TYPES: dict[int, str] = {
    16: "boolean",
    20: "bigint",
    21: "smallint",
    23: "integer",
    700: "real",
    701: "double precision",
    1700: "numeric",
    1082: "date",
    1083: "time",
    1114: "timestamp",
    1184: "timestamptz",
}


def arrow_type_of_oid(oid: int, precision: int | None, scale: int | None) -> pa.DataType:
    """The Arrow type of a result column from its type OID (text for anything unknown)."""
    return arrow_type(OID_TYPES.get(oid, "varchar"), precision, scale)
