"""Secret masking: in rendered recipes, in error messages and in error context."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from dataloader import (
    BaseConnector,
    Capabilities,
    ConnectorConfig,
    RecipeError,
    TransformError,
    register_connector,
)
from dataloader.errors import Problem
from dataloader.recipe import RecipeLoader
from dataloader.registry import Registry, get_registry, unregister
from dataloader.secrets import (
    MASK,
    is_secret_key,
    mask_text,
    mask_tree,
    register_secret,
    secret_fields,
    url_passwords,
)

Write = Callable[[str, str], Path]


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "PASSWORD",
        "db_password",
        "passwd",
        "pwd",
        "token",
        "access_token",
        "api_key",
        "key",
        "secret",
        "client_secret",
        "secret_access_key",
        "private_key",
        "credentials",
        "ssh_passphrase",
    ],
)
def test_secret_key_names(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "merge_keys",
        "merge_key",
        "primary_key",
        "partition_key",
        "sort_key",
        "cursor_key",
        "keys",
        "monkey",
        "key_column",
        "table",
        "user",
        "host",
    ],
)
def test_not_secret_key_names(key: str) -> None:
    assert not is_secret_key(key)


def test_registered_values_are_masked_in_any_text() -> None:
    register_secret("s3cr3t-value")
    register_secret("ab")  # too short to mask safely: ignored
    assert mask_text("dsn=postgres://u:s3cr3t-value@h/db ab") == "dsn=postgres://u:***@h/db ab"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u:p#ss/w?rd@h/db", ["p#ss/w?rd"]),
        ("dsn postgresql://u:p%23ss%2Fw%3Frd@h/db, then", ["p%23ss%2Fw%3Frd"]),
        ("a://u:one@h and b://v:two@h", ["one", "two"]),
        ("sftp://user@host:22/dir/file@2024.csv", []),  # a user and a port, no password
        ("s3://bucket/key:part@x", []),
        ("http://host:8080/a b@c", []),
        ("postgresql://u@h:5432/db?sslmode=require&password=Qz9%23sec", ["Qz9%23sec"]),
        ("host=h port=5432 password=Qz9secretQ user=u", ["Qz9secretQ"]),
        ("host=h password='two words' user=u", ["two words"]),
        ("https://h/search?q=password", []),
    ],
)
def test_url_passwords_are_parsed_up_to_the_at_sign(text: str, expected: list[str]) -> None:
    assert list(url_passwords(text)) == expected


def test_an_unknown_url_password_with_url_characters_is_masked_in_text() -> None:
    assert mask_text("at postgresql://u:p#ss/w?rd@h/db.") == f"at postgresql://u:{MASK}@h/db."
    assert mask_text('{"url": "http://u:a/b?c@h"}') == f'{{"url": "http://u:{MASK}@h"}}'


@pytest.mark.parametrize("written", ["p#ss/w?rd-9f3", "p%23ss%2Fw%3Frd-9f3"])
def test_every_secret_is_known_once_the_recipe_is_loaded(
    write: Write, registry: Registry, written: str
) -> None:
    path = write(
        "urls.yaml",
        f"""
        name: urls
        source: {{type: sequence, stop: 1}}
        destination:
          type: memory_sink
          table: "postgresql://u:{written}@h/db"
          token: literal-token-value
        """,
    )
    rendered = RecipeLoader(registry=registry).render(path)
    assert rendered["destination"]["table"] == f"postgresql://u:{MASK}@h/db"
    # Known before any connection: in any form a driver or a log line may quote it.
    for form in ("p#ss/w?rd-9f3", "p%23ss%2Fw%3Frd-9f3", "literal-token-value"):
        assert mask_text(f"failed: {form}!") == f"failed: {MASK}!"


@pytest.mark.parametrize(
    "table",
    [
        "postgresql://u@h:5432/db?sslmode=require&password=Qz9-query-pw",
        "host=h port=5432 dbname=db password=Qz9-query-pw user=u",
    ],
)
def test_render_masks_a_password_given_as_a_parameter(
    write: Write, registry: Registry, table: str
) -> None:
    path = write(
        "params.yaml",
        f"""
        name: params
        source: {{type: sequence, stop: 1}}
        destination: {{type: memory_sink, table: "{table}"}}
        """,
    )
    rendered = RecipeLoader(registry=registry).render(path)
    assert "Qz9-query-pw" not in str(rendered)
    assert mask_text("failed: Qz9-query-pw") == f"failed: {MASK}"


def test_a_validation_error_quoting_a_url_masks_its_password(
    write: Write, registry: Registry
) -> None:
    path = write(
        "bad.yaml",
        """
        name: bad
        source: {type: sequence, stop: 1}
        destination: {type: memory_sink, table: t, port: "postgresql://u:p#ss/w?rd@h/db"}
        """,
    )
    with pytest.raises(RecipeError) as info:
        RecipeLoader(registry=registry).load(path)
    message = str(info.value)
    assert "destination.port" in message
    assert "ss/w?rd" not in message and "p#ss" not in message


def test_mask_tree() -> None:
    tree = {
        "password": "p4ss",
        "empty_password": "",
        "no_token": None,
        "options": {"api_key": 123, "host": "db"},
        "tokens": ["t-one", "t-two"],
        "merge_keys": ["id"],
        "env_list": ["from-env", "plain"],
        "from_env": "x",
    }
    masked = mask_tree(tree, masked_paths=frozenset({"from_env", "env_list[0]"}))
    assert masked == {
        "password": MASK,
        "empty_password": "",
        "no_token": None,
        "options": {"api_key": MASK, "host": "db"},
        "tokens": [MASK, MASK],
        "merge_keys": ["id"],
        "env_list": [MASK, "plain"],
        "from_env": MASK,
    }
    assert tree["password"] == "p4ss"  # the input is left alone


# -- render ---------------------------------------------------------------------------------
SECRET_RECIPE = """
    name: secrets
    source:
      type: sequence
      stop: 3
      label: "{{ env_var('DL_TEST_LABEL') }}"
    destination:
      type: memory_sink
      table: "{{ var('table') }}"
      password: literal-password
      api_key: literal-api-key
      token: "{{ env_var('DL_TEST_TOKEN') }}"
      write_mode: merge
      merge_keys: [id, label]
"""


def test_render_masks_secret_keys_and_shows_other_values_from_the_environment(
    write: Write, registry: Registry
) -> None:
    path = write("secrets.yaml", SECRET_RECIPE)
    environ = {"DL_TEST_LABEL": "not-a-secret-name", "DL_TEST_TOKEN": "tok-123456"}
    rendered = RecipeLoader({"table": "orders"}, registry=registry, environ=environ).render(path)
    destination = rendered["destination"]
    assert destination["password"] == MASK
    assert destination["api_key"] == MASK
    assert destination["token"] == MASK  # from env_var, and named like a secret
    # a value from env_var under a key that is not a secret is shown, so it can be checked
    assert rendered["source"]["label"] == "not-a-secret-name"
    # neither merge_keys nor values from var() are secrets
    assert destination["merge_keys"] == ["id", "label"]
    assert destination["table"] == "orders"
    assert destination["write_mode"] == "merge"
    text = repr(rendered)
    for secret in ("literal-password", "literal-api-key", "tok-123456"):
        assert secret not in text
    assert mask_text("label not-a-secret-name") == "label not-a-secret-name"


def test_a_table_name_from_the_environment_is_rendered(write: Write, registry: Registry) -> None:
    path = write(
        "env_table.yaml",
        """
        name: env_table
        source: {type: sequence, stop: 1}
        destination:
          type: memory_sink
          table: "{{ env_var('DL_TEST_TABLE') }}"
          password: "{{ env_var('DL_TEST_PASSWORD') }}"
        """,
    )
    environ = {"DL_TEST_TABLE": "analytics.orders", "DL_TEST_PASSWORD": "pw-from-env-77"}
    rendered = RecipeLoader(registry=registry, environ=environ).render(path)
    assert rendered["destination"]["table"] == "analytics.orders"
    assert rendered["destination"]["password"] == MASK
    assert mask_text("login with pw-from-env-77") == f"login with {MASK}"


def test_values_read_with_secret_are_masked_wherever_they_land(
    write: Write, registry: Registry
) -> None:
    path = write(
        "secret_fn.yaml",
        """
        name: secret_fn
        source:
          type: sequence
          stop: 1
          label: "{{ secret('DL_TEST_LABEL') }}"
        destination:
          type: memory_sink
          table: "prefix-{{ secret('DL_TEST_UNSET', 'default-secret-1') }}"
        """,
    )
    environ = {"DL_TEST_LABEL": "label-secret-9"}
    loader = RecipeLoader(registry=registry, environ=environ)
    rendered = loader.render(path)
    assert rendered["source"]["label"] == MASK
    assert rendered["destination"]["table"] == MASK  # the whole value: a secret stands in it
    assert loader.load(path).source.options["label"] == "label-secret-9"
    for value in ("label-secret-9", "default-secret-1"):
        assert mask_text(f"x {value} y") == f"x {MASK} y"


def test_the_loaded_recipe_keeps_the_real_values(write: Write, registry: Registry) -> None:
    path = write("secrets.yaml", SECRET_RECIPE)
    environ = {"DL_TEST_LABEL": "lbl", "DL_TEST_TOKEN": "tok-123456"}
    recipe = RecipeLoader({"table": "orders"}, registry=registry, environ=environ).load(path)
    assert recipe.destination.options["token"] == "tok-123456"
    assert recipe.destination.options["password"] == "literal-password"


def test_env_var_default_is_not_masked(write: Write, registry: Registry) -> None:
    path = write(
        "defaults.yaml",
        """
        name: defaults
        source: {type: sequence, stop: 1, label: "{{ env_var('DL_TEST_UNSET', 'fallback') }}"}
        destination: {type: memory_sink, table: t}
        """,
    )
    rendered = RecipeLoader(registry=registry, environ={}).render(path)
    assert rendered["source"]["label"] == "fallback"


# -- error messages -------------------------------------------------------------------------
def test_secret_key_value_is_masked_in_error_messages(write: Write, registry: Registry) -> None:
    path = write(
        "bad.yaml",
        """
        name: bad
        source: {type: sequence, stop: 1}
        destination: {type: memory_sink, table: t, password: 987654321}
        """,
    )
    with pytest.raises(RecipeError) as info:
        RecipeLoader(registry=registry).load(path)
    message = str(info.value)
    assert "destination.password" in message
    assert "987654321" not in message
    assert f"got {MASK!r}" in message


def test_secret_value_is_masked_in_error_messages(write: Write, registry: Registry) -> None:
    path = write(
        "bad.yaml",
        """
        name: bad
        source: {type: sequence, stop: 1}
        destination: {type: memory_sink, table: t, port: "{{ secret('DL_TEST_PORT') }}"}
        """,
    )
    with pytest.raises(RecipeError) as info:
        RecipeLoader(registry=registry, environ={"DL_TEST_PORT": "hunter2-port"}).load(path)
    message = str(info.value)
    assert "destination.port" in message
    assert "hunter2-port" not in message
    assert MASK in message


def test_an_env_value_that_is_not_secret_is_quoted_in_error_messages(
    write: Write, registry: Registry
) -> None:
    path = write(
        "bad.yaml",
        """
        name: bad
        source: {type: sequence, stop: 1}
        destination: {type: memory_sink, table: t, port: "{{ env_var('DL_TEST_PORT') }}"}
        """,
    )
    with pytest.raises(RecipeError) as info:
        RecipeLoader(registry=registry, environ={"DL_TEST_PORT": "not-a-port"}).load(path)
    assert "destination.port" in str(info.value)
    assert "not-a-port" in str(info.value)


# -- fields a plugin declares secret --------------------------------------------------------
class VaultConfig(ConnectorConfig):
    """A connector whose secrets have names that do not say so."""

    table: str
    dsn: SecretStr | None = None
    nested: VaultNested | None = None

    @model_validator(mode="after")
    def _table_fits(self) -> VaultConfig:
        if self.table == "refused":
            raise ValueError("table 'refused' is refused")
        return self


class VaultNested(BaseModel):
    model_config = ConfigDict(extra="forbid")

    material: SecretStr
    label: str = ""


VaultConfig.model_rebuild()


@pytest.fixture
def vault(registry: Registry) -> Iterator[Registry]:
    @register_connector(
        "vault",
        config_model=VaultConfig,
        capabilities=Capabilities(write=True, write_modes=("append",)),
    )
    class Vault(BaseConnector):
        pass

    try:
        yield get_registry()
    finally:
        unregister("connector", "vault")


def test_secret_fields_of_a_config_model() -> None:
    assert secret_fields(VaultConfig) == {"dsn", "nested.material"}
    assert secret_fields(VaultNested) == {"material"}


def test_render_masks_the_fields_a_plugin_declares_secret(write: Write, vault: Registry) -> None:
    path = write(
        "vault.yaml",
        """
        name: vault
        source: {type: sequence, stop: 1}
        destination:
          type: vault
          table: "{{ env_var('DL_TEST_TABLE') }}"
          dsn: "{{ env_var('DL_TEST_DSN') }}"
          nested: {material: literal-material-3, label: shown}
        """,
    )
    environ = {"DL_TEST_TABLE": "vault_table", "DL_TEST_DSN": "opaque-dsn-value"}
    rendered = RecipeLoader(registry=vault, environ=environ).render(path)
    assert rendered["destination"]["table"] == "vault_table"
    assert rendered["destination"]["dsn"] == MASK
    assert rendered["destination"]["nested"] == {"material": MASK, "label": "shown"}
    for value in ("opaque-dsn-value", "literal-material-3"):
        assert mask_text(f"failed: {value}") == f"failed: {MASK}"


def test_a_declared_secret_is_masked_in_the_errors_of_its_section(
    write: Write, vault: Registry
) -> None:
    path = write(
        "vault.yaml",
        """
        name: vault
        source: {type: sequence, stop: 1}
        destination:
          type: vault
          table: refused
          dsn: opaque-dsn-value
          nested: {material: literal-material-3}
        """,
    )
    with pytest.raises(RecipeError) as info:
        RecipeLoader(registry=vault).load(path)
    message = str(info.value)
    assert "is refused" in message and "dsn" in message  # the error quotes the whole section
    assert "opaque-dsn-value" not in message and "literal-material-3" not in message


def test_errors_mask_their_value_and_context() -> None:
    register_secret("tok-abcdef")
    error = TransformError(
        "cannot connect with tok-abcdef", key="options.password", value="p@ss-word"
    )
    assert "tok-abcdef" not in str(error)
    assert "p@ss-word" not in str(error)
    assert error.context["value"] == MASK
    assert error.context["key"] == "options.password"


def test_problem_masks_known_secrets_in_its_message() -> None:
    register_secret("sekrit-value")
    problem = Problem("bad dsn postgres://u:sekrit-value@h", file="r.yaml", key="source.dsn")
    assert problem.render() == "r.yaml:source.dsn: bad dsn postgres://u:***@h"


def test_a_secret_is_masked_in_its_escaped_forms_too() -> None:
    """A message that quotes a value with `!r` or as JSON doubles its backslashes."""
    secret = 'no\\Sup3r"Secr3t-é'
    register_secret(secret)
    path = f"/tmp/{secret}/x.csv"

    assert secret not in mask_text(f"path {path!r} does not exist")
    assert "Sup3r" not in mask_text(f"path {path!r} does not exist")
    assert "Sup3r" not in mask_text(json.dumps({"error": f"no {path}"}))


class KeyAuth(BaseModel):
    type: Literal["key"]
    value: SecretStr


class BasicLogin(BaseModel):
    type: Literal["basic"]
    user: str
    passcode: Annotated[SecretStr, "annotated"]


class ChoiceConfig(BaseModel):
    auth: Annotated[KeyAuth | BasicLogin, Field(discriminator="type")] | None = None


def test_secret_fields_of_each_member_of_a_union_of_models() -> None:
    """A discriminated union (`auth: {type: key, …} | {type: basic, …}`): the secret keys of
    whichever member a recipe chose are secret."""
    assert secret_fields(ChoiceConfig) == {"auth.value", "auth.passcode"}
