"""The plugin host: a pluggy manager loaded from the `dataloader` entry-point group.

Built-ins register as plugins through the same hooks as third parties. A plugin that fails
to import is recorded with its name, distribution, version and error, and the rest still load.

Switches (environment variables):
- `DATALOADER_DISABLE_PLUGINS`: `1`/`all` loads no entry-point plugin (built-ins only);
  otherwise a comma-separated list of entry-point names to skip.
- `DATALOADER_LOAD_PLUGINS`: a comma-separated allowlist; only these entry-point plugins load.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any, Literal

import pluggy

from dataloader import hookspecs
from dataloader.hookspecs import hookimpl

ENTRY_POINT_GROUP = "dataloader"
Kind = Literal["connector", "format", "transform", "state_backend"]
KINDS: tuple[Kind, ...] = ("connector", "format", "transform", "state_backend")
CORE_DISTRIBUTION = "dataloader-core"
IN_PROCESS = "(in-process)"


@dataclass(frozen=True)
class PluginInfo:
    """One plugin as the host saw it: where it comes from and whether it loaded."""

    name: str
    distribution: str
    version: str
    module: str
    status: str = "loaded"  # loaded | disabled | broken
    error: str | None = None


def core_version() -> str:
    try:
        return metadata.version(CORE_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _split_env(name: str) -> set[str]:
    return {item.strip() for item in os.environ.get(name, "").split(",") if item.strip()}


def _skip_reason(entry_point_name: str) -> str | None:
    disabled = _split_env("DATALOADER_DISABLE_PLUGINS")
    if disabled & {"1", "all", "true", "*"}:
        return "DATALOADER_DISABLE_PLUGINS disables all entry-point plugins"
    if entry_point_name in disabled:
        return "listed in DATALOADER_DISABLE_PLUGINS"
    allowed = _split_env("DATALOADER_LOAD_PLUGINS")
    if allowed and entry_point_name not in allowed:
        return "not listed in DATALOADER_LOAD_PLUGINS"
    return None


def _distribution_of(entry_point: metadata.EntryPoint) -> tuple[str, str]:
    dist = entry_point.dist
    if dist is None:
        return ("unknown", "unknown")
    return (dist.metadata["Name"] or dist.name, dist.version)


class _DecoratedPlugin:
    """Holds what the `register_*` decorators of `dataloader.registry` registered in this
    process; registered last, so that code registered in-process overrides."""

    def __init__(self) -> None:
        self.items: dict[Kind, list[Any]] = {kind: [] for kind in KINDS}

    @hookimpl
    def register_connectors(self) -> list[Any]:
        return list(self.items["connector"])

    @hookimpl
    def register_formats(self) -> list[Any]:
        return list(self.items["format"])

    @hookimpl
    def register_transforms(self) -> list[Any]:
        return list(self.items["transform"])

    @hookimpl
    def register_state_backends(self) -> list[Any]:
        return list(self.items["state_backend"])


decorated_plugin = _DecoratedPlugin()


def create_plugin_manager(
    extra_plugins: dict[str, Any] | None = None,
) -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    """A plugin manager with the hookspecs, the built-ins and every allowed entry-point plugin.

    Loading a plugin imports its entry-point module only: the modules of its connectors (and
    their drivers) are imported when the registry first asks for what it provides.

    :param extra_plugins: more plugin objects to register by name (tests, embedding programs).
    :returns: the manager and one `PluginInfo` per plugin seen, broken or disabled ones included.
    """
    from dataloader import builtins

    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []

    manager.register(builtins, name="core")
    infos.append(PluginInfo("core", CORE_DISTRIBUTION, core_version(), builtins.__name__))

    seen: set[str] = set()
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name in seen:
            continue
        seen.add(entry_point.name)
        distribution, version = _distribution_of(entry_point)
        reason = _skip_reason(entry_point.name)
        if reason:
            infos.append(
                PluginInfo(
                    entry_point.name, distribution, version, entry_point.value, "disabled", reason
                )
            )
            continue
        try:
            plugin: ModuleType | Any = entry_point.load()
            manager.register(plugin, name=entry_point.name)
        except Exception as exc:
            error = f"Error importing plugin {entry_point.name!r}: {type(exc).__name__}: {exc}"
            infos.append(
                PluginInfo(
                    entry_point.name, distribution, version, entry_point.value, "broken", error
                )
            )
            continue
        infos.append(PluginInfo(entry_point.name, distribution, version, entry_point.value))

    for name, plugin in (extra_plugins or {}).items():
        manager.register(plugin, name=name)
        infos.append(PluginInfo(name, IN_PROCESS, "", getattr(plugin, "__name__", repr(plugin))))

    manager.register(decorated_plugin, name="decorated")
    infos.append(PluginInfo("decorated", IN_PROCESS, "", "register_* decorators"))
    return manager, infos
