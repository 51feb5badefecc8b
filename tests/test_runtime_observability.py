"""What a run tells the world, through the CLI: JSON logs, secrets never shown, Prometheus
metrics, run history in `show-state`, and `run DIR -j 2` / globs with a failing recipe."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from e2e_support import CliResult, duckdb_rows, flat, write_recipe

from dataloader_postgres.testing import PostgresServer

T0 = 1_700_000_000


def write_csv(path: Path, first_id: int, rows: int, mtime: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["id,name,amount"] + [
        f"{i},name {i},{i % 50}.25" for i in range(first_id, first_id + rows)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.utime(path, (mtime, mtime))


def csv_recipe(path: Path, name: str, source_path: str, database: str, **runtime: Any) -> Path:
    return write_recipe(
        path,
        {
            "name": name,
            "source": {
                "type": "filestore",
                "path": source_path,
                "incremental": {"strategy": "modified_time"},
            },
            "transform": {"steps": [{"type": "cast", "columns": {"amount": "decimal(10,2)"}}]},
            "destination": {"type": "duckdb", "database": database, "table": "t"},
            "runtime": {"batch_size": 100, **runtime},
        },
    )


def json_records(stderr: str) -> list[dict[str, Any]]:
    """Every stderr line as a JSON log record; fails on any line that is not one."""
    records = []
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"stderr line is not JSON: {line!r}\nstderr:\n{stderr}")
        assert isinstance(record, dict), line
        missing = {"time", "level", "recipe", "run_id", "message"} - record.keys()
        assert not missing, f"{sorted(missing)} missing from {line}"
        datetime.fromisoformat(record["time"])
        assert record["level"] in {"debug", "info", "warning", "error", "critical"}
        records.append(record)
    return records


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def prometheus_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample; checks each family is declared before use."""
    typed: set[str] = set()
    samples = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind == "gauge", line
            typed.add(name)
            continue
        if line.startswith("# HELP ") or not line.strip():
            continue
        match = SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        name, labels_text, value = match.groups()
        labels = dict(LABEL.findall(labels_text))
        assert ",".join(f'{k}="{v}"' for k, v in labels.items()) == labels_text, line
        assert name in typed, f"{name} has no # TYPE line before its samples"
        samples.append((name, labels, float(value)))
    return samples


# -- JSON logs, metrics file, run history ---------------------------------------------------
def test_json_logs_metrics_file_and_run_history(
    tmp_path: Path, cli: Callable[..., CliResult], run_ok: Callable[..., str]
) -> None:
    write_csv(tmp_path / "in" / "a.csv", 0, 250, T0)
    write_csv(tmp_path / "in" / "b.csv", 250, 250, T0 + 1)
    csv_recipe(tmp_path / "orders.yaml", "orders", "in/*.csv", "out.duckdb", parallelism=2)
    run = ("--log-format", "json", "--log-level", "info", "run", "orders.yaml")
    state = ("--state-dir", ".state")

    code, _, err = cli(*run, *state)
    assert code == 0, err
    first = json_records(err)
    write_csv(tmp_path / "in" / "c.csv", 500, 120, T0 + 2)
    code, _, err = cli(*run, *state, "--metrics-file", "metrics/m.prom")
    assert code == 0, err
    second = json_records(err)

    for records, rows in ((first, 500), (second, 120)):
        assert {r["recipe"] for r in records} == {"orders"}
        assert len({r["run_id"] for r in records}) == 1
        started = [r for r in records if r["message"] == "run started"]
        finished = [r for r in records if r["message"] == "run finished"]
        assert len(started) == len(finished) == 1, records
        assert started[0]["stage"] == "plan"
        assert started[0]["counts"]["source"] == "filestore"
        assert started[0]["counts"]["destination"] == "duckdb"
        assert finished[0]["stage"] == "done"
        assert finished[0]["counts"]["rows_written"] == rows
        assert finished[0]["counts"]["commits"] >= 1
        assert all(r["level"] == "info" for r in records)  # debug records stay out
    run_ids = [first[0]["run_id"], second[0]["run_id"]]
    assert run_ids[0] != run_ids[1]

    # The metrics file: Prometheus text of the second run.
    samples = prometheus_samples((tmp_path / "metrics" / "m.prom").read_text(encoding="utf-8"))
    assert samples and all(labels.get("recipe") == "orders" for _, labels, _ in samples)
    value = {(name, labels.get("stage")): v for name, labels, v in samples}
    assert value[("dataloader_run_success", None)] == 1
    assert value[("dataloader_run_rows_written", None)] == 120
    assert value[("dataloader_run_commits", None)] >= 1
    assert value[("dataloader_run_duration_seconds", None)] > 0
    stages = {labels["stage"] for name, labels, _ in samples if name == "dataloader_stage_rows"}
    assert {"read", "transform", "write", "commit"} <= stages
    assert value[("dataloader_stage_rows", "read")] == 120
    assert value[("dataloader_stage_rows", "write")] == 120
    assert value[("dataloader_stage_batches", "commit")] >= 1
    assert value[("dataloader_stage_retries", "write")] == 0
    assert not list((tmp_path / "metrics").glob(".*.tmp"))  # written atomically, no leftovers

    # The run history is kept in the state: show-state lists both runs.
    shown = run_ok("show-state", "orders.yaml", *state)
    for run_id in run_ids:
        assert run_id in shown, shown
    document = json.loads(run_ok("show-state", "orders.yaml", *state, "--json"))
    history = document["checkpoints"]
    assert [entry["run_id"] for entry in history] == run_ids
    assert [entry["rows_written"] for entry in history] == [500, 120]
    assert {entry["status"] for entry in history} == {"success"}


# -- secrets never shown ------------------------------------------------------------------------
MARKER = "Zq8-marker-" + uuid.uuid4().hex[:12]


@pytest.fixture
def marker_role(postgres_server: PostgresServer, postgres_database: str) -> Iterator[str]:
    """A role whose password is MARKER, owning the test database and its `events` table."""
    role = f"marker_{uuid.uuid4().hex[:8]}"
    connection = postgres_server.connect(postgres_database)
    connection.autocommit = True
    cursor = connection.cursor()
    try:
        cursor.execute(f"CREATE ROLE {role} LOGIN PASSWORD %s", (MARKER,))
        cursor.execute(f'ALTER DATABASE "{postgres_database}" OWNER TO {role}')
        cursor.execute(
            "CREATE TABLE events AS SELECT i AS id, 'event ' || i AS note, "
            "timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute' AS updated_at "
            "FROM generate_series(1, 300) i"
        )
        cursor.execute(f"ALTER TABLE events OWNER TO {role}")
        yield role
    finally:
        connection.close()


def test_the_password_never_appears_in_output_logs_or_state(
    tmp_path: Path,
    cli: Callable[..., CliResult],
    postgres_server: PostgresServer,
    postgres_database: str,
    marker_role: str,
) -> None:
    keys = {
        "host": "127.0.0.1",
        "port": postgres_server.port,
        "database": postgres_database,
        "user": marker_role,
        "password": MARKER,
    }
    url = (
        f"postgresql://{marker_role}:{MARKER}@127.0.0.1:{postgres_server.port}/{postgres_database}"
    )
    write_recipe(
        tmp_path / "ok.yaml",
        {
            "name": "secret_ok",
            "source": {
                "type": "postgres",
                **keys,
                "table": "events",
                "incremental": {"cursor_column": "updated_at"},
            },
            "destination": {"type": "postgres", "url": url, "table": "copied"},
            "runtime": {"batch_size": 100},
        },
    )
    write_recipe(
        tmp_path / "bad.yaml",
        {
            "name": "secret_bad",
            "source": {"type": "postgres", "url": url, "table": "no_such_table"},
            "destination": {"type": "postgres", **keys, "table": "copied_bad"},
            "runtime": {"retries": 0},
        },
    )
    outputs: list[tuple[str, str]] = []

    def check(args: tuple[str, ...], expected_code: int) -> tuple[str, str]:
        code, out, err = cli(*args)
        outputs.append((out, err))
        assert code == expected_code, f"{args}: exit {code}\n{out}\n{err}"
        assert MARKER not in out and MARKER not in err, f"{args} printed the password"
        return out, err

    state = ("--state-dir", ".state")
    for fmt in ("plain", "json"):
        logging = ("--log-level", "debug", "--log-format", fmt)
        _, err = check((*logging, "run", "ok.yaml", *state), 0)
        if fmt == "json":
            records = json_records(err)
            assert any(r["message"] == "committed" for r in records)  # debug records are on
        _, err = check((*logging, "run", "bad.yaml", *state), 1)
        assert "no_such_table" in flat(err)
        assert "does not exist" in flat(err)
        assert flat(err).count("does not exist") == 1  # the failure is reported once
        if fmt == "json":
            # Every line is a JSON record, the engine's report of the failure last.
            records = json_records(err)
            report = records[-1]
            assert report["logger"] == "dataloader.engine" and report["level"] == "error"
            assert report["exit_code"] == 1 and report["error"].endswith("Error")
            assert "no_such_table" in report["message"]
        else:
            assert "run failed in" in err
    rows = postgres_server.connect(postgres_database)
    try:
        cursor = rows.cursor()
        cursor.execute("SELECT count(*) FROM copied")
        assert cursor.fetchone() == (300,)  # the good recipe really ran
        cursor.execute("SELECT state::text FROM _dataloader_state")
        assert all(MARKER not in row[0] for row in cursor.fetchall())
    finally:
        rows.close()

    rendered, _ = check(("render", "ok.yaml"), 0)
    assert "***" in rendered and marker_role in rendered
    check(("render", "bad.yaml", "--format", "json"), 0)
    check(("validate", "ok.yaml", "bad.yaml"), 0)
    check(("show-state", "ok.yaml", *state), 0)

    state_files = [p for p in (tmp_path / ".state").rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" for p in state_files)
    for path in state_files:
        assert MARKER.encode() not in path.read_bytes(), f"{path.name} holds the password"
    assert len(outputs) == 8


# -- several recipes at once ---------------------------------------------------------------------
def test_run_directory_concurrently_with_one_failing_recipe(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    write_csv(tmp_path / "in" / "a.csv", 0, 300, T0)
    write_csv(tmp_path / "in2" / "b.csv", 1000, 200, T0)
    recipes = tmp_path / "recipes"
    csv_recipe(recipes / "first.yaml", "first", "in/*.csv", "first.duckdb")
    csv_recipe(recipes / "second.yaml", "second", "in2/*.csv", "second.duckdb")
    csv_recipe(recipes / "broken.yaml", "broken", "missing_dir/data.csv", "broken.duckdb")
    (recipes / "notes.txt").write_text("not a recipe", encoding="utf-8")

    code, out, err = cli("run", "recipes", "-j", "2", "--state-dir", ".state")

    assert code == 1, f"exit {code}\n{out}\n{err}"
    assert duckdb_rows(tmp_path / "first.duckdb", "SELECT count(*) FROM t") == [(300,)]
    assert duckdb_rows(tmp_path / "second.duckdb", "SELECT count(*) FROM t") == [(200,)]
    assert "does not exist" in flat(err) and "missing_dir" in flat(err)
    assert flat(err).count("does not exist") == 1  # the error is printed once
    table = out[out.index("Run summary") :]
    rows = {  # first cell (the recipe's name) -> the other cells
        cells[1].strip(): [cell.strip() for cell in cells[2:]]
        for cells in (line.split("│") for line in table.splitlines() if line.startswith("│"))
    }
    assert set(rows) == {"first", "second", "broken"}, rows
    assert rows["first"][:3] == ["ok", "300", "300"]
    assert rows["second"][:3] == ["ok", "200", "200"]
    assert rows["broken"][:3] == ["failed: ConnectorError", "0", "0"]
    assert "notes" not in table


def test_run_with_a_glob_runs_the_matching_recipes(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    write_csv(tmp_path / "in" / "a.csv", 0, 50, T0)
    recipes = tmp_path / "recipes"
    csv_recipe(recipes / "load_one.yaml", "load_one", "in/*.csv", "one.duckdb")
    csv_recipe(recipes / "load_two.yaml", "load_two", "in/*.csv", "two.duckdb")
    csv_recipe(recipes / "other.yaml", "other", "in/*.csv", "other.duckdb")

    code, out, err = cli("run", "recipes/load_*.yaml", "--state-dir", ".state")

    assert code == 0, f"exit {code}\n{out}\n{err}"
    assert duckdb_rows(tmp_path / "one.duckdb", "SELECT count(*) FROM t") == [(50,)]
    assert duckdb_rows(tmp_path / "two.duckdb", "SELECT count(*) FROM t") == [(50,)]
    assert not (tmp_path / "other.duckdb").exists()
    assert "load_one" in out and "load_two" in out and "other" not in out

    code, out, err = cli("run", "recipes/nothing_*.yaml", "--state-dir", ".state")
    assert code == 2, f"exit {code}\n{out}\n{err}"
    assert "no recipe matches" in flat(err)
