"""The seed's in-process decorators feed the same registry the recipe layer uses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pyarrow.compute as pc
import pytest

from dataloader import (
    ArrowBatch,
    BaseConnector,
    Capabilities,
    ConnectorConfig,
    Format,
    FormatOptions,
    PluginError,
    RecipeError,
    Transform,
    TransformStepConfig,
    get_connector,
    get_registry,
    get_transform,
    register_connector,
    register_format,
    register_state_backend,
    register_transform,
)
from dataloader.plugins import IN_PROCESS
from dataloader.recipe import RecipeLoader
from dataloader.registry import Kind, unregister

Write = Callable[[str, str], Path]


@pytest.fixture
def cleanup() -> Iterator[Callable[[Kind, str], None]]:
    """`cleanup(kind, name)`: unregister `name` after the test."""
    registered: list[tuple[Kind, str]] = []
    yield lambda kind, name: registered.append((kind, name))
    for kind, name in registered:
        unregister(kind, name)


class ApiConfig(ConnectorConfig):
    url: str
    page_size: int = 100


def test_register_connector_class(cleanup: Callable[[Kind, str], None]) -> None:
    cleanup("connector", "dl_test_api")

    @register_connector("dl_test_api", capabilities=Capabilities(read=True, incremental=True))
    class Api(BaseConnector):
        config_model = ApiConfig

    registration = get_registry().connector("dl_test_api")
    assert registration.factory is Api
    assert registration.distribution == IN_PROCESS
    assert registration.config_model is ApiConfig
    assert registration.capabilities == Capabilities(read=True, incremental=True)
    assert Api.name == "dl_test_api"

    instance = get_connector("dl_test_api", {"url": "https://example.invalid"})
    assert isinstance(instance, Api)
    assert instance.config == ApiConfig(url="https://example.invalid")


def test_register_connector_factory_function(cleanup: Callable[[Kind, str], None]) -> None:
    cleanup("connector", "dl_test_factory")
    made: list[Any] = []

    @register_connector("dl_test_factory")
    def make(options: Any) -> str:
        made.append(options)
        return "made"

    registration = get_registry().connector("dl_test_factory")
    assert registration.capabilities is not None
    assert registration.capabilities.read and registration.capabilities.write
    assert get_connector("dl_test_factory", {"anything": 1}) == "made"
    assert made[0].model_extra == {"anything": 1}


def test_decorated_connector_is_usable_in_a_recipe(
    cleanup: Callable[[Kind, str], None], write: Write
) -> None:
    cleanup("connector", "dl_test_dest")

    class DestConfig(ConnectorConfig):
        table: str

    @register_connector(
        "dl_test_dest",
        config_model=DestConfig,
        capabilities=Capabilities(write=True, write_modes=("append",)),
    )
    class Dest(BaseConnector):
        pass

    ok = write(
        "ok.yaml",
        "name: ok\nsource: {type: sequence, stop: 1}\ndestination: {type: dl_test_dest, table: t}\n",
    )
    assert RecipeLoader().load(ok).destination.type == "dl_test_dest"

    typo = write(
        "typo.yaml",
        "name: t\nsource: {type: sequence, stop: 1}\ndestination: {type: dl_test_dest, tabel: t}\n",
    )
    with pytest.raises(RecipeError) as info:
        RecipeLoader().load(typo)
    assert "unknown key 'tabel' for connector 'dl_test_dest'" in str(info.value)

    overwrite = write(
        "ow.yaml",
        "name: o\nsource: {type: sequence, stop: 1}\n"
        "destination: {type: dl_test_dest, table: t, write_mode: overwrite}\n",
    )
    with pytest.raises(RecipeError, match="does not support write_mode 'overwrite'"):
        RecipeLoader().load(overwrite)


def test_unregister_removes_it(cleanup: Callable[[Kind, str], None]) -> None:
    register_connector("dl_test_gone", lambda options: None)
    assert "dl_test_gone" in get_registry().names("connector")
    unregister("connector", "dl_test_gone")
    assert "dl_test_gone" not in get_registry().names("connector")
    with pytest.raises(PluginError, match="unknown connector 'dl_test_gone'"):
        get_connector("dl_test_gone")


def test_registering_the_same_name_again_replaces_it(
    cleanup: Callable[[Kind, str], None],
) -> None:
    cleanup("connector", "dl_test_twice")
    get_registry()  # already built: registering afterwards must still be seen
    register_connector("dl_test_twice", lambda options: "first")
    assert get_connector("dl_test_twice") == "first"
    register_connector("dl_test_twice", lambda options: "second")
    assert get_connector("dl_test_twice") == "second"
    assert ("connector", "dl_test_twice") not in get_registry().conflicts


class DoubleConfig(TransformStepConfig):
    column: str


def test_register_transform_class(
    cleanup: Callable[[Kind, str], None], context: Any, make_batch: Callable[..., ArrowBatch]
) -> None:
    cleanup("transform", "dl_test_double")

    @register_transform("dl_test_double")
    class Double(Transform):
        config_model = DoubleConfig

        def apply(self, batch: ArrowBatch, context: Any) -> ArrowBatch:
            data = batch.to_arrow()
            index = data.schema.get_field_index(self.config.column)
            doubled = pc.multiply(data.column(index), 2)
            return batch.with_data(data.set_column(index, self.config.column, doubled))

    registration = get_registry().transform("dl_test_double")
    assert registration.distribution == IN_PROCESS
    assert registration.config_model is DoubleConfig
    step = get_transform("dl_test_double", {"column": "n"})
    assert step.apply(make_batch(n=[1, 2]), context).to_dict()["rows"] == [[2], [4]]


def test_register_transform_function(
    cleanup: Callable[[Kind, str], None], context: Any, make_batch: Callable[..., ArrowBatch]
) -> None:
    cleanup("transform", "dl_test_fn")

    @register_transform("dl_test_fn")
    def build(options: Any) -> Any:
        return ("built", options.model_extra)

    assert get_transform("dl_test_fn", {"x": 1}) == ("built", {"x": 1})


def test_register_format(cleanup: Callable[[Kind, str], None]) -> None:
    cleanup("format", "dl_test_fmt")

    @register_format("dl_test_fmt", extensions=(".dlt", ".dlt.txt"))
    class DltFormat(Format):
        options_model = FormatOptions

        def read(self, stream: IO[bytes], *, batch_size: int):  # pragma: no cover
            yield from ()

        def write(self, batches, stream, schema) -> int:  # pragma: no cover
            return 0

    registry = get_registry()
    registration = registry.format("dl_test_fmt")
    assert registration.factory is DltFormat
    assert registration.extensions == (".dlt", ".dlt.txt")
    assert registration.distribution == IN_PROCESS
    assert registry.format_for_path("data/part-1.DLT") is registration
    assert registry.format_for_path("data/part-1.dlt.txt.gz") is registration
    assert registry.format_for_path("data/part-1.csv2") is None


def test_register_state_backend(cleanup: Callable[[Kind, str], None]) -> None:
    cleanup("state_backend", "dl_test_state")

    @register_state_backend("dl_test_state")
    class MyBackend:
        def __init__(self, config: Any) -> None:
            self.config = config

    assert get_registry().state_backend("dl_test_state").factory is MyBackend
