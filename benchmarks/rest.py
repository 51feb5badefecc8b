"""REST API → DuckDB / Parquet: the `rest` source beside a plain httpx loop over the same pages.

A demo API server runs in its own process (so its GIL does not slow the client) and serves
N records (default 100,000) at `/offset/items?offset=…&limit=100`, the demo API's body
`{"items": [...], "total": N}`. Then, each in a fresh process, three times in turn:

- the reference: one `httpx.Client` (keep-alive) fetching every page and parsing it with
  `response.json()`, nothing else;
- `run_recipe` of a `rest` source (offset paginator, limit 100, `total_path: total`, so both
  make the same N/100 requests) into DuckDB (append), and into Parquet files (filestore).

Prints the median of the three runs of each, and the ratio to the reference; row counts are
checked. Then the throughput once started: in one process with the imports done, the reference
loop and the DuckDB load each run once untimed, then in turn three times; the ratio of their
times (median over the rounds) leaves out what a run pays once (imports, plugin discovery,
opening and checkpointing DuckDB). `--server demo` serves `dataloader_rest.testing.DemoApi` itself, whose handler sorts
the whole listing at every request (~70 ms a page at 100k records, so the server, not the
client, is what that measures); the default `static` server answers the same bodies, encoded
once at start-up. `python benchmarks/rest.py --serve N [--server …]` runs the server alone and
prints its base URL.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PAGE = 100
SETUP = "import dataloader, dataloader_rest, duckdb, httpx, pyarrow\n"

REFERENCE = """
import httpx
rows = 0
offset = 0
total = None
with httpx.Client(base_url={url!r}) as client:
    while total is None or offset < total:
        body = client.get("/offset/items", params={{"offset": offset, "limit": {page}}}).json()
        total = body["total"]
        rows += len(body["items"])
        offset += len(body["items"])
assert rows == {records}, rows
"""

RECIPE = """
name: bench_rest
source:
  type: rest
  client:
    base_url: {url}
  resource:
    path: /offset/items
    data_selector: items
    paginator:
      type: offset
      limit: {page}
      total_path: total
destination:
{destination}
"""

DUCKDB = """  type: duckdb
  database: {out}
  table: items
  write_mode: append"""

PARQUET = """  type: filestore
  path: {out}
  format: parquet"""

RUN = """
from dataloader import run_recipe_from_yaml
result = run_recipe_from_yaml({recipe!r}, state_dir={state!r})
assert result.rows_written == {records}, result.rows_written
"""

# Throughput once started: one process, imports and plugins loaded, each side run once
# untimed, then the reference loop and the run in turn; prints the seconds of each.
WARM = """
import json, shutil, time
from pathlib import Path
from dataloader import run_recipe_from_yaml

def reference():
{reference}

def load(attempt):
    out, state = Path({out!r} + str(attempt)), Path({state!r} + str(attempt))
    recipe = Path({recipe!r})
    recipe.write_text({recipe_text!r}.replace("__OUT__", str(out)))
    result = run_recipe_from_yaml(str(recipe), state_dir=str(state))
    assert result.rows_written == {records}, result.rows_written

reference(); load("warm")
times = {{"reference": [], "run": []}}
for attempt in range({repeat}):
    tick = time.perf_counter(); reference(); times["reference"].append(time.perf_counter() - tick)
    tick = time.perf_counter(); load(attempt); times["run"].append(time.perf_counter() - tick)
print("__WARM__" + json.dumps(times))
"""


def serve(records: int, server: str) -> None:
    """Serve `records` demo records on 127.0.0.1 (a free port), print the base URL, and stop
    when stdin closes."""
    from dataloader_rest.testing import DemoApi, run_server

    if server == "demo":
        api = DemoApi(records, customers=0)
        with run_server(api) as handle:
            print(handle.base_url, flush=True)
            sys.stdin.read()
        return
    with _static_server(records) as url:
        print(url, flush=True)
        sys.stdin.read()


@contextmanager
def _static_server(records: int) -> Iterator[str]:
    """The demo API's `/offset/items` bodies for `make_records(records)`, encoded once (as
    Starlette's `JSONResponse` encodes them), under uvicorn in a thread of this process."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from dataloader_rest.testing import make_records

    # make_records lists records by ascending (updated_at, id): the demo API's order.
    rows = make_records(records)

    def encode(offset: int, limit: int) -> bytes:
        body = {"items": rows[offset : offset + limit], "total": len(rows)}
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    pages = {offset: encode(offset, PAGE) for offset in range(0, records + 1, PAGE)}

    async def items(request: Request) -> Response:
        offset = int(request.query_params.get("offset") or 0)
        limit = min(int(request.query_params.get("limit") or 10), PAGE)
        body = pages.get(offset) if limit == PAGE else None
        return Response(body or encode(offset, limit), media_type="application/json")

    config = uvicorn.Config(
        Starlette(routes=[Route("/offset/items", items)]),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SystemExit("the static API server stopped during start-up")
        thread.join(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(5)


@contextmanager
def server_process(records: int, server: str) -> Iterator[str]:
    """Run `serve` in a child process; yields its base URL."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(records), "--server", server],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        if not url.startswith("http://"):
            raise SystemExit(f"the API server did not start (exit code {child.wait()})")
        yield url
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def count_rows(out: Path, kind: str) -> int:
    """Rows the run wrote: the DuckDB table, or every Parquet file under `out`."""
    if kind == "duckdb":
        import duckdb

        with duckdb.connect(str(out), read_only=True) as con:
            return con.execute("SELECT count(*) FROM items").fetchone()[0]  # type: ignore[index]
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(path).num_rows for path in out.rglob("*.parquet"))


def main() -> None:
    from _measure import Measurement, measure, report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the median counts")
    parser.add_argument(
        "--server", choices=["static", "demo"], default="static", help="see the module doc"
    )
    parser.add_argument("--no-parquet", action="store_true", help="skip the Parquet run")
    parser.add_argument("--serve", type=int, metavar="N", help="only serve N records")
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.server)
        return
    records = args.records
    kinds = ["duckdb"] if args.no_parquet else ["duckdb", "parquet"]
    runs: dict[str, list[Measurement]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="dl-bench-") as tmp,
        server_process(records, args.server) as url,
    ):
        root = Path(tmp)
        print(f"{records:,} records in {records // PAGE:,} pages from the {args.server} server")
        for attempt in range(args.repeat):
            label = "httpx loop, .json() (reference)"
            code = REFERENCE.format(url=url, page=PAGE, records=records)
            runs.setdefault(label, []).append(measure(label, code, records, setup=SETUP))
            for kind in kinds:
                out = root / f"{kind}-{attempt}{'.duckdb' if kind == 'duckdb' else ''}"
                destination = (DUCKDB if kind == "duckdb" else PARQUET).format(out=out)
                recipe = root / f"{kind}-{attempt}.yaml"
                recipe.write_text(RECIPE.format(url=url, page=PAGE, destination=destination))
                state = root / f"state-{kind}-{attempt}"
                label = f"dataloader rest → {kind}"
                code = RUN.format(recipe=str(recipe), state=str(state), records=records)
                runs.setdefault(label, []).append(measure(label, code, records, setup=SETUP))
                if (got := count_rows(out, kind)) != records:
                    raise SystemExit(f"{label} wrote {got:,} rows, not {records:,}")
            print(
                f"run {attempt + 1}: "
                + ", ".join(f"{label} {items[-1].seconds:.2f} s" for label, items in runs.items())
            )
    medians = [
        Measurement(
            label,
            statistics.median(item.seconds for item in items),
            statistics.median(item.peak_rss_mib for item in items),
            records,
        )
        for label, items in runs.items()
    ]
    report(
        f"REST offset pages → DuckDB / Parquet, median of {args.repeat}", medians[0], medians[1:]
    )
    with (
        tempfile.TemporaryDirectory(prefix="dl-bench-") as tmp,
        server_process(records, args.server) as url,
    ):
        warm(url, Path(tmp), records, args.repeat)


def warm(url: str, root: Path, records: int, repeat: int) -> None:
    """Throughput once started (see WARM): the DuckDB load against the reference loop."""
    reference = REFERENCE.format(url=url, page=PAGE, records=records)
    destination = DUCKDB.format(out="__OUT__")
    code = WARM.format(
        reference=textwrap.indent(reference.strip(), "    "),
        out=str(root / "warm-"),
        state=str(root / "warm-state-"),
        recipe=str(root / "warm.yaml"),
        recipe_text=RECIPE.format(url=url, page=PAGE, destination=destination),
        records=records,
        repeat=repeat,
    )
    done = subprocess.run(
        [sys.executable, "-c", SETUP + code], capture_output=True, text=True, check=False
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("__WARM__")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"the warm run failed:\n{done.stdout}\n{done.stderr}")
    times = json.loads(line.removeprefix("__WARM__"))
    ratios = sorted(run / ref for ref, run in zip(times["reference"], times["run"], strict=True))
    print(f"\nOnce started (one process, imports done), {repeat} rounds, {records:,} records:")
    for label, key in (("httpx loop, .json() (reference)", "reference"), ("rest → duckdb", "run")):
        seconds = statistics.median(times[key])
        print(f"  {label:<34} {seconds:>6.2f} s {records / seconds:>10,.0f} records/s")
    print(f"  throughput ratio (median of the rounds' ratios): {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
