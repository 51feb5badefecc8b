"""Postgres merge without the DISTINCT ON sort: a batch whose merge keys are all distinct, as
decided in Arrow where Arrow's equality is the stage column's (integers; text and varchar with a
deterministic collation), is inserted from the stage unsorted. Every case here runs the same
batches twice, once as the connector chooses and once with the sort forced, and the two tables
must hold exactly the same rows; the statements show which path each batch took."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pytest

from dataloader_postgres.connector import ORDINAL, PostgresConnector
from dataloader_postgres.testing import PostgresServer

PATHS = pytest.mark.parametrize("keyed", [True, False], ids=["on_conflict", "update_from"])
Batches = list[list[dict[str, Any]]]


def record_merges(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements that read the merge stage into a target, in order."""
    statements: list[str] = []
    original = PostgresConnector._execute

    def recording(self: PostgresConnector, sql: str, params: Any = None) -> Any:
        if "_dl_merge_stage" in sql and sql.startswith(("INSERT", "UPDATE")):
            statements.append(sql)
        return original(self, sql, params)

    monkeypatch.setattr(PostgresConnector, "_execute", recording)
    return statements


def force_sort(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every batch takes the DISTINCT ON path, as before the unsorted one existed."""
    monkeypatch.setattr(PostgresConnector, "_keys_distinct", lambda *_: False)


def sorted_statements(statements: list[str]) -> list[bool]:
    """Per statement, whether it sorts the stage."""
    return ["DISTINCT ON" in s for s in statements]


class Twin:
    """Runs the same batches into table `fast` (the connector's choice) and `sorted` (sort
    forced), each created by `ddl` (formatted with the table name) and seeded with `seed`."""

    def __init__(
        self, pg: Any, run: Any, rows_source: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.pg, self.run, self.source, self.monkeypatch = pg, run, rows_source, monkeypatch

    def merge(
        self,
        ddl: str,
        batches: Batches,
        *,
        keys: list[str],
        seed: str = "",
        codec: str = "auto",
        source: dict[str, Any] | None = None,
        **destination: Any,
    ) -> tuple[list[tuple[Any, ...]], list[bool]]:
        """The rows of both tables (the same, asserted) and, per merge statement of the
        connector's run, whether it sorted."""
        results = []
        statements: list[str] = []
        for table in ("fast", "sorted"):
            self.pg.execute(ddl.format(table=table))
            if seed:
                self.pg.execute(seed.format(table=table))
            with self.monkeypatch.context() as patch:
                if table == "sorted":
                    force_sort(patch)
                seen = record_merges(patch)
                self.run(
                    {
                        "name": f"speedpath_{table}",
                        "source": {"type": self.source, "batches": batches, **(source or {})},
                        "destination": self.pg.destination(
                            table, "merge", merge_keys=keys, codec=codec, **destination
                        ),
                        "runtime": {"batch_size": 1000},
                    }
                )
            if table == "fast":
                statements = seen
            else:
                assert all(sorted_statements(seen)), seen
            results.append(self.pg.query(f"SELECT * FROM {table} ORDER BY 1, 2, 3"))
        assert results[0] == results[1]
        return results[0], sorted_statements(statements)


@pytest.fixture
def twin(pg: Any, run: Any, rows_source: str, monkeypatch: pytest.MonkeyPatch) -> Twin:
    return Twin(pg, run, rows_source, monkeypatch)


@PATHS
@pytest.mark.parametrize("codec", ["csv", "auto"])
def test_distinct_integer_keys_skip_the_sort(twin: Twin, keyed: bool, codec: str) -> None:
    key = "PRIMARY KEY" if keyed else ""
    rows, sorts = twin.merge(
        f"CREATE TABLE {{table}} (id bigint {key}, v text, note text DEFAULT 'kept')",
        [[{"id": 3, "v": "c"}, {"id": 1, "v": "A"}, {"id": 4, "v": None}]],
        keys=["id"],
        seed="INSERT INTO {table} (id, v, note) VALUES (1, 'a', 'stored'), (2, 'b', 'stored')",
        codec=codec,
    )
    assert rows == [
        (1, "A", "stored"),
        (2, "b", "stored"),
        (3, "c", "kept"),
        (4, None, "kept"),
    ]
    assert sorts and not any(sorts)


@PATHS
def test_duplicate_keys_sort_and_the_dedup_sort_winner_wins(twin: Twin, keyed: bool) -> None:
    key = "PRIMARY KEY" if keyed else ""
    batches = [
        [{"id": 1, "ts": 2, "v": "new"}, {"id": 1, "ts": 1, "v": "old"}, {"id": 2, "ts": 5}],
        [{"id": 2, "ts": 4, "v": "older than stored"}, {"id": 3, "ts": 1, "v": "three"}],
    ]
    rows, sorts = twin.merge(
        f"CREATE TABLE {{table}} (id int {key}, ts int, v text)",
        batches,
        keys=["id"],
        seed="INSERT INTO {table} VALUES (2, 3, 'stored')",
        dedup_sort={"column": "ts"},
    )
    assert rows == [(1, 2, "new"), (2, 5, None), (3, 1, "three")]
    # The first batch has a key twice, the second none; one statement per batch with a
    # unique index, two (UPDATE, INSERT) without.
    assert sorts == ([True, False] if keyed else [True, True, False, False])


@PATHS
def test_duplicate_keys_won_by_the_cursor(twin: Twin, keyed: bool) -> None:
    key = "PRIMARY KEY" if keyed else ""
    batch = [
        {"id": 1, "version": 3, "v": "newer"},
        {"id": 1, "version": 2, "v": "older"},
        {"id": 2, "version": 1, "v": "two"},
        {"id": 9, "version": 10, "v": "max"},
    ]
    rows, sorts = twin.merge(
        f"CREATE TABLE {{table}} (id int {key}, version int, v text)",
        [batch],
        keys=["id"],
        source={"incremental": {"cursor_column": "version"}},
    )
    assert rows == [(1, 3, "newer"), (2, 1, "two"), (9, 10, "max")]
    # The engine holds the batch's highest cursor back to a batch of its own: distinct.
    assert sorts == ([True, False] if keyed else [True, True, False, False])


@PATHS
def test_duplicate_keys_won_by_read_order(twin: Twin, keyed: bool) -> None:
    key = "PRIMARY KEY" if keyed else ""
    batch = [{"id": 1, "v": "first"}, {"id": 2, "v": "two"}, {"id": 1, "v": "last"}]
    rows, sorts = twin.merge(
        f"CREATE TABLE {{table}} (id int {key}, v text, w int)", [batch], keys=["id"]
    )
    assert rows == [(1, "last", None), (2, "two", None)]
    assert sorts and all(sorts)


@PATHS
def test_float_keys_always_sort(twin: Twin, keyed: bool) -> None:
    """0.0 and -0.0 differ in Arrow and are equal in Postgres: a float key is left to the
    server."""
    key = "PRIMARY KEY" if keyed else ""
    batch = [{"k": 0.0, "v": "zero"}, {"k": -0.0, "v": "minus zero"}, {"k": 1.5, "v": "x"}]
    rows, sorts = twin.merge(
        f"CREATE TABLE {{table}} (k float8 {key}, v text, w int)", [batch], keys=["k"]
    )
    assert [row[1] for row in rows] == ["minus zero", "x"]
    assert sorts and all(sorts)


def test_citext_keys_sort(twin: Twin) -> None:
    if not twin.pg.scalar("SELECT count(*) FROM pg_available_extensions WHERE name = 'citext'"):
        pytest.skip("the server has no citext extension")
    twin.pg.execute("CREATE EXTENSION IF NOT EXISTS citext")
    batch = [{"k": "Alice", "v": "upper"}, {"k": "alice", "v": "lower"}, {"k": "bob", "v": "b"}]
    rows, sorts = twin.merge(
        "CREATE TABLE {table} (k citext PRIMARY KEY, v text, w int)", [batch], keys=["k"]
    )
    assert [row[1] for row in rows] == ["lower", "b"]
    assert sorts and all(sorts)


def test_nondeterministic_collation_keys_sort(twin: Twin) -> None:
    if not twin.pg.scalar("SELECT count(*) FROM pg_collation WHERE collprovider = 'i'"):
        pytest.skip("the server has no ICU collations")
    twin.pg.execute(
        "CREATE COLLATION IF NOT EXISTS speedpath_ci "
        "(provider = icu, locale = 'und-u-ks-level2', deterministic = false)"
    )
    batch = [{"k": "Alice", "v": "upper"}, {"k": "ALICE", "v": "shout"}, {"k": "bob", "v": "b"}]
    rows, sorts = twin.merge(
        "CREATE TABLE {table} (k text COLLATE speedpath_ci, v text, w int)", [batch], keys=["k"]
    )
    assert [row[1] for row in rows] == ["shout", "b"]
    assert sorts and all(sorts)


def test_text_keys_with_a_deterministic_collation_skip_the_sort(twin: Twin) -> None:
    batch = [{"k": "Alice", "v": "upper"}, {"k": "alice", "v": "lower"}, {"k": "", "v": "empty"}]
    rows, sorts = twin.merge(
        'CREATE TABLE {table} (k varchar COLLATE "C" PRIMARY KEY, v text, w int)',
        [batch],
        keys=["k"],
    )
    assert rows == [("", "empty", None), ("Alice", "upper", None), ("alice", "lower", None)]
    assert sorts and not any(sorts)


@pytest.fixture
def latin1(postgres_server: PostgresServer, pg: Any) -> Iterator[Any]:
    """A new LATIN1 database on the test server, with the helpers `pg` has for its own."""
    name = postgres_server.create_database(encoding="LATIN1")
    helper = type(pg)(postgres_server, name)
    try:
        yield helper
    finally:
        helper.close()


def test_text_keys_in_a_database_that_converts_text_sort(
    latin1: Any, run: Any, rows_source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a UTF8 or SQL_ASCII database stores the text as written; integer keys still skip
    the sort in a LATIN1 one."""
    twin = Twin(latin1, run, rows_source, monkeypatch)
    batch = [{"k": "Zürich", "n": 1, "v": "z"}, {"k": "zurich", "n": 2, "v": "plain"}]
    ddl = "CREATE TABLE {table} (k text, n int, v text)"
    rows, sorts = twin.merge(ddl, [batch], keys=["k"])
    assert rows == [("Zürich", 1, "z"), ("zurich", 2, "plain")]
    assert sorts and all(sorts)

    latin1.execute("DROP TABLE fast, sorted")
    rows, sorts = twin.merge(ddl, [batch], keys=["n"])
    assert rows == [("Zürich", 1, "z"), ("zurich", 2, "plain")]
    assert sorts and not any(sorts)


def test_varchar_n_keys_that_postgres_would_cut_sort(twin: Twin) -> None:
    """varchar(2) drops the spaces past its length: 'a ' and 'a   ' are one key there."""
    ddl = "CREATE TABLE {table} (k varchar(2), v text, w int)"
    rows, sorts = twin.merge(
        ddl, [[{"k": "a ", "v": "short"}, {"k": "a   ", "v": "long"}]], keys=["k"]
    )
    assert rows == [("a ", "long", None)]
    assert sorts and all(sorts)

    twin.pg.execute("DROP TABLE fast, sorted")
    rows, sorts = twin.merge(ddl, [[{"k": "a ", "v": "x"}, {"k": "ab", "v": "y"}]], keys=["k"])
    assert rows == [("a ", "x", None), ("ab", "y", None)]
    assert sorts and not any(sorts)


@PATHS
def test_composite_keys(twin: Twin, keyed: bool) -> None:
    key = ", PRIMARY KEY (a, b)" if keyed else ""
    ddl = f"CREATE TABLE {{table}} (a int, b text, v text{key})"
    distinct = [{"a": 1, "b": "x", "v": "1x"}, {"a": 1, "b": "y", "v": "1y"}, {"a": 2, "b": "x"}]
    repeated = [{"a": 1, "b": "x", "v": "first"}, {"a": 1, "b": "x", "v": "again"}]
    rows, sorts = twin.merge(ddl, [distinct, repeated], keys=["a", "b"])
    assert rows == [(1, "x", "again"), (1, "y", "1y"), (2, "x", None)]
    per_batch = 1 if keyed else 2
    assert sorts == [False] * per_batch + [True] * per_batch


@PATHS
def test_a_batch_with_a_column_the_target_lacks(twin: Twin, keyed: bool) -> None:
    key = "PRIMARY KEY" if keyed else ""
    batches = [
        [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}],
        [{"id": 2, "v": "B", "extra": "x2"}, {"id": 3, "v": "c", "extra": "x3"}],
    ]
    rows, sorts = twin.merge(
        f"CREATE TABLE {{table}} (id int {key}, v text)",
        batches,
        keys=["id"],
        seed="INSERT INTO {table} VALUES (1, 'stored')",
    )
    assert rows == [(1, "a", None), (2, "B", "x2"), (3, "c", "x3")]
    assert sorts and not any(sorts)


def test_the_unsorted_path_leaves_the_ordinal_empty_and_the_sorted_one_numbers_rows(
    pg: Any, run: Any, rows_source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stage's ordinal is the batch's row number, written by the client only for a batch
    that is sorted."""
    seen: list[list[Any]] = []
    original: Callable[..., Any] = PostgresConnector._execute

    def peek(self: PostgresConnector, sql: str, params: Any = None) -> Any:
        if sql.startswith("TRUNCATE pg_temp."):
            cursor = self.conn.cursor()
            cursor.execute(
                f'SELECT "{ORDINAL}" FROM pg_temp._dl_merge_stage ORDER BY id, "{ORDINAL}"'
            )
            seen.append([row[0] for row in cursor.fetchall()])
        return original(self, sql, params)

    monkeypatch.setattr(PostgresConnector, "_execute", peek)
    batches = [[{"id": 1}, {"id": 2}], [{"id": 5}, {"id": 3}, {"id": 5}]]
    run(
        {
            "name": "ordinal",
            "source": {"type": rows_source, "batches": batches},
            "destination": pg.destination("dst", "merge", merge_keys=["id"]),
            "runtime": {"batch_size": 1000},
        }
    )
    assert seen == [[None, None], [1, 0, 2]]
    assert pg.query("SELECT id FROM dst ORDER BY id") == [(1,), (2,), (3,), (5,)]


def test_keys_distinct_decides_in_arrow_only_for_exact_types() -> None:
    connector = PostgresConnector.__new__(PostgresConnector)
    connector._merge_text_verbatim = True
    connector._merge_stage_types = {
        "i": (20, -1, True),
        "t": (25, -1, True),
        "nd": (25, -1, False),
        "f": (701, -1, True),
        "vc": (1043, 2 + 4, True),
    }

    def distinct(columns: dict[str, pa.Array]) -> bool:
        return connector._keys_distinct(pa.RecordBatch.from_pydict(columns), tuple(columns))

    assert distinct({"i": pa.array([1, 2, None])})
    assert not distinct({"i": pa.array([1, None, None])})
    assert distinct({"t": pa.array(["a", "A"]), "i": pa.array([1, 1])})
    assert not distinct({"t": pa.array(["a", "a"]), "i": pa.array([1, 1])})
    assert distinct({"t": pa.array(["a", "b"], pa.large_string())})
    assert not distinct({"nd": pa.array(["a", "b"])})  # nondeterministic collation
    assert not distinct({"f": pa.array([0.0, 1.0])})
    assert not distinct({"i": pa.array([1.0, 2.0])})  # a float batch into a bigint column
    assert not distinct({"t": pa.array([b"a", b"b"])})  # binary into text
    assert not distinct({"missing": pa.array([1, 2])})
    assert distinct({"vc": pa.array(["ab", "a "])})
    assert not distinct({"vc": pa.array(["ab", "abc"])})
    connector._merge_text_verbatim = False  # a database encoding that converts text
    assert not distinct({"t": pa.array(["a", "b"])})
    assert distinct({"i": pa.array([1, 2])})
