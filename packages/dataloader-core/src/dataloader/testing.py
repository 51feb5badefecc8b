"""Helpers for testing dataloader and its plugins: a source that yields given rows, a runner
with local state, and the start/stop discipline of the real servers tests run against."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pyarrow as pa

from dataloader.batch import ArrowBatch
from dataloader.connectors import BaseConnector, Capabilities, ConnectorConfig
from dataloader.schema.plan import KEY_TAG, ChangeKind, ColumnChange, SchemaPlan, key_of
from dataloader.schema.types import TYPE_TAG
from dataloader.state.model import State


def local_runner(state_dir: Path) -> Callable[..., Any]:
    """`run(recipe, **kwargs)`: run a `Recipe` (or its dict) with local state in `state_dir`;
    returns the `RunResult`."""
    from dataloader.engine import run_recipe
    from dataloader.recipe.models import Recipe
    from dataloader.state.local import LocalStateBackend

    def run(recipe: Any, **kwargs: Any) -> Any:
        if not isinstance(recipe, Recipe):
            recipe = Recipe.model_validate(recipe)
        return run_recipe(recipe, LocalStateBackend(state_dir), **kwargs)

    return run


class RowsConfig(ConnectorConfig):
    """`batches`: the batches the source yields, each a list of row dicts, in this order."""

    batches: list[list[dict[str, Any]]]


class RowsSource(BaseConnector):
    """A source that yields exactly the batches it is configured with: no sorting, no
    filtering. Register it under a name of your choice with `register_connector(name)`."""

    config_model = RowsConfig
    capabilities = Capabilities(read=True, incremental=True)

    def read_batches(self, state: State) -> Iterator[ArrowBatch]:
        for rows in self.config.batches:
            yield ArrowBatch.from_pylist(rows)


@contextmanager
def host_time_zone(zone: str) -> Iterator[None]:
    """This process (and the connections it opens: `TZ`, and `PGTZ` for libpq) in time zone
    `zone` until the block ends; the previous settings are restored."""
    saved = {name: os.environ.get(name) for name in ("TZ", "PGTZ")}
    os.environ["TZ"] = os.environ["PGTZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        time.tzset()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server(Protocol):
    def start(self) -> Any: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=Server)


def serve(server: S, what: str) -> Iterator[S]:
    """Body of a pytest fixture: start `server`, yield it, stop it.

    A server that cannot start fails the test with its reason: tests never skip for a
    missing service.
    """
    import pytest

    try:
        server.start()
    except Exception as exc:
        server.stop()
        pytest.fail(f"could not start {what} for the tests: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


# -- schema plans, as the engine hands them to a destination ----------------------------------


def schema_field(
    name: str,
    arrow_type: pa.DataType,
    *,
    nullable: bool = True,
    key: str | bytes | None = None,
    pg_type: str | bytes | None = None,
) -> pa.Field:
    """A field as `describe` returns it and plans carry it: `key` (`primary`/`unique`) and
    `pg_type` (`json`, `uuid`, …) become the field metadata the engine uses."""
    metadata = {
        tag: value.encode() if isinstance(value, str) else value
        for tag, value in ((KEY_TAG, key), (TYPE_TAG, pg_type))
        if value is not None
    }
    return pa.field(name, arrow_type, nullable=nullable, metadata=metadata or None)


def create_plan(target: pa.Schema) -> SchemaPlan:
    """The plan that creates a table shaped `target`."""
    changes = tuple(ColumnChange("create", f.name, None, f.type, "new table") for f in target)
    return SchemaPlan(True, target, changes)


def change_plan(before: pa.Schema, target: pa.Schema, **kinds: ChangeKind) -> SchemaPlan:
    """The plan taking a table from `before` to `target`; `kinds` names each changed column's
    change (`add_column` or `widen_type`)."""
    changes = tuple(
        ColumnChange(
            kind,
            name,
            before.field(name).type if kind == "widen_type" else None,
            target.field(name).type,
            "test",
        )
        for name, kind in kinds.items()
    )
    return SchemaPlan(False, target, changes)


def described_shape(
    schema: pa.Schema | None,
) -> list[tuple[str, pa.DataType, bool, str | None, bytes]]:
    """What `describe` promises of each column: name, type, nullability, key and type tag."""
    assert schema is not None, "describe() found no table"
    return [
        (f.name, f.type, f.nullable, key_of(f), (f.metadata or {}).get(TYPE_TAG, b""))
        for f in schema
    ]


def begun_destination(
    connector: Any, write_mode: str = "append", run_id: str = "run-1", **context: Any
) -> Any:
    """`connector` opened and begun as a destination of one run of recipe `r` would be (the
    caller closes it); `context` sets other `RunContext` fields (`merge_keys`, …)."""
    from datetime import UTC, datetime

    from dataloader.context import RunContext

    connector.open(
        RunContext(
            recipe_name="r",
            run_id=run_id,
            started_at=datetime.now(UTC),
            role="destination",
            write_mode=write_mode,
            **context,
        )
    )
    connector.begin(State())
    return connector
