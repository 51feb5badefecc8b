"""Where files live: local disk, S3 (s3fs) or SFTP (sshfs), as fsspec filesystems.

`open_filesystem` turns a connector's settings into `(filesystem, root path)` and translates
the libraries' errors into `ConnectorError`s that name the backend and path, never a secret.
"""

from __future__ import annotations

import os
import posixpath
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from dataloader import ConnectorError
from dataloader.secrets import register_secret
from dataloader_filestore.listing import has_glob

Backend = Literal["local", "s3", "sftp"]
_SCHEMES: dict[str, Backend] = {
    "s3": "s3",
    "s3a": "s3",
    "sftp": "sftp",
    "ssh": "sftp",
    "file": "local",
    "": "local",
}


class BackendSettings(BaseModel):
    """Connection keys of the remote backends (flat in the connector's section).

    S3: `endpoint_url`, `region`, `key` (access key id), `secret`, `session_token`, `anon`.
    Both: `timeout` (seconds to connect, and to wait for an answer).
    SFTP: `host`, `port`, `username`, `password`, `private_key` (a path) or `private_key_text`,
    `passphrase`, `host_key_checking` (on by default: the host must be in `known_hosts_file`,
    default ~/.ssh/known_hosts, or pinned with `known_host_key`, e.g. "ssh-ed25519 AAAA…").
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint_url: str | None = None
    region: str | None = None
    key: SecretStr | None = None
    secret: SecretStr | None = None
    session_token: SecretStr | None = None
    anon: bool = False

    host: str | None = None
    port: int = 22
    username: str | None = None
    password: SecretStr | None = None
    private_key: str | None = None
    private_key_text: SecretStr | None = None
    passphrase: SecretStr | None = None
    host_key_checking: bool = True
    known_host_key: str | None = None
    known_hosts_file: str | None = None
    timeout: float = Field(default=30, gt=0)


S3_KEYS = frozenset({"endpoint_url", "region", "key", "secret", "session_token", "anon", "timeout"})
SFTP_KEYS = frozenset(
    {
        "host",
        "port",
        "username",
        "password",
        "private_key",
        "private_key_text",
        "passphrase",
        "host_key_checking",
        "known_host_key",
        "known_hosts_file",
        "timeout",
    }
)


def backend_of(path: str, declared: Backend | None) -> Backend:
    scheme = urlsplit(path).scheme.lower() if "://" in path else ""
    inferred = _SCHEMES.get(scheme)
    if inferred is None:
        raise ValueError(
            f"unsupported URL scheme {scheme!r} in path {path!r}; expected s3://, sftp:// or a local path"
        )
    if declared is not None and scheme and declared != inferred:
        raise ValueError(f"`backend: {declared}` does not match the path's scheme {scheme}://")
    return declared or inferred


def _strip_scheme(path: str) -> str:
    return path.split("://", 1)[1] if "://" in path else path


def _secret(value: SecretStr | None) -> str | None:
    if value is None:
        return None
    text = value.get_secret_value()
    register_secret(text)
    return text


def open_filesystem(
    backend: Backend,
    path: str,
    settings: BackendSettings,
    storage_options: dict[str, Any],
    role: str,
) -> tuple[Any, str]:
    """The fsspec filesystem for `backend` and the path inside it."""
    for value in (
        settings.key,
        settings.secret,
        settings.session_token,
        settings.password,
        settings.private_key_text,
        settings.passphrase,
    ):
        _secret(value)
    try:
        if backend == "s3":
            return _s3(path, settings, storage_options), _strip_scheme(path).rstrip(
                "/"
            ) if not has_glob(path) else _strip_scheme(path)
        if backend == "sftp":
            return _sftp(path, settings, storage_options), _url_path(path)
        import fsspec

        fs, root = fsspec.core.url_to_fs(path, **storage_options)
        # One name per file (`a/../data/x.csv` is `data/x.csv`): the path keys the incremental
        # state, so another spelling, or a recipe run from another directory, must not re-read.
        return fs, posixpath.normpath(root)
    except ConnectorError:
        raise
    except ImportError as exc:
        raise ConnectorError(
            f"the {backend} backend needs an extra package: pip install 'dataloader-filestore[{backend}]' ({exc.name} is missing)",
            key=f"{role}.backend",
        ) from None
    except Exception as exc:
        raise ConnectorError(
            f"{backend}: cannot connect for {path}: {describe_error(exc)}",
            key=f"{role}.path",
            context={"backend": backend},
        ) from None


def _url_path(path: str) -> str:
    """The path of `scheme://netloc/path` verbatim: a glob's `?` or a `#` in a file name is
    not a URL query or fragment (as `urlsplit` would have it)."""
    if "://" not in path:
        return path
    rest = path.split("://", 1)[1]
    slash = rest.find("/")
    return rest[slash:] if slash >= 0 else "/"


def _s3(path: str, settings: BackendSettings, storage_options: dict[str, Any]) -> Any:
    import s3fs

    options: dict[str, Any] = {"anon": settings.anon, **storage_options}
    if settings.key is not None:
        options["key"] = _secret(settings.key)
    if settings.secret is not None:
        options["secret"] = _secret(settings.secret)
    if settings.session_token is not None:
        options["token"] = _secret(settings.session_token)
    if settings.endpoint_url:
        options["endpoint_url"] = settings.endpoint_url
    client_kwargs = dict(options.pop("client_kwargs", {}) or {})
    if settings.region:
        client_kwargs["region_name"] = settings.region
    config_kwargs = dict(options.pop("config_kwargs", {}) or {})
    config_kwargs.setdefault("connect_timeout", settings.timeout)
    config_kwargs.setdefault("read_timeout", settings.timeout)
    # One attempt per call: neither botocore (`max_attempts` counts retries) nor s3fs (which
    # retries throttling and connection errors 5 times) retries; `runtime.retries` does.
    config_kwargs.setdefault("retries", {"total_max_attempts": 1})
    fs = s3fs.S3FileSystem(
        client_kwargs=client_kwargs,
        config_kwargs=config_kwargs,
        skip_instance_cache=True,
        **options,
    )
    fs.retries = 1
    return fs


def _sftp(path: str, settings: BackendSettings, storage_options: dict[str, Any]) -> Any:
    import asyncssh
    from sshfs import SSHFileSystem

    parts = urlsplit(path) if "://" in path else None
    host = settings.host or (parts.hostname if parts else None)
    if not host:
        raise ConnectorError(
            "the sftp backend needs `host` (or an sftp://host/path path)", key="path"
        )
    port = (parts.port if parts and parts.port else None) or settings.port
    username = settings.username or (parts.username if parts else None)
    options: dict[str, Any] = {
        "port": port,
        "username": username,
        "connect_timeout": settings.timeout,
        **storage_options,
    }
    if settings.password is not None:
        options["password"] = _secret(settings.password)
    keys: list[Any] = []
    passphrase = _secret(settings.passphrase)
    if settings.private_key:
        keys.append(asyncssh.read_private_key(os.path.expanduser(settings.private_key), passphrase))
    if settings.private_key_text is not None:
        keys.append(
            asyncssh.import_private_key(_secret(settings.private_key_text) or "", passphrase)
        )
    if keys:
        options["client_keys"] = keys
    elif settings.password is not None:
        options["client_keys"] = []
    if not settings.host_key_checking:
        options["known_hosts"] = None
    elif settings.known_host_key:
        pattern = host if port == 22 else f"[{host}]:{port}"
        options["known_hosts"] = asyncssh.import_known_hosts(
            f"{pattern} {settings.known_host_key.strip()}\n"
        )
    elif settings.known_hosts_file:
        options["known_hosts"] = os.path.expanduser(settings.known_hosts_file)
    return SSHFileSystem(host, skip_instance_cache=True, **options)


def describe_error(exc: BaseException) -> str:
    """A short cause for messages: the error's class and first line, with secrets masked later."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def is_transient(exc: BaseException) -> bool:
    """Connection resets, timeouts, throttling and 5xx answers: worth retrying.

    The error's causes count too: s3fs turns a botocore error (whose response says 503) into
    an `OSError` carrying only the server's message, with the original as `__cause__`.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _transient_one(current):
            return True
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return False


_STORAGE_LIBRARIES = ("botocore", "aiobotocore", "aiohttp", "asyncssh", "s3fs", "sshfs", "fsspec")
_TRANSIENT_TEXT = (
    "SlowDown",
    "ServiceUnavailable",
    "Service Unavailable",
    "InternalError",
    "Throttl",
    "RequestTimeout",
    "Connection reset",
    "connection lost",
)


def _transient_one(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(status, int) and status in (500, 502, 503, 504):
            return True
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status in (500, 502, 503, 504):
        return True
    # Judge by the message only what the storage libraries raised: the engine asks about every
    # error of the run, and another connector's message may hold anything (a port, a value).
    module = type(exc).__module__.split(".", 1)[0]
    if not (isinstance(exc, OSError) or module in _STORAGE_LIBRARIES):
        return False
    return any(marker in str(exc) for marker in _TRANSIENT_TEXT)
