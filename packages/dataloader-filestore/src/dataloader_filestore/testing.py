"""Real servers for tests, on 127.0.0.1: moto's S3/DynamoDB server and an OpenSSH SFTP server.

Use from pytest with `pytest_plugins = ["dataloader_filestore.testing"]`. Fixtures:
`moto_server` (session; S3 and DynamoDB at `moto_server.endpoint_url`), `s3_bucket` (a new
bucket per test), `sftp_server` (session; Debian's `sshd` on a high port with a throwaway host
key, a user key and a password user). A server that cannot start fails the test with its log:
nothing is skipped.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dataloader.testing import free_port, serve

SFTP_USER = "dataloader-sftp"


def _wait_for_port(
    port: int, process: subprocess.Popen[bytes], log: Path, what: str, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{what} exited with code {process.returncode}:\n{log.read_text(errors='replace')}"
            )
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(
        f"{what} did not listen on 127.0.0.1:{port} within {timeout}s:\n{log.read_text(errors='replace')}"
    )


class _ServerProcess:
    """A server run as a child process, with a temporary directory for its files and log."""

    process: subprocess.Popen[bytes] | None = None
    directory: Path | None = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


class MotoServer(_ServerProcess):
    """moto's standalone server (`moto_server`): S3 and DynamoDB over HTTP on 127.0.0.1."""

    access_key = "testing-access-key"
    secret_key = "testing-secret-key"
    region = "us-east-1"

    def __init__(self) -> None:
        self.port = 0

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        self.directory = Path(tempfile.mkdtemp(prefix="dl-moto-"))
        log = self.directory / "moto.log"
        self.port = free_port()
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        with open(log, "wb") as sink:
            self.process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        _wait_for_port(self.port, self.process, log, "moto server")
        return self

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
        )

    def settings(self) -> dict[str, Any]:
        """Recipe keys for the filestore S3 backend."""
        return {
            "endpoint_url": self.endpoint_url,
            "key": self.access_key,
            "secret": self.secret_key,
            "region": self.region,
        }

    def create_bucket(self) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        self.client("s3").create_bucket(Bucket=name)
        return name


class SftpServer(_ServerProcess):
    """Debian's OpenSSH `sshd` serving SFTP on 127.0.0.1 and a high port.

    Logins: the user `dataloader-sftp` with `password`, or the current user with the key in
    `user_key` (text in `user_key_text`). The host's public key is `host_key_line`.
    """

    def __init__(self) -> None:
        self.port = 0
        self.password = secrets.token_hex(10)
        self.user = pwd.getpwuid(os.getuid()).pw_name

    def start(self) -> SftpServer:
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        if not Path(sshd).exists():
            raise RuntimeError(
                "sshd not found: install Debian's openssh-server (./dev test does it)"
            )
        if os.geteuid() != 0:
            raise RuntimeError(
                "the SFTP test server needs root (to run sshd and create its test user)"
            )
        self.directory = Path(tempfile.mkdtemp(prefix="dl-sftp-"))
        os.chmod(self.directory, 0o755)
        self.data = self.directory / "data"
        self.data.mkdir()
        os.chmod(self.data, 0o777)
        host_key = self.directory / "host_ed25519"
        self.user_key = self.directory / "user_ed25519"
        for key in (host_key, self.user_key):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True
            )
        self.user_key_text = self.user_key.read_text()
        self.host_key_line = " ".join((host_key.with_suffix(".pub")).read_text().split()[:2])
        authorized = self.directory / "authorized_keys"
        authorized.write_text(self.user_key.with_suffix(".pub").read_text())
        os.chmod(authorized, 0o644)
        self._ensure_password_user()
        Path("/run/sshd").mkdir(exist_ok=True)
        self.port = free_port()
        config = self.directory / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"PidFile {self.directory / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized}",
                    "PasswordAuthentication yes",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "StrictModes no",
                    "Subsystem sftp internal-sftp",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        log = self.directory / "sshd.log"
        with open(log, "wb") as sink:
            self.process = subprocess.Popen(
                [sshd, "-D", "-e", "-f", str(config)], stdout=sink, stderr=subprocess.STDOUT
            )
        _wait_for_port(self.port, self.process, log, "sshd")
        return self

    def _ensure_password_user(self) -> None:
        try:
            pwd.getpwnam(SFTP_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--no-create-home", "--shell", "/bin/sh", SFTP_USER], check=True
            )
        subprocess.run(["chpasswd"], input=f"{SFTP_USER}:{self.password}", text=True, check=True)

    def key_settings(self) -> dict[str, Any]:
        """Recipe keys for a key-based login with the host key pinned."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "username": self.user,
            "private_key": str(self.user_key),
            "known_host_key": self.host_key_line,
        }

    def password_settings(self) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "username": SFTP_USER,
            "password": self.password,
            "known_host_key": self.host_key_line,
        }


try:
    import pytest
except ImportError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def moto_server() -> Iterator[MotoServer]:
        """moto's S3 and DynamoDB server for the session; fails (never skips) if it cannot start."""
        yield from serve(MotoServer(), "moto's server")

    @pytest.fixture
    def s3_bucket(moto_server: MotoServer) -> str:
        """A new, empty bucket for one test; its name."""
        return moto_server.create_bucket()

    @pytest.fixture(scope="session")
    def sftp_server() -> Iterator[SftpServer]:
        """An OpenSSH SFTP server for the session; fails (never skips) if it cannot start."""
        yield from serve(SftpServer(), "sshd")
