"""`CursorWindow.sql_condition`: the cursor window as the SQL condition a database source sends,
in the Postgres form by default and in other dialects' forms (`compared`, `nan`)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dataloader.errors import EngineError
from dataloader.incremental import Boundary, CursorWindow


def literal(scalar: pa.Scalar) -> str:
    return repr(scalar.as_py())


def test_default_form_compares_text_under_the_collation_and_reads_null_rows() -> None:
    window = CursorWindow("c", lower="m", upper="t")
    condition = window.sql_condition('"c"', pa.string(), literal, "C")
    assert condition == ("""(("c" COLLATE "C" > 'm' AND "c" COLLATE "C" <= 't') OR "c" IS NULL)""")
    assert window.sql_cursor('"c"', pa.string(), "C") == '"c" COLLATE "C"'


def test_default_form_reads_nan_rows_of_a_floating_cursor() -> None:
    condition = CursorWindow("c", lower=1.5).sql_condition('"c"', pa.float64(), literal, "C")
    assert condition == """(("c" > 1.5) OR "c" IS NULL OR "c" = 'NaN')"""


def test_no_collation_leaves_text_as_the_column_is() -> None:
    window = CursorWindow("c", upper="t")
    assert window.sql_condition('"c"', pa.string(), literal) == """(("c" <= 't') OR "c" IS NULL)"""
    assert window.sql_cursor('"c"', pa.string()) == '"c"'


def test_compared_replaces_the_expression_bounds_are_compared_with() -> None:
    compared = "CONVERT(`c` USING utf8mb4) COLLATE utf8mb4_nopad_bin"
    window = CursorWindow("c", lower="m", upper="t")
    condition = window.sql_condition("`c`", pa.string(), literal, compared=compared, nan=None)
    assert condition == (f"(({compared} > 'm' AND {compared} <= 't') OR `c` IS NULL)")


def test_compared_wins_over_the_collation() -> None:
    window = CursorWindow("c", lower=3)
    condition = window.sql_condition('"c"', pa.int64(), literal, "C", compared='CAST("c" AS X)')
    assert condition == """((CAST("c" AS X) > 3) OR "c" IS NULL)"""


def test_nan_none_drops_the_nan_test() -> None:
    window = CursorWindow("c", lower=1.5)
    condition = window.sql_condition("`c`", pa.float64(), literal, nan=None)
    assert condition == "((`c` > 1.5) OR `c` IS NULL)"


def test_nan_is_the_dialects_literal_and_tests_floating_cursors_only() -> None:
    window = CursorWindow("c", lower=1.5)
    condition = window.sql_condition("c", pa.float32(), literal, nan="CAST('NaN' AS REAL)")
    assert condition == "((c > 1.5) OR c IS NULL OR c = CAST('NaN' AS REAL))"
    integer = CursorWindow("c", lower=1).sql_condition("c", pa.int64(), literal, nan="'NaN'")
    assert integer == "((c > 1) OR c IS NULL)"


def test_bind_is_called_for_the_lower_bound_first() -> None:
    seen: list[object] = []

    def placeholder(scalar: pa.Scalar) -> str:
        seen.append(scalar.as_py())
        return f":p{len(seen)}"

    window = CursorWindow("c", lower=1, upper=9)
    assert window.sql_condition("c", pa.int64(), placeholder) == (
        "((c > :p1 AND c <= :p2) OR c IS NULL)"
    )
    assert seen == [1, 9]


def test_a_fingerprinted_boundary_makes_the_lower_bound_inclusive() -> None:
    boundary = Boundary(5, 1, b"\x00" * 8)
    window = CursorWindow("c", lower=5, boundary=boundary)
    assert window.sql_condition("c", pa.int64(), literal, nan=None) == "((c >= 5) OR c IS NULL)"


def test_no_bounds_reads_everything() -> None:
    assert CursorWindow("c").sql_condition("c", pa.float64(), literal, nan=None) is None


def test_lag_on_text_still_fails_with_compared() -> None:
    window = CursorWindow("c", lower="m", lag=10)
    with pytest.raises(EngineError, match="lag"):
        window.sql_condition("c", pa.string(), literal, compared="c COLLATE x")
