"""Dask distributed against Ray on this machine, on the load shape of issue 17's executor.

Standalone: not part of `./dev bench` (benchmarks/run.py does not list it) and not imported by
any test. Neither engine is a workspace dependency, so run it in a throwaway venv:

    uv venv /tmp/distvenv --python 3.11
    VIRTUAL_ENV=/tmp/distvenv uv pip install "dask[distributed]" ray pyarrow
    /tmp/distvenv/bin/python benchmarks/distributed_choice.py [--repeat 3]

For each engine, with 2 workers of 1 CPU each on the local machine (Dask: LocalCluster, 2
worker processes, 1 thread each; Ray: ray.init(num_cpus=2)), it measures:

- start: cluster start to the first task result; stop: shutdown;
- no-op task: 1,000 no-op tasks submitted then gathered, time per task;
- table -> driver: a task returns a ~64 MiB pyarrow Table (int64, float64, 16-char string)
  already built in the worker, and the driver reads every column once; table -> task: the
  driver passes that table to a task that reads every column and returns its row count
  (Dask: client.scatter then submit, Client(direct_to_workers=True); Ray: an argument, which
  Ray puts in its shared-memory object store). MiB/s, median of 3 within each run;
- 8 partitions: 8 tasks each generating 250,000 rows into a Parquet file in a temp dir and
  returning only (rows, bytes, path) -- workers stage, the driver would commit; median of
  3 within each run; then once more with both clusters up and the 8 partitions run by Dask,
  Ray and serially in turn, 5 rounds (same background load for the three);
- import time (fresh interpreter) and install size (du of the site-packages entries each adds,
  __pycache__ left out; Dask: dask[distributed] and its dependencies, Ray: ray and its
  dependencies; pyarrow needs none of them).

Every figure is the median of --repeat runs (engines interleaved in each run) and is printed
beside a reference measured in the same run, with the ratio engine/reference:
start, stop and no-op tasks against concurrent.futures.ProcessPoolExecutor(2) (spawn); the
table movements against an in-process pa.ipc stream write + read of the same table; the 8
partitions against the same 8 run one after the other in this process; import time against
`import pyarrow`; install size against pyarrow's. The machine's cores are shared, so only the
ratios mean something.
"""

from __future__ import annotations

import argparse
import array
import concurrent.futures as cf
import importlib.metadata as md
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

MIB = 1024 * 1024
STR_LEN = 16
TABLE_ROWS = 64 * MIB // (8 + 8 + 4 + STR_LEN)  # int64 + float64 + (offset + 16 chars)
N_NOOP = 1000
N_PARTS = 8
PART_ROWS = 250_000


# --- work run in the workers (module-level so every engine can ship it) --------------------


def make_table(rows: int, start: int = 0) -> pa.Table:
    """rows of (id int64, value float64, tag 16-char string), built without a Python loop."""
    ids = pa.Array.from_buffers(
        pa.int64(), rows, [None, pa.py_buffer(array.array("q", range(start, start + rows)))]
    )
    values = pc.multiply(pc.cast(ids, pa.float64()), 0.5)
    offsets = array.array("i", range(0, STR_LEN * (rows + 1), STR_LEN))
    chars = os.urandom(STR_LEN * rows // 2).hex().encode()
    tags = pa.Array.from_buffers(
        pa.string(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(chars)]
    )
    return pa.table({"id": ids, "value": values, "tag": tags})


def cached_table() -> pa.Table:
    """The 64 MiB table, built once per worker process (kept on `sys`, which every worker has)."""
    table = getattr(sys, "_distributed_choice_table", None)
    if table is None:
        table = make_table(TABLE_ROWS)
        sys._distributed_choice_table = table
    return table


def noop(i: int) -> int:
    return i


def table_bytes(_: int = 0) -> int:
    return cached_table().nbytes


def return_table(_: int = 0) -> pa.Table:
    return cached_table()


def receive_table(table: pa.Table) -> int:
    touch(table)
    return table.num_rows


def write_partition(index: int, directory: str) -> dict:
    """One partition of the executor's shape: read (here: generate), write a part, report."""
    import pyarrow.parquet as pq

    table = make_table(PART_ROWS, start=index * PART_ROWS)
    path = os.path.join(directory, f"part-{index:05d}.parquet")
    pq.write_table(table, path)
    return {"rows": table.num_rows, "bytes": os.path.getsize(path), "path": path}


# --- the engines ----------------------------------------------------------------------------


class Reference:
    """concurrent.futures with 2 spawned processes: the floor for start/stop/no-op tasks."""

    name = "ref"

    def start(self) -> None:
        self.pool = cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn"))
        self.pool.submit(noop, 0).result()

    def stop(self) -> None:
        self.pool.shutdown(wait=True)

    def noops(self, n: int) -> list:
        return [f.result() for f in [self.pool.submit(noop, i) for i in range(n)]]


class Dask:
    name = "dask"

    def start(self) -> None:
        from dask.distributed import Client, LocalCluster

        self.cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        # direct: results and scattered data go worker <-> client, not through the scheduler
        self.client = Client(self.cluster, direct_to_workers=True)
        self.client.submit(noop, -1, pure=False).result()

    def stop(self) -> None:
        self.client.close()
        self.cluster.close()

    def noops(self, n: int) -> list:
        return self.client.gather(self.client.map(noop, range(n), pure=False))

    def warm_tables(self) -> None:
        self.client.run(table_bytes)  # on every worker

    def table_to_driver(self) -> pa.Table:
        return self.client.submit(return_table, pure=False).result()

    def table_to_task(self, table: pa.Table) -> int:
        # scatter: Dask's documented way to ship big data (an argument would go in the graph)
        future = self.client.scatter(table, hash=False, direct=True)
        return self.client.submit(receive_table, future, pure=False).result()

    def partitions(self, directory: str) -> list:
        futures = [
            self.client.submit(write_partition, i, directory, pure=False) for i in range(N_PARTS)
        ]
        return self.client.gather(futures)


class Ray:
    name = "ray"

    def start(self) -> None:
        import ray

        self.ray = ray
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        self.noop = ray.remote(noop)
        self.table_bytes = ray.remote(table_bytes)
        self.return_table = ray.remote(return_table)
        self.receive_table = ray.remote(receive_table)
        self.write_partition = ray.remote(write_partition)
        ray.get(self.noop.remote(-1))

    def stop(self) -> None:
        self.ray.shutdown()

    def noops(self, n: int) -> list:
        return self.ray.get([self.noop.remote(i) for i in range(n)])

    def warm_tables(self) -> None:
        # no "run on every worker" in Ray: enough concurrent calls that both workers build it
        self.ray.get([self.table_bytes.remote(i) for i in range(6)])

    def table_to_driver(self) -> pa.Table:
        return self.ray.get(self.return_table.remote())

    def table_to_task(self, table: pa.Table) -> int:
        return self.ray.get(self.receive_table.remote(table))

    def partitions(self, directory: str) -> list:
        return self.ray.get([self.write_partition.remote(i, directory) for i in range(N_PARTS)])


# --- measuring -------------------------------------------------------------------------------


def timed(fn, *args):
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


def touch(table: pa.Table) -> None:
    """Read every buffer once, so a zero-copy result is not counted as free."""
    pc.sum(table["id"]).as_py()
    pc.sum(table["value"]).as_py()
    pc.max(pc.utf8_length(table["tag"])).as_py()


def ipc_roundtrip(table: pa.Table) -> pa.Table:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    out = pa.ipc.open_stream(sink.getvalue()).read_all()
    touch(out)
    return out


def serial_partitions(directory: str) -> list:
    return [write_partition(i, directory) for i in range(N_PARTS)]


def measure_engine(engine, table: pa.Table, figures: dict) -> None:
    def add(key, value):
        figures.setdefault((key, engine.name), []).append(value)

    t, _ = timed(engine.start)
    add("start", t)
    engine.noops(50)  # warm the submit path
    t, out = timed(engine.noops, N_NOOP)
    assert len(out) == N_NOOP
    add("noop", t / N_NOOP)
    if engine.name != "ref":
        mib = table.nbytes / MIB
        engine.warm_tables()
        engine.table_to_driver()
        engine.table_to_task(table)
        down, up = [], []
        for _ in range(3):  # a fresh cluster's first transfers are slower: median of 3
            t, _ = timed(lambda: touch(engine.table_to_driver()))
            down.append(t)
            t, rows = timed(engine.table_to_task, table)
            assert rows == table.num_rows
            up.append(t)
        add("to_driver", mib / statistics.median(down))
        add("to_task", mib / statistics.median(up))
        with tempfile.TemporaryDirectory() as d:
            engine.partitions(d)  # first call imports pyarrow.parquet in the workers
        times = []
        for _ in range(3):
            with tempfile.TemporaryDirectory() as d:
                t, reports = timed(engine.partitions, d)
            assert sum(r["rows"] for r in reports) == N_PARTS * PART_ROWS
            assert all(os.path.dirname(r["path"]) == d for r in reports)
            times.append(t)
        add("parts", statistics.median(times))
    t, _ = timed(engine.stop)
    add("stop", t)


def measure_reference_data(table: pa.Table, figures: dict) -> None:
    mib = table.nbytes / MIB
    ipc_roundtrip(table)
    t = statistics.median(timed(ipc_roundtrip, table)[0] for _ in range(3))
    figures.setdefault(("to_driver", "ref"), []).append(mib / t)
    figures.setdefault(("to_task", "ref"), []).append(mib / t)
    with tempfile.TemporaryDirectory() as d:
        write_partition(0, d)
    times = []
    for _ in range(3):
        with tempfile.TemporaryDirectory() as d:
            times.append(timed(serial_partitions, d)[0])
    figures.setdefault(("parts", "ref"), []).append(statistics.median(times))


def measure_interleaved(figures: dict, rounds: int) -> None:
    """Both clusters up at once, the 8 partitions run by each in turn and serially, `rounds`
    times: the same background load for all three."""
    engines = [Dask(), Ray()]
    for engine in engines:
        engine.start()
    try:
        with tempfile.TemporaryDirectory() as d:
            for engine in engines:
                engine.partitions(d)
            for _ in range(rounds):
                for engine in engines:
                    t, _ = timed(engine.partitions, d)
                    figures.setdefault(("parts_il", engine.name), []).append(t)
                t, _ = timed(serial_partitions, d)
                figures.setdefault(("parts_il", "ref"), []).append(t)
    finally:
        for engine in engines:
            engine.stop()


IMPORTS = {"ref": "import pyarrow", "dask": "import dask.distributed", "ray": "import ray"}


def import_time(statement: str) -> float:
    code = "import time; t = time.perf_counter(); " + statement + "; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


# --- install size ----------------------------------------------------------------------------


def closure(requirement: str) -> set[str]:
    """Installed distributions `requirement` needs (markers and extras honoured)."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = [Requirement(requirement)]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        extras = set(req.extras)
        key = name + "[" + ",".join(sorted(extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        for spec in md.requires(name) or []:
            sub = Requirement(spec)
            if sub.marker is not None and not any(
                sub.marker.evaluate({**default_environment(), "extra": e})
                for e in (extras or {""}) | {""}
            ):
                continue
            todo.append(sub)
    return {k.split("[")[0] for k in seen}


def du(paths: set[Path]) -> int:
    total = 0
    for p in paths:
        if p.is_file():
            total += p.stat().st_blocks * 512
            continue
        for root, dirs, files in os.walk(p):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            total += sum(os.lstat(os.path.join(root, f)).st_blocks * 512 for f in files)
    return total


def install_mib(dists: set[str]) -> tuple[float, int]:
    entries: set[Path] = set()
    for name in dists:
        dist = md.distribution(name)
        base = Path(dist.locate_file(""))
        for f in dist.files or []:
            top = f.parts[0]
            if top in ("..", "__pycache__") or top.endswith(".pth"):
                continue
            entries.add(base / top)
    return du({e for e in entries if e.exists()}) / MIB, len(dists)


# --- report ----------------------------------------------------------------------------------


ROWS = [
    ("start", "start to first result", "s", 1, False),
    ("stop", "shutdown", "s", 1, False),
    ("noop", "no-op task, 1000 gathered", "us", 1e6, False),
    ("to_driver", "64 MiB table -> driver", "MiB/s", 1, True),
    ("to_task", "64 MiB table -> task", "MiB/s", 1, True),
    ("parts", "8 x 250k rows -> Parquet", "s", 1, False),
    ("parts_il", "same, interleaved", "s", 1, False),
    ("import", "import time", "s", 1, False),
    ("size", "install size", "MiB", 1, False),
]


def fmt(v: float) -> str:
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    figures: dict = {}
    t_all = time.perf_counter()
    table = make_table(TABLE_ROWS)
    for n in range(args.repeat):
        measure_reference_data(table, figures)
        for engine in (Reference(), Dask(), Ray()):
            measure_engine(engine, table, figures)
        print(f"run {n + 1}/{args.repeat} done", file=sys.stderr)
    measure_interleaved(figures, rounds=max(5, args.repeat))
    for name, statement in IMPORTS.items():
        import_time(statement)  # bytecode written once
        for _ in range(args.repeat):
            figures.setdefault(("import", name), []).append(import_time(statement))
    sizes = {
        "ref": install_mib(closure("pyarrow")),
        "dask": install_mib(closure("dask[distributed]") - closure("pyarrow")),
        "ray": install_mib(closure("ray") - closure("pyarrow")),
    }
    for name, (mib, _) in sizes.items():
        figures[("size", name)] = [mib]

    med = {k: statistics.median(v) for k, v in figures.items()}
    print(
        f"\n{table.num_rows:,}-row {table.nbytes / MIB:.1f} MiB table; medians of "
        f"{args.repeat} runs; ratio = engine / ref\n(MiB/s: higher is better; s, us, MiB: lower)"
    )
    head = (
        f"{'measure':<26}{'unit':>6}{'ref':>9}{'dask':>9}{'ray':>9}{'dask/ref':>10}{'ray/ref':>10}"
    )
    print(head)
    print("-" * len(head))
    for key, label, unit, scale, _higher in ROWS:
        ref, dk, ry = (med[(key, e)] * scale for e in ("ref", "dask", "ray"))
        print(
            f"{label:<26}{unit:>6}{fmt(ref):>9}{fmt(dk):>9}{fmt(ry):>9}"
            f"{dk / ref:>9.2f}x{ry / ref:>9.2f}x"
        )
    print(
        f"install: dask[distributed] adds {sizes['dask'][1]} distributions, ray "
        f"{sizes['ray'][1]}; ref = pyarrow alone"
    )
    print("ref: ProcessPoolExecutor(2, spawn) for start, stop and no-op tasks;")
    print("     in-process pa.ipc write+read for tables; the 8 partitions run serially")
    print("     in-process; import pyarrow; pyarrow's install size")
    print(
        f"versions: dask {md.version('distributed')}, ray {md.version('ray')}, "
        f"pyarrow {pa.__version__}; {time.perf_counter() - t_all:.0f} s in all"
    )


if __name__ == "__main__":
    main()
