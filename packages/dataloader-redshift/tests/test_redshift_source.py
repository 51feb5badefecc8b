"""The cursor source on the PostgreSQL stand-in: a table or query read in batches, and an
incremental read that picks up rows tied with the stored cursor value."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from dataloader import RunResult

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def load(warehouse: Any, source: dict[str, Any], mode: str = "merge") -> dict[str, Any]:
    return {
        "name": "rs_copy",
        "source": {"type": "redshift", **warehouse.settings(), **source},
        "destination": {
            "type": "redshift",
            **warehouse.settings(),
            "table": "dw.copy",
            "write_mode": mode,
            "merge_keys": ["id"] if mode == "merge" else [],
        },
        "runtime": {"batch_size": 2},
    }


def test_a_table_is_read_in_batches_with_its_types(
    warehouse: Any, run: Callable[..., RunResult]
) -> None:
    warehouse.query(
        "CREATE TABLE public.src (id bigint, name varchar(20), amount decimal(10,2), "
        "ok boolean, at timestamptz, day date, ratio double precision)"
    )
    warehouse.query(
        "INSERT INTO public.src VALUES (1, 'a', 1.50, true, %s, '2024-01-02', 0.5), "
        "(2, NULL, NULL, NULL, NULL, NULL, NULL), (3, 'c', -2.25, false, %s, '2024-02-03', 2)",
        (T0, T0),
    )
    result = run(load(warehouse, {"table": "public.src"}, mode="append"))
    assert result.rows_written == 3
    rows = warehouse.query("SELECT * FROM dw.copy ORDER BY id")
    assert rows[0] == (1, "a", Decimal("1.50"), True, T0, datetime(2024, 1, 2).date(), 0.5)
    assert rows[1] == (2, None, None, None, None, None, None)
    types = warehouse.query(
        "SELECT data_type FROM information_schema.columns WHERE table_name = 'copy' "
        "ORDER BY ordinal_position"
    )
    assert [t for (t,) in types] == [
        "bigint",
        "character varying",
        "numeric",
        "boolean",
        "timestamp with time zone",
        "date",
        "double precision",
    ]


def test_an_incremental_read_takes_rows_tied_with_the_last_cursor_value(
    warehouse: Any, run: Callable[..., RunResult]
) -> None:
    warehouse.query("CREATE TABLE public.events (id bigint, seq int, note varchar(10))")
    warehouse.query("INSERT INTO public.events VALUES (1, 1, 'a'), (2, 2, 'b'), (3, 2, 'c')")
    source = {
        "query": "SELECT * FROM public.events WHERE note LIKE '%'",
        "incremental": {"cursor_column": "seq"},
    }
    assert run(load(warehouse, source)).rows_written == 3
    # a row tied with the stored maximum arrives late, and a newer one
    warehouse.query("INSERT INTO public.events VALUES (4, 2, 'd'), (5, 3, 'e')")
    second = run(load(warehouse, source))
    assert second.rows_written >= 2
    assert warehouse.query("SELECT id, seq, note FROM dw.copy ORDER BY id") == [
        (1, 1, "a"),
        (2, 2, "b"),
        (3, 2, "c"),
        (4, 2, "d"),
        (5, 3, "e"),
    ]
    assert run(load(warehouse, source)).rows_written <= 3  # only the tied rows again, if any
    assert warehouse.query("SELECT count(*) FROM dw.copy") == [(5,)]
