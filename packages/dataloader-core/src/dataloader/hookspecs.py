"""The hooks a dataloader plugin can implement. This module is the only place hooks are declared.

A plugin is a module (or object) of functions decorated with `dataloader.hookimpl`, published
under the `dataloader` entry-point group::

    [project.entry-points.dataloader]
    mything = "dataloader_mything.plugin"

Every `register_*` hook takes no arguments and returns a list of classes, or of `PluginRef`s
naming them (`PluginRef("x", "pkg.module:Class", config_model="pkg.config:XConfig")`), so that
listing plugins and validating a recipe import no implementation; the core instantiates them
when a recipe asks for them and drives them itself. Hooks only grow: new arguments are opt-in,
and a hook never changes its meaning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

PROJECT_NAME = "dataloader"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_connectors() -> list[Any]:
    """Return the connectors this plugin provides.

    Each item is a class with a `name` (the recipe's `type`), a `config_model` (a
    `ConnectorConfig` subclass validating the connector's keys) and `capabilities`;
    subclassing `dataloader.BaseConnector` gives all three. A `ConnectorSpec` may be returned
    instead of a class to pair a name with a factory function, and a `PluginRef` to name the
    class without importing it (its `capabilities` and `config_model` declared in the reference
    are used until the class is created, and must match the class's).

    :returns: a list of connector classes, `ConnectorSpec` or `PluginRef` objects.
    """


@hookspec
def register_formats() -> list[Any]:
    """Return the file formats this plugin provides.

    Each item is a `dataloader.Format` subclass with a `name`, the `extensions` that select it
    and an `options_model`, or a `PluginRef` declaring the name, `extensions` and (as
    `config_model`) the options model.

    :returns: a list of `Format` subclasses or `PluginRef` objects.
    """


@hookspec
def register_transforms() -> list[Any]:
    """Return the transform steps this plugin provides.

    Each item is a `dataloader.Transform` subclass with a `name` (the step's `type`) and a
    `config_model` validating the step's keys, or a `PluginRef` naming one.

    :returns: a list of `Transform` subclasses or `PluginRef` objects.
    """


@hookspec
def register_state_backends() -> list[Any]:
    """Return the state backends this plugin provides.

    Each item is a class with a `name` (the `state.backend` value) and a `config_model`,
    implementing the `dataloader.StateBackend` protocol (`load`, `save`, `delete`, `lock`), or a
    `PluginRef` naming one.

    :returns: a list of state backend classes or `PluginRef` objects.
    """


@hookspec
def register_paginators() -> list[Any]:
    """Return the paginators this plugin provides to the `rest` source (`dataloader-rest`).

    Each item is a `dataloader_rest.Paginator` subclass with a `name` (the recipe's
    `paginator.type`) and an `options_model` (a `dataloader_rest.PaginatorOptions` subclass
    validating the paginator's keys), or a `PluginRef` naming one. A paginator turns the
    request of one page and its response into the request of the next page; the source owns
    the loop, the stop conditions and the checkpoints.

    :returns: a list of `Paginator` subclasses or `PluginRef` objects.
    """


@hookspec
def register_accelerators() -> list[Any]:
    """Return faster implementations of work the core or a connector otherwise does in Python.

    Each item is a `PluginRef` whose `name` is an accelerator slot, whose `target` is the
    implementation, and whose `accelerates` says in words what it speeds up. A consumer asks
    `Registry.accelerator(name)` and falls back to its own code when the slot is empty (the
    plugin is not installed, disabled, or fails to import), so an accelerator must give exactly
    the results of the code it replaces. Slots in use:

    - `row_hash`: a function `(columns, names) -> numpy.ndarray | None` computing
      `dataloader.normalize.keys.hash_rows` (same values, bit for bit); None for columns it
      does not handle.
    - `postgres_copy_codec`: a class implementing `dataloader_postgres.codec.CopyCodec`,
      created without arguments; the Postgres connector uses it unless a recipe sets
      `codec: csv`.

    :returns: a list of `PluginRef` objects.
    """


@hookspec
def register_executors() -> list[Any]:
    """Return the executors this plugin provides: what runs the tasks of a distributed run.

    Each item is a class, or a `PluginRef` naming one, with a `name` (the recipe's
    `runtime.executor`), created without arguments and implementing
    `dataloader.executors.Executor` (`open(runtime)`, `map(function, items)`, `close()`). The
    executor only runs tasks the core gives it, retrying a task whose worker died; the core
    plans the partitions, takes the state lock and commits (`dataloader.engine.distributed`).
    `local`, the single-process engine, is built in and is not an executor plugin.

    :returns: a list of executor classes or `PluginRef` objects.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the `dataloader` CLI.

    :param cli: the root click group; call `cli.add_command(...)` on it.
    """
