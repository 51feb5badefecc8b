"""`dataloader list-connectors`: what every installed plugin provides."""

from __future__ import annotations

import json

import click
from rich import box
from rich.console import Console
from rich.table import Table

from dataloader.cli.app import make_console
from dataloader.registry import KINDS, Registration, get_registry


def inventory() -> dict[str, object]:
    """Everything installed, as plain data (the `--json` output). Every item a plugin named
    by reference is imported, so that one that cannot be is shown as its plugin's error."""
    registry = get_registry()
    registry.import_all()
    items = [
        {
            "kind": registration.kind,
            "name": registration.name,
            "distribution": registration.distribution,
            "version": registration.version,
            "plugin": registration.plugin,
            "capabilities": registration.capabilities.model_dump()
            if registration.capabilities
            else None,
            "extensions": list(registration.extensions),
            "accelerates": registration.replaces,
        }
        for kind in KINDS
        for registration in registry.all(kind)
    ]
    plugins = [
        {
            "name": p.name,
            "distribution": p.distribution,
            "version": p.version,
            "module": p.module,
            "status": p.status,
            "error": p.error,
        }
        for p in registry.plugins
    ]
    conflicts = [
        {
            "kind": c.kind,
            "name": c.name,
            "distributions": list(c.distributions),
            "error": c.message(),
        }
        for c in registry.conflicts.values()
    ]
    return {"items": items, "plugins": plugins, "conflicts": conflicts}


def capabilities_text(registration: Registration) -> str:
    """What a plugin item can do, in words that wrap: `read, write (append, overwrite, merge),
    incremental, transactional state`."""
    capabilities = registration.capabilities
    if capabilities is None:
        return registration.describe()
    parts = ["experimental"] if capabilities.experimental else []
    if capabilities.read:
        parts.append("read")
    if capabilities.write:
        modes = ", ".join(capabilities.write_modes)
        parts.append(f"write ({modes})" if modes else "write")
    parts += [
        word
        for word, flag in (
            ("incremental", capabilities.incremental),
            ("transactional state", capabilities.transactional_state),
            ("resumable", capabilities.resumable),
        )
        if flag
    ]
    if registration.replaces:
        parts.append(f"accelerates {registration.replaces}")
    return ", ".join(parts)


def _plugins_table(console: Console) -> Table:
    """The installed items, one row each, in a table that fits the console: when the full
    layout is too wide, the version joins the distribution and the borders go."""
    registry = get_registry()
    rows = [
        (
            kind.replace("_", " "),
            registration.name,
            registration.distribution,
            registration.version,
            capabilities_text(registration),
        )
        for kind in KINDS
        for registration in registry.all(kind)
    ]
    table = Table(title="Installed plugins")
    for header in ("kind", "name", "distribution", "version", "capabilities"):
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*row)
    unbounded = console.options.update_width(10_000)
    if console.measure(table, options=unbounded).maximum <= console.width:
        return table
    table = Table(title="Installed plugins", box=box.SIMPLE_HEAD)
    for header in ("kind", "name", "distribution", "capabilities"):
        table.add_column(header, overflow="fold", no_wrap=header == "name")
    for kind, name, distribution, version, capabilities in rows:
        table.add_row(kind, name, f"{distribution} {version}", capabilities)
    return table


@click.command("list-connectors")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_connectors(as_json: bool) -> None:
    """List every connector, format, transform and state backend installed, and who provides it."""
    data = inventory()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    console = make_console()
    table = _plugins_table(console)
    console.print(table)
    problems = [p for p in data["plugins"] if p["status"] != "loaded"]  # type: ignore[index]
    for plugin in problems:
        style = "red" if plugin["status"] == "broken" else "yellow"
        console.print(
            f"[{style}]{plugin['status']}[/]: plugin {plugin['name']!r} from {plugin['distribution']} {plugin['version']}: {plugin['error']}",
            markup=True,
            soft_wrap=False,  # wrapped at the console's width: the errors are long
        )
    for conflict in data["conflicts"]:  # type: ignore[union-attr]
        console.print(f"[red]conflict[/]: {conflict['error']}", soft_wrap=False)
