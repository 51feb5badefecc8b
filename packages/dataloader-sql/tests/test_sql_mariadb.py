"""The generic `sql` connector against the real MariaDB server (`mysql+pymysql://`): types
round-trip, the three write modes, and — since MariaDB's DDL commits implicitly — a failed
commit after a column was added mid-run still leaves neither rows nor state; incremental
reads with ties and code-point text order."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from sql_support import read_table
from test_sql_types import CASTS, ROWS, checksums

from dataloader import State
from dataloader.errors import ConnectorError, EngineError
from dataloader_mysql.testing import MariaDBServer
from dataloader_sql import SqlConnector


class Maria:
    def __init__(self, server: MariaDBServer, database: str) -> None:
        self.server, self.database = server, database
        self.url = server.url(database)

    def destination(self, table: str, write_mode: str = "append", **keys: Any) -> dict[str, Any]:
        return {"type": "sql", "url": self.url, "table": table, "write_mode": write_mode, **keys}

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        connection = self.server.connect(self.database)
        try:
            cursor = connection.cursor()
            cursor.execute(sql)
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            connection.close()

    def execute(self, sql: str) -> None:
        connection = self.server.connect(self.database, autocommit=True)
        try:
            connection.cursor().execute(sql)
        finally:
            connection.close()

    def tables(self) -> list[str]:
        return sorted(name for (name,) in self.query("SHOW TABLES"))


@pytest.fixture
def maria(mariadb_server: MariaDBServer, mariadb_database: str) -> Maria:
    return Maria(mariadb_server, mariadb_database)


def test_types_round_trip_through_mariadb(
    run: Any, rows_source: str, maria: Maria, sqlite_db: Any
) -> None:
    for destination in (maria.destination("typed"), sqlite_db.destination("typed")):
        recipe = {
            "name": "types",
            "source": {"type": rows_source, "batches": [ROWS[:1], ROWS[1:]]},
            "transform": {"steps": [{"type": "cast", "columns": CASTS}]},
            "destination": destination,
        }
        assert run(recipe).status == "success"
    loaded = read_table(maria.url, "typed")
    # MariaDB's DATETIME keeps no zone: instants are stored as UTC wall time in a column whose
    # comment says so, and read back as instants.
    assert loaded.schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert loaded.schema.field("amount").type == pa.decimal128(38, 9)
    assert loaded.schema.field("flag").type == pa.bool_()
    expected = read_table(sqlite_db.url, "typed")
    assert checksums(loaded.select(expected.column_names)) == checksums(expected)
    [row] = [r for r in loaded.to_pylist() if r["id"] == 1]
    assert row["amount"] == Decimal("12345678901234567890123456789.123456789")
    assert row["name"] == "Zoë 🚀 naïve"
    assert row["at"] == datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize("mode", ["append", "merge", "overwrite"])
def test_write_modes(run: Any, rows_source: str, maria: Maria, mode: str) -> None:
    keys = {"merge_keys": ["id"]} if mode == "merge" else {}
    destination = maria.destination("t", mode, **keys)
    first = [[{"id": i, "name": f"a-{i}"} for i in (1, 2, 3)]]
    second = [[{"id": 3, "name": "b-3"}, {"id": 4, "name": "b-4"}], [{"id": 4, "name": "c-4"}]]
    for batches in (first, second):
        run(
            {
                "name": f"w_{mode}",
                "source": {"type": rows_source, "batches": batches},
                "destination": destination,
            }
        )
    rows = maria.query("SELECT id, name FROM t ORDER BY id, name")
    assert (
        rows
        == {
            "append": [(1, "a-1"), (2, "a-2"), (3, "a-3"), (3, "b-3"), (4, "b-4"), (4, "c-4")],
            "merge": [(1, "a-1"), (2, "a-2"), (3, "b-3"), (4, "c-4")],
            "overwrite": [(3, "b-3"), (4, "b-4"), (4, "c-4")],
        }[mode]
    )
    assert [name for name in maria.tables() if name.startswith("_dl_stage_")] == []


class CommitFailed(Exception):
    pass


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_a_failed_commit_after_implicitly_committing_ddl_leaves_neither_rows_nor_state(
    run: Any, rows_source: str, maria: Maria, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    keys = {"merge_keys": ["id"]} if mode == "merge" else {}
    cursor = {"incremental": {"strategy": "cursor", "cursor_column": "id"}}

    def recipe(batches: list[Any]) -> dict[str, Any]:
        return {
            "name": "ddl",
            "source": {"type": rows_source, "batches": batches, **cursor},
            "destination": maria.destination("t", mode, **keys),
            "runtime": {"batch_size": 100},
        }

    run(recipe([[{"id": 1, "name": "a"}]]))
    [(saved,)] = maria.query("SELECT state FROM _dataloader_state")
    original = SqlConnector._save_state

    def failing(self: SqlConnector, state: State) -> None:
        original(self, state)
        raise CommitFailed("disk on fire")

    monkeypatch.setattr(SqlConnector, "_save_state", failing)
    # The second batch brings a new column: its ALTER TABLE commits implicitly mid-run.
    batches = [[{"id": 2, "name": "b"}], [{"id": 3, "name": "c", "extra": "x"}]]
    with pytest.raises(EngineError, match="disk on fire"):
        run(recipe(batches))
    assert maria.query("SELECT id, name FROM t ORDER BY id") == [(1, "a")]
    assert maria.query("SELECT state FROM _dataloader_state") == [(saved,)]

    monkeypatch.setattr(SqlConnector, "_save_state", original)
    run(recipe(batches))
    assert maria.query("SELECT id, name, extra FROM t ORDER BY id") == [
        (1, "a", None),
        (2, "b", None),
        (3, "c", "x"),
    ]


def test_incremental_reads_from_mariadb_with_ties_and_binary_text_order(
    run: Any, maria: Maria, sqlite_db: Any
) -> None:
    maria.execute("CREATE TABLE src (id INT, code VARCHAR(10), seq INT)")
    maria.execute(
        "INSERT INTO src VALUES (1, 'B', 1), (2, 'a', 1), (3, 'Z', 2), (4, 'a', 2), (5, 'b', 2)"
    )
    for column in ("seq", "code"):
        recipe = {
            "name": f"inc_{column}",
            "source": {
                "type": "sql",
                "url": maria.url,
                "table": "src",
                "incremental": {"strategy": "cursor", "cursor_column": column},
            },
            "destination": sqlite_db.destination(f"dst_{column}"),
            "runtime": {"batch_size": 2},
        }
        assert run(recipe).rows_written == 5
    maria.execute("INSERT INTO src VALUES (6, 'A', 2), (7, 'b', 3), (8, 'é', 1)")
    for column, new in (("seq", [6, 7]), ("code", [7, 8])):  # 'A' < 'b' in code-point order
        recipe["source"]["incremental"]["cursor_column"] = column
        recipe["name"], recipe["destination"] = (
            f"inc_{column}",
            sqlite_db.destination(f"dst_{column}"),
        )
        assert run(recipe).rows_written == 2
        ids = [i for (i,) in sqlite_db.query(f"SELECT id FROM dst_{column} ORDER BY id")]
        assert ids == sorted([1, 2, 3, 4, 5, *new])


def test_zoned_timestamps_load_again_into_the_table_made_for_them(
    run: Any, rows_source: str, maria: Maria
) -> None:
    recipe = {
        "name": "zoned",
        "source": {
            "type": rows_source,
            "batches": [[{"id": 1, "at": "2024-01-01T00:00:00+02:00"}]],
        },
        "transform": {
            "steps": [{"type": "cast", "columns": {"at": {"type": "datetime", "timezone": "UTC"}}}]
        },
        "destination": maria.destination("z"),
    }
    run(recipe)
    run(recipe)
    assert maria.query("SELECT at FROM z") == [(datetime(2023, 12, 31, 22, 0),)] * 2
    [(comment,)] = maria.query(
        "SELECT column_comment FROM information_schema.columns WHERE table_schema = DATABASE() "
        "AND table_name = 'z' AND column_name = 'at'"
    )
    assert comment == "dataloader: UTC instants"


@pytest.mark.parametrize(
    "existing",
    [None, "CREATE TABLE dst (k VARCHAR(20) PRIMARY KEY, v TEXT)"],
    ids=["new-table", "varchar-key"],
)
def test_a_text_merge_key_merges(
    run: Any, rows_source: str, maria: Maria, existing: str | None
) -> None:
    if existing:
        maria.execute(existing)
    destination = maria.destination("dst", "merge", merge_keys=["k"])
    for batches in ([[{"k": "a", "v": "1"}, {"k": "b", "v": "2"}]], [[{"k": "b", "v": "3"}]]):
        recipe = {
            "name": "strkey",
            "source": {"type": rows_source, "batches": batches},
            "destination": destination,
        }
        assert run(recipe).status == "success"
    assert maria.query("SELECT k, v FROM dst ORDER BY k") == [("a", "1"), ("b", "3")]


@pytest.mark.parametrize("widen", [False, True], ids=["same-types", "widened"])
def test_columns_the_rows_lack_keep_their_defaults(
    run: Any, rows_source: str, maria: Maria, widen: bool
) -> None:
    maria.execute(
        "CREATE TABLE dst (id BIGINT PRIMARY KEY, c INT, extra INT DEFAULT 7, "
        "note VARCHAR(10) NOT NULL DEFAULT 'keep')"
    )
    recipe = {
        "name": "defaults",
        "source": {"type": rows_source, "batches": [[{"id": 1, "c": 2**40 if widen else 5}]]},
        "destination": maria.destination("dst"),
    }
    assert run(recipe).status == "success"
    assert maria.query("SELECT id, c, extra, note FROM dst") == [
        (1, 2**40 if widen else 5, 7, "keep")
    ]


@pytest.mark.parametrize("mode", ["append", "merge", "overwrite"])
def test_a_lost_commit_acknowledgement_is_retried_without_duplicates_or_loss(
    run: Any,
    rows_source: str,
    maria: Maria,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    import pymysql
    import sqlalchemy as sa

    real, calls = SqlConnector.commit, [0]

    def commit(self: SqlConnector, state: State) -> None:
        real(self, state)  # the commit lands; its acknowledgement is lost
        calls[0] += 1
        if calls[0] == 1:
            lost = pymysql.err.OperationalError(2013, "Lost connection to server during query")
            raise sa.exc.OperationalError("COMMIT", None, lost)

    monkeypatch.setattr(SqlConnector, "commit", commit)
    keys = {"merge_keys": ["id"]} if mode == "merge" else {}
    batches = [[{"id": i * 10 + j, "v": "x"} for j in range(10)] for i in range(3)]
    result = run(
        {
            "name": "lost_ack",
            "source": {"type": rows_source, "batches": batches},
            "destination": maria.destination("dst", mode, **keys),
            "runtime": {"retries": {"attempts": 3}, "commit_interval_seconds": 0.000001},
        }
    )
    assert result.status == "success"
    assert calls[0] >= 1
    assert maria.query("SELECT COUNT(*), COUNT(DISTINCT id) FROM dst") == [(30, 30)]


@pytest.mark.parametrize(
    ("declared", "value"),
    [
        ("DATETIME", datetime(2020, 1, 1, 0, 0, 0, 600000)),
        ("DATETIME(3)", datetime(2020, 1, 1, 0, 0, 0, 123456)),
        ("TIME", time(1, 2, 3, 500000)),
    ],
)
def test_sub_second_digits_an_existing_column_cannot_keep_fail_naming_it(
    run: Any, rows_source: str, maria: Maria, declared: str, value: Any
) -> None:
    maria.execute(f"CREATE TABLE dst (id BIGINT PRIMARY KEY, c {declared})")
    recipe = {
        "name": "fraction",
        "source": {"type": rows_source, "batches": [[{"id": 1, "c": value}]]},
        "destination": maria.destination("dst"),
    }
    with pytest.raises(ConnectorError, match=r"column 'c'.*fractional"):
        run(recipe)
    assert maria.query("SELECT COUNT(*) FROM dst") == [(0,)]


def test_uint64_round_trips_as_bigint_unsigned(maria: Maria) -> None:
    from dataloader import ArrowBatch
    from dataloader.context import RunContext
    from dataloader_sql import SqlConfig

    values = [2**64 - 1, 2**63, 0, None]
    connector = SqlConnector(SqlConfig(url=maria.url, table="u"))
    connector.open(
        RunContext(recipe_name="u", run_id="1", started_at=datetime.now(UTC), role="destination")
    )
    try:
        connector.begin(State())
        batch = pa.record_batch(
            {"id": pa.array(range(4), pa.int64()), "n": pa.array(values, pa.uint64())}
        )
        connector.write_batch(ArrowBatch(batch, {}), State())
        connector.commit(State())
    finally:
        connector.close()
    loaded = read_table(maria.url, "u").sort_by("id")
    assert loaded.schema.field("n").type == pa.uint64()
    assert loaded.column("n").to_pylist() == values


def test_text_keys_and_cursors_differing_by_trailing_spaces_stay_apart(
    run: Any, rows_source: str, maria: Maria, sqlite_db: Any
) -> None:
    destination = maria.destination("dst", "merge", merge_keys=["k"])
    first = [{"k": k, "v": v} for k, v in (("x", "plain"), ("x ", "one"), ("x  ", "two"))]
    for batch in (first, [{"k": "x ", "v": "updated"}]):
        recipe = {
            "name": "pad",
            "source": {"type": rows_source, "batches": [batch]},
            "destination": destination,
        }
        assert run(recipe).status == "success"
    assert maria.query("SELECT CONCAT('[', k, ']'), v FROM dst ORDER BY v") == [
        ("[x]", "plain"),
        ("[x  ]", "two"),
        ("[x ]", "updated"),
    ]

    maria.execute("CREATE TABLE padsrc (id INT, code VARCHAR(10)) COLLATE utf8mb4_bin")
    maria.execute("INSERT INTO padsrc VALUES (1, 'x')")
    recipe = {
        "name": "pad_cursor",
        "source": {
            "type": "sql",
            "url": maria.url,
            "table": "padsrc",
            "incremental": {"strategy": "cursor", "cursor_column": "code"},
        },
        "destination": sqlite_db.destination("padded"),
    }
    assert run(recipe).rows_written == 1
    maria.execute("INSERT INTO padsrc VALUES (2, 'x ')")  # after 'x' in code-point order
    assert run(recipe).rows_written == 1
    assert sqlite_db.query("SELECT id FROM padded ORDER BY id") == [(1,), (2,)]
