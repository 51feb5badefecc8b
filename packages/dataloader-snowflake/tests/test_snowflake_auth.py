"""Password and key-pair authentication: validated, used, and never shown.

fakesnow accepts any account, user, password or key: these runs prove the key is read,
decrypted and handed to the connector's SNOWFLAKE_JWT authenticator, not that Snowflake would
accept it (only a real account checks the JWT against the user's registered public key).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from dataloader import ConnectorError
from dataloader_snowflake.config import SnowflakeConfig
from dataloader_snowflake.testing import FakeSnowflake

PASSPHRASE = "pass-phrase-Zq81"


def pem(passphrase: str | None = None) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


def key_settings(db: FakeSnowflake, **auth: Any) -> dict[str, Any]:
    settings = db.settings()
    del settings["password"]
    return {**settings, **auth}


def load(db: FakeSnowflake, rows_source: str, destination: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "sf_auth",
        "source": {"type": rows_source, "batches": [[{"id": 1}]]},
        "destination": {"type": "snowflake", "table": "items", **destination},
    }


def test_an_inline_private_key_logs_in_with_key_pair_auth(
    snowflake_db: FakeSnowflake, rows_source: str, run: Callable[..., Any]
) -> None:
    destination = key_settings(snowflake_db, private_key=pem())
    assert run(load(snowflake_db, rows_source, destination)).rows_written == 1
    arguments = SnowflakeConfig.model_validate({**destination, "table": "t"}).connect_arguments()
    assert arguments["authenticator"] == "SNOWFLAKE_JWT"
    assert isinstance(arguments["private_key"], bytes) and "password" not in arguments


def test_an_encrypted_key_file_with_its_passphrase(
    snowflake_db: FakeSnowflake, rows_source: str, run: Callable[..., Any], tmp_path: Path
) -> None:
    key_file = tmp_path / "rsa_key.p8"
    key_file.write_text(pem(PASSPHRASE))
    destination = key_settings(
        snowflake_db, private_key_file=str(key_file), private_key_passphrase=PASSPHRASE
    )
    assert run(load(snowflake_db, rows_source, destination)).rows_written == 1


def test_a_wrong_passphrase_fails_without_showing_key_or_passphrase(
    snowflake_db: FakeSnowflake, rows_source: str, run: Callable[..., Any]
) -> None:
    key = pem(PASSPHRASE)
    destination = key_settings(
        snowflake_db, private_key=key, private_key_passphrase="wrong-phrase-77"
    )
    with pytest.raises(ConnectorError) as caught:
        run(load(snowflake_db, rows_source, destination))
    message = str(caught.value)
    assert "`private_key` is not a usable PEM private key" in message
    assert "wrong-phrase-77" not in message and key.splitlines()[1] not in message


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ({}, "give `password`, or key-pair authentication"),
        ({"password": "p", "private_key": "k"}, "give `password` or a private key, not both"),
        ({"private_key": "k", "private_key_file": "f"}, "not both"),
        ({"password": "p", "private_key_passphrase": "x"}, "needs `private_key`"),
    ],
)
def test_authentication_keys_are_checked(auth: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        SnowflakeConfig.model_validate(
            {"account": "a", "user": "u", "database": "d", "table": "t", **auth}
        )


def test_validate_never_shows_a_secret(tmp_path: Path) -> None:
    secrets = {
        "password": "pw-Secret-4411",
        "key": pem(),
        "passphrase": "phrase-Secret-5522",
        "aws": "aws-Secret-6633",
    }
    base = {"type": "snowflake", "account": "acme-xy123", "user": "loader", "database": "RAW"}
    recipes = {
        "sf_password": {**base, "password": secrets["password"]},
        "sf_key": {
            **base,
            "private_key": secrets["key"],
            "private_key_passphrase": secrets["passphrase"],
            "stage": {
                "type": "s3",
                "url": "s3://bucket/prefix",
                "aws_access_key_id": "AKIAEXAMPLE",
                "aws_secret_access_key": secrets["aws"],
            },
        },
    }
    (tmp_path / "data.csv").write_text("id\n1\n")
    paths = []
    for name, destination in recipes.items():
        path = tmp_path / f"{name}.yaml"
        recipe = {
            "name": name,
            "source": {"type": "filestore", "path": "data.csv"},
            "destination": {**destination, "table": "items"},
        }
        path.write_text(yaml.safe_dump(recipe))
        paths.append(str(path))
    result = subprocess.run(
        [sys.executable, "-m", "dataloader", "validate", *paths],
        cwd=tmp_path,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for value in (secrets["password"], secrets["passphrase"], secrets["aws"]):
        assert value not in output
    assert all(line not in output for line in secrets["key"].splitlines()[1:-1])


def test_a_failed_login_names_the_account_not_the_password(
    rows_source: str, run: Callable[..., Any]
) -> None:
    import socket

    with socket.socket() as probe:  # a local port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    destination = {
        "account": "acme-xy123",
        "user": "loader",
        "password": "pw-Secret-7788",
        "database": "RAW",
        "host": "127.0.0.1",
        "port": port,
        "protocol": "http",
        "login_timeout": 2,
    }
    with pytest.raises(ConnectorError) as caught:
        run(
            {
                "name": "sf_auth",
                "source": {"type": rows_source, "batches": [[{"id": 1}]]},
                "destination": {"type": "snowflake", "table": "items", **destination},
            }
        )
    message = str(caught.value)
    assert "Snowflake connect failed" in message and "acme-xy123/RAW.PUBLIC" in message
    assert "pw-Secret-7788" not in message
