"""The binary COPY decoder's up-front reservation is bounded: a huge `capacity` (the recipe's
`runtime.batch_size`) or `max_rows` reads a small stream instead of aborting the process.

The decoder runs in a child process: an allocation failure in Rust aborts (SIGABRT), which would
take the test runner down with it rather than fail one test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dataloader_postgres.testing import PostgresServer

CHILD = r"""
import struct, sys
import pyarrow as pa
from dataloader_rust._native import CopyDecoder

capacity, max_rows = int(sys.argv[1]), int(sys.argv[2])
header = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
rows = b"".join(
    struct.pack(">hiqi", 3, 8, n, len(s)) + s + struct.pack(">i", -1)
    for n, s in ((1, b"one"), (2, "d\u00e9ux".encode()))
)
schema = pa.schema([("id", pa.int64()), ("s", pa.string()), ("tags", pa.list_(pa.int32()))])
decoder = CopyDecoder.from_bytes(
    header + rows + b"\xff\xff", schema, [(20, 0), (25, 0), (1007, 23)], capacity
)
batch = decoder.read_batch(max_rows)
print(batch.to_pylist())
print(decoder.read_batch(max_rows))
"""


@pytest.mark.parametrize(
    ("capacity", "max_rows"),
    [(2**40, 10), (2**61, 10), (2**64 - 1, 10), (10, 2**40), (2**63, 2**63)],
)
def test_huge_capacity_reads_a_small_stream(capacity: int, max_rows: int) -> None:
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(capacity), str(max_rows)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.splitlines() == [
        "[{'id': 1, 's': 'one', 'tags': None}, {'id': 2, 's': 'déux', 'tags': None}]",
        "None",
    ]


def test_recipe_with_a_ten_billion_row_batch_size_runs(
    postgres_server: PostgresServer, postgres_database: str, tmp_path: Path
) -> None:
    """End to end with the binary codec, in a child process (`dataloader run`)."""
    settings = postgres_server.connection_settings(postgres_database)
    admin = postgres_server.connect(postgres_database)
    admin.autocommit = True
    try:
        admin.cursor().execute(
            "CREATE TABLE src AS SELECT g AS id, g::text AS s FROM generate_series(1, 10) g"
        )
        recipe = {
            "name": "huge_batch",
            "source": {"type": "postgres", **settings, "table": "src", "codec": "binary"},
            "destination": {"type": "postgres", **settings, "table": "dst", "codec": "csv"},
            "runtime": {"batch_size": 10_000_000_000},
        }
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(recipe), "utf-8")
        script = (
            "import sys\n"
            "from pathlib import Path\n"
            "from dataloader import LocalStateBackend, RecipeLoader, run_recipe\n"
            "r = run_recipe(RecipeLoader().load(Path(sys.argv[1])),"
            " LocalStateBackend(Path(sys.argv[2])))\n"
            "print(r.rows_written)\n"
        )
        child = subprocess.run(
            [sys.executable, "-c", script, str(path), str(tmp_path / "state")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert child.returncode == 0, child.stderr[-2000:]
        assert child.stdout.strip().splitlines()[-1] == "10"
        cursor = admin.cursor()
        cursor.execute("SELECT count(*), sum(id) FROM dst")
        assert cursor.fetchone() == (10, 55)
    finally:
        admin.close()
