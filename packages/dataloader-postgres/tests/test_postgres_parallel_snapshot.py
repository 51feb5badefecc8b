"""A split read (`runtime.parallelism` > 1) reads every range in one exported snapshot: a row
updated across a range edge while the ranges are read is neither lost nor read twice. Partition
bounds come from finite values, so ±Infinity and NaN rows land in exactly one range.

`codec: csv` and `codec: auto` (binary where dataloader-rust is installed, csv without plugins).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pytest

import dataloader_postgres.connector as connector_module
from dataloader import RunResult
from dataloader_postgres.codec import CopyCodec
from dataloader_postgres.types import ColumnPlan

CODECS = ["csv", "auto"]


class Gate:
    """Wraps the recipe's codecs: the first range (`first(query)`) is read to its end, then the
    other range's thread runs `before_second` (a concurrent writer, autocommit) and reads."""

    def __init__(self, pg: Any, first: Callable[[str], bool], before_second: str) -> None:
        self.pg = pg
        self.first = first
        self.before_second = before_second
        self.first_done = threading.Event()
        self.queries: list[str] = []

    def wrap(self, real: CopyCodec) -> Any:
        gate = self

        class Gated:
            name = real.name

            def read(
                self, connection: Any, query: str, plans: list[ColumnPlan], batch_size: int
            ) -> Iterator[pa.RecordBatch]:
                gate.queries.append(query)
                if gate.first(query):
                    yield from real.read(connection, query, plans, batch_size)
                    gate.first_done.set()
                    return
                if not gate.first_done.wait(60):
                    raise AssertionError("the first range never finished")
                gate.pg.execute(gate.before_second)
                yield from real.read(connection, query, plans, batch_size)

            def write(self, *args: Any, **kwargs: Any) -> Any:
                return real.write(*args, **kwargs)

        return Gated()


def install(
    monkeypatch: pytest.MonkeyPatch, pg: Any, first: Callable[[str], bool], before_second: str
) -> Gate:
    gate = Gate(pg, first, before_second)
    real_choose = connector_module.choose_codec
    monkeypatch.setattr(
        connector_module, "choose_codec", lambda setting: gate.wrap(real_choose(setting))
    )
    return gate


def recipe(pg: Any, codec: str, **source: Any) -> dict[str, Any]:
    return {
        "name": f"split_{codec}",
        "source": pg.source(table="src", codec=codec, **source),
        "destination": pg.destination("dst", codec="csv"),
        "runtime": {"batch_size": 1000, "parallelism": 2},
    }


@pytest.mark.parametrize("codec", CODECS)
def test_a_row_moved_across_the_range_edge_is_read_once(
    pg: Any, run: Callable[..., RunResult], monkeypatch: pytest.MonkeyPatch, codec: str
) -> None:
    pg.execute("CREATE TABLE src AS SELECT g AS id, g AS v FROM generate_series(1, 100) g")
    # After the lower range is read: id 90 moves down into it, id 10 up out of it.
    gate = install(
        monkeypatch,
        pg,
        lambda query: "IS NULL" in query,
        "UPDATE src SET v = 1 WHERE id = 90; UPDATE src SET v = 100 WHERE id = 10",
    )
    result = run(recipe(pg, codec, partition_column="v"))
    assert len(gate.queries) == 2  # the read was split
    assert result.rows_written == 100
    assert pg.query("SELECT count(*), count(DISTINCT id) FROM dst") == [(100, 100)]
    # The snapshot taken before either range: the values before the update.
    assert pg.query("SELECT id, v FROM dst WHERE id IN (10, 90) ORDER BY id") == [
        (10, 10),
        (90, 90),
    ]
    assert pg.query("SELECT count(*) FROM src WHERE v = 1") == [(2,)]  # the update happened


@pytest.mark.parametrize("codec", CODECS)
def test_a_row_updated_onto_a_later_page_is_not_read_twice(
    pg: Any, run: Callable[..., RunResult], monkeypatch: pytest.MonkeyPatch, codec: str
) -> None:
    """Split by pages (no partition column): the new version of an updated row lands on a later
    page, in the second range; the first range read the old one."""
    pg.execute("CREATE TABLE src AS SELECT g AS id, g AS v FROM generate_series(1, 2000) g")
    pg.execute("VACUUM ANALYZE src")
    gate = install(
        monkeypatch, pg, lambda query: "ctid >=" not in query, "UPDATE src SET v = -1 WHERE id = 10"
    )
    result = run(recipe(pg, codec))
    assert len(gate.queries) == 2
    assert result.rows_written == 2000
    assert pg.query("SELECT count(*), count(DISTINCT id) FROM dst") == [(2000, 2000)]
    assert pg.query("SELECT v FROM dst WHERE id = 10") == [(10,)]
    assert pg.query("SELECT v FROM src WHERE id = 10") == [(-1,)]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("column_type", ["numeric", "float8", "float4"])
def test_infinities_and_nan_in_the_partition_column_land_once(
    pg: Any, run: Callable[..., RunResult], codec: str, column_type: str
) -> None:
    pg.execute(
        f"CREATE TABLE src (id int, v {column_type}); INSERT INTO src VALUES "
        "(1, '-Infinity'), (2, 'Infinity'), (3, 0), (4, 'NaN'), (5, NULL), (6, 1.5), (7, -2)"
    )
    result = run(recipe(pg, codec, partition_column="v", unconstrained_numeric="float"))
    assert result.rows_written == 7
    rows = pg.query("SELECT id, v::text FROM dst ORDER BY id")
    assert rows == [
        (1, "-Infinity"),
        (2, "Infinity"),
        (3, "0"),
        (4, "NaN"),
        (5, None),
        (6, "1.5"),
        (7, "-2"),
    ]


@pytest.mark.parametrize("codec", CODECS)
def test_only_infinite_values_read_as_one_range(
    pg: Any, run: Callable[..., RunResult], codec: str
) -> None:
    pg.execute(
        "CREATE TABLE src (id int, v float8); "
        "INSERT INTO src VALUES (1, '-Infinity'), (2, 'Infinity'), (3, 'NaN')"
    )
    result = run(recipe(pg, codec, partition_column="v"))
    assert result.rows_written == 3
    assert pg.query("SELECT id FROM dst ORDER BY id") == [(1,), (2,), (3,)]
