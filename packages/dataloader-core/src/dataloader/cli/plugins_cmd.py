"""`dataloader list-connectors`: what every installed plugin provides."""

from __future__ import annotations

import json

import click
from rich.table import Table

from dataloader.cli.app import make_console
from dataloader.registry import KINDS, get_registry


def inventory() -> dict[str, object]:
    """Everything installed, as plain data (the `--json` output)."""
    registry = get_registry()
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


@click.command("list-connectors")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_connectors(as_json: bool) -> None:
    """List every connector, format, transform and state backend installed, and who provides it."""
    data = inventory()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    console = make_console()
    table = Table(title="Installed plugins")
    for header in ("kind", "name", "distribution", "version", "capabilities"):
        table.add_column(header)
    registry = get_registry()
    for kind in KINDS:
        for registration in registry.all(kind):
            table.add_row(
                kind.replace("_", " "),
                registration.name,
                registration.distribution,
                registration.version,
                registration.describe(),
            )
    console.print(table)
    problems = [p for p in data["plugins"] if p["status"] != "loaded"]  # type: ignore[index]
    for plugin in problems:
        style = "red" if plugin["status"] == "broken" else "yellow"
        console.print(
            f"[{style}]{plugin['status']}[/]: plugin {plugin['name']!r} from {plugin['distribution']} {plugin['version']}: {plugin['error']}",
            markup=True,
        )
    for conflict in data["conflicts"]:  # type: ignore[union-attr]
        console.print(f"[red]conflict[/]: {conflict['error']}")
