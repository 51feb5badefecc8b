"""Which errors the filestore calls transient (worth a retry). The engine asks every connector
about every error of a run, so another connector's message must not look transient by chance."""

from __future__ import annotations

import asyncssh
import pytest
from botocore.exceptions import ClientError

from dataloader import ConnectorError
from dataloader_filestore.backends import is_transient


def client_error(status: int, code: str) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": "…"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "GetObject")  # type: ignore[arg-type]


def wrapped(cause: BaseException, message: str = "s3: cannot read b/k.csv") -> ConnectorError:
    try:
        raise cause
    except BaseException as exc:
        try:
            raise ConnectorError(message) from exc
        except ConnectorError as error:
            return error


@pytest.mark.parametrize(
    "error",
    [
        client_error(503, "ServiceUnavailable"),
        client_error(500, "InternalError"),
        OSError("SlowDown: please reduce your request rate"),
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError(),
        asyncssh.ConnectionLost("connection lost"),
        wrapped(client_error(503, "ServiceUnavailable")),
    ],
)
def test_storage_outages_are_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        client_error(403, "AccessDenied"),
        client_error(404, "NoSuchKey"),
        FileNotFoundError(2, "No such file or directory", "b/part-503.csv"),
        # A Postgres error on a server whose port holds "504": not a 504 answer.
        ConnectorError(
            'Postgres append write failed on loaded at 127.0.0.1:50499/db: invalid input syntax "x"'
        ),
        wrapped(ValueError("value 'Connection reset' in column note"), "bad row"),
    ],
)
def test_other_errors_are_not(error: BaseException) -> None:
    assert not is_transient(error)
