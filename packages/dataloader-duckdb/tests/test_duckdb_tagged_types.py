"""UUID and JSON columns keep their type through a DuckDB → DuckDB load: the source tags them
(`pg_type` field metadata, as the Postgres source does), the destination creates them so."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dataloader import RunResult


def test_uuid_and_json_columns_keep_their_type(
    run: Callable[..., RunResult], source_db: Path, dest_db: Path, sql: Any
) -> None:
    sql.execute(
        source_db,
        "CREATE TABLE src (id INTEGER, u UUID, j JSON, us UUID[], js JSON[], other VARCHAR)",
        "INSERT INTO src VALUES (1, '3b241101-e2bb-4255-8caf-4136c566a962', '{\"a\":  [1]}', "
        "['00000000-0000-0000-0000-000000000001'], ['{}', NULL], 'x'), "
        "(2, NULL, NULL, NULL, NULL, NULL)",
    )
    for mode in ("append", "merge"):
        destination = {"type": "duckdb", "database": str(dest_db), "table": f"t_{mode}"}
        if mode == "merge":
            destination |= {"write_mode": "merge", "merge_keys": ["id"]}
        run(
            {
                "name": f"copy_{mode}",
                "source": {"type": "duckdb", "database": str(source_db), "table": "src"},
                "destination": destination,
            }
        )
        types = sql.query(dest_db, f"SELECT column_name, column_type FROM (DESCRIBE t_{mode})")
        assert dict(types) == {
            "id": "INTEGER",
            "u": "UUID",
            "j": "JSON",
            "us": "UUID[]",
            "js": "JSON[]",
            "other": "VARCHAR",
        }
        text = "SELECT id, u::VARCHAR, j::VARCHAR, us::VARCHAR[], js::VARCHAR[], other FROM {} ORDER BY id"
        assert sql.query(dest_db, text.format(f"t_{mode}")) == sql.query(
            source_db, text.format("src")
        )
