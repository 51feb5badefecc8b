"""Arrays of every element type docs/postgres.md lists, Postgres → Arrow → Postgres: NULL
elements, empty arrays and NULL arrays kept apart, values compared as Postgres prints them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from dataloader_postgres import PostgresConfig, PostgresConnector
from dataloader_postgres.connection import connect

# element type → (Arrow list value type, two values as literals Postgres parses)
ELEMENTS: dict[str, tuple[pa.DataType, list[str]]] = {
    "smallint": (pa.int16(), ["-32768", "32767"]),
    "integer": (pa.int32(), ["-2147483648", "7"]),
    "bigint": (pa.int64(), ["9223372036854775807", "-1"]),
    "numeric(12,3)": (pa.decimal128(12, 3), ["1.500", "-999999999.999"]),
    "numeric": (pa.decimal128(38, 9), ["1.5", "-0.000000001"]),
    "real": (pa.float32(), ["-Infinity", "0.1"]),
    "double precision": (pa.float64(), ["NaN", "0.30000000000000004"]),
    "text": (pa.string(), ['with "quotes", {braces} \\ and NULL', "Zürich"]),
    "varchar(12)": (pa.string(), ["NULL", ""]),
    "char(5)": (pa.string(), ["ab", "abcde"]),
    "boolean": (pa.bool_(), ["true", "false"]),
    "date": (pa.date32(), ["2024-02-29", "0001-01-01"]),
    "time": (pa.time64("us"), ["23:59:59.999999", "00:00:00"]),
    "timestamp": (pa.timestamp("us"), ["2024-01-01 12:34:56.789012", "9999-12-31 23:59:59"]),
    "timestamptz": (
        pa.timestamp("us", tz="UTC"),
        ["2024-01-01 12:34:56.789012+05:30", "1970-01-01 00:00:00+00"],
    ),
    "interval": (
        pa.month_day_nano_interval(),
        ["1 year 2 mons 3 days 04:05:06.789", "-1 mons -2 days -00:00:00.000001"],
    ),
    "bytea": (pa.binary(), ["\\x00ff2c7b", "\\x"]),
    "uuid": (
        pa.string(),
        ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"],
    ),
    "json": (pa.string(), ['{"b": 1,  "a": [1, 2.50]}', '"x,y"']),
    "jsonb": (pa.string(), ['{"z": null, "a": {"n": [true]}}', "[1, 2.50]"]),
}
COLUMNS = {f"a{index}": element for index, element in enumerate(ELEMENTS)}
# Postgres → Postgres keeps the element type, except the ones Arrow has one type for.
DESTINATION_TYPES = {"varchar(12)": "text", "char(5)": "text"}


def _array_literal(values: list[str | None]) -> str:
    items = [
        "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for v in values
    ]
    return "{" + ",".join(items) + "}"


@pytest.fixture
def arrays_table(pg: Any) -> str:
    pg.execute(
        "CREATE TABLE arrays (id int, "
        + ", ".join(f"{name} {element}[]" for name, element in COLUMNS.items())
        + ")"
    )
    shapes = {
        1: lambda values: [values[0], None, values[1]],  # a NULL element in the middle
        2: lambda values: [],  # empty
        3: lambda values: None,  # NULL array
        4: lambda values: [None],  # only a NULL element
        5: lambda values: [values[1]],
    }
    for row_id, shape in shapes.items():
        literals = [shape(ELEMENTS[element][1]) for element in COLUMNS.values()]
        pg.execute(
            f"INSERT INTO arrays VALUES (%s, {', '.join(['%s'] * len(COLUMNS))})",
            [row_id, *(None if v is None else _array_literal(v) for v in literals)],
        )
    return "arrays"


def _as_text(pg: Any, table: str, column: str, element: str) -> list[Any]:
    # An unconstrained numeric travels as decimal128(38, 9): compared by value, not display scale.
    expression = f"{column}::text"
    if element == "numeric":
        expression = f"(SELECT array_agg(trim_scale(v) ORDER BY n) FROM unnest({column}) WITH ORDINALITY AS e(v, n))::text"
        expression = f"CASE WHEN cardinality({column}) = 0 THEN '{{}}' ELSE {expression} END"
    return [row[0] for row in pg.query(f"SELECT {expression} FROM {table} ORDER BY id")]


def test_arrays_of_every_documented_element_type_round_trip(
    pg: Any, arrays_table: str, run: Any
) -> None:
    run(
        {
            "name": "arrays_pg",
            "source": pg.source(table=arrays_table),
            "destination": pg.destination("arrays_copy"),
            "runtime": {"batch_size": 2},
        }
    )
    types = pg.column_types("arrays_copy")
    source_types = pg.column_types(arrays_table)
    problems = []
    for column, element in COLUMNS.items():
        wanted = source_types[column]
        if element in DESTINATION_TYPES:
            wanted = DESTINATION_TYPES[element] + "[]"
        if types.get(column) != wanted:
            problems.append(f"{element}[]: created as {types.get(column)}, expected {wanted}")
            continue
        expected = _as_text(pg, arrays_table, column, element)
        got = _as_text(pg, "arrays_copy", column, element)
        if got != expected:
            problems.append(f"{element}[]: got {got}, expected {expected}")
    assert not problems, "\n".join(problems)
    assert pg.query("SELECT a0 IS NULL, cardinality(a0) FROM arrays_copy ORDER BY id") == [
        (False, 3),
        (False, 0),
        (True, None),
        (False, 1),
        (False, 1),
    ]


def test_arrays_are_read_as_lists_of_the_element_type(pg: Any, arrays_table: str) -> None:
    config = PostgresConfig(**pg.settings(), table=arrays_table)
    connector = PostgresConnector(config)
    connector.conn = connect(config, role="source")
    try:
        plans = connector.plan_columns(f"SELECT * FROM {arrays_table} ORDER BY id")
        batches = list(
            connector.codec.read(
                connector.conn, f"SELECT * FROM {arrays_table} ORDER BY id", plans, 100
            )
        )
    finally:
        connector.conn.close()
    table = pa.Table.from_batches(batches)
    assert {name: table.schema.field(name).type for name in COLUMNS} == {
        name: pa.list_(ELEMENTS[element][0]) for name, element in COLUMNS.items()
    }
    values = {element: table.column(name).to_pylist() for name, element in COLUMNS.items()}
    assert values["date"] == [
        [date(2024, 2, 29), None, date(1, 1, 1)],
        [],
        None,
        [None],
        [date(1, 1, 1)],
    ]
    assert values["time"][0] == [time(23, 59, 59, 999999), None, time(0, 0)]
    assert values["timestamp"][0] == [
        datetime(2024, 1, 1, 12, 34, 56, 789012),
        None,
        datetime(9999, 12, 31, 23, 59, 59),
    ]
    assert values["numeric(12,3)"][0] == [Decimal("1.500"), None, Decimal("-999999999.999")]
    assert values["bytea"][0] == [b"\x00\xff\x2c\x7b", None, b""]
    assert values["boolean"][0] == [True, None, False]
    interval = values["interval"][0]
    assert (tuple(interval[0]), interval[1], tuple(interval[2])) == (
        (14, 3, (4 * 3600 + 5 * 60 + 6) * 10**9 + 789 * 10**6),
        None,
        (-1, -2, -1000),
    )
    assert values["json"][0] == ['{"b": 1,  "a": [1, 2.50]}', None, '"x,y"']
    assert values["text"][3] == [None]
    tags = {
        element: (table.schema.field(name).metadata or {}).get(b"pg_type")
        for name, element in COLUMNS.items()
    }
    assert tags["uuid"] == b"uuid[]"
    assert tags["jsonb"] == b"jsonb[]"
    assert tags["numeric"] == b"numeric[]"
    assert tags["numeric(12,3)"] is None


def test_list_columns_from_arrow_are_written_as_postgres_arrays(pg: Any) -> None:
    """Lists that did not come from Postgres: sliced, nested, of structs, durations, bytes."""
    batch = pa.RecordBatch.from_pydict(
        {
            "id": pa.array([0, 1, 2, 3], pa.int32()),
            "docs": pa.array(
                [[{"k": "skip"}], [{"k": 'a"b'}, None], [], None],
                pa.list_(pa.struct([("k", pa.string())])),
            ),
            "waits": pa.array(
                [[1], [timedelta(microseconds=-1), None], [], None], pa.list_(pa.duration("us"))
            ),
            "blobs": pa.array([[b"x"], [b"\x00\\", None], [], None], pa.large_list(pa.binary())),
            "grid": pa.array(
                [[[9]], [[1, 2], [3, None]], [], None], pa.list_(pa.list_(pa.int64()))
            ),
        }
    ).slice(1)  # offsets of a slice do not start at 0
    pg.execute(
        "CREATE TABLE lists (id int, docs jsonb[], waits interval[], blobs bytea[], grid bigint[])"
    )
    config = PostgresConfig(**pg.settings(), table="lists")
    connection = connect(config, role="destination")
    try:
        PostgresConnector.codec.write(connection, '"lists"', batch)
        connection.commit()
    finally:
        connection.close()
    assert pg.query(
        "SELECT id, docs::text, waits::text, blobs::text, grid::text FROM lists ORDER BY id"
    ) == [
        (
            1,
            '{"{\\"k\\": \\"a\\\\\\"b\\"}",NULL}',
            "{-00:00:00.000001,NULL}",
            '{"\\\\x005c",NULL}',
            "{{1,2},{3,NULL}}",
        ),
        (2, "{}", "{}", "{}", "{}"),
        (3, None, None, None, None),
    ]


def test_struct_columns_are_written_as_strict_json(pg: Any) -> None:
    """Numbers stay JSON numbers (not their text padded to the column's scale) and instants
    are RFC 3339, as later runs write them into the same jsonb column."""
    batch = pa.RecordBatch.from_pydict(
        {
            "id": pa.array([1, 2], pa.int32()),
            "meta": pa.array(
                [{"price": Decimal("0.1"), "at": datetime(2024, 1, 1, tzinfo=UTC)}, None],
                pa.struct([("price", pa.decimal128(8, 7)), ("at", pa.timestamp("us", "UTC"))]),
            ),
        }
    )
    pg.execute("CREATE TABLE docs (id int, meta jsonb)")
    config = PostgresConfig(**pg.settings(), table="docs")
    connection = connect(config, role="destination")
    try:
        PostgresConnector.codec.write(connection, '"docs"', batch)
        connection.commit()
    finally:
        connection.close()
    assert pg.query(
        "SELECT id, jsonb_typeof(meta->'price'), (meta->>'price')::numeric = 0.1, "
        "meta->>'at' FROM docs ORDER BY id"
    ) == [(1, "number", True, "2024-01-01T00:00:00.000000Z"), (2, None, None, None)]
