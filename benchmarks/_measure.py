"""Run one measured step in a fresh process and report its wall time and peak memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass

_PRELUDE = """
import json, resource, sys, time
_t0 = time.perf_counter()
"""
_EPILOGUE = """
print("__MEASURE__" + json.dumps({"seconds": time.perf_counter() - _t0,
      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


@dataclass
class Measurement:
    label: str
    seconds: float
    peak_rss_mib: float
    rows: int

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def measure(
    label: str, code: str, rows: int, *, setup: str = "", output: list[str] | None = None
) -> Measurement:
    """Run `code` in a new Python process (after the untimed `setup`); time it and read its
    peak RSS. The process's output lines are added to `output` when it is given."""
    script = textwrap.dedent(setup) + _PRELUDE + textwrap.dedent(code) + _EPILOGUE
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{label} failed:\n{done.stdout}\n{done.stderr}")
    if output is not None:
        output += done.stdout.splitlines()
    line = next(x for x in done.stdout.splitlines() if x.startswith("__MEASURE__"))
    data = json.loads(line.removeprefix("__MEASURE__"))
    return Measurement(label, data["seconds"], data["peak_rss_mib"], rows)


def report(title: str, reference: Measurement, others: list[Measurement]) -> None:
    print(f"\n{title}")
    print(
        f"{'run':<34} {'rows':>11} {'seconds':>8} {'rows/s':>12} {'peak MiB':>9} {'time ratio':>11}"
    )
    for item in [reference, *others]:
        ratio = item.seconds / reference.seconds if reference.seconds else float("nan")
        print(
            f"{item.label:<34} {item.rows:>11,} {item.seconds:>8.2f} {item.rows_per_second:>12,.0f} {item.peak_rss_mib:>9.0f} {ratio:>10.2f}x"
        )
