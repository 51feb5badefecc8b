"""Every hook in dataloader/hookspecs.py has a docstring and is documented in docs/plugins.md."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from dataloader import hookspecs

DOCS = Path(__file__).resolve().parents[3] / "docs" / "plugins.md"
EXPECTED_HOOKS = {
    "register_connectors",
    "register_formats",
    "register_transforms",
    "register_state_backends",
    "register_paginators",
    "register_accelerators",
    "register_executors",
    "register_commands",
}


def hookspec_functions() -> dict[str, object]:
    """The functions marked with `@hookspec` (what pluggy would register as hooks)."""
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return {
        name: function
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, marker)
    }


def test_hookspecs_are_found() -> None:
    # guards the discovery below: if it found nothing, the other tests would pass vacuously
    assert set(hookspec_functions()) == EXPECTED_HOOKS


@pytest.mark.parametrize("name", sorted(EXPECTED_HOOKS))
def test_hookspec_has_a_docstring(name: str) -> None:
    function = hookspec_functions()[name]
    doc = inspect.getdoc(function)
    assert doc and len(doc.split()) >= 5, f"hookspec {name} needs a docstring"


def test_every_hookspec_is_documented_in_docs() -> None:
    assert DOCS.is_file(), f"{DOCS} is missing"
    text = DOCS.read_text(encoding="utf-8")
    undocumented = [
        name for name in hookspec_functions() if not re.search(rf"\b{re.escape(name)}\b", text)
    ]
    assert not undocumented, f"hooks not documented in docs/plugins.md: {undocumented}"


def test_every_hookspec_signature_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name, function in hookspec_functions().items():
        parameters = list(inspect.signature(function).parameters)
        # `def register_x()` or `def register_x(cli: click.Group)`: each parameter, in order
        inside = r",\s*".join(rf"{re.escape(p)}\b[^,)]*" for p in parameters)
        pattern = rf"def {re.escape(name)}\({inside}\)"
        assert re.search(pattern, text), f"docs/plugins.md lacks the signature of {name}"


def test_the_minimal_plugin_example_works() -> None:
    import types
    from datetime import UTC, datetime

    from dataloader import RunContext
    from dataloader.plugins import create_plugin_manager
    from dataloader.registry import Registry

    text = DOCS.read_text(encoding="utf-8")
    [code] = [
        block
        for block in re.findall(r"```python\n(.*?)```", text, re.S)
        if "dataloader_mything/plugin.py" in block
    ]
    module = types.ModuleType("docs_minimal_plugin")
    exec(compile(code, str(DOCS), "exec"), module.__dict__)
    registry = Registry(*create_plugin_manager({"mything": module}))

    counter = registry.connector("counter")
    assert counter.capabilities is not None and counter.capabilities.read
    source = counter.create(counter.config_model.model_validate({"count": 3}))
    [batch] = list(source.read_batches(None))

    negate = registry.transform("negate")
    step = negate.create(negate.config_model.model_validate({"column": "n"}))
    context = RunContext(recipe_name="counting", run_id="r", started_at=datetime.now(UTC))
    assert step.apply(batch, context).to_dict()["rows"] == [[-1], [-2], [-3]]
