"""The typed registry the rest of the code uses instead of calling pluggy hooks directly.

It asks every plugin for its connectors, formats, transforms and state backends, remembers
which distribution provided each, resolves accelerators, and reports conflicts by name.
The seed's decorators (`@register_connector`, `@register_transform`, `@register_format`,
`@register_state_backend`) feed the same registry through an in-process plugin.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from dataloader.errors import PluginError
from dataloader.plugins import (
    IN_PROCESS,
    KINDS,
    Kind,
    PluginInfo,
    create_plugin_manager,
    decorated_plugin,
)

if TYPE_CHECKING:
    import pluggy
    from pydantic import BaseModel

    from dataloader.connectors import Capabilities

_HOOKS: dict[Kind, str] = {
    "connector": "register_connectors",
    "format": "register_formats",
    "transform": "register_transforms",
    "state_backend": "register_state_backends",
}
T = TypeVar("T")

# What the dataloader family's own distributions provide: an unknown name among these is a
# package to install (or a plugin that is disabled or broken), and the error says which.
KNOWN_PROVIDERS: dict[tuple[Kind, str], str] = {
    ("connector", "filestore"): "dataloader-filestore",
    ("format", "csv"): "dataloader-filestore",
    ("format", "tsv"): "dataloader-filestore",
    ("format", "json"): "dataloader-filestore",
    ("format", "jsonl"): "dataloader-filestore",
    ("format", "parquet"): "dataloader-filestore",
    ("connector", "duckdb"): "dataloader-duckdb",
    ("connector", "postgres"): "dataloader-postgres",
    ("state_backend", "postgres"): "dataloader-postgres",
    ("state_backend", "s3"): "dataloader-aws",
    ("state_backend", "dynamodb"): "dataloader-aws",
}


def _no_capabilities() -> Capabilities:
    from dataloader.connectors import Capabilities

    return Capabilities()


@dataclass(frozen=True)
class ConnectorSpec:
    """A connector given as a factory function rather than a class."""

    name: str
    factory: Callable[[Any], Any]
    config_model: type[BaseModel] = None  # type: ignore[assignment]  # ConnectorConfig
    capabilities: Capabilities = field(default_factory=_no_capabilities)
    accelerator: bool = False

    def __post_init__(self) -> None:
        if self.config_model is None:
            from dataloader.connectors import ConnectorConfig

            object.__setattr__(self, "config_model", ConnectorConfig)


@dataclass(frozen=True)
class Registration:
    """One named thing a plugin provides, and who provides it."""

    kind: Kind
    name: str
    factory: Callable[[Any], Any]
    config_model: type[BaseModel]
    plugin: str
    distribution: str
    version: str
    capabilities: Capabilities | None = None
    extensions: tuple[str, ...] = ()
    accelerator: bool = False
    replaces: str | None = None  # distribution whose same-named item this one accelerates

    def create(self, options: Any) -> Any:
        """Instantiate with already-validated options."""
        return self.factory(options)

    def describe(self) -> str:
        if self.capabilities is not None:
            text = self.capabilities.describe()
        elif self.extensions:
            text = "extensions " + " ".join(self.extensions)
        else:
            text = ""
        if self.replaces:
            text += f"{', ' if text else ''}accelerates {self.replaces}"
        return text


@dataclass(frozen=True)
class Conflict:
    kind: Kind
    name: str
    distributions: tuple[str, ...]

    def message(self) -> str:
        return (
            f"{self.kind.replace('_', ' ')} {self.name!r} is provided by more than one "
            f"distribution: {', '.join(self.distributions)}; uninstall one, or disable its "
            "plugin with DATALOADER_DISABLE_PLUGINS"
        )


def _registration(kind: Kind, item: Any, info: PluginInfo) -> Registration:
    from pydantic import BaseModel

    from dataloader.connectors import Capabilities

    name = getattr(item, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{item!r} has no `name`")
    factory = item if isinstance(item, type) else getattr(item, "factory", item)
    model_attr = "options_model" if kind == "format" else "config_model"
    config_model = getattr(item, model_attr, None) or BaseModel
    capabilities = getattr(item, "capabilities", None) if kind == "connector" else None
    return Registration(
        kind=kind,
        name=name,
        factory=factory,
        config_model=config_model,
        plugin=info.name,
        distribution=info.distribution,
        version=info.version,
        capabilities=capabilities
        if isinstance(capabilities, Capabilities)
        else (Capabilities() if kind == "connector" else None),
        extensions=tuple(getattr(item, "extensions", ()) or ()),
        accelerator=bool(getattr(item, "accelerator", False)),
    )


class Registry:
    """Everything installed plugins provide, by kind and name."""

    def __init__(self, manager: pluggy.PluginManager, plugins: list[PluginInfo]) -> None:
        self.manager = manager
        self._plugins: list[PluginInfo] = list(plugins)
        self._collected: tuple[dict[Kind, dict[str, Registration]], dict] | None = None
        self._collecting = threading.RLock()

    # What the plugins provide is asked for on first use, not when the registry is made: a
    # command that lists no connector (`--help`, a plugin's own command) imports none.
    @property
    def _items(self) -> dict[Kind, dict[str, Registration]]:
        return self._collect()[0]

    @property
    def conflicts(self) -> dict[tuple[Kind, str], Conflict]:
        return self._collect()[1]

    @property
    def plugins(self) -> list[PluginInfo]:
        """Every plugin seen; one whose `register_*` hook failed is marked broken."""
        self._collect()
        return self._plugins

    def _collect(self) -> tuple[dict[Kind, dict[str, Registration]], dict]:
        with self._collecting:
            if self._collected is None:
                self._collected = ({kind: {} for kind in KINDS}, {})
                self._ask_plugins()
            return self._collected

    def _ask_plugins(self) -> None:
        info_by_name = {info.name: info for info in self._plugins}
        for kind in KINDS:
            hook = getattr(self.manager.hook, _HOOKS[kind])
            for impl in hook.get_hookimpls():  # registration order: core, entry points, decorators
                info = info_by_name.get(impl.plugin_name) or PluginInfo(
                    impl.plugin_name, IN_PROCESS, "", ""
                )
                try:
                    items = impl.function() or []
                    registrations = [_registration(kind, item, info) for item in items]
                except Exception as exc:
                    self._mark_broken(info, f"{_HOOKS[kind]} failed: {type(exc).__name__}: {exc}")
                    continue
                for registration in registrations:
                    self._add(registration)

    def _mark_broken(self, info: PluginInfo, error: str) -> None:
        index = self._plugins.index(info) if info in self._plugins else -1
        broken = PluginInfo(
            info.name, info.distribution, info.version, info.module, "broken", error
        )
        if index >= 0:
            self._plugins[index] = broken
        else:
            self._plugins.append(broken)

    def _add(self, new: Registration) -> None:
        table = self._items[new.kind]
        old = table.get(new.name)
        if old is None:
            table[new.name] = new
            return
        if old.distribution == new.distribution and old.plugin == new.plugin:
            table[new.name] = new
        elif new.accelerator and not old.accelerator:
            table[new.name] = _replace(new, replaces=old.distribution)
        elif old.accelerator and not new.accelerator:
            table[new.name] = _replace(old, replaces=new.distribution)
        elif new.distribution == IN_PROCESS:
            table[new.name] = new  # code registered in-process deliberately overrides
        else:
            key = (new.kind, new.name)
            previous = self.conflicts.get(key)
            names = (previous.distributions if previous else (old.distribution,)) + (
                new.distribution,
            )
            self.conflicts[key] = Conflict(new.kind, new.name, names)

    # -- lookups ----------------------------------------------------------------------
    def get(self, kind: Kind, name: str) -> Registration:
        """The registration of `name`, or a `PluginError` listing what is available."""
        conflict = self.conflicts.get((kind, name))
        if conflict is not None:
            raise PluginError(conflict.message())
        try:
            return self._items[kind][name]
        except KeyError:
            available = ", ".join(sorted(self._items[kind])) or "none installed"
            what = f"unknown {kind.replace('_', ' ')} {name!r}"
            why = self.why_missing(kind, name)
            raise PluginError(
                f"{what}: {why}" if why else what, expected=f"one of: {available}"
            ) from None

    def why_missing(self, kind: Kind, name: str) -> str | None:
        """Why a name one of the family's distributions provides is not available: the
        distribution is not installed (and the command that installs it), or its plugin is
        disabled or broken. None for any other name."""
        distribution = KNOWN_PROVIDERS.get((kind, name))
        if distribution is None:
            return None
        info = next((i for i in self.plugins if i.distribution == distribution), None)
        if info is None:
            return (
                f"it is provided by {distribution}, which is not installed "
                f"(pip install {distribution})"
            )
        if info.status == "disabled":
            return f"it is provided by {distribution}, whose plugin {info.name!r} is disabled: {info.error}"
        if info.status == "broken":
            return f"it is provided by {distribution}, whose plugin {info.name!r} is broken: {info.error}"
        return None

    def names(self, kind: Kind) -> list[str]:
        return sorted(self._items[kind])

    def all(self, kind: Kind) -> list[Registration]:
        return [self._items[kind][name] for name in self.names(kind)]

    def connector(self, name: str) -> Registration:
        return self.get("connector", name)

    def format(self, name: str) -> Registration:
        return self.get("format", name)

    def format_for_path(self, path: str) -> Registration | None:
        """The format whose extensions match the end of `path` (compression suffixes ignored)."""
        lowered = path.lower()
        for suffix in (".gz", ".zst", ".bz2", ".xz"):
            if lowered.endswith(suffix):
                lowered = lowered[: -len(suffix)]
                break
        best: Registration | None = None
        for registration in self._items["format"].values():
            for extension in registration.extensions:
                if lowered.endswith(extension.lower()) and (
                    best is None or len(extension) > max(len(e) for e in best.extensions)
                ):
                    best = registration
        return best

    def transform(self, name: str) -> Registration:
        return self.get("transform", name)

    def state_backend(self, name: str) -> Registration:
        return self.get("state_backend", name)

    def broken_plugins(self) -> list[PluginInfo]:
        return [info for info in self.plugins if info.status == "broken"]

    def add_commands(self, cli: Any) -> None:
        """Let plugins add CLI commands; a plugin that fails here is skipped, not fatal."""
        for impl in self.manager.hook.register_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except Exception as exc:
                info = next((i for i in self._plugins if i.name == impl.plugin_name), None)
                if info is not None:
                    self._mark_broken(
                        info, f"register_commands failed: {type(exc).__name__}: {exc}"
                    )


def _replace(registration: Registration, **changes: Any) -> Registration:
    from dataclasses import replace

    return replace(registration, **changes)


# -- the default registry and the seed's decorators ---------------------------------------
_default: Registry | None = None
_default_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Registry(*create_plugin_manager())
        return _default


def reset_registry() -> None:
    """Forget the process-wide registry so the next `get_registry()` reloads plugins."""
    global _default
    with _default_lock:
        _default = None


def _add_decorated(kind: Kind, item: Any) -> None:
    decorated_plugin.items[kind] = [
        existing for existing in decorated_plugin.items[kind] if existing.name != item.name
    ] + [item]
    reset_registry()


def _named(cls_or_func: Any, name: str, **attributes: Any) -> Any:
    if isinstance(cls_or_func, type):
        cls_or_func.name = name
        for key, value in attributes.items():
            if value is not None:
                setattr(cls_or_func, key, value)
        return cls_or_func
    return _FactorySpec(
        name=name, factory=cls_or_func, **{k: v for k, v in attributes.items() if v is not None}
    )


@dataclass(frozen=True)
class _FactorySpec:
    name: str
    factory: Callable[[Any], Any]
    config_model: type[BaseModel] | None = None
    options_model: type[BaseModel] | None = None
    extensions: tuple[str, ...] = ()
    capabilities: Capabilities | None = None


def register_connector(
    name: str,
    factory: Callable[[Any], Any] | None = None,
    *,
    config_model: type[BaseModel] | None = None,
    capabilities: Capabilities | None = None,
) -> Any:
    """Register a connector class or factory in this process: `@register_connector("x")`."""

    def decorate(target: Any) -> Any:
        if isinstance(target, type):
            _add_decorated(
                "connector",
                _named(target, name, config_model=config_model, capabilities=capabilities),
            )
        else:
            from dataloader.connectors import Capabilities

            _add_decorated(
                "connector",
                ConnectorSpec(
                    name,
                    target,
                    config_model or _open_config(),
                    capabilities or Capabilities(read=True, write=True, write_modes=("append",)),
                ),
            )
        return target

    return decorate(factory) if factory is not None else decorate


def _open_config() -> type[BaseModel]:
    from pydantic import ConfigDict

    from dataloader.connectors import ConnectorConfig

    class AnyOptions(ConnectorConfig):
        model_config = ConfigDict(extra="allow", frozen=True)

    return AnyOptions


def register_transform(
    name: str,
    factory: Callable[[Any], Any] | None = None,
    *,
    config_model: type[BaseModel] | None = None,
) -> Any:
    """Register a transform class or factory in this process: `@register_transform("x")`."""

    def decorate(target: Any) -> Any:
        model = config_model or getattr(target, "config_model", None) or _open_config()
        _add_decorated("transform", _named(target, name, config_model=model))
        return target

    return decorate(factory) if factory is not None else decorate


def register_format(
    name: str, cls: type | None = None, *, extensions: tuple[str, ...] | None = None
) -> Any:
    """Register a `Format` subclass in this process: `@register_format("x")`."""

    def decorate(target: Any) -> Any:
        _add_decorated("format", _named(target, name, extensions=extensions))
        return target

    return decorate(cls) if cls is not None else decorate


def register_state_backend(name: str, cls: type | None = None) -> Any:
    """Register a state backend class in this process: `@register_state_backend("x")`."""

    def decorate(target: Any) -> Any:
        _add_decorated("state_backend", _named(target, name))
        return target

    return decorate(cls) if cls is not None else decorate


def unregister(kind: Kind, name: str) -> None:
    """Remove something registered by a decorator (tests)."""
    decorated_plugin.items[kind] = [
        item for item in decorated_plugin.items[kind] if item.name != name
    ]
    reset_registry()


def get_connector(name: str, config: dict[str, Any] | None = None) -> Any:
    """The seed's lookup: an instance of connector `name` built from a config dict."""
    registration = get_registry().connector(name)
    return registration.create(registration.config_model.model_validate(config or {}))


def get_transform(name: str, config: dict[str, Any] | None = None) -> Any:
    """The seed's lookup: an instance of transform `name` built from a config dict."""
    registration = get_registry().transform(name)
    return registration.create(registration.config_model.model_validate(config or {}))
