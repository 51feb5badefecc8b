"""The CLI in a subprocess: --version, list-connectors, validate and render."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

Write = Callable[[str, str], Path]
RunCli = Callable[..., Any]

VALID = """
    name: orders
    source:
      type: sequence
      stop: 10
    destination:
      type: memory_sink
      table: orders
"""


def output(result: Any) -> str:
    return result.stdout + result.stderr


def assert_clean_failure(result: Any) -> str:
    """Exit code 2, no traceback; returns stdout+stderr."""
    text = output(result)
    assert result.returncode == 2, text
    assert "Traceback" not in text
    return text


def problem_lines(result: Any) -> list[str]:
    """The indented problem lines `validate` prints under a failing recipe."""
    return [line.strip() for line in result.stdout.splitlines() if line.startswith("    ")]


# -- version and listing ----------------------------------------------------------------------
def test_version(run_cli: RunCli) -> None:
    result = run_cli("--version", module=True)
    assert result.returncode == 0, output(result)
    assert result.stdout.strip() == f"dataloader, version {metadata.version('dataloader-core')}"


def test_list_connectors_json(run_cli: RunCli) -> None:
    result = run_cli("list-connectors", "--json", module=True)
    assert result.returncode == 0, output(result)
    data = json.loads(result.stdout)
    items = {(item["kind"], item["name"]): item for item in data["items"]}

    for transform in (
        "rename_columns",
        "cast",
        "add_column",
        "select_columns",
        "drop_columns",
        "filter",
        "fill_null",
    ):
        item = items[("transform", transform)]
        assert item["distribution"] == "dataloader-core"
        assert item["version"] == metadata.version("dataloader-core")

    local = items[("state_backend", "local")]
    assert local["distribution"] == "dataloader-core"

    sequence = items[("connector", "sequence")]
    assert sequence["distribution"] == "dataloader-example"
    assert sequence["version"] == metadata.version("dataloader-example")
    assert sequence["plugin"] == "example"
    assert sequence["capabilities"]["read"] is True
    assert sequence["capabilities"]["write"] is False
    assert sequence["capabilities"]["incremental"] is True
    assert items[("transform", "upper_case")]["distribution"] == "dataloader-example"

    plugins = {plugin["name"]: plugin for plugin in data["plugins"]}
    assert plugins["example"]["status"] == "loaded"
    assert plugins["example"]["distribution"] == "dataloader-example"
    assert plugins["core"]["distribution"] == "dataloader-core"
    # nothing the core or the example plugin provides is contested
    contested = {(c["kind"], c["name"]) for c in data["conflicts"]}
    ours = {
        key
        for key, item in items.items()
        if item["distribution"] in {"dataloader-core", "dataloader-example"}
    }
    assert ("connector", "sequence") in ours
    assert not contested & ours


def test_list_connectors_table(run_cli: RunCli) -> None:
    result = run_cli("list-connectors", module=True)
    assert result.returncode == 0, output(result)
    row = next(line for line in result.stdout.splitlines() if " sequence " in line)
    assert "dataloader-example" in row
    assert "read" in row


def test_list_connectors_with_plugins_disabled(run_cli: RunCli) -> None:
    result = run_cli(
        "list-connectors", "--json", module=True, env={"DATALOADER_DISABLE_PLUGINS": "1"}
    )
    assert result.returncode == 0, output(result)
    data = json.loads(result.stdout)
    names = {item["name"] for item in data["items"]}
    assert "sequence" not in names
    assert {"cast", "local"} <= names
    plugins = {plugin["name"]: plugin for plugin in data["plugins"]}
    assert plugins["example"]["status"] == "disabled"


def test_list_connectors_reports_a_broken_plugin(run_cli: RunCli, tmp_path: Path) -> None:
    site = tmp_path / "site"
    info = site / "dataloader_cracked-3.1.4.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: dataloader-cracked\nVersion: 3.1.4\n"
    )
    (info / "entry_points.txt").write_text("[dataloader]\ncracked = dl_test_cracked\n")
    (site / "dl_test_cracked.py").write_text("import dl_test_no_such_dependency\n")

    result = run_cli("list-connectors", module=True, env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, output(result)
    assert "Traceback" not in output(result)
    [line] = [line for line in result.stdout.splitlines() if "'cracked'" in line]
    assert "broken" in line
    assert "dataloader-cracked" in line
    assert "3.1.4" in line
    assert "dl_test_no_such_dependency" in line
    assert " sequence " in result.stdout  # the others still load


# -- validate ------------------------------------------------------------------------------------
def test_validate_valid_recipe(run_cli: RunCli, write: Write) -> None:
    path = write("orders.yaml", VALID)
    result = run_cli("validate", str(path))
    assert result.returncode == 0, output(result)
    assert "✓" in result.stdout
    assert "orders: sequence → memory_sink, append" in result.stdout


def test_validate_with_vars(run_cli: RunCli, write: Write) -> None:
    path = write("orders.yaml", VALID.replace("table: orders", "table: \"{{ var('table') }}\""))
    result = run_cli("validate", str(path), "--var", "table=t1")
    assert result.returncode == 0, output(result)


INVALID = {
    "typo_key": (
        VALID.replace("stop: 10", "stop: 10\n      lable: x"),
        ["source.lable", "unknown key 'lable'", "connector 'sequence'", "dataloader-example"],
    ),
    "unknown_type": (
        VALID.replace("type: memory_sink", "type: memory_snik"),
        ["destination.type", "unknown connector 'memory_snik'", "memory_sink", "sequence"],
    ),
    "missing_env": (
        VALID.replace("table: orders", "table: \"{{ env_var('DL_TEST_CLI_UNSET') }}\""),
        ["destination.table", "environment variable 'DL_TEST_CLI_UNSET' is not set"],
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_validate_invalid_recipe_exits_2_with_one_clear_message(
    run_cli: RunCli, write: Write, case: str
) -> None:
    text, fragments = INVALID[case]
    path = write(f"{case}.yaml", text)
    result = run_cli("validate", str(path))
    assert_clean_failure(result)
    [problem] = problem_lines(result)
    assert problem.startswith(f"{path}:")
    for fragment in fragments:
        assert fragment in problem
    assert "1 of 1 recipe invalid" in result.stdout


def test_validate_missing_parent(run_cli: RunCli, write: Write) -> None:
    path = write("child.yaml", "extends: parent.yaml\nname: child\n")
    result = run_cli("validate", str(path))
    assert_clean_failure(result)
    [problem] = problem_lines(result)
    assert problem.startswith(f"{path}:extends:")
    assert "parent recipe 'parent.yaml' does not exist" in problem


def test_validate_cycle(run_cli: RunCli, write: Write) -> None:
    a = write("a.yaml", "extends: b.yaml\nname: a\n")
    b = write("b.yaml", "extends: a.yaml\nname: b\n")
    result = run_cli("validate", str(a))
    assert_clean_failure(result)
    [problem] = problem_lines(result)
    assert f"{b}:extends:" in problem
    assert f"recipe inheritance cycle: {a} -> {b} -> {a}" in problem


def test_validate_invalid_yaml(run_cli: RunCli, write: Write) -> None:
    path = write("bad.yaml", "name: bad\nsource: [unclosed\n")
    result = run_cli("validate", str(path))
    assert_clean_failure(result)
    [problem] = problem_lines(result)
    assert problem.startswith(f"{path}:")
    assert "invalid YAML at line" in problem


def test_validate_reports_every_recipe(run_cli: RunCli, write: Write) -> None:
    good = write("good.yaml", VALID)
    bad = write("bad.yaml", VALID.replace("stop: 10", "stop: 10\n      colour: red"))
    result = run_cli("validate", str(good), str(bad))
    text = assert_clean_failure(result)
    assert f"✓ {good}" in text
    assert f"✗ {bad}" in text
    assert "1 of 2 recipes invalid" in text


def test_validate_lists_every_problem(run_cli: RunCli, write: Write) -> None:
    path = write(
        "many.yaml",
        VALID.replace("stop: 10", "stop: 10\n      colour: red").replace(
            "table: orders", "table: orders\n      tabel: x"
        ),
    )
    result = run_cli("validate", str(path))
    assert_clean_failure(result)
    problems = problem_lines(result)
    assert len(problems) == 2
    assert any("source.colour" in line for line in problems)
    assert any("destination.tabel" in line for line in problems)


def test_validate_without_the_sink_plugin_lists_available_connectors(
    run_cli: RunCli, write: Write
) -> None:
    path = write("orders.yaml", VALID)
    result = run_cli("validate", str(path), module=True)
    assert_clean_failure(result)
    [problem] = problem_lines(result)
    assert "destination.type" in problem
    assert "unknown connector 'memory_sink'" in problem
    assert "sequence" in problem


@pytest.mark.parametrize("args", [("validate",), ("validate", "x.yaml", "--var", "no_equals_sign")])
def test_usage_errors_exit_2(run_cli: RunCli, args: tuple[str, ...]) -> None:
    result = run_cli(*args, module=True)
    assert_clean_failure(result)


# -- render ---------------------------------------------------------------------------------------
SECRET = """
    name: secret
    source:
      type: sequence
      stop: 10
    destination:
      type: memory_sink
      table: "{{ var('table', 'orders') }}"
      password: "{{ env_var('DL_TEST_DB_PASSWORD') }}"
      api_key: literal-key-value
      write_mode: merge
      merge_keys: [id]
    transform:
      steps:
        - type: add_column
          name: loaded_by
          value: "{{ recipe.name }}"
"""


def test_render_prints_the_resolved_recipe_with_secrets_masked(
    run_cli: RunCli, write: Write
) -> None:
    write("base.yaml", SECRET)
    child = write("child.yaml", "extends: base.yaml\nname: child\nsource: {stop: 3}\n")
    result = run_cli("render", str(child), env={"DL_TEST_DB_PASSWORD": "pa55-w0rd-xyz"})
    assert result.returncode == 0, output(result)
    assert "pa55-w0rd-xyz" not in output(result)
    assert "literal-key-value" not in output(result)
    rendered = yaml.safe_load(result.stdout)
    assert rendered["name"] == "child"
    assert rendered["source"] == {"type": "sequence", "stop": 3}
    assert rendered["destination"]["password"] == "***"
    assert rendered["destination"]["api_key"] == "***"
    assert rendered["destination"]["merge_keys"] == ["id"]
    assert rendered["destination"]["table"] == "orders"
    assert rendered["transform"]["steps"] == [
        {"type": "add_column", "name": "loaded_by", "value": "child"}
    ]
    assert "extends" not in rendered
    assert rendered["runtime"]["batch_size"] == 50_000


def test_render_json_with_vars(run_cli: RunCli, write: Write) -> None:
    path = write("secret.yaml", SECRET)
    result = run_cli(
        "render",
        str(path),
        "--format",
        "json",
        "--var",
        "table=t_2024",
        env={"DL_TEST_DB_PASSWORD": "pa55-w0rd-xyz"},
    )
    assert result.returncode == 0, output(result)
    rendered = json.loads(result.stdout)
    assert rendered["destination"]["table"] == "t_2024"
    assert rendered["destination"]["password"] == "***"


def test_render_of_an_invalid_recipe_exits_2(run_cli: RunCli, write: Write) -> None:
    path = write("secret.yaml", SECRET)
    result = run_cli("render", str(path))
    text = assert_clean_failure(result)
    assert "RecipeError" in result.stderr
    assert str(path) in text
    assert "destination.password" in text
    assert "DL_TEST_DB_PASSWORD" in text
    assert result.stdout == ""
