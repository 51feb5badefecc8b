"""The state commands on a destination that keeps its own state (DuckDB): `import-state`
checks the document and writes it where the run reads it, `show-state` prints values as a
recipe writes them, `reset-state` says what it forgot and that the rows stay."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from e2e_support import CliResult, duckdb_rows, flat, write_recipe

Cli = Callable[..., CliResult]
ROWS = 250


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    """`ts.yaml` (a timestamptz cursor) and `ns.yaml` (a nanosecond timestamp cursor), from a
    DuckDB table of 250 rows a minute (and a second) apart, merged into another DuckDB file."""
    con = duckdb.connect(str(tmp_path / "src.duckdb"))
    con.execute(
        "CREATE TABLE ev AS SELECT i AS id, "
        "TIMESTAMPTZ '2024-06-01 10:00:00+00' + i * INTERVAL 1 MINUTE AS updated_at, "
        "TIMESTAMP_NS '2024-06-01 10:00:00.123456789' + i * INTERVAL 1 SECOND AS ns "
        f"FROM range({ROWS}) t(i)"
    )
    con.close()
    for name, column in (("ts", "updated_at"), ("ns", "ns")):
        write_recipe(
            tmp_path / f"{name}.yaml",
            {
                "name": name,
                "source": {
                    "type": "duckdb",
                    "database": "src.duckdb",
                    "table": "ev",
                    "incremental": {"cursor_column": column},
                },
                "destination": {
                    "type": "duckdb",
                    "database": "out.duckdb",
                    "table": name,
                    "write_mode": "merge",
                    "merge_keys": ["id"],
                },
                "runtime": {"batch_size": 100},
            },
        )
    return tmp_path


def state_cmd(cli: Cli, *args: str) -> CliResult:
    return cli(*args, "--state-dir", ".state")


def test_import_state_takes_effect_on_a_destination_that_keeps_the_state(
    recipes: Path, cli: Cli, load: Callable[..., str], show_state: Callable[..., dict]
) -> None:
    load("ts.yaml")
    (recipes / "back.json").write_text(
        json.dumps({"cursor_values": {"updated_at": "2024-06-01T12:00:00+00:00"}}),
        encoding="utf-8",
    )

    code, out, err = state_cmd(cli, "import-state", "ts.yaml", "back.json")

    assert code == 0, out + err
    assert str(Path(".state") / "ts.json") in out and "duckdb destination's state record" in out
    assert "LocalStateBackend" not in out
    cursor = show_state("ts.yaml")["cursor_values"]["updated_at"]
    assert cursor["$datetime"] == "2024-06-01T12:00:00.000000+00:00"
    code, out, err = state_cmd(cli, "show-state", "ts.yaml")
    assert "updated_at = 2024-06-01T12:00:00+00:00" in out, out
    assert "datetime.datetime" not in out

    out = load("ts.yaml")  # reads from the imported cursor on, not from the committed one
    row = next(line for line in out.splitlines() if line.startswith("│ ts "))
    rows_read = int(row.split("│")[3].strip().replace(",", ""))
    assert 129 <= rows_read <= 130, out  # rows after 12:00 (and at it, for a tie check)
    assert duckdb_rows(recipes / "out.duckdb", "SELECT count(*) FROM ts") == [(ROWS,)]
    cursor = show_state("ts.yaml")["cursor_values"]["updated_at"]
    assert cursor["$datetime"] == "2024-06-01T14:09:00.000000+00:00"


def test_import_state_reads_an_iso_text_as_a_nanosecond_cursor(
    recipes: Path, cli: Cli, load: Callable[..., str]
) -> None:
    load("ns.yaml")
    (recipes / "ns.json").write_text(
        json.dumps({"cursor_values": {"ns": "2024-06-01T10:02:00.000000001"}}), encoding="utf-8"
    )
    code, out, err = state_cmd(cli, "import-state", "ns.yaml", "ns.json")
    assert code == 0, out + err

    code, out, err = state_cmd(cli, "show-state", "ns.yaml")
    assert "ns = 2024-06-01T10:02:00.000000001" in out, out
    assert "NanoTimestamp" not in out


@pytest.mark.parametrize(
    ("document", "says"),
    [
        (
            '{"cursor_values": {"id": 5}}',
            "ts.json:cursor_values.id: not the recipe's cursor column",
        ),
        (
            '{"cursor_values": {"updated_at": "yesterday"}}',
            "ts.json:cursor_values.updated_at",
        ),
        (
            '{"cursor_values": {"updated_at": 1717236000}}',
            "a int, but the cursor is a timestamp",
        ),
        ('{"cursor_value": {}}', "ts.json:cursor_value: unknown key"),
        ('{"cursor_values": ', "invalid JSON at line 1"),
        ("[1, 2]", "not an object"),
    ],
)
def test_an_invalid_state_document_exits_2_and_changes_nothing(
    recipes: Path, cli: Cli, load: Callable[..., str], document: str, says: str
) -> None:
    load("ts.yaml")
    before = (recipes / ".state" / "ts.json").read_text(encoding="utf-8")
    (recipes / "ts.json").write_text(document, encoding="utf-8")

    code, out, err = state_cmd(cli, "import-state", "ts.yaml", "ts.json")

    assert code == 2, out + err
    assert says in flat(err), err
    assert "Traceback" not in err
    assert (recipes / ".state" / "ts.json").read_text(encoding="utf-8") == before


def test_reset_state_says_what_it_forgot_and_that_the_rows_stay(
    recipes: Path, cli: Cli, load: Callable[..., str]
) -> None:
    load("ts.yaml")

    code, out, err = state_cmd(cli, "reset-state", "ts.yaml")

    assert code == 0, out + err
    text = flat(out)
    assert "forgot updated_at = 2024-06-01T14:09:00+00:00" in text, text
    assert "the history of 1 run" in text
    assert str(Path(".state") / "ts.json") in text and "destination's state record" in text
    assert "The destination's rows stay" in text
    assert duckdb_rows(recipes / "out.duckdb", "SELECT count(*) FROM ts") == [(ROWS,)]
