"""AWS settings shared by the state backends, and boto3 clients built from them."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import Field, SecretStr

from dataloader.secrets import register_secret
from dataloader.state.backend import StateBackendConfig

log = logging.getLogger("dataloader.state.aws")


class AwsSettings(StateBackendConfig):
    """`endpoint_url`, `region`, `key`, `secret`, `session_token`; unset keys use boto3's chain."""

    endpoint_url: str | None = None
    region: str | None = None
    key: SecretStr | None = None
    secret: SecretStr | None = None
    session_token: SecretStr | None = None
    lock_ttl_seconds: int = Field(default=3600, gt=0)
    timeout: float = Field(default=30, gt=0)

    def client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        secrets = {
            name: value.get_secret_value()
            for name, value in (
                ("key", self.key),
                ("secret", self.secret),
                ("token", self.session_token),
            )
            if value is not None
        }
        for value in secrets.values():
            register_secret(value)
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            aws_access_key_id=secrets.get("key"),
            aws_secret_access_key=secrets.get("secret"),
            aws_session_token=secrets.get("token"),
            config=Config(
                connect_timeout=self.timeout,
                read_timeout=self.timeout,
                retries={"mode": "standard", "max_attempts": 4},
            ),
        )


class LockKeeper:
    """Keeps a held lock alive: a daemon thread renews it every `lock_ttl_seconds / 3` until
    `stop()`, so a run that commits rarely (or once, at the end) outlives the expiry. A renewal
    that finds the lock taken sets `lost`; the backend's next save then fails.

    :param what: the lock, for log messages.
    :param renew: extends the lock; returns False when it is no longer this process's.
    :param interval: seconds between renewals.
    """

    def __init__(self, what: str, renew: Callable[[], bool], interval: float) -> None:
        self.what = what
        self.lost = False
        self._renew = renew
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"dataloader-lock {what}", daemon=True
        )

    def start(self) -> LockKeeper:
        self._thread.start()
        return self

    def beat(self) -> None:
        """Renew once (what the thread does on its own every `interval` seconds)."""
        if self.lost:
            return
        try:
            if not self._renew():
                self.lost = True
                log.warning(f"lost {self.what}: it expired and another run took it")
        except Exception as exc:  # a failed renewal is tried again; the expiry leaves room
            log.warning(
                f"could not renew {self.what}, trying again in {self._interval:.0f}s: {exc}"
            )

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval) and not self.lost:
            self.beat()


def lock_owner() -> str:
    """Who holds a lock: host, pid and a random part, for messages and conditional releases."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """Whether a lock's holder was a process on this host that no longer exists (a killed run):
    its lock can be taken over without waiting for the expiry."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def now() -> float:
    return time.time()


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
