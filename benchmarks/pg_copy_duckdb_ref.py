"""One timed reference step of `pg_copy.py`: DuckDB with its postgres extension.

Runs in the benchmark's own environment, not the workspace's (`uv run --no-project --with
duckdb==1.5.5 --with duckdb-extension-postgres==1.5.5`), so it imports nothing but the standard
library and duckdb. The PyPI package `duckdb-extension-postgres` ships the signed extension
binary as `duckdb_extension_postgres/extensions/v<duckdb version>/postgres.duckdb_extension`;
DuckDB finds an extension's entry point by its file name and this one's is
`postgres_scanner_duckdb_cpp_init` (the extension's own name; `postgres` is its alias), so it is
loaded through a link named `postgres_scanner.duckdb_extension` in a temporary directory, with
auto-install and auto-load switched off: nothing is fetched at run time. The server is attached with an empty libpq connection string: host, port, user,
database and password come from the PG* environment variables (never from the command line).

Prints `__MEASURE__{"seconds", "peak_rss_mib", "result"}`: the time from after `import duckdb`
to the end of the last statement (loading the extension and attaching included), this
process's peak RSS, and the first value of the last statement's first row (a row count).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import duckdb


def extension_file() -> Path:
    """The postgres extension binary the `duckdb-extension-postgres` package ships."""
    import duckdb_extension_postgres

    package = Path(next(iter(duckdb_extension_postgres.__path__)))
    path = package / "extensions" / f"v{duckdb.__version__}" / "postgres.duckdb_extension"
    if not path.is_file():
        raise SystemExit(f"no postgres extension for duckdb {duckdb.__version__} at {path}")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=":memory:", help="DuckDB database file")
    parser.add_argument("--sql", action="append", required=True, help="a statement (repeatable)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dl-duckdb-ext-") as tmp:
        link = Path(tmp) / "postgres_scanner.duckdb_extension"
        link.symlink_to(extension_file())
        start = time.perf_counter()
        connection = duckdb.connect(args.database)
        connection.execute("SET autoinstall_known_extensions = false")
        connection.execute("SET autoload_known_extensions = false")
        connection.execute(f"LOAD '{link}'")
        connection.execute("ATTACH '' AS pg (TYPE postgres)")
        row = None
        for statement in args.sql:
            row = connection.execute(statement).fetchone()
        connection.close()
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = row[0] if row else None
    print("__MEASURE__" + json.dumps({"seconds": seconds, "peak_rss_mib": peak, "result": result}))


if __name__ == "__main__":
    main()
