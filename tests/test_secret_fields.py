"""Every plugin's secret fields: declared `SecretStr`, masked by `render`, and never shown in
output, logs (plain or JSON) or state, even when the run fails on them."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_support import CliResult, write_recipe

from dataloader.registry import get_registry
from dataloader.secrets import is_secret_key, secret_fields

MARKER = "Qv7-secret-" + uuid.uuid4().hex[:12]

# (kind, name) -> the keys its config model must declare secret.
DECLARED = {
    ("connector", "postgres"): {"url", "password"},
    ("state_backend", "postgres"): {"url", "password"},
    ("connector", "filestore"): {
        "key",
        "secret",
        "session_token",
        "password",
        "private_key_text",
        "passphrase",
    },
    ("state_backend", "s3"): {"key", "secret", "session_token"},
    ("state_backend", "dynamodb"): {"key", "secret", "session_token"},
    ("connector", "mysql"): {"password"},
    ("connector", "sql"): {"url"},
    ("connector", "snowflake"): {"password", "private_key", "private_key_passphrase"},
    ("connector", "redshift"): {"password"},
}
# Keys named like a secret that hold something else (masked by their name all the same).
NOT_SECRET_VALUES = {("connector", "filestore", "private_key")}  # a path to the key file


@pytest.mark.parametrize(("kind", "name"), sorted(DECLARED))
def test_each_plugin_declares_its_secret_fields(kind: str, name: str) -> None:
    model = get_registry().get(kind, name).config_model  # type: ignore[arg-type]
    assert DECLARED[(kind, name)] <= secret_fields(model)


def test_every_key_named_like_a_secret_is_declared_secret() -> None:
    registry = get_registry()
    undeclared = []
    for kind in ("connector", "state_backend", "transform", "format"):
        for registration in registry.all(kind):  # type: ignore[arg-type]
            declared = secret_fields(registration.config_model)
            for field in registration.config_model.model_fields:
                if (
                    is_secret_key(field)
                    and field not in declared
                    and (kind, registration.name, field) not in NOT_SECRET_VALUES
                ):
                    undeclared.append(f"{kind} {registration.name}: {field}")
    assert undeclared == []


def closed_port() -> int:
    """A local port nothing listens on (connections to it are refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def secret(field: str) -> str:
    return f"{MARKER}-{field}"


def test_no_plugin_secret_is_shown_when_its_run_fails(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    port = closed_port()
    aws = {
        "endpoint_url": f"http://127.0.0.1:{port}",
        "key": secret("aws-key"),
        "secret": secret("aws-secret"),
        "session_token": secret("aws-token"),
        "timeout": 1,
    }
    sink = {"type": "duckdb", "database": "out.duckdb", "table": "t"}
    csv = {"type": "filestore", "path": "data/*.csv"}
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("id\n1\n", encoding="utf-8")
    recipes = {
        "from_s3": {
            "source": {"type": "filestore", "path": "s3://bucket/data/*.csv", **aws},
            "destination": sink,
        },
        "from_sftp_password": {
            "source": {
                "type": "filestore",
                "path": "sftp://127.0.0.1/data/a.csv",
                "port": port,
                "username": "someone",
                "password": secret("sftp-password"),
                "host_key_checking": False,
                "timeout": 1,
            },
            "destination": sink,
        },
        "from_sftp_key": {
            "source": {
                "type": "filestore",
                "path": "sftp://127.0.0.1/data/a.csv",
                "port": port,
                "username": "someone",
                "private_key_text": secret("sftp-key-material"),
                "passphrase": secret("sftp-passphrase"),
                "host_key_checking": False,
                "timeout": 1,
            },
            "destination": sink,
        },
        "to_postgres_url": {
            "source": csv,
            "destination": {
                "type": "postgres",
                "url": f"postgresql://someone:{secret('pg-url')}@127.0.0.1:{port}/db",
                "table": "t",
                "connect_timeout": 1,
            },
        },
        "to_postgres_password": {
            "source": csv,
            "destination": {
                "type": "postgres",
                "host": "127.0.0.1",
                "port": port,
                "database": "db",
                "user": "someone",
                "password": secret("pg-password"),
                "table": "t",
                "connect_timeout": 1,
            },
        },
        "to_mysql": {
            "source": csv,
            "destination": {
                "type": "mysql",
                "host": "127.0.0.1",
                "port": port,
                "database": "db",
                "user": "someone",
                "password": secret("mysql-password"),
                "table": "t",
                "connect_timeout": 1,
            },
        },
        "to_sql_url": {
            "source": csv,
            "destination": {
                "type": "sql",
                "url": f"mysql+pymysql://someone:{secret('sql-url')}@127.0.0.1:{port}/db",
                "table": "t",
            },
        },
        "to_snowflake": {
            "source": csv,
            "destination": {
                "type": "snowflake",
                "account": "acme",
                "user": "someone",
                "password": secret("snowflake-password"),
                "database": "db",
                "table": "t",
                "host": "127.0.0.1",
                "port": port,
                "protocol": "http",
                "login_timeout": 1,
            },
        },
        "to_redshift": {
            "source": csv,
            "destination": {
                "type": "redshift",
                "host": "127.0.0.1",
                "port": port,
                "database": "db",
                "user": "someone",
                "password": secret("redshift-password"),
                "table": "t",
                "timeout": 1,
            },
        },
        "state_in_s3": {
            "source": csv,
            "destination": sink,
            "state": {"backend": "s3", "bucket": "b", **aws},
        },
        "state_in_dynamodb": {
            "source": csv,
            "destination": sink,
            "state": {"backend": "dynamodb", **aws},
        },
        "state_in_postgres": {
            "source": csv,
            "destination": sink,
            "state": {
                "backend": "postgres",
                "url": f"postgresql://someone:{secret('pg-state-url')}@127.0.0.1:{port}/db",
                "connect_timeout": 1,
            },
        },
    }
    for name, recipe in recipes.items():
        write_recipe(
            tmp_path / "recipes" / f"{name}.yaml",
            {"name": name, **recipe, "runtime": {"retries": 0}},
        )

    def check(*args: str) -> tuple[int, str]:
        code, out, err = cli(*args)
        assert MARKER not in out + err, f"{args} printed a secret:\n{out}\n{err}"
        return code, out + err

    code, out = check("validate", "recipes")
    assert code == 0, out
    for name in recipes:
        code, out = check("render", f"recipes/{name}.yaml", "--format", "json")
        assert code == 0, out
        assert "***" in out
    for log_format in ("plain", "json"):
        logs = ("--log-level", "debug", "--log-format", log_format)
        code, out = check(*logs, "run", "recipes", "--state-dir", ".state")
        assert code == 1, out  # every recipe failed, on the closed port or the bad key
        for name in recipes:
            assert name in out
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix != ".yaml":
            assert MARKER.encode() not in path.read_bytes(), f"{path} holds a secret"
