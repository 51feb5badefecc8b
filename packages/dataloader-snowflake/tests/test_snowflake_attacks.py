"""Regressions of what an attacker proved: float cursors at infinity, an S3 stage with both a
storage integration and keys, narrower existing columns, concurrent commits of one recipe."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from dataloader_snowflake.config import SnowflakeConfig
from dataloader_snowflake.testing import FakeSnowflake
from dataloader_snowflake.types import literal


def test_non_finite_floats_are_snowflake_float_literals() -> None:
    assert literal(float("inf")) == "'inf'::FLOAT"
    assert literal(float("-inf")) == "'-inf'::FLOAT"
    assert literal(float("nan")) == "'NaN'::FLOAT"
    assert literal(1.5) == "1.5"


def test_a_float_cursor_at_infinity_keeps_later_runs_working(
    snowflake_db: FakeSnowflake, run: Callable[..., Any]
) -> None:
    snowflake_db.execute("CREATE TABLE SRC (ID INT, C FLOAT)")
    snowflake_db.execute("INSERT INTO SRC VALUES (1, 1.5), (2, 'inf'::FLOAT)")
    recipe = {
        "name": "sf_inf",
        "source": {
            "type": "snowflake",
            **snowflake_db.settings(),
            "table": "SRC",
            "incremental": {"strategy": "cursor", "cursor_column": "C"},
        },
        "destination": {"type": "snowflake", **snowflake_db.settings(), "table": "DST"},
    }
    assert run(recipe).rows_written == 2
    snowflake_db.execute("INSERT INTO SRC VALUES (3, 'inf'::FLOAT)")
    run(recipe)  # failed with `inf` spliced as a bare word
    ids = [row[0] for row in snowflake_db.query('SELECT "ID" FROM "DST" ORDER BY "ID"')]
    assert ids == [1, 2, 3]


def test_an_s3_stage_with_an_integration_and_keys_is_refused_naming_both(tmp_path: Path) -> None:
    stage = {
        "type": "s3",
        "url": "s3://bucket/prefix",
        "storage_integration": "MY_INTEGRATION",
        "aws_access_key_id": "AKIAEXAMPLE",
        "aws_secret_access_key": "s3cr3t-never-shown",
    }
    settings = {"account": "acc", "user": "u", "password": "pw-never-shown", "database": "D"}
    with pytest.raises(pydantic.ValidationError, match=r"storage_integration.*aws_access_key_id"):
        SnowflakeConfig.model_validate({**settings, "table": "T", "stage": stage})
    recipe = {
        "name": "sf_bad_stage",
        "source": {"type": "snowflake", **settings, "table": "T"},
        "destination": {"type": "snowflake", **settings, "table": "T2", "stage": stage},
    }
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(recipe), "utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "dataloader", "validate", "bad.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "storage_integration" in output and "aws_access_key_id" in output
    assert "s3cr3t-never-shown" not in output and "pw-never-shown" not in output
