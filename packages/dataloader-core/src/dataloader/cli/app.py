"""The root command group, shared options and the top-level error handling."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click
from rich.console import Console

from dataloader.errors import DataLoaderError
from dataloader.plugins import core_version

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
_log_format = "plain"  # the --log-format of this invocation: how errors are reported


def make_console() -> Console:
    """A console for command output, as wide as the terminal (or `COLUMNS`); 160 columns when
    output is not a terminal and `COLUMNS` is not set. Tables adapt to the width."""
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal and not os.environ.get("COLUMNS", "").strip().isdigit():
        console = Console(highlight=False, soft_wrap=True, width=160)
    return console


def parse_vars(values: tuple[str, ...]) -> dict[str, str]:
    """`--var k=v` options as a dict; a value without `=` is a usage error."""
    result: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--var")
        result[key.strip()] = value
    return result


var_option = click.option(
    "--var",
    "variables",
    multiple=True,
    metavar="KEY=VALUE",
    help="A value for var('KEY') in templates (repeatable).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    core_version(), "--version", "-V", package_name="dataloader-core", prog_name="dataloader"
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    help="Log records at this level and above go to stderr.",
)
@click.option(
    "--log-format",
    type=click.Choice(["plain", "json"]),
    default="plain",
    show_default=True,
    help="Plain lines, or one JSON object per line.",
)
def cli(log_level: str, log_format: str) -> None:
    """Declarative data loading: run YAML recipes that move data from a source to a destination."""
    from dataloader.logs import configure_logging

    global _log_format
    _log_format = log_format
    configure_logging(log_level, log_format)


def _register_commands() -> None:
    from dataloader.cli import plugins_cmd, recipe_cmds

    cli.add_command(plugins_cmd.list_connectors)
    cli.add_command(recipe_cmds.validate)
    cli.add_command(recipe_cmds.render)
    try:
        from dataloader.cli import init_cmd, run_cmd, state_cmds
    except ImportError:  # pragma: no cover - during partial installs
        return
    cli.add_command(run_cmd.run)
    cli.add_command(state_cmds.show_state)
    cli.add_command(state_cmds.reset_state)
    cli.add_command(state_cmds.import_state)
    cli.add_command(init_cmd.init)


def report_error(exc: DataLoaderError, run: Any = None) -> None:
    """Tell the user why a command failed: a red line, or with `--log-format json` a record
    (with the recipe and run id of `run`, the failed run's `RunResult`, when there is one)."""
    if _log_format == "json":
        details = {"error": type(exc).__name__, "exit_code": exc.exit_code}
        details.update({k: exc.context[k] for k in ("file", "key", "expected") if k in exc.context})
        extra: dict[str, Any] = {"details": details}
        if run is not None:
            extra.update(recipe=run.recipe_name, run_id=run.run_id)
        logging.getLogger("dataloader.cli").error(str(exc), extra=extra)
        return
    err_console.print(f"[bold red]error:[/] {type(exc).__name__}", end=": ")
    err_console.print(str(exc), markup=False)


def report_interrupt(message: str) -> None:
    """Tell the user that Ctrl-C stopped the command: one line, or one JSON record."""
    if _log_format == "json":
        logging.getLogger("dataloader.cli").warning(
            message, extra={"details": {"error": "interrupted", "exit_code": 130}}
        )
        return
    err_console.print(message, markup=False)


class Interrupted(click.ClickException):
    """Ctrl-C stopped a command: its one message is printed and it exits 130."""

    exit_code = 130

    def show(self, file: Any = None) -> None:
        report_interrupt(self.message)


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the `dataloader` script; exit codes: 0 ok, 1 load failure, 2 bad recipe or usage."""
    from dataloader.registry import get_registry

    _register_commands()
    get_registry().add_commands(cli)
    try:
        cli.main(args=argv, prog_name="dataloader", standalone_mode=False)
    except DataLoaderError as exc:
        report_error(exc)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):  # click turns Ctrl-C into Abort
        report_interrupt("interrupted")
        sys.exit(130)
    sys.exit(0)
