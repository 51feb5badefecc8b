"""The root command group, shared options and the top-level error handling.

Start-up stays cheap: a command's module (and what it imports: the engine, pyarrow, rich) is
imported when that command runs; `dataloader --help` reads the commands' summaries from their
source instead of importing them.
"""

from __future__ import annotations

import ast
import importlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dataloader.errors import DataLoaderError
from dataloader.plugins import core_version

if TYPE_CHECKING:
    from rich.console import Console


class _StderrConsole:
    """The rich console on stderr, made on first use (rich takes a while to import)."""

    def __init__(self) -> None:
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False, soft_wrap=True)
        return getattr(self._console, name)


err_console: Any = _StderrConsole()
_log_format = "plain"  # the --log-format of this invocation: how errors are reported


def make_console() -> Console:
    """A console for command output, as wide as the terminal (or `COLUMNS`); 160 columns when
    output is not a terminal and `COLUMNS` is not set. Tables adapt to the width."""
    from rich.console import Console

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


# The built-in commands: name → (module in `dataloader.cli`, function).
BUILTIN_COMMANDS: dict[str, tuple[str, str]] = {
    "list-connectors": ("plugins_cmd", "list_connectors"),
    "validate": ("recipe_cmds", "validate"),
    "render": ("recipe_cmds", "render"),
    "run": ("run_cmd", "run"),
    "show-state": ("state_cmds", "show_state"),
    "reset-state": ("state_cmds", "reset_state"),
    "import-state": ("state_cmds", "import_state"),
    "init": ("init_cmd", "init"),
    "schema": ("schema_cmds", "schema"),
    "preview": ("preview_cmd", "preview"),
    "plan": ("plan_cmd", "plan"),
}


def builtin_summary(name: str) -> str | None:
    """The help text of a built-in command, read from its module's source without importing
    it (what click shows is made from it); None when the source cannot be read."""
    module, function = BUILTIN_COMMANDS[name]
    try:
        tree = ast.parse(Path(__file__).with_name(f"{module}.py").read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return ast.get_docstring(node)
    return None


class LazyCommands(click.Group):
    """A group whose built-in commands are imported when one runs or shows its own help."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *BUILTIN_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in BUILTIN_COMMANDS:
            module, function = BUILTIN_COMMANDS[cmd_name]
            command = getattr(importlib.import_module(f"dataloader.cli.{module}"), function)
            self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click does, with the summaries of commands not imported read from their source."""
        names = self.list_commands(ctx)
        rows: list[tuple[str, str]] = []
        limit = formatter.width - 6 - max((len(name) for name in names), default=0)
        for name in names:
            loaded = name in self.commands or name not in BUILTIN_COMMANDS
            summary = None if loaded else builtin_summary(name)
            if summary is not None:
                # What click would show for a command with this help text.
                rows.append((name, click.Command(name, help=summary).get_short_help_str(limit)))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyCommands, context_settings={"help_option_names": ["-h", "--help"]})
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
    """Import every built-in command now (the group otherwise imports one when it is used)."""
    context = click.Context(cli)
    for name in BUILTIN_COMMANDS:
        cli.get_command(context, name)


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
