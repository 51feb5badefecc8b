"""Templates in recipe values: env_var, env.X, var, var.x, recipe.name, and their errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dataloader import RecipeError
from dataloader.recipe import RecipeLoader, TemplateRenderer
from dataloader.registry import Registry

Write = Callable[[str, str], Path]


def recipe_with(write: Write, **source_values: str) -> Path:
    lines = "\n".join(f"  {key}: {value!r}" for key, value in source_values.items())
    return write(
        "templated.yaml",
        "name: templated\n"
        "source:\n"
        "  type: sequence\n"
        "  stop: 3\n"
        f"{lines}\n"
        "destination:\n"
        "  type: memory_sink\n"
        "  table: t\n",
    )


def label_of(path: Path, registry: Registry, environ: dict[str, str], **variables: str) -> str:
    recipe = RecipeLoader(variables, registry=registry, environ=environ).load(path)
    return recipe.source.options["label"]


@pytest.mark.parametrize(
    ("template", "environ", "variables", "expected"),
    [
        ("{{ env_var('REGION') }}", {"REGION": "eu"}, {}, "eu"),
        ("{{ env_var('REGION', 'us') }}", {}, {}, "us"),
        ("{{ env_var('REGION', 'us') }}", {"REGION": "eu"}, {}, "eu"),
        ("{{ env.REGION }}", {"REGION": "eu"}, {}, "eu"),
        ("{{ env['REGION'] }}", {"REGION": "eu"}, {}, "eu"),
        ("{{ var('team') }}", {}, {"team": "sales"}, "sales"),
        ("{{ var('team', 'ops') }}", {}, {}, "ops"),
        ("{{ var('team', 'ops') }}", {}, {"team": "sales"}, "sales"),
        ("{{ var.team }}", {}, {"team": "sales"}, "sales"),
        ("{{ recipe.name }}", {}, {}, "templated"),
        (
            "{{ recipe.name }}-{{ var.team }}-{{ env.REGION }}",
            {"REGION": "eu"},
            {"team": "s"},
            "templated-s-eu",
        ),
        ("{{ var('team') | upper }}", {}, {"team": "sales"}, "SALES"),
        ("plain text", {}, {}, "plain text"),
    ],
)
def test_template_functions(
    write: Write,
    registry: Registry,
    template: str,
    environ: dict[str, str],
    variables: dict[str, str],
    expected: str,
) -> None:
    path = recipe_with(write, label=template)
    assert label_of(path, registry, environ, **variables) == expected


def test_the_process_environment_is_the_default(
    write: Write, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATALOADER_TEST_REGION", "ap")
    path = recipe_with(write, label="{{ env_var('DATALOADER_TEST_REGION') }}")
    assert RecipeLoader(registry=registry).load(path).source.options["label"] == "ap"


def test_rendered_values_are_validated_by_the_connector_model(
    write: Write, registry: Registry
) -> None:
    path = write(
        "typed.yaml",
        """
        name: typed
        source: {type: sequence, stop: "{{ var('stop') }}"}
        destination: {type: memory_sink, table: t}
        """,
    )
    recipe = RecipeLoader({"stop": "42"}, registry=registry).load(path)
    assert recipe.source.options["stop"] == "42"
    bound_stop = registry.connector("sequence").config_model.model_validate(recipe.source.options)
    assert bound_stop.stop == 42


def test_templated_recipe_name_is_visible_to_recipe_name(write: Write, registry: Registry) -> None:
    path = write(
        "named.yaml",
        """
        name: "orders-{{ var('env') }}"
        source: {type: sequence, stop: 1, label: "{{ recipe.name }}"}
        destination: {type: memory_sink, table: t}
        """,
    )
    recipe = RecipeLoader({"env": "prod"}, registry=registry).load(path)
    assert recipe.name == "orders-prod"
    assert recipe.source.options["label"] == "orders-prod"


def test_templates_render_after_merge(write: Write, registry: Registry) -> None:
    write(
        "base.yaml",
        """
        name: base
        source: {type: sequence, stop: 1, label: "{{ recipe.name }}"}
        destination: {type: memory_sink, table: t}
        """,
    )
    child = write("child.yaml", "extends: base.yaml\nname: child\n")
    assert label_of(child, registry, {}) == "child"


def test_templates_inside_lists(write: Write, registry: Registry) -> None:
    path = write(
        "lists.yaml",
        """
        name: lists
        source: {type: sequence, stop: 1}
        destination:
          type: memory_sink
          table: t
          write_mode: merge
          merge_keys: ["{{ var('key') }}", other]
        """,
    )
    recipe = RecipeLoader({"key": "id"}, registry=registry).load(path)
    assert recipe.destination.merge_keys == ["id", "other"]


# -- unresolved templates -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("template", "what"),
    [
        ("{{ env_var('DL_TEST_MISSING') }}", "environment variable 'DL_TEST_MISSING'"),
        ("{{ env.DL_TEST_MISSING }}", "environment variable 'DL_TEST_MISSING'"),
        ("{{ var('region') }}", "variable 'region'"),
        ("{{ var.region }}", "variable 'region'"),
    ],
)
def test_missing_value_is_a_recipe_error_naming_file_key_and_variable(
    write: Write, registry: Registry, template: str, what: str
) -> None:
    path = recipe_with(write, label=template)
    with pytest.raises(RecipeError) as info:
        RecipeLoader(registry=registry, environ={}).load(path)
    message = str(info.value)
    assert str(path) in message
    assert "source.label" in message
    assert what in message
    assert "is not set" in message
    [problem] = info.value.problems
    assert (problem.file, problem.key) == (str(path), "source.label")


def test_missing_value_in_a_parent_names_the_parent_file(write: Write, registry: Registry) -> None:
    base = write(
        "base.yaml",
        """
        name: base
        source: {type: sequence, stop: 1}
        destination: {type: memory_sink, table: "{{ var('table') }}"}
        """,
    )
    child = write("child.yaml", "extends: base.yaml\nname: child\n")
    with pytest.raises(RecipeError) as info:
        RecipeLoader(registry=registry, environ={}).load(child)
    [problem] = info.value.problems
    assert problem.file == str(base)
    assert problem.key == "destination.table"
    assert "variable 'table'" in str(info.value)


def test_missing_values_in_list_items_name_the_index(write: Write, registry: Registry) -> None:
    path = write(
        "lists.yaml",
        """
        name: lists
        source: {type: sequence, stop: 1}
        destination:
          type: memory_sink
          table: t
          write_mode: merge
          merge_keys: [id, "{{ var('key') }}"]
        """,
    )
    with pytest.raises(RecipeError) as info:
        RecipeLoader(registry=registry).load(path)
    assert "destination.merge_keys[1]" in str(info.value)


def test_every_missing_value_is_reported(write: Write, registry: Registry) -> None:
    path = write(
        "two.yaml",
        """
        name: two
        source: {type: sequence, stop: 1, label: "{{ var('a') }}"}
        destination: {type: memory_sink, table: "{{ env_var('DL_TEST_NOT_SET') }}"}
        """,
    )
    with pytest.raises(RecipeError) as info:
        RecipeLoader(registry=registry, environ={}).load(path)
    keys = {problem.key for problem in info.value.problems}
    assert keys == {"source.label", "destination.table"}
    message = str(info.value)
    assert "variable 'a'" in message
    assert "DL_TEST_NOT_SET" in message


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("{{ no_such_name }}", "undefined"),
        ("{{ recipe.nope }}", "undefined"),
        ("{{ var('x'", "invalid template"),
    ],
)
def test_undefined_names_and_bad_syntax_are_recipe_errors(
    write: Write, registry: Registry, template: str, fragment: str
) -> None:
    path = recipe_with(write, label=template)
    with pytest.raises(RecipeError, match=fragment) as info:
        RecipeLoader(registry=registry).load(path)
    assert "source.label" in str(info.value)


def test_the_sandbox_blocks_unsafe_attribute_access(write: Write, registry: Registry) -> None:
    path = recipe_with(write, label="{{ recipe.__class__.__mro__ }}")
    with pytest.raises(RecipeError) as info:
        RecipeLoader(registry=registry).load(path)
    assert "source.label" in str(info.value)


def test_renderer_reports_which_paths_read_a_secret() -> None:
    renderer = TemplateRenderer({"v": "x"}, {"SECRET_THING": "hunter22", "REGION": "eu"})
    result = renderer.render_tree(
        {
            "name": "n",
            "a": "{{ secret('SECRET_THING') }}",
            "b": "{{ var('v') }}",
            "c": ["{{ secret.SECRET_THING }}"],
            "d": "{{ env_var('UNSET', 'fallback') }}",
            "e": "{{ env_var('REGION') }}-{{ env.REGION }}",
            "f": "{{ secret('UNSET', 'secret-fallback') }}",
        },
        file=None,
        origins={},
    )
    assert result.problems == []
    assert result.tree == {
        "name": "n",
        "a": "hunter22",
        "b": "x",
        "c": ["hunter22"],
        "d": "fallback",
        "e": "eu-eu",
        "f": "secret-fallback",
    }
    # env_var reads are not secrets; secret() reads are, a default too
    assert result.secret_paths == {"a", "c[0]", "f"}
