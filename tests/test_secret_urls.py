"""A URL password with `#`, `/` or `?` in it (written raw or percent-encoded) never reaches
`render`, `validate`, a failed run's message or a JSON log line, nor a failed connection's
error: every secret of a recipe is known as soon as the recipe is loaded."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from e2e_support import CliResult, flat, write_recipe

from dataloader_postgres.testing import PostgresServer

PASSWORD = "p#ss/w?rd-" + uuid.uuid4().hex[:10]
WRONG_PASSWORD = "wr#ng/pw?d-" + uuid.uuid4().hex[:10]


def forms(password: str) -> set[str]:
    """Every way a message could quote the password: raw, percent-encoded, each part alone."""
    return {password, quote(password, safe=""), quote(password, safe=" +"), password[5:]}


@pytest.fixture
def url_role(postgres_server: PostgresServer, postgres_database: str) -> Iterator[str]:
    """A role whose password is PASSWORD, owning the test database and its `events` table."""
    role = f"urlpw_{uuid.uuid4().hex[:8]}"
    connection = postgres_server.connect(postgres_database)
    connection.autocommit = True
    cursor = connection.cursor()
    try:
        cursor.execute(f"CREATE ROLE {role} LOGIN PASSWORD %s", (PASSWORD,))
        cursor.execute(f'ALTER DATABASE "{postgres_database}" OWNER TO {role}')
        cursor.execute("CREATE TABLE events AS SELECT i AS id FROM generate_series(1, 50) i")
        cursor.execute(f"ALTER TABLE events OWNER TO {role}")
        yield role
    finally:
        connection.close()


@pytest.mark.parametrize("encoded", [False, True], ids=["raw", "percent-encoded"])
def test_a_url_password_with_url_characters_is_never_printed(
    tmp_path: Path,
    cli: Callable[..., CliResult],
    postgres_server: PostgresServer,
    postgres_database: str,
    url_role: str,
    encoded: bool,
) -> None:
    def url(password: str, database: str = postgres_database) -> str:
        written = quote(password, safe="") if encoded else password
        return f"postgresql://{url_role}:{written}@127.0.0.1:{postgres_server.port}/{database}"

    def recipe(name: str, source: dict, **destination: str) -> str:
        write_recipe(
            tmp_path / f"{name}.yaml",
            {
                "name": name,
                "source": {"type": "postgres", **source},
                "destination": {"type": "postgres", "url": url(PASSWORD), **destination},
                "runtime": {"retries": 0},
            },
        )
        return f"{name}.yaml"

    ok = recipe("ok", {"url": url(PASSWORD), "table": "events"}, table="copied")
    no_table = recipe("no_table", {"url": url(PASSWORD), "table": "no_such_table"}, table="t")
    invalid = recipe(
        "invalid", {"url": url(PASSWORD)}, table="t"
    )  # no `table`: the section is quoted
    wrong = recipe("wrong", {"url": url(WRONG_PASSWORD), "table": "events"}, table="t")
    no_db = recipe("no_db", {"url": url(PASSWORD, "no_such_db"), "table": "events"}, table="t")

    def check(args: tuple[str, ...], expected_code: int) -> str:
        code, out, err = cli(*args)
        text = out + err
        assert code == expected_code, f"{args}: exit {code}\n{text}"
        for secret in forms(PASSWORD) | forms(WRONG_PASSWORD):
            assert secret not in text, f"{args} printed {secret!r}:\n{text}"
        return flat(text)

    state = ("--state-dir", ".state")
    json_debug = ("--log-level", "debug", "--log-format", "json")
    assert "***" in check(("render", ok), 0)
    assert "***" in check(("render", ok, "--format", "json"), 0)
    assert "give `table`" in check(("validate", invalid), 2)
    check((*json_debug, "run", ok, *state), 0)  # the password works, and no log line shows it
    for fmt in ("plain", "json"):
        logging = ("--log-level", "debug", "--log-format", fmt)
        assert "no_such_table" in check((*logging, "run", no_table, *state), 1)
        assert "password authentication failed" in check((*logging, "run", wrong, *state), 1)
        assert "no_such_db" in check((*logging, "run", no_db, *state), 1)
