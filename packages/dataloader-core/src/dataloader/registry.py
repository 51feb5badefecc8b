"""The typed registry the rest of the code uses instead of calling pluggy hooks directly.

It asks every plugin for its connectors, formats, transforms and state backends, remembers
which distribution provided each, resolves accelerators, and reports conflicts by name. A plugin
may give a `PluginRef` instead of a class: the registry then knows the item's name,
distribution and declared capabilities without importing it, imports its config model when a
recipe binds the name, and its implementation when the item is created.
The seed's decorators (`@register_connector`, `@register_transform`, `@register_format`,
`@register_state_backend`) feed the same registry through an in-process plugin.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from dataloader.errors import PluginError
from dataloader.plugins import (
    IN_PROCESS,
    KINDS,
    Kind,
    PluginInfo,
    PluginRef,
    create_plugin_manager,
    decorated_plugin,
    resolve_reference,
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
    "paginator": "register_paginators",
    "accelerator": "register_accelerators",
    "executor": "register_executors",
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
    ("connector", "rest"): "dataloader-rest",
    ("connector", "mysql"): "dataloader-mysql",
    ("connector", "sql"): "dataloader-sql",
    ("connector", "snowflake"): "dataloader-snowflake",
    ("connector", "redshift"): "dataloader-redshift",
    ("executor", "dask"): "dataloader-dask",
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
    """One named thing a plugin provides, and who provides it.

    `item` is what the plugin's hook returned: a class, a factory spec, or a `PluginRef`
    whose implementation is imported on first use of `implementation`, `factory` (creating
    the item) or, when the reference does not name one, `config_model`/`capabilities`.
    """

    kind: Kind
    name: str
    item: Any
    plugin: str
    distribution: str
    version: str
    extensions: tuple[str, ...] = ()
    accelerator: bool = False
    # What this item accelerates: the distribution whose same-named item it replaces, or for
    # an accelerator slot its `PluginRef.accelerates`.
    replaces: str | None = None
    declared_capabilities: Capabilities | None = None  # a PluginRef's, known without importing

    @property
    def lazy(self) -> bool:
        """Whether the implementation is named by a `PluginRef` (imported on first use)."""
        return isinstance(self.item, PluginRef)

    def _owner(self) -> str:
        return (
            f"{self.kind.replace('_', ' ')} {self.name!r} "
            f"(plugin {self.plugin!r} of {self.distribution})"
        )

    def _import(self, reference: str, what: str) -> Any:
        try:
            return resolve_reference(reference)
        except Exception as exc:
            raise PluginError(
                f"{self._owner()}: cannot import its {what} {reference!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    @cached_property
    def implementation(self) -> Any:
        """The class or factory spec the plugin provides, imported now if it was a reference."""
        if not isinstance(self.item, PluginRef):
            return self.item
        implementation = self._import(self.item.target, "implementation")
        self._check_agreement(implementation)
        return implementation

    def _check_agreement(self, implementation: Any) -> None:
        """What the reference declared must be what the implementation says of itself, so that
        `validate` (which reads the reference) and `run` (which uses the class) agree."""
        ref: PluginRef = self.item
        disagreements = []
        name = getattr(implementation, "name", None)
        # An accelerator's name is its slot's; what fills the slot may have its own.
        if isinstance(name, str) and name != ref.name and self.kind != "accelerator":
            disagreements.append(f"name {name!r}, not {ref.name!r}")
        model_attr = "options_model" if self.kind == "format" else "config_model"
        model = getattr(implementation, model_attr, None)
        if ref.config_model is not None and model is not None and model is not self.config_model:
            disagreements.append(
                f"{model_attr} {_qualified(model)}, not {_qualified(self.config_model)}"
            )
        declared = self.declared_capabilities
        if declared is not None and getattr(implementation, "capabilities", None) is not None:
            capabilities = _capabilities(implementation.capabilities)
            if capabilities != declared:
                disagreements.append(
                    f"capabilities ({capabilities.describe()}), not ({declared.describe()})"
                )
        extensions = tuple(getattr(implementation, "extensions", ()) or ())
        if ref.extensions and extensions and extensions != ref.extensions:
            disagreements.append(f"extensions {extensions}, not {ref.extensions}")
        if disagreements:
            raise PluginError(
                f"{self._owner()}: {ref.target} does not match the plugin's PluginRef: it has "
                + "; ".join(disagreements),
                expected="a PluginRef that declares what the implementation has",
            )

    @property
    def factory(self) -> Callable[[Any], Any]:
        implementation = self.implementation
        if isinstance(implementation, type):
            return implementation
        return getattr(implementation, "factory", implementation)

    @cached_property
    def config_model(self) -> type[BaseModel]:
        """The model of the item's keys (a format's options); a reference's own model is
        imported without the implementation."""
        if isinstance(self.item, PluginRef) and self.item.config_model is not None:
            model = self._import(self.item.config_model, "config model")
        else:
            model_attr = "options_model" if self.kind in ("format", "paginator") else "config_model"
            model = getattr(self.implementation, model_attr, None)
        if model is None:
            from pydantic import BaseModel

            return BaseModel
        return model

    @cached_property
    def capabilities(self) -> Capabilities | None:
        """A connector's capabilities (declared, or read from the implementation); None for
        other kinds."""
        if self.kind != "connector":
            return None
        if self.declared_capabilities is not None:
            return self.declared_capabilities
        return _capabilities(getattr(self.implementation, "capabilities", None))

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


def _qualified(value: Any) -> str:
    return f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', value)!s}"


def _capabilities(value: Any) -> Capabilities:
    """`Capabilities` from what a plugin declared: the model itself, a mapping of its fields,
    or nothing (no capabilities)."""
    from dataloader.connectors import Capabilities

    if isinstance(value, Capabilities):
        return value
    if isinstance(value, Mapping):
        return Capabilities.model_validate(dict(value))
    return Capabilities()


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
    if isinstance(item, PluginRef):
        if not isinstance(item.name, str) or not item.name:
            raise TypeError(f"{item!r} has no `name`")
        for reference in (item.target, item.config_model):
            if reference is not None and (not isinstance(reference, str) or ":" not in reference):
                raise TypeError(f"{item!r}: {reference!r} is not 'package.module:Name'")
        declared = (
            _capabilities(item.capabilities)
            if kind == "connector" and item.capabilities is not None
            else None
        )
        return Registration(
            kind=kind,
            name=item.name,
            item=item,
            plugin=info.name,
            distribution=info.distribution,
            version=info.version,
            extensions=tuple(item.extensions),
            accelerator=item.accelerator,
            replaces=(item.accelerates or None) if kind == "accelerator" else None,
            declared_capabilities=declared,
        )
    name = getattr(item, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{item!r} has no `name`")
    return Registration(
        kind=kind,
        name=name,
        item=item,
        plugin=info.name,
        distribution=info.distribution,
        version=info.version,
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

    def paginator(self, name: str) -> Registration:
        return self.get("paginator", name)

    def executor(self, name: str) -> Registration:
        """The executor `name` (`runtime.executor`); a `PluginError` naming the installed ones."""
        return self.get("executor", name)

    def accelerator(self, name: str) -> Any | None:
        """The implementation filling accelerator slot `name`, or None when no installed plugin
        fills it. One that fails to import is dropped with a warning, its plugin marked
        broken, and None returned: the caller's own code does the work.

        :raises PluginError: when two distributions fill the slot.
        """
        conflict = self.conflicts.get(("accelerator", name))
        if conflict is not None:
            raise PluginError(conflict.message())
        registration = self._items["accelerator"].get(name)
        if registration is None:
            return None
        try:
            return registration.implementation
        except PluginError as exc:
            self._drop_broken(registration, str(exc.problem.message))
            logging.getLogger("dataloader.plugins").warning(
                "accelerator %r is not used: %s", name, exc.problem.message
            )
            return None

    def _drop_broken(self, registration: Registration, error: str) -> None:
        del self._items[registration.kind][registration.name]
        info = next(
            (i for i in self._plugins if i.name == registration.plugin), None
        ) or PluginInfo(registration.plugin, registration.distribution, "", "")
        self._mark_broken(info, error)

    def import_all(self) -> None:
        """Import every item given as a `PluginRef` (what `list-connectors` does, to show
        each item's capabilities and any that fails): an item whose implementation or config
        model fails to import, or disagrees with its reference, is dropped and its plugin
        marked broken."""
        for kind in KINDS:
            for registration in self.all(kind):
                if not registration.lazy:
                    continue
                try:
                    registration.implementation  # noqa: B018
                    registration.config_model  # noqa: B018
                except PluginError as exc:
                    self._drop_broken(registration, str(exc.problem.message))

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
