"""Regressions of what an attack on the connector proved, on the PostgreSQL stand-in (and
moto for the S3 side). PostgreSQL cannot run COPY or UNLOAD: `Emulated` runs them as Redshift
documents them, positionally for COPY of Parquet, on the statement text the connector sends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dataloader import ArrowBatch, LocalStateBackend, RunResult, register_connector
from dataloader import run_recipe as run_loaded
from dataloader.errors import DataLoaderError
from dataloader.recipe import Recipe
from dataloader.registry import unregister
from dataloader.testing import RowsSource
from dataloader_filestore.testing import MotoServer

MAX_PARAMETERS = 32767  # redshift_connector refuses more bind parameters in one statement

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def staging(moto: MotoServer, bucket: str) -> dict[str, Any]:
    return {
        "s3": f"s3://{bucket}/dl/stage",
        "access_key_id": KEY_ID,
        "secret_access_key": SECRET,
        "region": moto.region,
        "endpoint_url": moto.endpoint_url,
    }


def _unquote(literal: str) -> str:
    return literal.replace("''", "'").replace("\\\\", "\\")


def emulated(stand_in: type[Any], sent: list[Any]) -> type[Any]:
    """The stand-in, running COPY (Parquet columns into the stage's, by position) and UNLOAD
    (the quoted query's rows as one Parquet object) itself; every statement is recorded."""

    class Emulated(stand_in):  # type: ignore[misc,valid-type]
        def _run(self, statement: Any) -> Any:
            sent.append(statement)
            text = statement.sql.lstrip()
            cursor = self.conn.cursor()
            if text.startswith("COPY"):
                cursor.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = %s ORDER BY ordinal_position",
                    (self._stage.name,),
                )
                names = [name for (name,) in cursor.fetchall()]
                for table in self._s3.read(self._copied[-1]):
                    assert table.column_names == names  # Redshift would not check
                    marks = ", ".join(["%s"] * len(names))
                    for row in zip(*(c.to_pylist() for c in table.columns), strict=True):
                        cursor.execute(f'INSERT INTO "{self._stage.name}" VALUES ({marks})', row)
                assert statement.params == ()
                return cursor
            if text.startswith("UNLOAD"):
                assert statement.params == ()
                query = _unquote(text[len("UNLOAD ('") : text.index("') TO '")])
                cursor.execute(query)
                names = [column[0] for column in cursor.description]
                rows = cursor.fetchall()
                table = pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})
                self._s3.upload("unload", "000000", table)
                return cursor
            return super()._run(statement)

    return Emulated


def destination(warehouse: Any, table: str, mode: str = "append", **keys: Any) -> dict[str, Any]:
    return {
        "type": "redshift",
        **warehouse.settings(),
        "table": table,
        "write_mode": mode,
        **keys,
    }


def test_copy_gets_the_parquet_columns_in_the_stage_order_when_a_column_comes_later(
    warehouse: Any,
    rows_source: str,
    run: Callable[..., RunResult],
    moto_server: MotoServer,
    s3_bucket: str,
    stand_in: type[Any],
) -> None:
    sent: list[Any] = []
    register_connector("redshift")(emulated(stand_in, sent))
    batches = [[{"id": 1, "v": "a"}], [{"id": 2, "v": "b", "extra": 777}]]
    recipe = {
        "name": "rs_copy_order",
        "source": {"type": rows_source, "batches": batches},
        "destination": destination(warehouse, "dw.t", staging=staging(moto_server, s3_bucket)),
    }
    assert run(recipe).rows_written == 2
    assert warehouse.query("SELECT id, v, extra FROM dw.t ORDER BY id") == [
        (1, "a", None),
        (2, "b", 777),
    ]
    copies = [s.sql for s in sent if s.sql.startswith("COPY")]
    assert len(copies) == 2 and all(SECRET in text for text in copies)


def test_a_percent_in_the_source_query_is_sent_as_written(
    warehouse: Any, run: Callable[..., RunResult], stand_in: type[Any]
) -> None:
    from redshift_connector.core import convert_paramstyle

    sent: list[Any] = []
    register_connector("redshift")(emulated(stand_in, sent))
    warehouse.query("CREATE TABLE public.src (id int, tag varchar(10), at int)")
    warehouse.query("INSERT INTO public.src VALUES (1, '100%', 1), (2, '50%', 2)")
    query = "SELECT id, tag, at FROM public.src WHERE tag = '100%' OR tag LIKE '5_\\%'"
    recipe = {
        "name": "rs_pct",
        "source": {
            "type": "redshift",
            **warehouse.settings(),
            "query": query,
            "incremental": {"cursor_column": "at"},
        },
        "destination": destination(warehouse, "dw.pct"),
    }
    assert run(recipe).rows_written == 2
    assert run(recipe).rows_written <= 1  # the tied row, if any
    reads = [s for s in sent if query in s.sql]
    assert len(reads) >= 2
    for read in reads:
        # no parameters: redshift_connector sends the text unchanged (it converts the
        # paramstyle only when given parameters); what it would make of it with some:
        assert read.params == ()
        assert "%%" not in read.sql
        assert convert_paramstyle("format", read.sql)[0].count("'100%'") == 1
    assert warehouse.query("SELECT DISTINCT tag FROM dw.pct ORDER BY tag") == [("100%",), ("50%",)]


@pytest.mark.parametrize(
    ("kind", "values", "last"),
    [
        ("varchar(40)", ["https://x/?token=abc", "https://x/?token=abd"], "token=abd"),
        ("double precision", [1.5, float("inf")], "'Infinity'::float8"),
        ("varchar(40)", ["a\\b", "a\\c"], "'a' || CHR(92) || 'c'"),
    ],
)
def test_unload_runs_the_unmasked_read_with_safe_literals(
    warehouse: Any,
    run: Callable[..., RunResult],
    moto_server: MotoServer,
    s3_bucket: str,
    stand_in: type[Any],
    kind: str,
    values: list[Any],
    last: str,
) -> None:
    sent: list[Any] = []
    register_connector("redshift")(emulated(stand_in, sent))
    warehouse.query(f"CREATE TABLE public.src (id int, c {kind})")
    for number, value in enumerate(values):
        warehouse.query("INSERT INTO public.src VALUES (%s, %s)", (number, value))
    recipe = {
        "name": "rs_unload",
        "source": {
            "type": "redshift",
            **warehouse.settings(),
            "table": "public.src",
            "unload": True,
            "staging": staging(moto_server, s3_bucket),
            "incremental": {"cursor_column": "c"},
        },
        "destination": destination(warehouse, "dw.u", "merge", merge_keys=["id"]),
    }
    assert run(recipe).rows_written == 2
    run(recipe)
    unloads = [s.sql for s in sent if s.sql.startswith("UNLOAD")]
    assert len(unloads) == 2
    assert last in _unquote(unloads[-1]) and SECRET in unloads[-1]
    assert warehouse.query("SELECT count(*) FROM dw.u") == [(2,)]


def test_a_run_that_another_committed_under_is_refused(
    warehouse: Any, tmp_path: Path, stand_in: type[Any]
) -> None:
    warehouse.query("CREATE TABLE public.src (id int, at int)")
    warehouse.query("INSERT INTO public.src VALUES (1, 1), (2, 2), (3, 3)")
    recipe = {
        "name": "rs_race",
        "source": {
            "type": "redshift",
            **warehouse.settings(),
            "table": "public.src",
            "incremental": {"cursor_column": "at"},
        },
        "destination": destination(warehouse, "dw.dst"),
    }
    other: list[RunResult] = []
    fired: list[bool] = []

    class Interleaved(stand_in):  # type: ignore[misc,valid-type]
        def begin(self, state: Any) -> None:
            if not fired and self.context.role == "destination":
                fired.append(True)
                # another machine's run of the recipe commits between load_state and begin
                other.append(
                    run_loaded(Recipe.model_validate(recipe), LocalStateBackend(tmp_path / "b"))
                )
            super().begin(state)

    register_connector("redshift")(Interleaved)
    with pytest.raises(DataLoaderError, match="another run of recipe 'rs_race'"):
        run_loaded(Recipe.model_validate(recipe), LocalStateBackend(tmp_path / "a"))
    assert other[0].rows_written == 3
    assert warehouse.query("SELECT id FROM dw.dst ORDER BY id") == [(1,), (2,), (3,)]


def test_inserts_without_staging_keep_under_the_driver_bind_parameter_limit(
    warehouse: Any, rows_source: str, run: Callable[..., RunResult], stand_in: type[Any]
) -> None:
    counts: list[int] = []

    class Counted(stand_in):  # type: ignore[misc,valid-type]
        def connect(self) -> Any:
            connection, errors = super().connect()
            return _CountingConnection(connection, counts), errors

    register_connector("redshift")(Counted)
    row = {f"c{i}": i for i in range(40)}
    recipe = {
        "name": "rs_wide",
        "source": {"type": rows_source, "batches": [[{**row, "id": n} for n in range(1000)]]},
        "destination": destination(warehouse, "dw.wide"),
        "runtime": {"batch_size": 1000},
    }
    assert run(recipe).rows_written == 1000
    assert counts and max(counts) <= MAX_PARAMETERS
    assert sum(counts) == 1000 * 42  # 40 columns, id and the ordinal
    assert warehouse.query("SELECT count(*), sum(c39) FROM dw.wide") == [(1000, 39000)]


class _CountingConnection:
    """A psycopg2 connection whose cursors count each statement's parameters."""

    def __init__(self, connection: Any, counts: list[int]) -> None:
        self._connection = connection
        self._counts = counts

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def cursor(self) -> Any:
        cursor = self._connection.cursor()
        counts = self._counts

        class Counting:
            def __getattr__(self, name: str) -> Any:
                return getattr(cursor, name)

            def execute(self, sql: str, params: Any = None) -> Any:
                if params and sql.startswith('INSERT INTO "_dl_stage'):
                    counts.append(len(params))
                return cursor.execute(sql, params)

        return Counting()


def test_merge_keys_differing_by_trailing_blanks_stay_apart(
    warehouse: Any, rows_source: str, run: Callable[..., RunResult]
) -> None:
    batches = [[{"k": "a", "v": 1}, {"k": "a ", "v": 2}], [{"k": "a ", "v": 3}]]
    recipe = {
        "name": "rs_blank",
        "source": {"type": rows_source, "batches": batches},
        "destination": destination(warehouse, "dw.blank", "merge", merge_keys=["k"]),
    }
    run(recipe)
    assert warehouse.query("SELECT k, v FROM dw.blank ORDER BY k") == [("a", 1), ("a ", 3)]


def test_a_merge_into_a_table_with_a_long_name(
    warehouse: Any, rows_source: str, run: Callable[..., RunResult]
) -> None:
    table = "dw.customers_with_a_rather_long_descriptive_name_that_fills_63_b"
    recipe = {
        "name": "rs_long",
        "source": {
            "type": rows_source,
            "batches": [[{"id": 1, "v": "a"}, {"id": 1, "v": "b"}, {"id": 2, "v": "c"}]],
        },
        "destination": destination(warehouse, table, "merge", merge_keys=["id"]),
    }
    run(recipe)
    assert warehouse.query(f"SELECT id, v FROM {table} ORDER BY id") == [(1, "b"), (2, "c")]


@pytest.mark.parametrize("table", ["dw.Customers", "DW.customers"])
def test_an_upper_case_table_name_is_refused_naming_the_key(
    warehouse: Any, rows_source: str, run: Callable[..., RunResult], table: str
) -> None:
    recipe = {
        "name": "rs_case",
        "source": {"type": rows_source, "batches": [[{"id": 1}]]},
        "destination": destination(warehouse, table),
    }
    with pytest.raises(DataLoaderError) as failure:
        run(recipe)
    assert "destination.table: table " in str(failure.value)
    assert "lower case" in str(failure.value)


def test_nanosecond_timestamps_are_refused_naming_the_column(
    warehouse: Any, run: Callable[..., RunResult]
) -> None:
    batch = pa.record_batch(
        {"id": [1, 2], "at": pa.array([1_000_000_000, 1_000_000_123], pa.timestamp("ns"))}
    )
    name = "dl_redshift_test_arrow"

    class ArrowRows(RowsSource):
        def read_batches(self, state: Any) -> Any:
            yield ArrowBatch(batch, {"source": "test"})

    register_connector(name)(ArrowRows)
    try:
        recipe = {
            "name": "rs_ns",
            "source": {"type": name, "batches": []},
            "destination": destination(warehouse, "dw.ns"),
        }
        with pytest.raises(DataLoaderError) as failure:
            run(recipe)
    finally:
        unregister("connector", name)
    assert "'at'" in str(failure.value) and "microseconds" in str(failure.value)
    whole = pa.record_batch(
        {
            "id": [1],
            "at": pa.array([datetime(2024, 1, 1)], pa.timestamp("us")).cast(pa.timestamp("ns")),
        }
    )
    assert whole.num_rows == 1  # whole microseconds in ns pass (checked below)
    batch = whole
    register_connector(name)(ArrowRows)
    try:
        assert run({**recipe, "name": "rs_ns_ok"}).rows_written == 1
    finally:
        unregister("connector", name)
