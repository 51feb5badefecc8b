"""Postgres ↔ Arrow types. The Arrow schema is the type system; Postgres types that Arrow
has no exact twin for (uuid, json, jsonb, enums…) travel as strings whose field metadata
names the Postgres type, so a Postgres destination can recreate it."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from dataloader.schema.types import TYPE_TAG

UNCONSTRAINED_NUMERIC = pa.decimal128(38, 9)

# OID → (kind, arrow type); kind says how the value is selected and decoded.
_SCALARS: dict[int, pa.DataType] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    26: pa.int64(),
    700: pa.float32(),
    701: pa.float64(),
    25: pa.string(),
    1043: pa.string(),
    1042: pa.string(),
    18: pa.string(),
    19: pa.string(),
    1082: pa.date32(),
    1083: pa.time64("us"),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
    17: pa.binary(),
}
_TAGGED_STRINGS = {2950: "uuid", 114: "json", 3802: "jsonb"}
# array OID → element OID
_ARRAYS: dict[int, int] = {
    1000: 16,
    1005: 21,
    1007: 23,
    1016: 20,
    1028: 26,
    1021: 700,
    1022: 701,
    1009: 25,
    1015: 1043,
    1014: 1042,
    1002: 18,
    1003: 19,
    1182: 1082,
    1183: 1083,
    1115: 1114,
    1185: 1184,
    1187: 1186,
    1001: 17,
    1231: 1700,
    2951: 2950,
    199: 114,
    3807: 3802,
}
_ELEMENT = "__dl_e"


@dataclass(frozen=True)
class ColumnPlan:
    """How one result column is selected in the COPY query and decoded into Arrow."""

    name: str
    field: pa.Field
    kind: str  # plain | bytea | interval | array | text
    element: ColumnPlan | None = None  # arrays: how each element is decoded
    oid: int = 0  # the Postgres type OID of the column (of the element, for `element`)

    def select_sql(self, quoted: str) -> list[str]:
        if self.kind == "interval":
            # Months, days, whole hours and the microseconds within the hour: each exact in
            # date_part's double (a time part in microseconds alone passes 2^53).
            return [
                f"(date_part('year', {quoted}) * 12 + date_part('month', {quoted}))::int",
                f"date_part('day', {quoted})::int",
                f"date_part('hour', {quoted})::bigint",
                f"(date_part('minute', {quoted}) * 60000000 + date_part('microseconds', {quoted}))::bigint",
            ]
        if self.kind == "array":
            assert self.element is not None
            if self.element.kind == "plain" and pa.types.is_string(self.element.field.type):
                return [f"to_json({quoted})::text"]  # not through text[]: it trims char(n)
            if self.element.kind != "interval":
                # Elements as Postgres prints them (DateStyle ISO, hex bytea, NaN/Infinity), a
                # JSON array of strings; decoded into the element type column-wise.
                return [f"to_json({quoted}::text[])::text"]
            # Intervals as [months, days, microseconds] per element, as the scalar plan reads them.
            # A multi-dimensional array stays nested (`[[…]]`), for `decode` to refuse.
            parts = ", ".join(self.element.select_sql(f"{_ELEMENT}.v"))
            return [
                f"CASE WHEN {quoted} IS NULL THEN NULL"
                f" WHEN array_ndims({quoted}) > 1 THEN to_json({quoted})::text ELSE to_json(ARRAY("
                f"SELECT CASE WHEN {_ELEMENT}.v IS NULL THEN NULL ELSE json_build_array({parts}) END "
                f"FROM unnest({quoted}) WITH ORDINALITY AS {_ELEMENT}(v, n) ORDER BY {_ELEMENT}.n"
                "))::text END"
            ]
        if self.kind == "text":
            return [f"{quoted}::text"]
        return [quoted]

    def csv_types(self) -> list[pa.DataType]:
        """The types of the CSV columns this column is read as."""
        if self.kind == "interval":
            return [pa.int32(), pa.int32(), pa.int64(), pa.int64()]
        if self.kind in ("bytea", "array", "text"):
            return [pa.string()]
        kind = self.field.type
        if (
            pa.types.is_decimal(kind)
            or pa.types.is_time(kind)
            or pa.types.is_date(kind)
            or pa.types.is_timestamp(kind)
        ):
            # Cast from text in `decode`: the CSV reader has no decimal256 and parses no BC
            # dates or years past 9999, and a value Arrow cannot hold (24:00:00, NaN,
            # infinity, too many digits) must be reported with its column.
            return [pa.string()]
        return [self.field.type]


def _numeric(precision: int | None, scale: int | None, unconstrained: str) -> pa.DataType:
    if precision and scale is not None and scale > 1000:
        scale -= 2048  # Postgres 15 keeps a negative scale (down to -1000) in 11 bits
    if precision and scale is not None and scale < 0:
        precision, scale = precision - scale, 0  # numeric(5,-2) holds integers of 7 digits
    if precision and 0 < precision <= 38:
        return pa.decimal128(precision, scale or 0)
    if precision and precision <= 76:
        return pa.decimal256(precision, scale or 0)
    return {"decimal": UNCONSTRAINED_NUMERIC, "string": pa.string(), "float": pa.float64()}[
        unconstrained
    ]


def plan_column(
    name: str,
    oid: int,
    type_name: str,
    precision: int | None,
    scale: int | None,
    unconstrained: str,
    type_modifier: int | None = None,
) -> ColumnPlan:
    """The read plan for a result column of type `oid` (`type_name` as format_type gives it).

    :param type_modifier: psycopg2's `internal_size` of the column: for `numeric(p,s)[]` it
        carries the elements' precision and scale.
    """
    metadata = {TYPE_TAG: type_name.encode()}
    if oid == 1700:
        arrow = _numeric(precision, scale, unconstrained)
        constrained = precision is not None and 0 < precision <= 76
        tagged = None if constrained else metadata
        return ColumnPlan(
            name,
            pa.field(name, arrow, metadata=tagged),
            "text" if pa.types.is_string(arrow) else "plain",
            oid=oid,
        )
    if oid == 17:
        return ColumnPlan(name, pa.field(name, pa.binary()), "bytea", oid=oid)
    if oid == 1186:
        return ColumnPlan(name, pa.field(name, pa.month_day_nano_interval()), "interval", oid=oid)
    if oid in _SCALARS:
        return ColumnPlan(name, pa.field(name, _SCALARS[oid]), "plain", oid=oid)
    if oid in _TAGGED_STRINGS:
        return ColumnPlan(name, pa.field(name, pa.string(), metadata=metadata), "text", oid=oid)
    if oid in _ARRAYS:
        element_oid = _ARRAYS[oid]
        if element_oid == 1700 and type_modifier is not None and type_modifier > 0:
            precision, scale = (type_modifier >> 16) & 0xFFFF, type_modifier & 0xFFFF
        else:
            precision = scale = None
        element = plan_column(
            "element", element_oid, type_name.removesuffix("[]"), precision, scale, unconstrained
        )
        # Tagged when the element is (numeric without precision, uuid, json…): `numeric[]`.
        tagged = metadata if element.field.metadata else None
        return ColumnPlan(
            name,
            pa.field(name, pa.list_(element.field.type), metadata=tagged),
            "array",
            element,
            oid,
        )
    return ColumnPlan(name, pa.field(name, pa.string(), metadata=metadata), "text", oid=oid)


def pg_type_for(field: pa.Field) -> str:
    """The Postgres column type for an Arrow field (its `pg_type` metadata wins)."""
    if field.metadata and TYPE_TAG in field.metadata:
        return field.metadata[TYPE_TAG].decode()
    return _pg_type(field.type)


def _pg_type(arrow: pa.DataType) -> str:
    if pa.types.is_boolean(arrow):
        return "boolean"
    if pa.types.is_int8(arrow) or pa.types.is_int16(arrow) or pa.types.is_uint8(arrow):
        return "smallint"
    if pa.types.is_int32(arrow) or pa.types.is_uint16(arrow):
        return "integer"
    if pa.types.is_int64(arrow) or pa.types.is_uint32(arrow):
        return "bigint"
    if pa.types.is_uint64(arrow):
        return "numeric(20,0)"
    if pa.types.is_float16(arrow) or pa.types.is_float32(arrow):
        return "real"
    if pa.types.is_float64(arrow):
        return "double precision"
    if pa.types.is_decimal(arrow):
        return f"numeric({arrow.precision},{arrow.scale})"
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow) or pa.types.is_null(arrow):
        return "text"
    if (
        pa.types.is_binary(arrow)
        or pa.types.is_large_binary(arrow)
        or pa.types.is_fixed_size_binary(arrow)
    ):
        return "bytea"
    if pa.types.is_date(arrow):
        return "date"
    if pa.types.is_time(arrow):
        return "time"
    if pa.types.is_timestamp(arrow):
        return "timestamptz" if arrow.tz else "timestamp"
    if pa.types.is_duration(arrow) or arrow == pa.month_day_nano_interval():
        return "interval"
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        return _pg_type(arrow.value_type) + "[]"
    if pa.types.is_struct(arrow) or pa.types.is_map(arrow):
        return "jsonb"
    if pa.types.is_dictionary(arrow):
        return _pg_type(arrow.value_type)
    raise TypeError(f"no Postgres type for Arrow type {arrow}")
