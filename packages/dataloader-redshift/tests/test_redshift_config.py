"""Config checks, secrets kept out of output, and the plugin as `list-connectors` shows it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from pydantic import ValidationError

from dataloader.cli.app import _register_commands, cli
from dataloader_redshift.config import RedshiftConfig
from dataloader_redshift.statements import Statement

PASSWORD = "hunter2-redshift-password"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
BASE: dict[str, Any] = {
    "host": "example.abc123.eu-west-1.redshift.amazonaws.com",
    "database": "dev",
    "user": "loader",
    "password": PASSWORD,
    "table": "dw.customers",
}


def test_defaults_and_staging_parts() -> None:
    config = RedshiftConfig.model_validate(
        {
            **BASE,
            "staging": {
                "s3": "s3://acme/stage/dl/",
                "iam_role": "arn:aws:iam::123456789012:role/copy",
            },
        }
    )
    assert config.port == 5439 and config.ssl
    assert config.staging is not None
    assert (config.staging.bucket, config.staging.prefix) == ("acme", "stage/dl")
    assert PASSWORD not in repr(config) and PASSWORD not in config.describe()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"password": None}, "give `user` and `password`, or `iam: true`"),
        ({"host": None}, "give `host`"),
        ({"iam": True, "password": None, "host": None}, "`iam: true` needs `cluster_identifier`"),
        ({"staging": {"s3": "bucket/prefix", "iam_role": "x"}}, "s3://bucket/prefix"),
        ({"staging": {"s3": "s3://b/p"}}, "exactly one of `iam_role`"),
        ({"staging": {"s3": "s3://b/p", "iam_role": "copy-role"}}, "IAM role ARN"),
        ({"staging": {"s3": "s3://b/p", "access_key_id": "AKIA"}}, "go together"),
        ({"unload": True}, "`unload: true` needs `staging`"),
        ({"port": "five"}, "port"),
    ],
)
def test_bad_keys_are_named(change: dict[str, Any], message: str) -> None:
    keys = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(ValidationError, match=message.replace("`", ".")):
        RedshiftConfig.model_validate(keys)


def test_iam_auth_needs_no_password() -> None:
    config = RedshiftConfig.model_validate(
        {
            "iam": True,
            "cluster_identifier": "analytics",
            "region": "eu-west-1",
            "database": "dev",
            "user": "loader",
            "table": "t",
        }
    )
    assert config.describe() == "cluster analytics in eu-west-1:5439/dev"


def test_credentials_are_masked_when_a_statement_is_shown() -> None:
    statement = Statement(
        "COPY t FROM %s WITH CREDENTIALS AS %s",
        (
            "s3://b/p/",
            f"aws_access_key_id=AKIAIOSFODNN7EXAMPLE;aws_secret_access_key={SECRET_KEY};token=abc",
        ),
    )
    shown = statement.shown()
    assert SECRET_KEY not in shown and "token=abc" not in shown
    assert "aws_secret_access_key=***;token=***" in shown


def test_validate_shows_no_secret(tmp_path: Path) -> None:
    recipe = {
        "name": "to_redshift",
        "source": {"type": "sequence", "stop": 3},
        "destination": {
            "type": "redshift",
            **BASE,
            "write_mode": "merge",
            "merge_keys": ["id"],
            "staging": {
                "s3": "s3://acme/stage",
                "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                "secret_access_key": SECRET_KEY,
            },
        },
    }
    path = tmp_path / "to_redshift.yaml"
    path.write_text(yaml.safe_dump(recipe), "utf-8")
    _register_commands()
    for command in (["validate", str(path)], ["render", str(path)]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 0, result.output
        assert PASSWORD not in result.output and SECRET_KEY not in result.output
    broken = {**recipe, "destination": {**recipe["destination"], "port": "nope"}}
    path.write_text(yaml.safe_dump(broken), "utf-8")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code != 0
    assert "destination.port" in result.output
    assert PASSWORD not in result.output and SECRET_KEY not in result.output


def test_list_connectors_shows_redshift_as_experimental() -> None:
    _register_commands()
    result = CliRunner(env={"COLUMNS": "250"}).invoke(cli, ["list-connectors"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if " redshift " in line)
    assert "dataloader-redshift" in row
    assert "experimental, read, write (append, overwrite, merge), incremental" in row


def test_the_plugin_and_config_import_no_driver() -> None:
    import subprocess
    import sys

    code = (
        "import sys, dataloader_redshift.plugin, dataloader_redshift.config\n"
        "heavy = {'redshift_connector', 'boto3', 'sqlalchemy', 'pyarrow', 'sqlalchemy_redshift'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
