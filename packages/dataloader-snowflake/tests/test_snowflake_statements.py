"""The statements of a load, recorded while it runs against fakesnow and compared with a golden
file reviewed against Snowflake's SQL reference (PUT, COPY INTO <table>, INSERT, DELETE,
QUALIFY, BEGIN/COMMIT, REMOVE). fakesnow runs them by translating to DuckDB; the golden file
pins the Snowflake text a real account receives."""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dataloader import ArrowBatch, State
from dataloader.context import RunContext
from dataloader.recipe.models import DedupSortConfig
from dataloader_snowflake.config import SnowflakeConfig
from dataloader_snowflake.connector import SnowflakeConnector
from dataloader_snowflake.testing import FakeSnowflake

GOLDEN = Path(__file__).parent / "golden"


def normalized(statements: Iterable[str]) -> str:
    text = "\n".join(statements)
    text = re.sub(r"_dl_stage_([a-z]+)_[0-9a-f]{16}", r"_dl_stage_\1_<digest>", text)
    text = re.sub(r"file://\S+/part-", "file://<tmp>/part-", text)
    return text + "\n"


@pytest.mark.parametrize("mode", ["append", "overwrite", "merge"])
def test_the_statements_of_a_load(
    snowflake_db: FakeSnowflake,
    mode: str,
    caplog: pytest.LogCaptureFixture,
    sf_statements: Callable[[], list[str]],
) -> None:
    config = SnowflakeConfig.model_validate({**snowflake_db.settings(), "table": "items"})
    merge: dict[str, Any] = (
        {"merge_keys": ("id",), "dedup_sort": DedupSortConfig(column="version")}
        if mode == "merge"
        else {}
    )
    context = RunContext(
        "sf_sql",
        "run-1",
        datetime.datetime.now(datetime.UTC),
        role="destination",
        write_mode=mode,  # type: ignore[arg-type]
        **merge,
    )
    connector = SnowflakeConnector(config)
    connector.open(context)
    try:
        assert connector.load_state() is None
        connector.begin(State())
        batch = pa.record_batch({"id": [1, 2], "version": [1, 1], "doc": [{"a": 1}, None]})
        connector.write_batch(ArrowBatch(batch, {}), State())
        connector.commit(State())
    finally:
        connector.close()
    golden = GOLDEN / f"snowflake_{mode}.sql"
    if os.environ.get("DL_UPDATE_GOLDEN"):
        golden.write_text(normalized(sf_statements()), encoding="utf-8")
        pytest.fail(f"rewrote {golden.name}: review its diff, then run without DL_UPDATE_GOLDEN")
    assert normalized(sf_statements()) == golden.read_text(encoding="utf-8")
    assert snowflake_db.query('SELECT COUNT(*) FROM "items"') == [(2,)]
    # fakesnow cannot run REMOVE: reported, not hidden (the temporary stage goes anyway).
    assert "staged files under" in caplog.text and "could not be removed" in caplog.text
