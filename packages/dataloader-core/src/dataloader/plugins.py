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
Kind = Literal[
    "connector", "format", "transform", "state_backend", "paginator", "accelerator", "executor"
]
KINDS: tuple[Kind, ...] = (
    "connector",
    "format",
    "transform",
    "state_backend",
    "paginator",
    "accelerator",
    "executor",
)
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


@dataclass(frozen=True)
class PluginRef:
    """What a `register_*` hook may return instead of a class: the item's name and where its
    implementation lives, so that the registry can list it, and a recipe can be validated
    against it, without importing the implementation (or its pyarrow, its driver).

    The registry imports `target` when the item is created (a recipe runs), and `config_model`
    when a recipe binds the name (`validate` too), so the config model belongs in a light
    module that imports pydantic and nothing heavy. What is not declared here is read from the
    implementation, which is then imported to tell it. Once imported, the implementation must
    agree with what the reference declared (its `name`, `capabilities`, `extensions`), or the
    item is an error naming the plugin.

    :param name: the name recipes use (a connector's `type`, a format's `format`, …).
    :param target: `"package.module:Attribute"`, the class (or factory) a hook would return.
    :param config_model: `"package.module:Model"`, the model validating the item's keys (a
        format's options model); None to read it from the implementation.
    :param capabilities: a connector's `Capabilities`, or a mapping of its fields (`read`,
        `write`, `write_modes`, …); None to read them from the implementation.
    :param extensions: a format's file name endings (`(".csv",)`).
    :param accelerator: replaces the same-named item of another distribution.
    :param accelerates: for an item of `register_accelerators`, what it speeds up, in words
        `list-connectors` shows (`"the postgres connector's COPY"`).
    """

    name: str
    target: str
    config_model: str | None = None
    capabilities: Any = None
    extensions: tuple[str, ...] = ()
    accelerator: bool = False
    accelerates: str = ""


def resolve_reference(reference: str) -> Any:
    """The object `"package.module:Attribute"` names, its module imported."""
    import importlib

    module_name, colon, attribute = reference.partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(f"{reference!r} is not a reference of the form 'package.module:Name'")
    value: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        value = getattr(value, part)
    return value


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

    @hookimpl
    def register_paginators(self) -> list[Any]:
        return list(self.items["paginator"])

    @hookimpl
    def register_executors(self) -> list[Any]:
        return list(self.items["executor"])


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
