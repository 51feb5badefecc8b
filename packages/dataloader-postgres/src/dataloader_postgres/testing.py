"""A throwaway PostgreSQL server for tests and benchmarks, and pytest fixtures around it.

The server runs from a temporary data directory on 127.0.0.1 and a free port, as the
`postgres` OS user when the caller is root (PostgreSQL refuses to run as root). Use it from
pytest with `pytest_plugins = ["dataloader_postgres.testing"]`: `postgres_server` is one
server per session; `postgres_url` is a fresh database per test. If the server cannot start,
the fixture fails the test with the server's log: it never skips.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dataloader.testing import free_port, serve

PG_USER = "postgres"


def find_bin_dir() -> Path:
    """The directory holding `initdb` and `pg_ctl`: `$PG_BIN`, else the newest Debian install."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
    )
    if not candidates:
        raise RuntimeError(
            "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin; set PG_BIN)"
        )
    return Path(candidates[-1])


class PostgresServer:
    """Start with `start()`, stop with `stop()`; connect with `url(database)`."""

    def __init__(self) -> None:
        self.bin_dir = find_bin_dir()
        self.password = secrets.token_hex(12)
        self.port = 0
        self.base: Path | None = None
        self._as_root = os.geteuid() == 0
        self._counter = itertools.count(1)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", PG_USER, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    def start(self) -> PostgresServer:
        self.base = Path(tempfile.mkdtemp(prefix="dl-pg-"))
        data, sockets, log = self.base / "data", self.base / "sock", self.base / "server.log"
        sockets.mkdir()
        password_file = self.base / "pw"
        password_file.write_text(self.password)
        if self._as_root:
            user = pwd.getpwnam(PG_USER)
            for path in (self.base, sockets, password_file):
                os.chown(path, user.pw_uid, user.pw_gid)
        init = self._run(
            "initdb",
            "-D",
            str(data),
            "-U",
            PG_USER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={password_file}",
            "-E",
            "UTF8",
            "--locale=C",
        )
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        self.port = free_port()
        options = f"-p {self.port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        started = self._run(
            "pg_ctl", "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options, "start"
        )
        if started.returncode != 0:
            log_text = log.read_text() if log.exists() else ""
            raise RuntimeError(
                f"PostgreSQL did not start:\n{started.stdout}\n{started.stderr}\n{log_text}"
            )
        return self

    def stop(self) -> None:
        if self.base is None:
            return
        self._run("pg_ctl", "-D", str(self.base / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{PG_USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def connection_settings(self, database: str = "postgres") -> dict[str, Any]:
        """Recipe keys for this server (host, port, database, user, password)."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "database": database,
            "user": PG_USER,
            "password": self.password,
        }

    def connect(self, database: str = "postgres") -> Any:
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1", port=self.port, dbname=database, user=PG_USER, password=self.password
        )

    def create_database(self, encoding: str | None = None) -> str:
        """A new, empty database; its name. With `encoding` (e.g. `LATIN1`), one that stores
        text in that encoding (collation `C`)."""
        name = f"test_{os.getpid()}_{next(self._counter)}"
        options = (
            f" ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            if encoding
            else ""
        )
        connection = self.connect()
        connection.autocommit = True
        try:
            connection.cursor().execute(f'CREATE DATABASE "{name}"{options}')
        finally:
            connection.close()
        return name

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixtures
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def postgres_server() -> Iterator[PostgresServer]:
        """One PostgreSQL server for the test session; fails (never skips) if it cannot start."""
        yield from serve(PostgresServer(), "PostgreSQL")

    @pytest.fixture
    def postgres_database(postgres_server: PostgresServer) -> str:
        """A new, empty database for one test; its name."""
        return postgres_server.create_database()
