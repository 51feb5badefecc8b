"""Remote stores end to end, through the CLI in a subprocess: S3 (moto), SFTP (OpenSSH) and
state kept in S3 or DynamoDB.

- local CSV → S3 Parquet → DuckDB, SFTP CSV → Postgres, DuckDB → SFTP JSONL: each run twice,
  the second run moving only what is new;
- SIGKILL at gates of a load into S3 (append, overwrite), then a re-run: the visible
  objects hold exactly the rows of an uninterrupted run, and no temporary object is left;
- a load whose state is in S3 or DynamoDB killed mid-run, re-run: exactly the reference rows;
- `show-state --json` of an S3-state recipe imported into a DynamoDB-state recipe.
"""

from __future__ import annotations

import io
import json
import os
import signal
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from e2e_support import (
    after_commit,
    before_renames_gate,
    destination_committed_gate,
    duckdb_rows,
    duckdb_table,
    flat,
    kill_at_gate,
    mid_file_gate,
    popen_gated_cli,
    run_cli,
    run_counting_cli,
    sorted_rows,
    wait_for_gate,
    write_recipe,
    written_gate,
)

from dataloader_filestore.testing import MotoServer, SftpServer
from dataloader_postgres.testing import PostgresServer

T0 = 1_700_000_000


# -- helpers --------------------------------------------------------------------------------
def write_orders(path: Path, ids: range, mtime: float) -> Path:
    """A CSV of orders `ids`: id, customer (with a comma and quotes), amount, ordered_at."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["id,customer,amount,ordered_at"]
    for i in ids:
        lines.append(
            f'{i},"Cust {i % 7}, ""x""",{i * 3 % 1000}.{i % 100:02d},'
            f"2024-03-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:00"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.utime(path, (mtime, mtime))
    return path


def expected_orders(ids: range) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "customer": f'Cust {i % 7}, "x"',
            "amount": Decimal(f"{i * 3 % 1000}.{i % 100:02d}"),
            "ordered_at": datetime(2024, 3, 1 + i % 28, i % 24, i % 60),
        }
        for i in ids
    ]


CAST_ORDERS = {
    "type": "cast",
    "columns": {"amount": "decimal(12,2)", "ordered_at": "datetime"},
}


def s3_keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    found: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found += [item["Key"] for item in page.get("Contents", [])]
    return sorted(found)


def visible(keys: list[str], prefix: str) -> list[str]:
    """Data keys a reader of `prefix` sees: no `.` or `_` name or directory below it."""
    return [
        k
        for k in keys
        if not any(part.startswith((".", "_")) for part in k[len(prefix) :].split("/"))
    ]


def temporary(keys: list[str]) -> list[str]:
    return [k for k in keys if k.rsplit("/", 1)[-1].startswith(".") and k.endswith(".tmp")]


def s3_parquet(s3: Any, bucket: str, keys: list[str]) -> pa.Table:
    tables = [
        pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=k)["Body"].read())) for k in keys
    ]
    return pa.concat_tables(tables) if tables else pa.table({})


def jsonl_rows(directory: Path, names: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in names:
        rows += [json.loads(line) for line in (directory / name).read_text().splitlines()]
    return rows


def visible_files(directory: Path) -> list[str]:
    return sorted(
        p.name for p in directory.iterdir() if p.is_file() and not p.name.startswith((".", "_"))
    )


def postgres_rows(server: PostgresServer, database: str, sql: str) -> list[tuple]:
    connection = server.connect(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()
    finally:
        connection.close()


def sftp_dir(server: SftpServer) -> Path:
    directory = server.data / f"e2e-{uuid.uuid4().hex[:8]}"
    directory.mkdir()
    os.chmod(directory, 0o777)
    return directory


@pytest.fixture
def s3(moto_server: MotoServer) -> Any:
    return moto_server.client("s3")


# -- three pipelines, each run twice ---------------------------------------------------------
def test_local_csv_to_s3_parquet_to_duckdb_incrementally(
    tmp_path: Path, load: Callable[..., str], moto_server: MotoServer, s3: Any, s3_bucket: str
) -> None:
    write_orders(tmp_path / "data" / "orders-1.csv", range(1, 41), T0)
    write_orders(tmp_path / "data" / "orders-2.csv", range(41, 81), T0 + 1)
    write_recipe(
        tmp_path / "to_s3.yaml",
        {
            "name": "orders_to_s3",
            "source": {
                "type": "filestore",
                "path": "data/*.csv",
                "incremental": {"strategy": "modified_time"},
            },
            "transform": {"steps": [CAST_ORDERS]},
            "destination": {
                "type": "filestore",
                "path": f"s3://{s3_bucket}/lake/orders/",
                "format": "parquet",
                **moto_server.settings(),
            },
            "runtime": {"batch_size": 25},
        },
    )
    write_recipe(
        tmp_path / "to_duckdb.yaml",
        {
            "name": "orders_from_s3",
            "source": {
                "type": "filestore",
                "path": f"s3://{s3_bucket}/lake/orders/*.parquet",
                "incremental": {"strategy": "modified_time"},
                **moto_server.settings(),
            },
            "destination": {"type": "duckdb", "database": "warehouse.duckdb", "table": "orders"},
        },
    )
    load("to_s3.yaml")
    load("to_duckdb.yaml")
    first_keys = visible(s3_keys(s3, s3_bucket, "lake/orders/"), "lake/orders/")
    assert first_keys and all(k.endswith(".parquet") for k in first_keys)
    assert sorted_rows(s3_parquet(s3, s3_bucket, first_keys), "id") == expected_orders(range(1, 81))
    table = duckdb_table(tmp_path / "warehouse.duckdb", "orders")
    assert table.schema.field("amount").type == pa.decimal128(12, 2)
    assert sorted_rows(table, "id") == expected_orders(range(1, 81))

    # A new file: the second runs move only its rows (append: a re-read would duplicate).
    write_orders(tmp_path / "data" / "orders-3.csv", range(81, 101), T0 + 2)
    load("to_s3.yaml")
    load("to_duckdb.yaml")
    keys = visible(s3_keys(s3, s3_bucket, "lake/orders/"), "lake/orders/")
    new_keys = sorted(set(keys) - set(first_keys))
    assert set(first_keys) <= set(keys)
    assert sorted_rows(s3_parquet(s3, s3_bucket, new_keys), "id") == expected_orders(range(81, 101))
    assert temporary(s3_keys(s3, s3_bucket)) == []
    table = duckdb_table(tmp_path / "warehouse.duckdb", "orders")
    assert sorted_rows(table, "id") == expected_orders(range(1, 101))


def test_sftp_csv_to_postgres_incrementally(
    tmp_path: Path,
    load: Callable[..., str],
    sftp_server: SftpServer,
    postgres_server: PostgresServer,
    postgres_database: str,
) -> None:
    remote = sftp_dir(sftp_server)
    write_orders(remote / "orders-1.csv", range(1, 31), T0)
    write_orders(remote / "orders-2.csv", range(31, 51), T0 + 1)
    login = {k: v for k, v in sftp_server.key_settings().items() if k not in ("host", "port")}
    write_recipe(
        tmp_path / "recipe.yaml",
        {
            "name": "sftp_orders",
            "source": {
                "type": "filestore",
                "path": f"sftp://127.0.0.1:{sftp_server.port}{remote}/*.csv",
                **login,
                "incremental": {"strategy": "modified_time"},
            },
            "transform": {"steps": [CAST_ORDERS]},
            "destination": {
                "type": "postgres",
                **postgres_server.connection_settings(postgres_database),
                "table": "orders",
            },
            "runtime": {"batch_size": 20},
        },
    )
    select = "SELECT id, customer, amount, ordered_at FROM orders ORDER BY id"
    columns = ["id", "customer", "amount", "ordered_at"]
    load("recipe.yaml")
    rows = postgres_rows(postgres_server, postgres_database, select)
    assert [dict(zip(columns, row, strict=True)) for row in rows] == expected_orders(range(1, 51))

    write_orders(remote / "orders-3.csv", range(51, 61), T0 + 2)
    load("recipe.yaml")
    rows = postgres_rows(postgres_server, postgres_database, select)
    assert [dict(zip(columns, row, strict=True)) for row in rows] == expected_orders(range(1, 61))


def test_duckdb_to_sftp_jsonl_incrementally(
    tmp_path: Path, load: Callable[..., str], sftp_server: SftpServer
) -> None:
    start = datetime(2024, 5, 1, 8, 0, 0)

    def add_events(ids: range) -> None:
        con = duckdb.connect(str(tmp_path / "source.duckdb"))
        try:
            con.execute(
                "CREATE TABLE IF NOT EXISTS events (id INTEGER, updated_at TIMESTAMP, note VARCHAR)"
            )
            con.executemany(
                "INSERT INTO events VALUES (?, ?, ?)",
                [(i, start + timedelta(minutes=i), f"note {i} ü") for i in ids],
            )
        finally:
            con.close()

    remote = sftp_dir(sftp_server) / "out"
    write_recipe(
        tmp_path / "recipe.yaml",
        {
            "name": "events_to_sftp",
            "source": {
                "type": "duckdb",
                "database": "source.duckdb",
                "table": "events",
                "incremental": {"cursor_column": "updated_at"},
            },
            "destination": {
                "type": "filestore",
                "backend": "sftp",
                "path": str(remote),
                **sftp_server.password_settings(),
                "format": "jsonl",
            },
            "runtime": {"batch_size": 25},
        },
    )
    add_events(range(1, 51))
    load("recipe.yaml")
    first = visible_files(remote)
    assert first and all(n.endswith(".jsonl") for n in first)
    assert sorted(r["id"] for r in jsonl_rows(remote, first)) == list(range(1, 51))

    add_events(range(51, 66))
    load("recipe.yaml")
    files = visible_files(remote)
    new = sorted(set(files) - set(first))
    assert set(first) <= set(files)
    rows = jsonl_rows(remote, new)
    assert sorted(r["id"] for r in rows) == list(range(51, 66))  # only the new rows
    assert rows[0]["note"] == f"note {rows[0]['id']} ü"
    assert sorted(r["id"] for r in jsonl_rows(remote, files)) == list(range(1, 66))
    assert not [p.name for p in remote.iterdir() if p.name.endswith(".tmp")]


# -- kills at gates of a load into S3 ---------------------------------------------------------
KILL_FILES = 3
KILL_ROWS = 200
KILL_BATCH = 100
# Where the load is killed: a fraction of a clean run's calls, or 0 for its last call.
S3_KILL_GATES = {
    "append": [
        mid_file_gate(0.4),
        written_gate("filestore", 0.5),
        before_renames_gate(0.6),
        destination_committed_gate("filestore", 0.8),
    ],
    "overwrite": [
        written_gate("filestore", 0.3),
        mid_file_gate(0.6),
        before_renames_gate(0),
        after_commit(0),
    ],
}


@pytest.fixture(scope="module")
def kill_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("s3kill") / "data"
    for f in range(KILL_FILES):
        write_orders(
            data / f"part-{f}.csv", range(f * KILL_ROWS + 1, (f + 1) * KILL_ROWS + 1), T0 + f
        )
    return data


def _s3_kill_recipe(
    cwd: Path, data: Path, moto: MotoServer, bucket: str, prefix: str, mode: str
) -> None:
    source: dict[str, Any] = {"type": "filestore", "path": f"{os.path.relpath(data, cwd)}/*.csv"}
    if mode != "overwrite":
        source["incremental"] = {"strategy": "modified_time"}
    write_recipe(
        cwd / "recipe.yaml",
        {
            "name": "killed",
            "source": source,
            "transform": {"steps": [CAST_ORDERS]},
            "destination": {
                "type": "filestore",
                "path": f"s3://{bucket}/{prefix}",
                "format": "parquet",
                "write_mode": mode,
                "rows_per_file": 2 * KILL_BATCH,  # parts of two batches; three in the load
                **moto.settings(),
            },
            "runtime": {"batch_size": KILL_BATCH, "commit_interval_seconds": 3600},
        },
    )


@pytest.mark.parametrize("mode", ["append", "overwrite"])
def test_kill_a_load_into_s3_anywhere_then_rerun_equals_clean_run(
    tmp_path: Path,
    kill_data: Path,
    cli_env: dict,
    moto_server: MotoServer,
    s3: Any,
    s3_bucket: str,
    mode: str,
) -> None:
    args = ["run", "recipe.yaml", "--state-dir", ".state"]
    reference = tmp_path / "reference"
    reference.mkdir()
    _s3_kill_recipe(reference, kill_data, moto_server, s3_bucket, "reference/", mode)
    gates = S3_KILL_GATES[mode]
    targets = list(dict.fromkeys(gate.target for gate in gates))
    (code, out, err), counts = run_counting_cli(args, reference, cli_env, targets)
    assert code == 0, f"{out}\n{err}"
    expected_keys = visible(s3_keys(s3, s3_bucket, "reference/"), "reference/")
    expected = sorted_rows(s3_parquet(s3, s3_bucket, expected_keys), "id")
    assert expected == expected_orders(range(1, KILL_FILES * KILL_ROWS + 1))

    outcomes = []
    for n, gate in enumerate(gate.at_counts(counts) for gate in gates):
        cwd, prefix = tmp_path / f"kill-{n}", f"kill-{n}/"
        cwd.mkdir()
        _s3_kill_recipe(cwd, kill_data, moto_server, s3_bucket, prefix, mode)
        kill_at_gate(args, cwd, cli_env, gate)
        left = s3_keys(s3, s3_bucket, prefix)
        outcomes.append(
            f"{gate.name}: {len(visible(left, prefix))} visible/{len(temporary(left))} tmp"
        )

        code, out, err = run_cli(args, cwd, cli_env)
        assert code == 0, f"re-run after a kill at {gate} failed:\n{out}\n{err}"
        keys = s3_keys(s3, s3_bucket, prefix)
        got = sorted_rows(s3_parquet(s3, s3_bucket, visible(keys, prefix)), "id")
        assert len(got) == len(expected), f"kill at {gate}: {len(got)} rows"
        assert got == expected, f"kill at {gate}: rows differ from the clean run"
        assert temporary(keys) == [], f"kill at {gate} left {temporary(keys)}"
    print(f"s3/{mode}: {outcomes}")


# -- state in S3 or DynamoDB, surviving a crash ----------------------------------------------
STATE_FILES = 4
STATE_ROWS = 150
STATE_BATCH = 30


def _remote_state(kind: str, moto: MotoServer, bucket: str, name: str) -> dict[str, Any]:
    common = {**moto.settings(), "lock_ttl_seconds": 2}
    if kind == "s3":
        return {"backend": "s3", "bucket": bucket, "prefix": f"{name}/", **common}
    return {"backend": "dynamodb", "table": f"state_{name}", **common}


def _duckdb_recipe(cwd: Path, data: Path, state: dict[str, Any] | None) -> Path:
    recipe: dict[str, Any] = {
        "name": "orders",
        "source": {
            "type": "filestore",
            "path": f"{os.path.relpath(data, cwd)}/*.csv",
            "incremental": {"strategy": "modified_time"},
        },
        "transform": {"steps": [CAST_ORDERS]},
        "destination": {"type": "duckdb", "database": "out.duckdb", "table": "orders"},
        "runtime": {"batch_size": STATE_BATCH},
    }
    if state is not None:
        recipe["state"] = state
    return write_recipe(cwd / "recipe.yaml", recipe)


def _stored_state(kind: str, moto: MotoServer, state: dict[str, Any]) -> dict[str, Any]:
    if kind == "s3":
        body = moto.client("s3").get_object(
            Bucket=state["bucket"], Key=f"{state['prefix']}orders.json"
        )["Body"]
        return json.loads(body.read())
    item = moto.client("dynamodb").get_item(
        TableName=state["table"], Key={"recipe": {"S": "orders"}}, ConsistentRead=True
    )["Item"]
    return json.loads(item["state"]["S"])


@pytest.mark.parametrize("kind", ["s3", "dynamodb"])
def test_state_in_s3_or_dynamodb_survives_a_crash(
    tmp_path: Path,
    cli_env: dict,
    moto_server: MotoServer,
    s3_bucket: str,
    kind: str,
) -> None:
    data = tmp_path / "data"
    for f in range(STATE_FILES):
        write_orders(
            data / f"part-{f}.csv", range(f * STATE_ROWS + 1, (f + 1) * STATE_ROWS + 1), T0 + f
        )
    reference = tmp_path / "reference"
    reference.mkdir()
    _duckdb_recipe(reference, data, None)
    code, out, err = run_cli(["run", "recipe.yaml", "--state-dir", ".state"], reference, cli_env)
    assert code == 0, out + err
    expected = sorted_rows(duckdb_table(reference / "out.duckdb", "orders"), "id")
    assert len(expected) == STATE_FILES * STATE_ROWS

    cwd = tmp_path / "crash"
    cwd.mkdir()
    state = _remote_state(kind, moto_server, s3_bucket, f"crash{uuid.uuid4().hex[:6]}")
    _duckdb_recipe(cwd, data, state)
    gate = cwd / "gate"
    proc = popen_gated_cli(["run", "recipe.yaml"], cwd, cli_env, gate, after=2)
    wait_for_gate(proc, gate)  # two commits made, the run blocked before its third batch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = duckdb_rows(cwd / "out.duckdb", "SELECT count(*) FROM orders")[0][0]
    assert partial == 2 * STATE_BATCH
    stored = _stored_state(kind, moto_server, state)  # progress was mirrored per commit
    assert stored["watermarks"]["files"], stored

    # The killed run's lock outlives it until `lock_ttl_seconds` pass; then a re-run resumes.
    deadline = time.monotonic() + 30
    while True:
        code, out, err = run_cli(["run", "recipe.yaml"], cwd, cli_env)
        if code == 0 or "already running" not in flat(out + err):
            break
        assert time.monotonic() < deadline, "the dead run's lock never expired"
        time.sleep(0.5)
    assert code == 0, out + err
    assert sorted_rows(duckdb_table(cwd / "out.duckdb", "orders"), "id") == expected

    stored = _stored_state(kind, moto_server, state)
    files = stored["watermarks"]["files"]
    assert len(files) == STATE_FILES and all(f["complete"] for f in files.values())
    assert stored["checkpoints"][-1]["status"] == "success"

    # A third run finds nothing new.
    code, out, err = run_cli(["run", "recipe.yaml"], cwd, cli_env)
    assert code == 0, out + err
    assert duckdb_rows(cwd / "out.duckdb", "SELECT count(*) FROM orders")[0][0] == len(expected)
    assert _stored_state(kind, moto_server, state)["checkpoints"][-1]["rows_written"] == 0


# -- moving state from S3 to DynamoDB --------------------------------------------------------
def test_state_exported_from_s3_imports_into_dynamodb(
    tmp_path: Path,
    cli: Callable[..., tuple[int, str, str]],
    run_ok: Callable[..., str],
    moto_server: MotoServer,
    s3_bucket: str,
) -> None:
    data = tmp_path / "data"
    write_orders(data / "a.csv", range(1, 31), T0)
    write_orders(data / "b.csv", range(31, 51), T0 + 1)
    suffix = uuid.uuid4().hex[:6]
    s3_dir, dynamo_dir = tmp_path / "s3", tmp_path / "dynamo"
    for directory, kind in ((s3_dir, "s3"), (dynamo_dir, "dynamodb")):
        directory.mkdir()
        recipe = _duckdb_recipe(
            directory, data, _remote_state(kind, moto_server, s3_bucket, f"move{suffix}")
        )
        # Both recipes load the same DuckDB file: one pipeline, its state moving house.
        text = recipe.read_text().replace("out.duckdb", "../out.duckdb")
        recipe.write_text(text)

    run_ok("run", "recipe.yaml", cwd=s3_dir)
    assert duckdb_rows(tmp_path / "out.duckdb", "SELECT count(*) FROM orders")[0][0] == 50
    exported = run_ok("show-state", "recipe.yaml", "--json", cwd=s3_dir)
    document = json.loads(exported)
    assert len(document["watermarks"]["files"]) == 2
    (tmp_path / "state.json").write_text(exported)

    run_ok("import-state", "recipe.yaml", "../state.json", cwd=dynamo_dir)
    imported = json.loads(run_ok("show-state", "recipe.yaml", "--json", cwd=dynamo_dir))
    assert imported == document
    item = moto_server.client("dynamodb").get_item(
        TableName=f"state_move{suffix}", Key={"recipe": {"S": "orders"}}, ConsistentRead=True
    )["Item"]
    assert json.loads(item["state"]["S"])["checkpoints"] == document["checkpoints"]

    run_ok("run", "recipe.yaml", cwd=dynamo_dir)
    assert duckdb_rows(tmp_path / "out.duckdb", "SELECT count(*) FROM orders")[0][0] == 50
    after = json.loads(run_ok("show-state", "recipe.yaml", "--json", cwd=dynamo_dir))
    assert after["checkpoints"][: len(document["checkpoints"])] == document["checkpoints"]
    assert after["checkpoints"][-1]["rows_written"] == 0  # it read nothing new
    assert after["watermarks"] == document["watermarks"]
