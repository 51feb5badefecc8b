"""Overwrite replaces a table's rows, not its definition: triggers, identity columns (and
their sequence's position), generated columns, grants and row-level security of the target
survive every overwrite, while a plain table is still swapped in by drop + rename.

Each test overwrites the table twice with different rows: the property holds after both, and
the table holds exactly the second load."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dataloader import RunResult

Overwrite = Callable[[list[dict[str, Any]]], RunResult]


@pytest.fixture
def overwrite(pg: Any, run: Any, rows_source: str) -> Overwrite:
    """`overwrite(rows)`: one run of a recipe overwriting `dst` with `rows` (one batch)."""

    def _overwrite(rows: list[dict[str, Any]]) -> RunResult:
        return run(
            {
                "name": "keeps",
                "source": {"type": rows_source, "batches": [rows]},
                "destination": pg.destination("dst", "overwrite"),
            }
        )

    return _overwrite


def table_oid(pg: Any, table: str = "dst") -> int:
    return pg.scalar("SELECT to_regclass(%s)::oid::bigint", (table,))


def next_id(pg: Any) -> int:
    """The id the table gives a row inserted with DEFAULT values (what an application gets)."""
    return pg.scalar("INSERT INTO dst (name) VALUES ('app') RETURNING id")


def staging_tables(pg: Any) -> list[str]:
    return [name for name in pg.tables() if name.startswith("_dl_stage_")]


FIRST = [{"id": 10, "name": "a"}, {"id": 20, "name": "b"}]
SECOND = [{"id": 30, "name": "c"}, {"id": 40, "name": "d"}, {"id": 35, "name": "e"}]


def test_a_plain_table_is_still_swapped_in_by_rename(pg: Any, overwrite: Overwrite) -> None:
    pg.execute("CREATE TABLE dst (id bigint, name text)")
    before = table_oid(pg)
    overwrite(FIRST)
    after_first = table_oid(pg)
    overwrite(SECOND)
    assert len({before, after_first, table_oid(pg)}) == 3, "a new table each run"
    assert pg.query("SELECT id, name FROM dst ORDER BY id") == [(30, "c"), (35, "e"), (40, "d")]
    assert staging_tables(pg) == []


def test_triggers_are_kept_and_fire_on_the_new_rows(pg: Any, overwrite: Overwrite) -> None:
    pg.execute("CREATE TABLE dst (id bigint, name text)")
    pg.execute("CREATE TABLE audit (id bigint, name text)")
    pg.execute(
        "CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO audit VALUES (NEW.id, NEW.name); RETURN NEW; END $$"
    )
    pg.execute(
        "CREATE TRIGGER dst_audit AFTER INSERT ON dst FOR EACH ROW EXECUTE FUNCTION audit_row()"
    )
    oid = table_oid(pg)
    overwrite(FIRST)
    overwrite(SECOND)
    assert table_oid(pg) == oid, "the table is kept"
    assert pg.query("SELECT tgname FROM pg_trigger WHERE tgrelid = 'dst'::regclass") == [
        ("dst_audit",)
    ]
    assert pg.query("SELECT id, name FROM dst ORDER BY id") == [(30, "c"), (35, "e"), (40, "d")]
    # The trigger fired for every row of both loads.
    assert pg.query("SELECT id FROM audit ORDER BY id") == [(10,), (20,), (30,), (35,), (40,)]
    assert staging_tables(pg) == []


def identity_of(pg: Any, column: str = "id") -> str:
    return pg.scalar(
        "SELECT attidentity FROM pg_attribute WHERE attrelid = 'dst'::regclass AND attname = %s",
        (column,),
    )


@pytest.mark.parametrize("kind", ["ALWAYS", "BY DEFAULT"])
def test_identity_keeps_the_loaded_ids_and_moves_its_sequence_past_them(
    pg: Any, overwrite: Overwrite, kind: str
) -> None:
    pg.execute(f"CREATE TABLE dst (id bigint GENERATED {kind} AS IDENTITY PRIMARY KEY, name text)")
    expected = "a" if kind == "ALWAYS" else "d"
    overwrite(FIRST)
    assert identity_of(pg) == expected
    assert next_id(pg) > 20
    overwrite(SECOND)
    assert identity_of(pg) == expected
    assert pg.query("SELECT id, name FROM dst ORDER BY id") == [(30, "c"), (35, "e"), (40, "d")]
    assert next_id(pg) > 40, "an application's next insert does not collide with a loaded id"


def test_identity_always_fills_the_ids_a_load_does_not_carry(pg: Any, overwrite: Overwrite) -> None:
    pg.execute("CREATE TABLE dst (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text)")
    overwrite([{"name": name} for name in "ab"])
    first = pg.query("SELECT id FROM dst")
    overwrite([{"name": name} for name in "cde"])
    assert identity_of(pg) == "a"
    rows = pg.query("SELECT id, name FROM dst ORDER BY name")
    assert [name for _, name in rows] == ["c", "d", "e"]
    ids = [id_ for id_, _ in rows]
    assert None not in ids and len(set(ids)) == 3
    assert min(ids) > max(id_ for (id_,) in first), "the table's own sequence numbered them"
    assert next_id(pg) > max(ids)


def test_generated_columns_are_recomputed_from_the_loaded_values(
    pg: Any, overwrite: Overwrite
) -> None:
    pg.execute(
        "CREATE TABLE dst (price bigint, qty bigint, "
        "total bigint GENERATED ALWAYS AS (price * qty) STORED)"
    )
    overwrite([{"price": 150, "qty": 2}])
    assert pg.query("SELECT price, qty, total FROM dst") == [(150, 2, 300)]
    # A load that carries the generated column too (read from a copy of the table): its
    # values are ignored, Postgres computes the column.
    overwrite([{"price": 200, "qty": 3, "total": 999}, {"price": 25, "qty": 4, "total": None}])
    generated = pg.scalar(
        "SELECT attgenerated FROM pg_attribute WHERE attrelid = 'dst'::regclass "
        "AND attname = 'total'"
    )
    assert generated == "s"
    assert pg.query("SELECT price, qty, total FROM dst ORDER BY price") == [
        (25, 4, 100),
        (200, 3, 600),
    ]


@pytest.fixture
def reader(pg: Any) -> Iterator[str]:
    """A role of its own (roles are the cluster's, not the test database's), dropped after."""
    role = f"dl_reader_{uuid.uuid4().hex[:12]}"
    pg.execute(f"CREATE ROLE {role}")
    try:
        yield role
    finally:
        pg.execute(f"DROP OWNED BY {role}")
        pg.execute(f"DROP ROLE {role}")


def test_grants_to_other_roles_are_kept(pg: Any, overwrite: Overwrite, reader: str) -> None:
    pg.execute("CREATE TABLE dst (id bigint, name text)")
    pg.execute(f"GRANT SELECT ON dst TO {reader}")
    overwrite(FIRST)
    overwrite(SECOND)
    assert pg.scalar("SELECT has_table_privilege(%s, 'dst', 'SELECT')", (reader,))
    assert not pg.scalar("SELECT has_table_privilege(%s, 'dst', 'INSERT')", (reader,))
    assert pg.query("SELECT id, name FROM dst ORDER BY id") == [(30, "c"), (35, "e"), (40, "d")]


def test_row_level_security_and_its_policies_are_kept(pg: Any, overwrite: Overwrite) -> None:
    pg.execute("CREATE TABLE dst (id bigint, name text)")
    pg.execute("ALTER TABLE dst ENABLE ROW LEVEL SECURITY")
    pg.execute("CREATE POLICY low_ids ON dst FOR SELECT USING (id < 100)")
    overwrite(FIRST)
    overwrite(SECOND)
    assert pg.scalar("SELECT relrowsecurity FROM pg_class WHERE oid = 'dst'::regclass")
    assert pg.query("SELECT polname FROM pg_policy WHERE polrelid = 'dst'::regclass") == [
        ("low_ids",)
    ]
    assert pg.query("SELECT id, name FROM dst ORDER BY id") == [(30, "c"), (35, "e"), (40, "d")]


def test_a_policy_alone_keeps_the_table(pg: Any, overwrite: Overwrite) -> None:
    """A policy defined while row-level security is off still belongs to the table."""
    pg.execute("CREATE TABLE dst (id bigint, name text)")
    pg.execute("CREATE POLICY low_ids ON dst USING (id < 100)")
    overwrite(FIRST)
    overwrite(SECOND)
    assert pg.query("SELECT polname FROM pg_policy WHERE polrelid = 'dst'::regclass") == [
        ("low_ids",)
    ]
    assert pg.query("SELECT id, name FROM dst ORDER BY id") == [(30, "c"), (35, "e"), (40, "d")]


def test_a_child_table_keeps_its_grant_and_its_identity(
    pg: Any, run: Any, rows_source: str, reader: str
) -> None:
    """Child tables of normalized data are swapped in the same way as the main table."""

    def load(orders: list[list[str]]) -> None:
        rows = [
            {"id": index, "orders": [{"sku": sku} for sku in skus]}
            for index, skus in enumerate(orders)
        ]
        run(
            {
                "name": "keeps_children",
                "source": {"type": rows_source, "batches": [rows]},
                "normalization": {"enabled": True},
                "destination": pg.destination("dst", "overwrite"),
            }
        )

    load([["x"], ["y", "z"]])
    assert pg.exists("dst__orders")
    pg.execute("ALTER TABLE dst__orders ADD COLUMN n bigint GENERATED ALWAYS AS IDENTITY")
    pg.execute(f"GRANT SELECT ON dst__orders TO {reader}")
    load([["p", "q"], [], ["r"]])
    load([["s"], ["t", "u"]])
    assert pg.scalar("SELECT has_table_privilege(%s, 'dst__orders', 'SELECT')", (reader,))
    rows = pg.query("SELECT sku, n FROM dst__orders ORDER BY sku")
    assert [sku for sku, _ in rows] == ["s", "t", "u"]
    assert len({n for _, n in rows}) == 3 and None not in {n for _, n in rows}
    assert pg.scalar("SELECT count(*) FROM dst") == 2
    assert staging_tables(pg) == []
