"""Postgres COPY codecs (csv, binary) beside DuckDB's postgres extension and the COPY ceilings.

Generates N rows (default 2,000,000) of a 13-column `orders` table in a throwaway PostgreSQL 15
(the `postgres` benchmark's 9 columns plus a second timestamptz, a date, a double and a uuid),
then times, median of `--repeat` (3) runs interleaved, each run in a fresh process whose peak
RSS is read:
- dataloader (`run_recipe_from_yaml`) with `codec: csv` and with `codec: binary`: Postgres →
  Parquet (also with `parallelism: 2`, and at N/4 rows), → DuckDB, → Postgres (append — also at
  N/4 rows —, overwrite, merge, each into a new table), Parquet → Postgres (append);
- DuckDB 1.5.5 with its postgres extension (PyPI `duckdb-extension-postgres`) in its own
  environment (`uv run --no-project --with …`, see pg_copy_duckdb_ref.py), making the same
  Parquet file, DuckDB table and Postgres tables (INSERT into an empty table like `orders`);
- the ceilings: `psql` running `COPY orders TO STDOUT (FORMAT binary)` into /dev/null, and a
  server-side `COPY … FROM` a binary file of the same rows into an empty table like `orders`.
Every run checks its row count, and each Postgres table a dataloader run wrote is compared with
the source (the sum of a hash of every row's text). Prints one table of seconds, peak MiB and
the ratios to DuckDB, to the ceiling and to the CSV codec; then, per codec, `parallelism` 2
against 1 and the peak RSS at N/4 and N rows (flat: within 1.15x), and for the binary codec
each of issue 16's targets, met or not.

Each recipe names its codec (`codec: csv` or `codec: binary` on the postgres source and
destination); where the binary codec cannot be used (dataloader-rust not installed, or disabled
by DATALOADER_DISABLE_PLUGINS), the binary runs are left out and the output says so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _measure import Measurement, measure
from postgres import TABLE_SQL, run_recipe_code, timed

from dataloader_postgres.testing import PG_USER, PostgresServer

HERE = Path(__file__).parent
DUCKDB_PACKAGES = ["--with", "duckdb==1.5.5", "--with", "duckdb-extension-postgres==1.5.5"]
PASSWORD_VARIABLE = "DL_BENCH_PG_PASSWORD"
SETUP = "import dataloader, duckdb, pyarrow, sqlalchemy, psycopg2\n"

# The `postgres` benchmark's table (TABLE_SQL), widened to 13 columns.
WIDEN_SQL = """
CREATE TABLE orders13 AS
SELECT o.*,
       CASE WHEN o.order_id % 5 = 0 THEN NULL
            ELSE o.ordered_at + (o.order_id % 72) * interval '1 hour' END AS shipped_at,
       (o.ordered_at AT TIME ZONE 'UTC')::date + 2 AS ship_date,
       (o.order_id % 1000) / 7.0::double precision AS weight_kg,
       md5(o.order_id::text)::uuid AS tracking_id
FROM orders AS o;
DROP TABLE orders;
ALTER TABLE orders13 RENAME TO orders;
ALTER TABLE orders ADD PRIMARY KEY (order_id);
"""
SECTIONS = ("to-parquet", "to-duckdb", "to-postgres", "from-parquet")
ROW_HASH = "SELECT count(*), sum(hashtext(t::text)::bigint) FROM {table} AS t"
COLUMN_TYPES = (
    "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
    "WHERE attrelid = '{table}'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
)


def codec_support() -> tuple[bool, str | None]:
    """Whether the postgres connector has the recipe key `codec`, and why `codec: binary`
    cannot be used here (None if it can)."""
    from dataloader_postgres.config import PostgresConfig

    if "codec" not in PostgresConfig.model_fields:
        return False, "the postgres connector has no `codec` recipe key"
    from dataloader_postgres.codec import choose_codec

    try:
        choose_codec("binary")
    except Exception as exc:
        return True, str(exc)
    return True, None


@dataclass(frozen=True)
class Codec:
    """A COPY codec, and whether recipes name it (`codec:`) or leave the connector's default."""

    name: str
    keyed: bool

    def recipe_key(self) -> str:
        return f"\n  codec: {self.name}" if self.keyed else ""


@dataclass
class Line:
    """One row of the table: its samples, and the lines its ratios are taken against."""

    section: str
    label: str
    rows: int
    duckdb: Line | None = None
    ceiling: Line | None = None
    csv: Line | None = None
    samples: list[Measurement] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return statistics.median(m.seconds for m in self.samples)

    @property
    def peak_mib(self) -> float:
        return max(m.peak_rss_mib for m in self.samples)


class Bench:
    """The server, the working directory and the measured lines of one benchmark run."""

    def __init__(self, server: PostgresServer, root: Path, args: argparse.Namespace) -> None:
        self.server = server
        self.root = root
        self.args = args
        self.lines: list[Line] = []
        self.connection = server.connect()
        self.connection.autocommit = True
        self.cursor = self.connection.cursor()
        # psql and DuckDB's libpq take the server and the password from the environment.
        self.pg_env = {
            **os.environ,
            "PGHOST": "127.0.0.1",
            "PGPORT": str(server.port),
            "PGUSER": PG_USER,
            "PGDATABASE": "postgres",
            "PGPASSWORD": server.password,
        }
        for name in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
            self.pg_env.pop(name, None)  # DuckDB's environment is its own
        uv = shutil.which("uv")
        self.uv = [uv] if uv else [sys.executable, "-m", "uv"]
        # Recipes read the password from the environment the measured processes inherit.
        os.environ[PASSWORD_VARIABLE] = server.password
        self.connection_yaml = (
            f"  host: 127.0.0.1\n  port: {server.port}\n  database: postgres\n"
            f"  user: {PG_USER}\n  password: \"{{{{ env_var('{PASSWORD_VARIABLE}') }}}}\""
        )

    def sql(self, statement: str) -> list[tuple[Any, ...]] | None:
        self.cursor.execute(statement)
        return self.cursor.fetchall() if self.cursor.description else None

    def line(self, section: str, label: str, rows: int, **against: Line | None) -> Line:
        line = Line(section, label, rows, **against)
        self.lines.append(line)
        return line

    def postgres(self, codec: Codec, table: str, extra: str = "") -> str:
        """A postgres source or destination block of a recipe."""
        return (
            f"  type: postgres\n{self.connection_yaml}\n  table: {table}{extra}{codec.recipe_key()}"
        )

    def recipe(self, name: str, source: str, destination: str, parallelism: int = 1) -> Path:
        path = self.root / f"{name}.yaml"
        path.write_text(
            f"name: {name}\nsource:\n{source}\ndestination:\n{destination}\n"
            f"runtime:\n  batch_size: {self.args.batch_size}\n  parallelism: {parallelism}\n"
        )
        return path

    def run_dataloader(self, line: Line, recipe: Path) -> None:
        state = self.root / "state" / f"{recipe.stem}-{len(line.samples)}"
        code = run_recipe_code(recipe, state, line.rows)
        line.samples.append(measure(line.label, code, line.rows, setup=SETUP))

    def run_duckdb(self, line: Line, statements: list[str], database: Path | None = None) -> None:
        command = [*self.uv, "run", "--no-project", "--quiet", *DUCKDB_PACKAGES, "python"]
        command.append(str(HERE / "pg_copy_duckdb_ref.py"))
        if database is not None:
            command += ["--database", str(database)]
        for statement in statements:
            command += ["--sql", statement]
        done = subprocess.run(command, capture_output=True, text=True, env=self.pg_env)
        if done.returncode != 0:
            raise SystemExit(f"{line.label} failed:\n{done.stdout}\n{done.stderr}")
        out = next(x for x in done.stdout.splitlines() if x.startswith("__MEASURE__"))
        data = json.loads(out.removeprefix("__MEASURE__"))
        if data["result"] != line.rows:
            raise SystemExit(f"{line.label}: {data['result']} rows, expected {line.rows}")
        line.samples.append(
            Measurement(line.label, data["seconds"], data["peak_rss_mib"], line.rows)
        )

    def fresh_schema(self, schema: str, like_orders: bool = False) -> None:
        """Drop `schema` with what it holds and make it again (holding an empty `orders`)."""
        self.sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        self.sql(f"CREATE SCHEMA {schema}")
        if like_orders:
            self.sql(f"CREATE TABLE {schema}.orders (LIKE public.orders)")
        self.sql("CHECKPOINT")  # the previous run's writes are not flushed during this one

    def check_same_rows(self, tables: list[str], rows: int) -> None:
        """Each of `tables` (one per codec) holds the source's first `rows` rows (a hash of each
        row's text, summed), and all have the same column types; types that differ from the
        source's are printed."""
        source = f"(SELECT * FROM public.orders WHERE order_id <= {rows})"
        expected = self.sql(ROW_HASH.format(table=source))
        source_types = self.sql(COLUMN_TYPES.format(table="public.orders"))
        first_types = None
        for table in tables:
            got = self.sql(ROW_HASH.format(table=table))
            if got != expected:
                raise SystemExit(f"{table} differs from the source: {got} != {expected}")
            types = self.sql(COLUMN_TYPES.format(table=table))
            if first_types is not None and types != first_types:
                raise SystemExit(f"{table}: column types {types}, not {first_types}")
            first_types = types
            if types != source_types:
                changed = [
                    f"{a[0]} {a[1]} → {b[1]}"
                    for a, b in zip(source_types or [], types or [], strict=False)
                    if a != b
                ]
                print(f"  note: {table} column types differ from the source: {', '.join(changed)}")

    def repeat(self, title: str, steps: list[Callable[[], None]]) -> None:
        """Run each step once per round, `--repeat` rounds (interleaved: noise spreads evenly)."""
        for round_ in range(1, self.args.repeat + 1):
            for step in steps:
                step()
            print(f"  {title}: round {round_} of {self.args.repeat} done", flush=True)


def build_table(bench: Bench, rows: int) -> None:
    bench.sql(TABLE_SQL.replace("%(rows)s", str(rows)))
    bench.sql(WIDEN_SQL)
    bench.sql("VACUUM ANALYZE orders")
    described = bench.sql(
        "SELECT pg_size_pretty(pg_total_relation_size('orders')), "
        "(SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders')"
    )
    assert described is not None
    size, columns = described[0]
    print(f"{rows:,} rows, {columns} columns, in orders ({size})", flush=True)


def warm_up(bench: Bench, codecs: list[Codec]) -> None:
    """Untimed runs of 1,000 rows of each recipe shape and codec, so that the measured
    processes import modules from cached bytecode (as from an installed distribution)."""
    few = "\n  where: order_id <= 1000"
    for codec in codecs:
        out = bench.root / f"warm_{codec.name}"
        shapes = [
            (bench.postgres(codec, "orders", few), f"  type: filestore\n  path: {out}\n  format: parquet"),
            (bench.postgres(codec, "orders", few),
             f"  type: duckdb\n  database: {out}.duckdb\n  table: orders"),
            (bench.postgres(codec, "orders", few),
             bench.postgres(codec, f"warm_{codec.name}.orders", "\n  write_mode: merge\n  merge_keys: [order_id]")),
            (f"  type: filestore\n  path: {out}\n  format: parquet",
             bench.postgres(codec, f"warm_{codec.name}.from_parquet")),
        ]  # fmt: skip
        for number, (source, destination) in enumerate(shapes):
            recipe = bench.recipe(f"warm_{codec.name}_{number}", source, destination)
            bench.run_dataloader(Line("", "warm-up", 1000), recipe)
        bench.sql(f"DROP SCHEMA warm_{codec.name} CASCADE")


def to_parquet(bench: Bench, codecs: list[Codec]) -> Path:
    """Postgres → Parquet; returns the directory the CSV codec's full run wrote."""
    rows, quarter, root = bench.args.rows, bench.args.rows // 4, bench.root
    section = "Postgres → Parquet"
    ceiling = bench.line(section, "psql COPY TO STDOUT binary", rows)
    duck = bench.line(section, "duckdb postgres extension", rows, ceiling=ceiling)
    ref_file = root / "duckdb_ref.parquet"
    psql = ["psql", "-X", "-q", "-c", "COPY orders TO STDOUT (FORMAT binary)"]

    def references() -> None:
        ceiling.samples.append(Measurement(ceiling.label, timed(psql, bench.pg_env), 0, rows))
        ref_file.unlink(missing_ok=True)
        statement = f"COPY (SELECT * FROM pg.public.orders) TO '{ref_file}' (FORMAT parquet)"
        bench.run_duckdb(duck, [statement])

    steps: list[Callable[[], None]] = [references]
    csv_lines: dict[str, Line] = {}
    for codec in codecs:
        for tag, parallelism, count in (("", 1, rows), (", parallelism 2", 2, rows)) + (
            ((", N/4 rows", 1, quarter),) if quarter else ()
        ):
            full = count == rows
            line = bench.line(
                section,
                f"dataloader {codec.name}{tag}",
                count,
                duckdb=duck if full else None,
                ceiling=ceiling if full else None,
                csv=csv_lines.get(tag),
            )
            if codec.name == "csv":
                csv_lines[tag] = line
            out = root / f"parquet_{codec.name}_{parallelism}_{count}"
            where = "" if full else f"\n  where: order_id <= {count}"
            destination = (
                f"  type: filestore\n  path: {out}\n  format: parquet\n  write_mode: overwrite"
            )
            recipe = bench.recipe(
                f"to_parquet_{codec.name}_{parallelism}_{count}",
                bench.postgres(codec, "orders", where),
                destination,
                parallelism,
            )

            def step(line: Line = line, recipe: Path = recipe, out: Path = out) -> None:
                shutil.rmtree(out, ignore_errors=True)
                bench.run_dataloader(line, recipe)

            steps.append(step)
    bench.repeat(section, steps)
    return root / f"parquet_csv_1_{rows}"


def to_duckdb(bench: Bench, codecs: list[Codec]) -> None:
    rows, root = bench.args.rows, bench.root
    section = "Postgres → DuckDB"
    duck = bench.line(section, "duckdb postgres extension", rows)
    ref_db = root / "duckdb_ref.duckdb"

    def reference() -> None:
        ref_db.unlink(missing_ok=True)
        statements = [
            "CREATE TABLE orders AS SELECT * FROM pg.public.orders",
            "SELECT count(*) FROM orders",
        ]
        bench.run_duckdb(duck, statements, ref_db)

    steps: list[Callable[[], None]] = [reference]
    csv_line: Line | None = None
    for codec in codecs:
        line = bench.line(section, f"dataloader {codec.name}", rows, duckdb=duck, csv=csv_line)
        csv_line = csv_line or line
        db = root / f"dl_{codec.name}.duckdb"
        recipe = bench.recipe(
            f"to_duckdb_{codec.name}",
            bench.postgres(codec, "orders"),
            f"  type: duckdb\n  database: {db}\n  table: orders\n  write_mode: overwrite",
        )

        def step(line: Line = line, recipe: Path = recipe, db: Path = db) -> None:
            db.unlink(missing_ok=True)
            bench.run_dataloader(line, recipe)

        steps.append(step)
    bench.repeat(section, steps)


def to_postgres(bench: Bench, codecs: list[Codec]) -> None:
    rows, quarter = bench.args.rows, bench.args.rows // 4
    section = "Postgres → Postgres"
    duck = bench.line(section, "duckdb postgres extension", rows)

    def reference() -> None:
        bench.fresh_schema("ref_pg", like_orders=True)
        statements = ["INSERT INTO pg.ref_pg.orders SELECT * FROM pg.public.orders"]
        bench.run_duckdb(duck, statements)

    steps: list[Callable[[], None]] = [reference]
    checks: dict[tuple[str, int], list[str]] = {}
    modes = [("append", rows), ("overwrite", rows), ("merge", rows)]
    if quarter:
        modes.append(("append", quarter))
    csv_lines: dict[tuple[str, int], Line] = {}
    for mode, count in modes:
        for codec in codecs:
            tag = "" if count == rows else ", N/4 rows"
            line = bench.line(
                section,
                f"dataloader {codec.name} {mode}{tag}",
                count,
                duckdb=duck if count == rows else None,
                csv=csv_lines.get((mode, count)),
            )
            if codec.name == "csv":
                csv_lines[(mode, count)] = line
            schema = f"dl_{codec.name}_{mode}_{count}"
            where = "" if count == rows else f"\n  where: order_id <= {count}"
            keys = "\n  merge_keys: [order_id]" if mode == "merge" else ""
            recipe = bench.recipe(
                f"pg_{codec.name}_{mode}_{count}",
                bench.postgres(codec, "orders", where),
                bench.postgres(codec, f"{schema}.orders", f"\n  write_mode: {mode}{keys}"),
            )
            checks.setdefault((mode, count), []).append(f"{schema}.orders")

            def step(line: Line = line, recipe: Path = recipe, schema: str = schema) -> None:
                bench.fresh_schema(schema)
                bench.run_dataloader(line, recipe)

            steps.append(step)
    bench.repeat(section, steps)
    for (_, count), tables in checks.items():
        bench.check_same_rows(tables, count)


def parquet_input(bench: Bench, codec: Codec) -> Path:
    """Parquet files of the whole table, written (untimed) by dataloader with `codec`."""
    out = bench.root / "parquet_input"
    recipe = bench.recipe(
        "parquet_input",
        bench.postgres(codec, "orders"),
        f"  type: filestore\n  path: {out}\n  format: parquet\n  write_mode: overwrite",
    )
    bench.run_dataloader(Line("", "parquet input", bench.args.rows), recipe)
    return out


def from_parquet(bench: Bench, codecs: list[Codec], parquet: Path) -> None:
    rows, root = bench.args.rows, bench.root
    section = "Parquet → Postgres"
    ceiling = bench.line(section, "server COPY FROM binary file", rows)
    duck = bench.line(section, "duckdb postgres extension", rows, ceiling=ceiling)
    dump = root / "orders.bin"
    bench.sql(f"COPY orders TO '{dump}' (FORMAT binary)")
    files = sorted(parquet.rglob("*.parquet"))
    if not files:
        raise SystemExit(f"no Parquet file under {parquet}")
    file_list = ", ".join(f"'{path}'" for path in files)

    def references() -> None:
        bench.fresh_schema("ceiling", like_orders=True)
        start = time.perf_counter()
        bench.sql(f"COPY ceiling.orders FROM '{dump}' (FORMAT binary)")
        ceiling.samples.append(Measurement(ceiling.label, time.perf_counter() - start, 0, rows))
        bench.fresh_schema("ref_parquet", like_orders=True)
        statement = f"INSERT INTO pg.ref_parquet.orders SELECT * FROM read_parquet([{file_list}])"
        bench.run_duckdb(duck, [statement])

    steps: list[Callable[[], None]] = [references]
    csv_line: Line | None = None
    checks: list[str] = []
    for codec in codecs:
        line = bench.line(
            section, f"dataloader {codec.name}", rows, duckdb=duck, ceiling=ceiling, csv=csv_line
        )
        csv_line = csv_line or line
        schema = f"from_parquet_{codec.name}"
        recipe = bench.recipe(
            f"parquet_to_pg_{codec.name}",
            f"  type: filestore\n  path: {parquet}\n  format: parquet",
            bench.postgres(codec, f"{schema}.orders", "\n  write_mode: append"),
        )
        checks.append(f"{schema}.orders")

        def step(line: Line = line, recipe: Path = recipe, schema: str = schema) -> None:
            bench.fresh_schema(schema)
            bench.run_dataloader(line, recipe)

        steps.append(step)
    bench.repeat(section, steps)
    bench.check_same_rows(checks, rows)


def ratio(line: Line, against: Line | None) -> str:
    if against is None or not against.samples or not line.samples:
        return ""
    return f"{line.seconds / against.seconds:.2f}x"


def report(bench: Bench, codecs: list[Codec]) -> None:
    args = bench.args
    print(
        f"\nPostgres COPY codecs: {args.rows:,} rows, 13 columns, median of {args.repeat} "
        f"(seconds); peak RSS of the process (max)"
    )
    print(f"{'run':<38}{'s':>7}{'peak MiB':>9}{'/duckdb':>9}{'/ceiling':>9}{'/csv':>7}")
    section = None
    for line in bench.lines:
        if line.section != section:
            section = line.section
            print(section)
        peak = f"{line.peak_mib:.0f}" if line.peak_mib else "-"
        row = (
            f"  {line.label:<36}{line.seconds:>7.2f}{peak:>9}{ratio(line, line.duckdb):>9}"
            f"{ratio(line, line.ceiling):>9}{ratio(line, line.csv):>7}"
        )
        print(row.rstrip())
    print()
    for codec in codecs:
        summary(bench, codec)


# Issue 16's targets for the binary codec: (name, section, line, reference line, ratio, and
# whether the ratio must be below it — "faster than" — rather than at most it — "within").
TARGETS = [
    ("Postgres → Postgres / DuckDB", "Postgres → Postgres", "dataloader binary append",
     "duckdb postgres extension", 1.0, True),
    ("Parquet → Postgres / DuckDB", "Parquet → Postgres", "dataloader binary",
     "duckdb postgres extension", 1.0, True),
    ("Postgres → Parquet / psql COPY TO", "Postgres → Parquet", "dataloader binary",
     "psql COPY TO STDOUT binary", 1.15, False),
    ("Parquet → Postgres / server COPY FROM", "Parquet → Postgres", "dataloader binary",
     "server COPY FROM binary file", 1.3, False),
    ("overwrite binary / csv", "Postgres → Postgres", "dataloader binary overwrite",
     "dataloader csv overwrite", 0.5, False),
    ("merge binary / csv", "Postgres → Postgres", "dataloader binary merge",
     "dataloader csv merge", 0.5, False),
    ("read parallelism 2 / 1", "Postgres → Parquet", "dataloader binary, parallelism 2",
     "dataloader binary", 1.0, True),
]  # fmt: skip
FLAT = 1.15  # peak RSS at N within this factor of the peak at N/4 counts as flat


def summary(bench: Bench, codec: Codec) -> None:
    """Parallelism and memory for one codec; for binary, each of issue 16's targets."""
    lines = {(line.section, line.label): line for line in bench.lines}
    one = lines.get(("Postgres → Parquet", f"dataloader {codec.name}"))
    two = lines.get(("Postgres → Parquet", f"dataloader {codec.name}, parallelism 2"))
    if one and two:
        print(
            f"{codec.name}: Postgres → Parquet, parallelism 2 / 1: {two.seconds:.2f} / "
            f"{one.seconds:.2f} s = {two.seconds / one.seconds:.2f}x"
        )
    for section, label in (
        ("Postgres → Parquet", f"dataloader {codec.name}"),
        ("Postgres → Postgres", f"dataloader {codec.name} append"),
    ):
        full = lines.get((section, label))
        small = lines.get((section, f"{label}, N/4 rows"))
        if full and small:
            growth = round(full.peak_mib / small.peak_mib, 2)
            print(
                f"{codec.name}: {section} peak MiB {small.peak_mib:.0f} at N/4, "
                f"{full.peak_mib:.0f} at N: {growth:.2f}x, "
                f"{'flat' if growth <= FLAT else 'NOT flat'} (≤ {FLAT}x)"
            )
    if codec.name != "binary":
        return
    for name, section, label, against, limit, below in TARGETS:
        line = lines.get((section, label))
        reference = lines.get((section, against))
        if line and reference:
            value = line.seconds / reference.seconds
            met = value < limit if below else value <= limit
            sign = "<" if below else "≤"
            print(f"target {name} {sign} {limit:.2f}x: {value:.2f}x, {'met' if met else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--batch-size", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each step (the median)")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated, of {', '.join(SECTIONS)} (default: all)",
    )
    args = parser.parse_args()
    sections = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(
            f"--sections: unknown {', '.join(unknown)}; expected some of {', '.join(SECTIONS)}"
        )
    keyed, missing = codec_support()
    codecs = [Codec("csv", keyed)]
    if missing:
        print(f"binary runs left out: the binary codec cannot be used ({missing})")
    else:
        codecs.append(Codec("binary", keyed=True))
    started = time.perf_counter()
    with PostgresServer() as server, tempfile.TemporaryDirectory(prefix="dl-pgcopy-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o777)  # the server (another OS user) writes and reads files here
        # Measured processes import from cached bytecode kept here, even where the environment
        # sets PYTHONDONTWRITEBYTECODE (as this development one does): a user's installed
        # distribution has its bytecode compiled.
        os.environ["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        bench = Bench(server, root, args)
        build_table(bench, args.rows)
        warm_up(bench, codecs)
        # Untimed: fetches DuckDB's packages into uv's cache if they are not there yet.
        warm = [*bench.uv, "run", "--no-project", "--quiet", *DUCKDB_PACKAGES, "python", "-c", ""]
        subprocess.run(warm, check=True, env=bench.pg_env)
        parquet = to_parquet(bench, codecs) if "to-parquet" in sections else None
        if "to-duckdb" in sections:
            to_duckdb(bench, codecs)
        if "to-postgres" in sections:
            to_postgres(bench, codecs)
        if "from-parquet" in sections:
            from_parquet(bench, codecs, parquet or parquet_input(bench, codecs[0]))
        report(bench, codecs)
    print(f"\nwhole benchmark: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
