"""Run the benchmarks: `./dev bench [NAME] [args…]` (NAME: csv_to_duckdb, schema_check, postgres, s3_listing, small_files, file_parts, startup, normalize, rest, mysql, sql_generic, pg_copy, row_hash or scale_out; default: all)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = [
    "csv_to_duckdb",
    "schema_check",
    "postgres",
    "s3_listing",
    "small_files",
    "file_parts",
    "startup",
    "normalize",
    "rest",
    "mysql",
    "sql_generic",
    "pg_copy",
    "row_hash",
    "scale_out",
]

if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    names = [sys.argv[1]] if len(sys.argv) > 1 and sys.argv[1] in BENCHMARKS else BENCHMARKS
    rest = sys.argv[2:] if len(sys.argv) > 1 and sys.argv[1] in BENCHMARKS else sys.argv[1:]
    for name in names:
        sys.argv = [name, *rest]
        runpy.run_path(str(HERE / f"{name}.py"), run_name="__main__")
