"""The password of a `sql` URL never reaches `validate`, a failed run's message, its logs or
a connector error, written raw (with URL characters in it) or percent-encoded."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from dataloader.errors import ConnectorError
from dataloader.testing import free_port

PASSWORD = "s3#cr/et?" + uuid.uuid4().hex[:10]


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "dataloader", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


def leaked(text: str) -> list[str]:
    forms = {PASSWORD, quote(PASSWORD, safe=""), PASSWORD[4:], quote(PASSWORD[4:], safe="")}
    return [form for form in forms if form in text]


@pytest.mark.parametrize("encoded", [False, True], ids=["raw", "percent-encoded"])
def test_validate_and_a_failed_run_never_print_the_password(tmp_path: Path, encoded: bool) -> None:
    written = quote(PASSWORD, safe="") if encoded else PASSWORD
    url = f"mysql+pymysql://loader:{written}@127.0.0.1:{free_port()}/nowhere"
    recipe = {
        "name": "secret_sql",
        "source": {"type": "sql", "url": url, "table": "events"},
        "destination": {"type": "sql", "url": f"sqlite:///{tmp_path / 'out.sqlite'}", "table": "t"},
    }
    path = tmp_path / "secret_sql.yaml"
    path.write_text(yaml.safe_dump(recipe), "utf-8")

    validated = cli(tmp_path, "validate", str(path))
    assert validated.returncode == 0, validated.stderr
    assert leaked(validated.stdout + validated.stderr) == []

    if encoded:
        return  # `render` and a failed run: with the raw password below
    shown = cli(tmp_path, "render", str(path))
    assert "url: '***'" in shown.stdout, shown.stdout + shown.stderr  # a secret as a whole
    assert leaked(shown.stdout + shown.stderr) == []

    failed = cli(tmp_path, "run", str(path))
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert "SQL connect failed" in output or "Can't connect" in output, output
    assert leaked(output) == []


def test_a_url_that_does_not_parse_is_refused_without_repeating_it(tmp_path: Path) -> None:
    recipe = {
        "name": "bad_url",
        "source": {"type": "sql", "url": f"not a url {PASSWORD}", "table": "events"},
        "destination": {"type": "sql", "url": f"sqlite:///{tmp_path / 'out.sqlite'}", "table": "t"},
    }
    path = tmp_path / "bad_url.yaml"
    path.write_text(yaml.safe_dump(recipe), "utf-8")
    result = cli(tmp_path, "validate", str(path))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "source.url" in output and "not a SQLAlchemy URL" in output, output
    assert leaked(output) == []


def test_a_connector_error_names_the_url_without_its_password() -> None:
    from datetime import UTC, datetime

    from dataloader.context import RunContext
    from dataloader_sql import SqlConfig, SqlConnector

    url = f"mysql+pymysql://loader:{quote(PASSWORD, safe='')}@127.0.0.1:{free_port()}/db"
    connector = SqlConnector(SqlConfig(url=url, table="t"))
    with pytest.raises(ConnectorError) as caught:
        connector.open(RunContext(recipe_name="r", run_id="1", started_at=datetime.now(UTC)))
    message = str(caught.value)
    assert "mysql+pymysql://loader:***@127.0.0.1" in message
    assert leaked(message) == []
    assert "url=" not in repr(connector.config) or leaked(repr(connector.config)) == []


@pytest.mark.parametrize(
    ("scheme", "message"),
    [
        (
            "mysql+mysqldb",
            r"the driver of mysql\+mysqldb://loader:\*\*\*@127.0.0.1/db is not installed",
        ),
        (
            "nosuchdialect",
            r"SQLAlchemy has no dialect for nosuchdialect://loader:\*\*\*@127.0.0.1/db",
        ),
    ],
)
def test_a_missing_driver_or_dialect_is_named_with_the_key(scheme: str, message: str) -> None:
    from datetime import UTC, datetime

    from dataloader.context import RunContext
    from dataloader_sql import SqlConfig, SqlConnector

    connector = SqlConnector(SqlConfig(url=f"{scheme}://loader:{PASSWORD}@127.0.0.1/db", table="t"))
    context = RunContext(
        recipe_name="r", run_id="1", started_at=datetime.now(UTC), role="destination"
    )
    with pytest.raises(ConnectorError, match=f"destination.url: {message}") as caught:
        connector.open(context)
    assert leaked(str(caught.value)) == []


@pytest.mark.parametrize(
    "url",
    [
        "mysql+pymysql://leaky:S3cr%t/p@ss:w0rd#x@127.0.0.1:41167/db",
        "mysql+pymysql://leaky:p@ss:w0rd#x@127.0.0.1/db",
    ],
    ids=["port-parse", "at-and-colon"],
)
def test_a_raw_password_with_url_characters_is_refused_without_echoing_it(url: str) -> None:
    from pydantic import ValidationError

    from dataloader_sql import SqlConfig

    with pytest.raises(ValidationError) as caught:
        SqlConfig(url=url, table="t")
    # What a recipe's problems show: the message and its context, never the input.
    text = repr(caught.value.errors(include_input=False, include_url=False))
    assert "percent-encoded" in text, text
    assert caught.value.errors()[0]["loc"] == ("url",)
    for piece in ("w0rd", "S3cr", "p@ss", "127.0.0.1", "41167"):
        assert piece not in text, text


def test_an_unknown_connect_arg_is_named_with_its_key(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from dataloader.context import RunContext
    from dataloader_sql import SqlConfig, SqlConnector

    url = f"mysql+pymysql://loader:{quote(PASSWORD, safe='')}@127.0.0.1:{free_port()}/db"
    connector = SqlConnector(SqlConfig(url=url, table="t", connect_args={"bogus": 1}))
    context = RunContext(
        recipe_name="r", run_id="1", started_at=datetime.now(UTC), role="destination"
    )
    with pytest.raises(ConnectorError, match=r"destination\.connect_args.*'bogus'") as caught:
        connector.open(context)
    assert leaked(str(caught.value)) == []
