"""Start-up imports only what the command needs: `import dataloader`, loading the plugins and
`dataloader --help` import no driver, no pyarrow and no connector module; a command is imported
when it runs, and `--help` shows the same summaries the commands themselves give.

Each check runs in a fresh interpreter (`sys.modules` of this one is full of everything).
"""

from __future__ import annotations

import json
import subprocess
import sys

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


def test_a_registry_lookup_imports_the_connectors() -> None:
    modules = imported_after(
        "from dataloader.registry import get_registry\nget_registry().connector('duckdb')"
    )
    assert "dataloader_duckdb.connector" in modules


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
