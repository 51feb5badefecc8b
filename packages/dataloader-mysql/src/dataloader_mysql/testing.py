"""A throwaway MariaDB server for tests and benchmarks, and pytest fixtures around it.

The server runs from a temporary data directory on 127.0.0.1 and a free port, as the `mysql`
OS user when the caller is root (mariadbd refuses root without `--user`). It reads no option
file of the host (`--no-defaults`), accepts `LOAD DATA LOCAL INFILE`, speaks utf8mb4 and keeps
no binary log. A user with a password is created, so authentication is real. Use it from
pytest with `pytest_plugins = ["dataloader_mysql.testing"]`: `mariadb_server` is one server per
session; `mariadb_database` is a fresh database per test. If the server cannot start, the
fixture fails the test with the server's log: it never skips.
"""

from __future__ import annotations

import itertools
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from dataloader.testing import free_port, serve

OS_USER = "mysql"
DB_USER = "dataloader"
START_TIMEOUT = 60.0


def _binary(env: str, *candidates: str) -> str:
    if os.environ.get(env):
        return os.environ[env]
    for candidate in candidates:
        found = shutil.which(candidate) or (candidate if Path(candidate).exists() else None)
        if found:
            return found
    raise RuntimeError(f"MariaDB binary not found (looked for {', '.join(candidates)}; set {env})")


class MariaDBServer:
    """Start with `start()`, stop with `stop()`; connect with `connect(database)`.

    :param options: more `mariadbd` options (`--ssl-cert=…`), after the defaults.
    """

    def __init__(self, options: Sequence[str] = ()) -> None:
        self.options = tuple(options)
        self.mariadbd = _binary("MARIADBD", "mariadbd", "/usr/sbin/mariadbd", "mysqld")
        self.install_db = _binary(
            "MARIADB_INSTALL_DB", "mariadb-install-db", "/usr/bin/mariadb-install-db"
        )
        self.password = secrets.token_hex(12)
        self.port = 0
        self.base: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._as_root = os.geteuid() == 0
        self._counter = itertools.count(1)

    @property
    def socket_path(self) -> Path:
        assert self.base is not None, "server not started"
        return self.base / "mysqld.sock"

    @property
    def log_path(self) -> Path:
        assert self.base is not None, "server not started"
        return self.base / "server.log"

    def _log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> MariaDBServer:
        self.base = Path(tempfile.mkdtemp(prefix="dl-maria-"))
        data, scratch = self.base / "data", self.base / "tmp"
        data.mkdir()
        scratch.mkdir()  # its own temporary files: servers set up at once share no /tmp names
        user_args: list[str] = []
        if self._as_root:
            user = pwd.getpwnam(OS_USER)
            for path in (self.base, data, scratch):
                os.chown(path, user.pw_uid, user.pw_gid)
            user_args = [f"--user={OS_USER}"]
        user_args.append(f"--tmpdir={scratch}")
        init = subprocess.run(
            [
                self.install_db,
                "--no-defaults",
                *user_args,
                "--auth-root-authentication-method=normal",
                f"--datadir={data}",
                "--skip-test-db",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if init.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed:\n{init.stdout}\n{init.stderr}")
        self.port = free_port()
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                [
                    self.mariadbd,
                    "--no-defaults",
                    *user_args,
                    f"--datadir={data}",
                    f"--socket={self.socket_path}",
                    f"--pid-file={self.base / 'mysqld.pid'}",
                    "--bind-address=127.0.0.1",
                    f"--port={self.port}",
                    "--local-infile=ON",
                    "--character-set-server=utf8mb4",
                    "--collation-server=utf8mb4_unicode_ci",
                    "--skip-log-bin",
                    "--default-storage-engine=InnoDB",
                    "--default-time-zone=+00:00",
                    "--innodb-flush-log-at-trx-commit=0",
                    "--innodb-buffer-pool-size=128M",
                    "--max-allowed-packet=256M",
                    "--skip-name-resolve",
                    "--log-error=" + str(self.log_path),
                    *self.options,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready()
        self._create_user()
        return self

    def _root_connect(self) -> Any:
        import pymysql

        return pymysql.connect(
            unix_socket=str(self.socket_path), user="root", password="", autocommit=True
        )

    def _wait_ready(self) -> None:
        import pymysql

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"mariadbd exited with {self._process.returncode}:\n{self._log_text()}"
                )
            try:
                self._root_connect().close()
                return
            except pymysql.err.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"mariadbd did not answer within {START_TIMEOUT:.0f} s ({exc}):\n"
                        f"{self._log_text()}"
                    ) from exc
                # Polling interval while the server initialises; not an ordering device.
                time.sleep(0.05)

    def _create_user(self) -> None:
        connection = self._root_connect()
        try:
            cursor = connection.cursor()
            cursor.execute(
                f"CREATE USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY %s", (self.password,)
            )
            cursor.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{DB_USER}'@'127.0.0.1'")
        finally:
            connection.close()

    def stop(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def connection_settings(self, database: str = "mysql") -> dict[str, Any]:
        """Recipe keys for this server (host, port, database, user, password)."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "database": database,
            "user": DB_USER,
            "password": self.password,
        }

    def url(self, database: str = "mysql") -> str:
        """The SQLAlchemy URL of `database` (driver PyMySQL)."""
        return (
            f"mysql+pymysql://{DB_USER}:{self.password}@127.0.0.1:{self.port}/{database}"
            "?charset=utf8mb4"
        )

    def connect(self, database: str = "mysql", **kwargs: Any) -> Any:
        """A PyMySQL connection to `database` over TCP, as the configured user."""
        import pymysql

        options: dict[str, Any] = {"charset": "utf8mb4", "local_infile": True, **kwargs}
        return pymysql.connect(
            host="127.0.0.1",
            port=self.port,
            user=DB_USER,
            password=self.password,
            database=database,
            **options,
        )

    def create_database(self) -> str:
        """A new empty utf8mb4 database; its name."""
        name = f"test_{os.getpid()}_{next(self._counter)}"
        connection = self.connect(autocommit=True)
        try:
            connection.cursor().execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        finally:
            connection.close()
        return name

    def __enter__(self) -> MariaDBServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixtures
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def mariadb_server() -> Iterator[MariaDBServer]:
        """One MariaDB server for the test session; fails (never skips) if it cannot start."""
        yield from serve(MariaDBServer(), "MariaDB")

    @pytest.fixture
    def mariadb_database(mariadb_server: MariaDBServer) -> str:
        """A new, empty database for one test; its name."""
        return mariadb_server.create_database()
