"""Start-up: the fixed cost of a `dataloader` process, against `python -c pass` in the same run.

Each command runs `--repeat` times (default 7) as a whole new process, interpreter start
included; the table shows the fastest and the median wall time, and the fastest as a ratio to
the fastest `python -c pass`. The commands: `import dataloader`, `dataloader --help`,
`dataloader validate` of a DuckDB → DuckDB recipe, and `dataloader run` of that incremental
recipe when nothing is new (the whole fixed cost of a run) and when `--rows` rows are new.
Two floors sit beside them: importing only the libraries `validate` cannot do without (click,
pydantic with one model built, pyyaml, pluggy, importlib.metadata), and those plus pyarrow and
duckdb, which a DuckDB run cannot do without. A command can start no faster than its floor.

Modules are imported from cached bytecode, as from an installed distribution (pip compiles it
at install): the cache is kept in the temporary directory (`PYTHONPYCACHEPREFIX`), written by
one untimed run of each command, even where `PYTHONDONTWRITEBYTECODE` is set.
`--no-bytecode-cache` measures with every module compiled from source at every start instead
(what such a development environment pays).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

VALIDATE_FLOOR = """
import click, importlib.metadata, pluggy, yaml
from pydantic import BaseModel
class Probe(BaseModel):
    x: int
Probe(x=1)
"""
RUN_FLOOR = VALIDATE_FLOOR + "import duckdb, pyarrow, pyarrow.compute\n"

RECIPE = """
name: startup
source:
  type: duckdb
  database: {source}
  table: events
  read_only: true
  incremental: {{cursor_column: id}}
destination:
  type: duckdb
  database: {destination}
  table: events
"""


def timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return seconds


def add_rows(database: Path, first: int, count: int) -> None:
    con = duckdb.connect(str(database))
    try:
        con.execute(
            "CREATE TABLE IF NOT EXISTS events AS "
            "SELECT 0::BIGINT AS id, ''::VARCHAR AS note LIMIT 0"
        )
        con.execute(
            "INSERT INTO events SELECT i, 'note ' || i FROM range(?, ?) t(i)",
            [first, first + count],
        )
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="compile every module from source at every start (as PYTHONDONTWRITEBYTECODE=1 does)",
    )
    args = parser.parse_args()
    python = sys.executable
    cli = [python, "-m", "dataloader"]
    with tempfile.TemporaryDirectory(prefix="dl-bench-") as tmp:
        root = Path(tmp)
        env = dict(os.environ)
        if args.no_bytecode_cache:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
        add_rows(root / "source.duckdb", 0, args.rows)
        (root / "recipe.yaml").write_text(
            RECIPE.format(source=root / "source.duckdb", destination=root / "out.duckdb")
        )
        run = [*cli, "run", "recipe.yaml", "--state-dir", str(root / "state")]
        timed(run, root, env)  # the first load; what follows is incremental

        def new_rows() -> None:
            con = duckdb.connect(str(root / "source.duckdb"))
            try:
                first = con.execute("SELECT max(id) + 1 FROM events").fetchone()[0]
            finally:
                con.close()
            add_rows(root / "source.duckdb", first, args.rows)

        steps: list[tuple[str, list[str], object]] = [
            ("python -c pass (reference)", [python, "-c", "pass"], None),
            ("import dataloader", [python, "-c", "import dataloader"], None),
            ("dataloader --help", [*cli, "--help"], None),
            ("floor: click, pydantic, yaml, pluggy", [python, "-c", VALIDATE_FLOOR], None),
            ("dataloader validate", [*cli, "validate", "recipe.yaml"], None),
            ("floor: the above + pyarrow, duckdb", [python, "-c", RUN_FLOOR], None),
            ("dataloader run, nothing new", run, None),
            (f"dataloader run, {args.rows:,} new rows", run, new_rows),
        ]
        for _, command, _ in steps[:-1]:
            timed(command, root, env)  # writes the bytecode cache (when there is one)
        results: list[tuple[str, float, float]] = []
        for label, command, before in steps:
            times = []
            for _ in range(args.repeat):
                if callable(before):
                    before()
                times.append(timed(command, root, env))
            results.append((label, min(times), statistics.median(times)))

    reference = results[0][1]
    bytecode = "compiled from source" if args.no_bytecode_cache else "from cached bytecode"
    print(
        f"\nStart-up, {args.repeat} runs each (whole process, interpreter included; "
        f"modules {bytecode})"
    )
    print(f"{'command':<36} {'fastest s':>10} {'median s':>9} {'ratio':>8}")
    for label, fastest, median in results:
        print(f"{label:<36} {fastest:>10.3f} {median:>9.3f} {fastest / reference:>7.1f}x")


if __name__ == "__main__":
    main()
