"""What `run` and `list-connectors` print fits the terminal: captured at 80 and 120 columns,
no line is longer and no cell is cut short; counts read as English ("1 batch")."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dataloader.cli.app import _register_commands, cli
from dataloader.errors import RecipeError
from dataloader.recipe.loader import RecipeLoader

Write = Callable[[str, str], Path]


def invoke(columns: int, *args: str) -> Result:
    _register_commands()
    return CliRunner(env={"COLUMNS": str(columns)}).invoke(cli, list(args))


def assert_fits(text: str, columns: int) -> None:
    for line in text.splitlines():
        assert len(line) <= columns, f"{len(line)} > {columns}: {line!r}"
    assert "…" not in text, text


def table_rows(text: str) -> dict[str, list[str]]:
    """First cell -> the row's cells, for the rows of a rich table (wrapped rows not joined)."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("│"):
            cells = [cell.strip() for cell in line.split("│")[1:-1]]
            if cells[0]:
                rows[cells[0]] = cells
    return rows


def header(text: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith("┃"))
    return [cell.strip() for cell in line.split("┃")[1:-1]]


@pytest.fixture
def recipes(write: Write, sink: str) -> tuple[Path, Path]:
    good = write(
        "orders.yaml",
        f"""
        name: orders
        source:
          type: sequence
          stop: 5
          incremental: {{cursor_column: id}}
        destination: {{type: {sink}, table: orders}}
        """,
    )
    bad = write(
        "a_recipe_with_a_rather_long_name.yaml",
        f"""
        name: a_recipe_with_a_rather_long_name
        source: {{type: sequence, stop: 5}}
        transform:
          steps:
            - type: cast
              columns: {{label: int}}
        destination: {{type: {sink}, table: broken}}
        """,
    )
    return good, bad


@pytest.mark.parametrize("columns", [80, 120])
def test_the_run_summary_fits_the_width(
    recipes: tuple[Path, Path], tmp_path: Path, columns: int
) -> None:
    good, bad = recipes
    state = str(tmp_path / "state")

    result = invoke(columns, "run", str(good), str(bad), "--state-dir", state)

    assert result.exit_code == 1, result.output
    assert_fits(result.stdout, columns)
    names = header(result.stdout)
    assert names[:2] == ["recipe", "status"] and "rows written" in names, names
    if columns == 120:
        assert {"rows read", "batches"} <= set(names), names
    rows = table_rows(result.stdout)
    assert rows["orders"][1] == "ok"
    assert rows["orders"][names.index("rows written")] == "5"
    broken = next(cells for name, cells in rows.items() if name.startswith("a_recipe_with"))
    assert broken[1].startswith("failed:")
    assert re.search(r"^orders: \d+ rows?, 1 batch, ", result.stdout, re.M), result.stdout
    assert result.stderr.count("cannot be cast") == 1  # the error is printed once


def test_a_run_that_finds_nothing_new_says_so(recipes: tuple[Path, Path], tmp_path: Path) -> None:
    good, _ = recipes
    state = str(tmp_path / "state")
    assert invoke(80, "run", str(good), "--state-dir", state).exit_code == 0

    result = invoke(80, "run", str(good), "--state-dir", state)

    assert result.exit_code == 0, result.output
    assert table_rows(result.stdout)["orders"][1] == "ok, nothing new"


def plugin_rows(text: str) -> dict[str, list[str]]:
    """`list-connectors` rows at a narrow width (no vertical borders): name -> cells, with the
    lines of a wrapped cell joined."""
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if " name " in line and "capabilities" in line)
    starts = [lines[head].index(word) for word in lines[head].split()]
    rows: dict[str, list[str]] = {}
    current: list[str] = []
    for line in lines[head + 2 :]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        if cells[0]:
            current = cells
            rows[cells[1]] = current
        elif current:
            for index, cell in enumerate(cells):
                current[index] = f"{current[index]} {cell}".strip()
    return rows


@pytest.mark.parametrize("columns", [80, 120])
def test_list_connectors_shows_every_write_mode_whole(columns: int, sink: str) -> None:
    result = invoke(columns, "list-connectors")

    assert result.exit_code == 0, result.output
    assert_fits(result.stdout, columns)
    rows = plugin_rows(result.stdout)
    assert rows[sink][-1] == "write (append, overwrite, merge)", rows[sink]
    assert rows["sequence"][-1] == "read, incremental"
    assert rows["local"][0] == "state backend"


def test_a_missing_template_value_says_what_is_expected(
    write: Write, sink: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DL_TEST_UNSET_TABLE", raising=False)
    recipe = write(
        "templated.yaml",
        f"""
        name: templated
        source: {{type: sequence, stop: "{{{{ var('last') }}}}"}}
        destination: {{type: {sink}, table: "{{{{ env_var('DL_TEST_UNSET_TABLE') }}}}"}}
        """,
    )
    with pytest.raises(RecipeError) as info:
        RecipeLoader().load(recipe)

    text = str(info.value)
    assert "expected a value for it (export DL_TEST_UNSET_TABLE=…" in text, text
    assert "expected a value for it (--var last=…" in text, text
    assert "expected set it" not in text and "expected pass" not in text
