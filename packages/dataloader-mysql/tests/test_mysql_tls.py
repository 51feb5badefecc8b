"""TLS: with `ssl_ca` the connector talks to the server over TLS and verifies it against that
CA (and, with `ssl_verify_identity`, its name); a server the CA did not sign is refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from dataloader.context import RunContext
from dataloader.testing import serve
from dataloader_mysql import MySQLConfig, MySQLConnector
from dataloader_mysql.testing import MariaDBServer


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=directory)  # fmt: skip


@pytest.fixture(scope="module")
def certificates() -> Iterator[Path]:
    """A CA, a server certificate it signed for 127.0.0.1, and another CA; readable by the
    server's OS user (a directory of its own under the system's temporary directory)."""
    directory = Path(tempfile.mkdtemp(prefix="dl-maria-tls-"))
    try:
        make_ca(directory, "ca")
        make_ca(directory, "other-ca")
        (directory / "san.cnf").write_text("subjectAltName = IP:127.0.0.1\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                "-keyout", "server.key", "-out", "server.csr", cwd=directory)  # fmt: skip
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.pem",
                cwd=directory)  # fmt: skip
        os.chmod(directory, 0o755)
        for path in directory.iterdir():
            os.chmod(path, 0o644)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_server(certificates: Path) -> Iterator[MariaDBServer]:
    options = [
        f"--ssl-ca={certificates / 'ca.pem'}",
        f"--ssl-cert={certificates / 'server.pem'}",
        f"--ssl-key={certificates / 'server.key'}",
    ]
    yield from serve(MariaDBServer(options), "MariaDB with TLS")


def opened(server: MariaDBServer, **keys: Any) -> MySQLConnector:
    settings = server.connection_settings(server.create_database()) | keys
    connector = MySQLConnector(MySQLConfig(**settings, query="SELECT 1"))
    connector.open(RunContext(recipe_name="tls", run_id="r", started_at=datetime.now()))
    return connector


@pytest.mark.parametrize("verify_identity", [False, True])
def test_ssl_ca_connects_over_tls(
    tls_server: MariaDBServer, certificates: Path, verify_identity: bool
) -> None:
    connector = opened(
        tls_server, ssl_ca=str(certificates / "ca.pem"), ssl_verify_identity=verify_identity
    )
    try:
        [(_, cipher)] = connector._rows("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        assert cipher
    finally:
        connector.close()


def test_a_server_another_ca_signed_is_refused(
    tls_server: MariaDBServer, certificates: Path
) -> None:
    with pytest.raises(Exception, match=r"MySQL connect failed on query at 127\.0\.0\.1"):
        opened(tls_server, ssl_ca=str(certificates / "other-ca.pem"))


def test_verify_identity_checks_the_name_connected_to(
    tls_server: MariaDBServer, certificates: Path
) -> None:
    """The certificate names 127.0.0.1 only: through `localhost` it is trusted (signed by the
    CA) but, with `ssl_verify_identity`, not taken as that host's."""
    ca = str(certificates / "ca.pem")
    connector = opened(tls_server, host="localhost", ssl_ca=ca)
    connector.close()
    with pytest.raises(Exception, match=r"(?i)hostname|match"):
        opened(tls_server, host="localhost", ssl_ca=ca, ssl_verify_identity=True)
