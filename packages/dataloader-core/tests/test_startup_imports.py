"""Start-up imports only what the command needs: `import dataloader`, loading the plugins and
`dataloader --help` import no driver, no pyarrow and no connector module; a command is imported
when it runs, and `--help` shows the same summaries the commands themselves give.

Each check runs in a fresh interpreter (`sys.modules` of this one is full of everything).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import click.testing
import pytest

from dataloader.cli.app import BUILTIN_COMMANDS, builtin_summary, cli

HEAVY = ("pyarrow", "duckdb", "psycopg2", "boto3", "botocore", "fsspec", "jinja2", "rich")
CONNECTOR_MODULES = (
    "dataloader_duckdb.connector",
    "dataloader_filestore.connector",
    "dataloader_postgres.connector",
    "dataloader_aws.s3",
    "dataloader_aws.dynamodb",
)


def imported_after(code: str) -> set[str]:
    """The modules imported by `code` in a fresh interpreter."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def top_level(modules: set[str]) -> set[str]:
    return {name.partition(".")[0] for name in modules}


def test_import_dataloader_imports_no_driver_and_no_pyarrow() -> None:
    modules = imported_after("import dataloader\nfrom dataloader import hookimpl")
    assert not top_level(modules) & set(HEAVY), sorted(top_level(modules) & set(HEAVY))
    assert "dataloader.engine" not in modules


def test_loading_the_plugins_imports_no_connector_module() -> None:
    # Every installed plugin's entry-point module is loaded; what they register is not.
    modules = imported_after(
        "from dataloader.plugins import create_plugin_manager\n"
        "manager, infos = create_plugin_manager()\n"
        "loaded = {info.name for info in infos if info.status == 'loaded'}\n"
        "assert {'core', 'duckdb', 'filestore', 'postgres', 'aws'} <= loaded, infos"
    )
    assert not top_level(modules) & set(HEAVY), sorted(top_level(modules) & set(HEAVY))
    assert not modules & set(CONNECTOR_MODULES), sorted(modules & set(CONNECTOR_MODULES))


def test_help_imports_no_command_module() -> None:
    modules = imported_after(
        "from dataloader.cli import main\n"
        "sys.argv = ['dataloader', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    assert not top_level(modules) & set(HEAVY), sorted(top_level(modules) & set(HEAVY))
    commands = {f"dataloader.cli.{module}" for module, _ in BUILTIN_COMMANDS.values()}
    assert not modules & commands, sorted(modules & commands)


def test_listing_and_looking_up_connectors_imports_no_connector_module() -> None:
    # The built-ins register lazy references: names, distributions, capabilities and config
    # models are known without importing the connectors (or pyarrow, or a driver).
    modules = imported_after(
        "from dataloader.registry import get_registry\n"
        "registry = get_registry()\n"
        "assert {'duckdb', 'filestore', 'postgres'} <= set(registry.names('connector'))\n"
        "assert {'csv', 'tsv', 'parquet', 'json', 'jsonl'} <= set(registry.names('format'))\n"
        "duckdb = registry.connector('duckdb')\n"
        "assert duckdb.distribution == 'dataloader-duckdb', duckdb\n"
        "assert duckdb.capabilities.incremental and 'merge' in duckdb.capabilities.write_modes\n"
        "assert 'database' in duckdb.config_model.model_fields\n"
        "assert registry.format_for_path('x/y.tsv').name == 'tsv'\n"
        "registry.format('parquet').config_model.model_validate({'compression': 'snappy'})"
    )
    assert not top_level(modules) & set(HEAVY), sorted(top_level(modules) & set(HEAVY))
    assert not modules & set(CONNECTOR_MODULES), sorted(modules & set(CONNECTOR_MODULES))


def test_creating_a_connector_imports_its_module_only() -> None:
    modules = imported_after(
        "from dataloader.registry import get_registry\n"
        "registration = get_registry().connector('duckdb')\n"
        "connector = registration.create(registration.config_model.model_validate("
        "{'table': 't'}))\n"
        "assert type(connector).__name__ == 'DuckDBConnector'"
    )
    assert "dataloader_duckdb.connector" in modules
    others = set(CONNECTOR_MODULES) - {"dataloader_duckdb.connector"}
    assert not modules & others, sorted(modules & others)


VALIDATE_RECIPE = """
name: startup
source:
  type: duckdb
  database: {source}
  table: events
  incremental: {{cursor_column: id}}
destination:
  type: filestore
  path: {destination}
  format: parquet
  format_options: {{compression: snappy}}
"""


def test_validate_of_a_recipe_imports_no_data_plane(tmp_path: Path) -> None:
    # `validate` checks every key against the plugins' config models, which live in light
    # modules: no pyarrow, no driver, no listing (fsspec) and, without a template, no jinja2.
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        VALIDATE_RECIPE.format(source=tmp_path / "in.duckdb", destination=tmp_path / "out")
    )
    modules = imported_after(
        "from dataloader.cli import main\n"
        f"sys.argv = ['dataloader', 'validate', {str(recipe)!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code in (0, None), exc.code"
    )
    heavy = {
        "pyarrow",
        "numpy",
        "duckdb",
        "fsspec",
        "psycopg2",
        "boto3",
        "botocore",
        "jinja2",
        "rich",
    }
    assert not top_level(modules) & heavy, sorted(top_level(modules) & heavy)
    assert not modules & set(CONNECTOR_MODULES), sorted(modules & set(CONNECTOR_MODULES))
    assert "dataloader.engine" not in modules


def test_validate_still_finds_a_problem_in_a_lazy_plugins_keys(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        VALIDATE_RECIPE.format(source=tmp_path / "in.duckdb", destination=tmp_path / "out")
        .replace("compression: snappy", "compresion: snappy")
        .replace("table: events", "table: events\n  read_onyl: true")
    )
    result = click.testing.CliRunner().invoke(cli, ["validate", str(recipe)])
    assert result.exit_code == 2, result.output
    assert "source.read_onyl" in result.output
    assert "destination.format_options.compresion" in result.output


def test_jinja2_is_imported_for_a_template_only() -> None:
    render = (
        "from dataloader.recipe.templates import TemplateRenderer\n"
        "result = TemplateRenderer({'t': 'events'}, {}).render_tree(TREE, file=None, origins={})\n"
        "assert not result.problems and result.tree['table'] == 'events', result\n"
    )
    plain = imported_after(render.replace("TREE", "{'name': 'x', 'table': 'events'}"))
    assert "jinja2" not in top_level(plain)
    templated = imported_after(render.replace("TREE", "{'name': 'x', 'table': '{{ var.t }}'}"))
    assert "jinja2" in top_level(templated)


@pytest.mark.parametrize("limit", [30, 45, 80, 200])
def test_help_summaries_read_from_source_are_those_of_the_commands(limit: int) -> None:
    context = click.Context(cli)
    for name in BUILTIN_COMMANDS:
        summary = builtin_summary(name)
        assert summary is not None, name
        command = cli.get_command(context, name)
        assert command is not None
        shown = click.Command(name, help=summary).get_short_help_str(limit)
        assert shown == command.get_short_help_str(limit), name


def test_every_command_of_the_group_is_listed_and_runs_its_help() -> None:
    runner = click.testing.CliRunner()
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    for name in BUILTIN_COMMANDS:
        assert f"  {name} " in result.output
        sub = runner.invoke(cli, [name, "--help"])
        assert sub.exit_code == 0, sub.output
        assert f"Usage: cli {name}" in sub.output or f"Usage: dataloader {name}" in sub.output
