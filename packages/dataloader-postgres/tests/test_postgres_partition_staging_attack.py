"""Attacks on a distributed run's Postgres staging (issue 17, second slice), the connector
driven directly as a worker (`stage_partition`) and the driver (`commit_staged`) drive it,
beside the single-process write (`write_batch`, `commit`) of the same rows into an identical
existing table. The reference is the single-process write: the same rows, or a refusal.

Each test is a finding, named in its comment. The driver's `INSERT … SELECT CAST(…)` is not
the single-process `COPY`: an explicit cast cuts or changes values COPY's input refuses, a
rule rewrites an INSERT that COPY never sees, and INSERT refuses what COPY accepts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

from dataloader import ArrowBatch, ConnectorError, RunContext, State
from dataloader.partitions import Partition
from dataloader.schema.types import TYPE_TAG
from dataloader_postgres import PostgresConnector
from dataloader_postgres.config import PostgresConfig

RUN = "20240101T000000-00000001"


def context(recipe: str, mode: str = "append") -> RunContext:
    return RunContext(
        recipe_name=recipe,
        run_id=RUN,
        started_at=datetime.now(UTC),
        role="destination",
        write_mode=mode,
    )


def opened(pg: Any, recipe: str, table: str) -> PostgresConnector:
    connector = PostgresConnector(PostgresConfig(**pg.settings(), table=table))
    connector.open(context(recipe))
    connector.begin(State())
    return connector


def single(pg: Any, table: str, batch: pa.RecordBatch) -> None:
    """The single-process write of `batch` into `table`, committed (raises as it fails)."""
    connector = opened(pg, f"single_{table}", table)
    try:
        connector.write_batch(ArrowBatch(batch), State())
        connector.commit(State())
    finally:
        connector.close()


def distributed(pg: Any, table: str, batch: pa.RecordBatch) -> None:
    """`batch` staged by a worker as partition 0, then committed by the driver (raises as it
    fails); the staging is discarded either way."""
    recipe = f"split_{table}"
    worker = PostgresConnector(PostgresConfig(**pg.settings(), table=table))
    driver = opened(pg, recipe, table)
    try:
        staged = worker.stage_partition(
            context(recipe), Partition(index=0, label="all"), "a", [ArrowBatch(batch)]
        )
        driver.commit_staged([staged], State(), batch.schema)
    finally:
        driver.discard_staged()
        driver.close()


def rows(pg: Any, table: str) -> list[Any]:
    return pg.query(f"SELECT {table}::text FROM {table} ORDER BY 1")


def outcome(pg: Any, write: Any, table: str, batch: pa.RecordBatch) -> tuple[str | None, Any]:
    """`(error or None, rows)` of one write into `table`."""
    try:
        write(pg, table, batch)
    except ConnectorError as exc:
        return type(exc).__name__, rows(pg, table)
    return None, rows(pg, table)


@pytest.fixture
def pair(pg: Any) -> Iterator[Any]:
    """`pair(columns, batch)`: the outcomes of the single-process write and of the staged
    commit of `batch`, each into its own table created with `columns`."""

    def both(columns: str, batch: pa.RecordBatch, *, setup: str = "") -> tuple[Any, Any]:
        results = []
        for table, write in (("single_t", single), ("split_t", distributed)):
            pg.execute(f"CREATE TABLE {table} ({columns})")
            if setup:
                pg.execute(setup.format(table=table))
            results.append(outcome(pg, write, table, batch))
        return results[0], results[1]

    yield both


def batch_of(**columns: pa.Array) -> pa.RecordBatch:
    return pa.record_batch({"id": pa.array([1], pa.int64()), **columns})


def test_a_domain_over_varchar_or_char_refuses_a_long_value_as_single_process(
    pg: Any, pair: Any
) -> None:
    # Found by attack (silent corruption): the driver casts a staged text column to the
    # table's type with an explicit CAST unless the type's name starts with "character"/"bit";
    # a domain over varchar(3) or char(3) is named by the domain, so CAST('abcd' AS code3)
    # cuts the value to 'abc' and commits it, where the single-process COPY refuses it
    # ("value too long"), as the docs promise for varchar(n) ("refuses, never cuts").
    pg.execute("CREATE DOMAIN code3 AS varchar(3)")
    pg.execute("CREATE DOMAIN chars3 AS char(3)")
    batch = batch_of(c=pa.array(["abcd"]), d=pa.array(["wxyz"]))
    reference, staged = pair("id bigint, c code3, d chars3", batch)
    assert reference == ("ConnectorError", [])
    assert staged == reference


def test_an_inet_staged_into_a_cidr_column_is_refused_as_single_process(pg: Any, pair: Any) -> None:
    # Found by attack (silent corruption): a Postgres source's inet column is staged as inet
    # (its type tag); the driver's CAST(inet AS cidr) zeroes the host bits, committing
    # 10.0.0.0/8 for 10.0.0.1/8, where the single-process COPY refuses the value ("invalid
    # cidr value").
    inet = pa.field("ip", pa.string(), metadata={TYPE_TAG: b"inet"})
    batch = pa.RecordBatch.from_arrays(
        [pa.array([1], pa.int64()), pa.array(["10.0.0.1/8"])],
        schema=pa.schema([pa.field("id", pa.int64()), inet]),
    )
    reference, staged = pair("id bigint, ip cidr", batch)
    assert reference == ("ConnectorError", [])
    assert staged == reference


def test_a_table_with_a_do_instead_rule_is_refused_not_swallowing_rows(pg: Any, pair: Any) -> None:
    # Found by attack (silent loss): COPY never fires rules, INSERT does. A table with an
    # `ON INSERT DO INSTEAD` rule (here NOTHING; in the wild a redirect to another table)
    # gets the rows from a single-process run, and none from the driver's INSERT … SELECT,
    # which commits the state as if they were loaded.
    batch = pa.record_batch({"id": pa.array([1, 2], pa.int64())})
    reference, staged = pair(
        "id bigint",
        batch,
        setup="CREATE RULE skip_{table} AS ON INSERT TO {table} DO INSTEAD NOTHING",
    )
    assert reference == (None, [("(1)",), ("(2)",)])
    assert staged == ("ConnectorError", [])  # fixed: refused, naming the rule, not swallowed


def test_an_identity_always_column_with_loaded_values_loads_as_single_process(
    pg: Any, pair: Any
) -> None:
    # Found by attack (fails where single-process loads): COPY stores given values in a
    # GENERATED ALWAYS identity column; the driver's INSERT … SELECT is refused ("cannot
    # insert a non-DEFAULT value into column id") without OVERRIDING SYSTEM VALUE, so every
    # distributed append into such a table fails at the commit.
    batch = pa.record_batch({"id": pa.array([5, 6], pa.int64()), "v": pa.array(["a", "b"])})
    reference, staged = pair("id bigint GENERATED ALWAYS AS IDENTITY, v text", batch)
    assert reference == (None, [("(5,a)",), ("(6,b)",)])
    assert staged == reference


def test_a_bit_column_loads_as_single_process(pg: Any, pair: Any) -> None:
    # Found by attack (fails where single-process loads): a "bit…" column is left to the
    # assignment cast, but there is none from text to bit or bit varying ("column b is of
    # type bit but expression is of type text"); COPY parses the same strings.
    batch = batch_of(b=pa.array(["1010"]), vb=pa.array(["101"]))
    reference, staged = pair("id bigint, b bit(4), vb bit varying(8)", batch)
    assert reference == (None, [("(1,1010,101)",)])
    assert staged == reference


def test_a_tagged_bit_column_is_staged_as_the_tables_bit_n(pg: Any, pair: Any) -> None:
    # Found by attack (fails where single-process loads): a Postgres source tags a bit(3)
    # column "bit" (format_type without its length); the staging table is created from the
    # tag, so as bit(1), and the worker's COPY of '101' fails ("bit string length 3 does not
    # match type bit(1)"), where the single-process COPY into the existing bit(3) table loads.
    bit = pa.field("b", pa.string(), metadata={TYPE_TAG: b"bit"})
    batch = pa.RecordBatch.from_arrays(
        [pa.array([1], pa.int64()), pa.array(["101"])],
        schema=pa.schema([pa.field("id", pa.int64()), bit]),
    )
    reference, staged = pair("id bigint, b bit(3)", batch)
    assert reference == (None, [("(1,101)",)])
    assert staged == reference


@pytest.mark.parametrize("tag", ["mood", "citext"])
def test_a_type_only_the_source_database_has_is_staged_as_the_tables_type(
    pg: Any, pair: Any, tag: str
) -> None:
    # Found by attack (fails where single-process loads): a Postgres source tags an enum or
    # an extension's type (`mood`, `citext`) with its name; into an existing table whose
    # column is text, in a database without that type, single-process COPYs the strings into
    # the text column, but each worker creates its staging table from the tag and fails
    # ('type "mood" does not exist'): such a cross-database load never runs distributed.
    field = pa.field("m", pa.string(), metadata={TYPE_TAG: tag.encode()})
    batch = pa.RecordBatch.from_arrays(
        [pa.array([1], pa.int64()), pa.array(["ok"])],
        schema=pa.schema([pa.field("id", pa.int64()), field]),
    )
    reference, staged = pair("id bigint, m text", batch)
    assert reference == (None, [("(1,ok)",)])
    assert staged == reference


def test_a_view_as_the_table_is_refused_as_single_process(pg: Any) -> None:
    # Found by attack (differs from single-process): a destination `table` that is an
    # (auto-updatable) view. Single-process COPY refuses it ('cannot copy to view'); the
    # driver's INSERT … SELECT writes through the view into its base table and commits.
    batch = pa.record_batch({"id": pa.array([1, 2], pa.int64())})
    results = []
    for name, write in (("single", single), ("split", distributed)):
        pg.execute(f"CREATE TABLE {name}_base (id bigint)")
        pg.execute(f"CREATE VIEW {name}_v AS SELECT * FROM {name}_base")
        results.append(outcome(pg, write, f"{name}_v", batch))
    reference, staged = results
    assert reference == ("ConnectorError", [])
    assert staged == reference
