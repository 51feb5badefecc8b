"""`schema show`, `schema history` and `preview` through the CLI, CSV/JSONL files into DuckDB;
the run summary, `show-state` and the metrics file count rows quarantined and dropped and
schema changes. Human output is captured at 80 columns and must fit."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from test_cli_output import assert_fits as fits
from test_cli_output import table_rows

from dataloader.cli.app import _register_commands, cli

Write = Callable[[str, str], Path]
COLUMNS = 80


def invoke(*args: str, columns: int = COLUMNS) -> Result:
    _register_commands()
    return CliRunner(env={"COLUMNS": str(columns)}).invoke(cli, list(args))


def assert_fits(text: str) -> None:
    fits(text, COLUMNS)


def header(text: str, after: str = "") -> list[str]:
    """The header cells of the first rich table after the line containing `after`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if after in line)
    line = next(line for line in lines[start:] if line.startswith("┃"))
    return [cell.strip() for cell in line.split("┃")[1:-1]]


def files_under(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def orders(write: Write, tmp_path: Path) -> Path:
    """A recipe loading `data/orders.csv` into DuckDB table `orders`, appending each run."""
    (tmp_path / "data").mkdir()
    return write(
        "orders.yaml",
        f"""
        name: orders
        source: {{type: filestore, path: "{tmp_path / "data" / "orders.csv"}"}}
        destination: {{type: duckdb, database: "{tmp_path / "wh.duckdb"}", table: orders}}
        """,
    )


def run(recipe: Path, state: Path, *extra: str, columns: int = COLUMNS) -> Result:
    result = invoke("run", str(recipe), "--state-dir", str(state), *extra, columns=columns)
    assert result.exit_code == 0, result.output
    return result


def test_schema_show_and_history_explain_a_column_added_and_a_type_widened(
    orders: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    data = tmp_path / "data" / "orders.csv"
    data.write_text("id,qty\n1,2\n2,3\n", encoding="utf-8")
    run(orders, state)
    data.write_text("id,qty,email\n3,3.5,c@example.org\n", encoding="utf-8")
    second = run(orders, state, columns=200)  # wide enough for every summary column
    names = header(second.stdout, "Run summary")
    assert table_rows(second.stdout)["orders"][names.index("schema changes")] == "2"

    shown = invoke("schema", "show", str(orders), "--state-dir", str(state))
    assert shown.exit_code == 0, shown.output
    assert_fits(shown.stdout)
    assert "schema version 2" in " ".join(shown.stdout.split())
    rows = table_rows(shown.stdout)
    assert header(shown.stdout) == ["column", "type", "nullable", "key", "origin"]
    assert rows["id"][1:] == ["int", "yes", "", "inferred in version 1"]
    assert rows["qty"][1].startswith("decimal(") and rows["qty"][-1] == "inferred in version 1"
    assert rows["email"][1:] == ["string", "yes", "", "inferred in version 2"]

    document = json.loads(
        invoke("schema", "show", str(orders), "--state-dir", str(state), "--json").stdout
    )
    assert document["recipe"] == "orders" and document["version"] == 2
    types = {column["name"]: column["type"] for column in document["columns"]}
    assert list(types) == ["id", "qty", "email"]
    assert types["id"] == "int" and types["email"] == "string"
    assert types["qty"] == rows["qty"][1]

    history = invoke("schema", "history", str(orders), "--state-dir", str(state))
    assert history.exit_code == 0, history.output
    assert_fits(history.stdout)
    text = " ".join(history.stdout.split())  # wrapped lines joined
    assert "2 schema versions" in text
    assert "create id: int (first seen in the rows; e.g. 1)" in text
    assert f"widen_type qty: int → {types['qty']} (" in text and "e.g. 3.5)" in text
    assert "add_column email: string (new column in the rows; e.g. c@example.org)" in text
    assert text.index("version 1 ·") < text.index("create id") < text.index("version 2 ·")

    versions = json.loads(
        invoke("schema", "history", str(orders), "--state-dir", str(state), "--json").stdout
    )["versions"]
    assert [version["version"] for version in versions] == [1, 2]
    changes = {change["column"]: change for change in versions[1]["changes"]}
    assert changes["qty"]["kind"] == "widen_type" and changes["qty"]["before"] == "int"
    assert changes["qty"]["after"] == types["qty"] and changes["qty"]["sample"] == "3.5"
    assert changes["email"]["kind"] == "add_column" and changes["email"]["before"] is None
    stored = json.loads(
        invoke("show-state", str(orders), "--state-dir", str(state), "--json").stdout
    )
    assert [v["run_id"] for v in versions] == [r["run_id"] for r in stored["checkpoints"]]
    assert [r["schema_changes"] for r in stored["checkpoints"]] == [2, 2]


def test_schema_commands_before_any_run_say_there_is_no_history(
    orders: Path, tmp_path: Path
) -> None:
    state = str(tmp_path / "state")
    for command in ("show", "history"):
        result = invoke("schema", command, str(orders), "--state-dir", state)
        assert result.exit_code == 0, result.output
        assert_fits(result.stdout)
        assert "no schema recorded yet" in result.stdout
    shown = json.loads(invoke("schema", "show", str(orders), "--state-dir", state, "--json").stdout)
    assert shown == {"recipe": "orders", "version": None, "run_id": None, "at": None, "columns": []}
    history = invoke("schema", "history", str(orders), "--state-dir", state, "--json")
    assert json.loads(history.stdout) == {"recipe": "orders", "versions": []}


def test_preview_shows_the_inferred_schema_and_rows_and_writes_nothing(
    write: Write, tmp_path: Path
) -> None:
    (tmp_path / "events.jsonl").write_text(
        "\n".join(
            json.dumps(row)
            for row in [
                {"id": 1, "name": "a", "at": "2024-06-01T10:00:00+02:00", "tags": ["x"]},
                {"id": 2, "name": "b", "at": "2024-06-02T10:00:00+02:00", "tags": []},
                {"id": 3, "name": "c", "at": "2024-06-03T10:00:00+02:00", "tags": ["y"]},
            ]
        ),
        encoding="utf-8",
    )
    recipe = write(
        "events.yaml",
        f"""
        name: events
        source: {{type: filestore, path: "{tmp_path / "events.jsonl"}"}}
        transform:
          steps:
            - {{type: rename_columns, mapping: {{name: label}}}}
        destination: {{type: duckdb, database: "{tmp_path / "wh.duckdb"}", table: events}}
        """,
    )
    before = files_under(tmp_path)

    result = invoke("preview", str(recipe), "--rows", "2", "--state-dir", str(tmp_path / "s"))

    assert result.exit_code == 0, result.output
    assert_fits(result.stdout)
    assert "table events, as a run would create it" in result.stdout
    schema = table_rows(result.stdout.split("first 2 rows")[0])
    assert schema["id"][1:4] == ["int", "yes", ""]
    assert schema["label"][1] == "string" and "name" not in schema
    assert schema["at"][1] == "timestamptz"
    assert schema["tags"][1] == "list<string>"
    rows = table_rows(result.stdout.split("first 2 rows")[1])
    assert header(result.stdout, "first 2 rows") == ["id", "label", "at", "tags"]
    assert rows["1"][1:] == ["a", "2024-06-01T08:00:00+00:00", '["x"]']
    assert set(rows) == {"1", "2"}
    assert files_under(tmp_path) == before  # no database, no state, no lock file


def test_preview_plans_against_the_recorded_table(orders: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    data = tmp_path / "data" / "orders.csv"
    data.write_text("id,qty\n1,2\n", encoding="utf-8")
    run(orders, state)
    data.write_text("id,qty,email\n3,3.5,c@example.org\n", encoding="utf-8")
    before = files_under(tmp_path)

    result = invoke("preview", str(orders), "--state-dir", str(state))

    assert result.exit_code == 0, result.output
    assert_fits(result.stdout)
    assert "table orders, as a run would change it" in result.stdout
    schema = table_rows(result.stdout.split("first 1 row")[0])
    assert schema["id"][-1] == "" and schema["email"][-1] == "added"
    assert schema["qty"][1].startswith("decimal(") and schema["qty"][-1] == "was int"
    assert "widen_type qty: int → decimal(" in result.stdout
    assert files_under(tmp_path) == before


def test_preview_shows_many_columns_one_row_at_a_time(write: Write, tmp_path: Path) -> None:
    row = {f"column_{i}": f"value {i}" for i in range(8)}
    (tmp_path / "wide.jsonl").write_text(json.dumps(row), encoding="utf-8")
    recipe = write(
        "wide.yaml",
        f"""
        name: wide
        source: {{type: filestore, path: "{tmp_path / "wide.jsonl"}"}}
        destination: {{type: duckdb, database: "{tmp_path / "wh.duckdb"}", table: wide}}
        """,
    )
    result = invoke("preview", str(recipe), "--state-dir", str(tmp_path / "s"))

    assert result.exit_code == 0, result.output
    assert_fits(result.stdout)
    assert "column_7 : value 7" in result.stdout


def test_rows_quarantined_and_dropped_in_summary_show_state_and_metrics(
    write: Write, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # One file per batch: a.csv breaks qty's type (quarantined), b.csv name's NOT NULL (dropped).
    (data / "a.csv").write_text("id,qty,name\n1,2,a\n2,3.5,b\n", encoding="utf-8")
    (data / "b.csv").write_text("id,qty,name\n3,4,\n4,5,d\n", encoding="utf-8")
    recipe = write(
        "q.yaml",
        f"""
        name: q
        source: {{type: filestore, path: "{data}"}}
        schema:
          columns:
            - {{name: qty, type: int, on_violation: quarantine}}
            - {{name: name, nullable: false, on_violation: drop}}
        destination: {{type: duckdb, database: "{tmp_path / "wh.duckdb"}", table: q}}
        """,
    )
    state = tmp_path / "state"
    metrics = tmp_path / "metrics.prom"

    result = run(recipe, state, "--metrics-file", str(metrics))

    assert_fits(result.stdout)
    names = header(result.stdout, "Run summary")
    cells = table_rows(result.stdout)["q"]
    assert cells[names.index("rows written")] == "2"
    assert cells[names.index("quarantined")] == "1"
    assert cells[names.index("dropped")] == "1"
    text = metrics.read_text(encoding="utf-8")
    assert 'dataloader_run_rows_quarantined{recipe="q"} 1' in text
    assert 'dataloader_run_rows_dropped{recipe="q"} 1' in text
    assert 'dataloader_run_schema_changes{recipe="q"} 3' in text

    shown = invoke("show-state", str(recipe), "--state-dir", str(state))
    assert shown.exit_code == 0, shown.output
    assert_fits(shown.stdout)
    assert "schema: version 1, 3 columns" in shown.stdout
    names = header(shown.stdout, "last runs")
    run_row = next(iter(table_rows(shown.stdout).values()))
    assert run_row[names.index("quarantined")] == "1"
    assert run_row[names.index("dropped")] == "1"
    document = json.loads(
        invoke("show-state", str(recipe), "--state-dir", str(state), "--json").stdout
    )
    last = document["checkpoints"][-1]
    assert (last["rows_quarantined"], last["rows_dropped"]) == (1, 1)


def test_a_run_without_contract_counts_shows_no_contract_columns(
    orders: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    (tmp_path / "data" / "orders.csv").write_text("id\n1\n", encoding="utf-8")
    run(orders, state)
    (tmp_path / "data" / "orders.csv").write_text("id\n2\n", encoding="utf-8")

    result = run(orders, state)

    names = header(result.stdout, "Run summary")
    assert not {"quarantined", "dropped", "schema changes"} & set(names), names


def test_history_shows_the_columns_an_overwrite_dropped(orders: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    data = tmp_path / "data" / "orders.csv"
    data.write_text("id,qty\n1,2\n", encoding="utf-8")
    run(orders, state)
    data.write_text("id,email\n2,b@example.org\n", encoding="utf-8")
    run(orders, state, "--full-refresh")

    history = invoke("schema", "history", str(orders), "--state-dir", str(state))

    assert history.exit_code == 0, history.output
    assert_fits(history.stdout)
    version_2 = " ".join(history.stdout.split("version 2 ·")[1].split())
    assert "drop_column qty: was int (the table was replaced by an overwrite)" in version_2
    assert "email: string" in version_2
    shown = table_rows(invoke("schema", "show", str(orders), "--state-dir", str(state)).stdout)
    assert list(shown) == ["id", "email"]


def test_schema_show_reads_the_state_backend_when_the_destination_keeps_no_state(
    write: Write, sink: str, tmp_path: Path
) -> None:
    recipe = write(
        "numbers.yaml",
        f"""
        name: numbers
        source: {{type: sequence, stop: 3}}
        destination: {{type: {sink}, table: numbers}}
        """,
    )
    state = tmp_path / "state"
    run(recipe, state)

    shown = invoke("schema", "show", str(recipe), "--state-dir", str(state))

    assert shown.exit_code == 0, shown.output
    assert_fits(shown.stdout)
    text = "".join(shown.stdout.split())  # a long path is cut where the line ends
    assert "schemaversion1" in text and f"(from{state / 'numbers.json'})" in text
    assert table_rows(shown.stdout)["id"][1:] == ["int", "yes", "", "inferred in version 1"]


def test_preview_counts_the_rows_a_run_would_quarantine(write: Write, tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("id,qty\n1,2\n2,3.5\n3,4\n", encoding="utf-8")
    recipe = write(
        "lenient.yaml",
        f"""
        name: lenient
        source: {{type: filestore, path: "{tmp_path / "d.csv"}"}}
        schema:
          mode: lenient
          on_violation: quarantine
          columns: [{{name: qty, type: int}}]
        destination: {{type: duckdb, database: "{tmp_path / "wh.duckdb"}", table: lenient}}
        """,
    )
    before = files_under(tmp_path)

    result = invoke("preview", str(recipe), "--state-dir", str(tmp_path / "s"))

    assert result.exit_code == 0, result.output
    assert_fits(result.stdout)
    assert set(table_rows(result.stdout.split("first 2 rows")[1])) == {"1", "3"}
    text = " ".join(result.stdout.split())
    assert "1 row read breaks the schema contract (not shown): a run would quarantine 1" in text
    assert files_under(tmp_path) == before


def test_preview_shows_the_table_tree_of_nested_records(write: Write, tmp_path: Path) -> None:
    records = [
        {"id": 1, "address": {"city": "Lyon"}, "orders": [{"sku": "a", "items": [1, 2]}]},
        {"id": 2, "address": None, "orders": [{"sku": "b", "items": []}, {"sku": "c"}]},
        {"id": 1, "address": {"city": "Nice"}, "orders": []},
    ]
    (tmp_path / "c.jsonl").write_text("\n".join(map(json.dumps, records)), encoding="utf-8")
    recipe = write(
        "c.yaml",
        f"""
        name: c
        source: {{type: filestore, path: "{tmp_path / "c.jsonl"}"}}
        destination:
          type: duckdb
          database: "{tmp_path / "wh.duckdb"}"
          table: customers
          write_mode: merge
          merge_keys: [id]
        normalization: {{enabled: true}}
        """,
    )
    before = files_under(tmp_path)

    result = invoke("preview", str(recipe), "--state-dir", str(tmp_path / "s"))

    assert result.exit_code == 0, result.output
    assert_fits(result.stdout)
    lines = result.stdout.splitlines()
    tree = lines[1 : lines.index(next(line for line in lines if line.startswith("keys:")))]
    # a merge keeps the row of id 1 read last: its empty list has no orders
    assert tree == [
        "  customers: 2 rows",
        "    customers__orders: 2 rows",
        "      customers__orders__items: 0 rows",
    ]
    orders = table_rows(result.stdout.split("table customers__orders,")[1].split("table ")[0])
    assert orders["sku"][1] == "string" and orders["_dl_id"][1] == "uuid"
    assert [orders[key][3] for key in ("_dl_id", "_dl_parent_id", "_dl_list_idx")] == [
        "row id",
        "parent id",
        "position",
    ]
    root = table_rows(result.stdout.split("first 2 rows")[0].split("table customers,")[1])
    assert "address__city" in root and "orders" not in root
    assert files_under(tmp_path) == before


def test_schema_commands_show_a_child_tables_schema_and_history(
    write: Write, tmp_path: Path
) -> None:
    data = tmp_path / "c.jsonl"
    data.write_text(json.dumps({"id": 1, "orders": [{"sku": "a"}]}) + "\n", encoding="utf-8")
    recipe = write(
        "c.yaml",
        f"""
        name: c
        source: {{type: filestore, path: "{data}"}}
        destination: {{type: duckdb, database: "{tmp_path / "wh.duckdb"}", table: customers}}
        normalization: {{}}
        """,
    )
    state = tmp_path / "state"
    summary = run(recipe, state).stdout
    assert_fits(summary)
    assert "child rows" in header(summary, "Run summary")
    data.write_text(json.dumps({"id": 2, "orders": [{"sku": "b", "qty": 2}]}), encoding="utf-8")
    run(recipe, state)

    shown = invoke("schema", "show", str(recipe), "--state-dir", str(state))
    assert shown.exit_code == 0, shown.output
    assert_fits(shown.stdout)
    assert "child tables (--table NAME): customers__orders" in " ".join(shown.stdout.split())

    child = invoke(
        "schema",
        "show",
        str(recipe),
        "--state-dir",
        str(state),
        "--table",
        "customers__orders",
        "--json",
    )
    document = json.loads(child.stdout)
    assert document["table"] == "customers__orders" and document["version"] == 2
    assert [c["name"] for c in document["columns"]][:2] == ["sku", "_dl_id"]
    assert document["columns"][-1]["name"] == "qty"

    history = invoke(
        "schema", "history", str(recipe), "--state-dir", str(state), "--table", "customers__orders"
    )
    assert history.exit_code == 0, history.output
    assert_fits(history.stdout)
    assert "add_column qty: int" in history.stdout

    unknown = invoke("schema", "history", str(recipe), "--state-dir", str(state), "--table", "nope")
    assert unknown.exit_code == 2 and "child tables: customers__orders" in unknown.output
