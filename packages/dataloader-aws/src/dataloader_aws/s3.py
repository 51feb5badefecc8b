"""`S3StateBackend`: one JSON object per recipe, conditional writes, a lock object with expiry."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from dataloader import StateError
from dataloader.state.backend import StateBackendPlugin
from dataloader_aws.session import (
    AwsSettings,
    LockKeeper,
    describe,
    error_code,
    lock_owner,
    now,
    owner_is_dead,
)

PRECONDITION_FAILED = {"PreconditionFailed", "412", "ConditionalRequestConflict"}


class S3StateConfig(AwsSettings):
    bucket: str
    prefix: str = "dataloader-state/"


class S3StateBackend(StateBackendPlugin):
    """State in `s3://<bucket>/<prefix><recipe>.json`; lock in `<prefix><recipe>.lock`.

    Every save is conditional on the version this process last read or wrote (`If-Match`), or
    on there being none (`If-None-Match: *`), so a second writer can never silently overwrite.
    A held lock is renewed by a heartbeat every `lock_ttl_seconds / 3`, and by every save.
    """

    name = "s3"
    config_model = S3StateConfig

    def __init__(self, config: S3StateConfig) -> None:
        super().__init__(config)
        self._client: Any = None
        self._etags: dict[str, str | None] = {}  # None: read, and there was no document
        self._locks: dict[str, tuple[str, str]] = {}
        self._keepers: dict[str, LockKeeper] = {}
        self._lock_mutex = threading.Lock()  # the heartbeat and a save both rewrite the lock

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self.config.client("s3")
        return self._client

    def _key(self, recipe_name: str, suffix: str) -> str:
        return f"{self.config.prefix}{recipe_name}.{suffix}"

    def _where(self, recipe_name: str, suffix: str = "json") -> str:
        return f"s3://{self.config.bucket}/{self._key(recipe_name, suffix)}"

    def location(self, recipe_name: str) -> str:
        return self._where(recipe_name)

    def _fail(
        self, action: str, recipe_name: str, exc: BaseException, suffix: str = "json"
    ) -> StateError:
        return StateError(
            f"s3 state backend: cannot {action} {self._where(recipe_name, suffix)}: {describe(exc)}",
            key="state",
        )

    def load(self, recipe_name: str) -> dict[str, Any]:
        try:
            answer = self.client.get_object(
                Bucket=self.config.bucket, Key=self._key(recipe_name, "json")
            )
        except Exception as exc:
            if error_code(exc) in {"NoSuchKey", "404"}:
                self._etags[recipe_name] = None
                return {}
            raise self._fail("read", recipe_name, exc) from None
        self._etags[recipe_name] = answer["ETag"]
        try:
            return json.loads(answer["Body"].read())
        except json.JSONDecodeError as exc:
            raise StateError(
                f"s3 state backend: {self._where(recipe_name)} is not valid JSON ({exc.msg})",
                key="state",
            ) from None

    def save(self, recipe_name: str, state: dict[str, Any]) -> None:
        if recipe_name not in self._etags:
            self.load(recipe_name)
        etag = self._etags[recipe_name]
        condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
        # Prove (and extend) the lock first: a run whose lock expired and was taken over must
        # not write, even when the new holder has not saved anything yet.
        self._refresh_lock(recipe_name)
        try:
            answer = self.client.put_object(
                Bucket=self.config.bucket,
                Key=self._key(recipe_name, "json"),
                Body=json.dumps(state, sort_keys=True).encode(),
                ContentType="application/json",
                **condition,
            )
        except Exception as exc:
            if error_code(exc) in PRECONDITION_FAILED:
                raise StateError(
                    f"s3 state backend: {self._where(recipe_name)} was changed by another process since this run read it; not overwriting",
                    key="state",
                ) from None
            raise self._fail("write", recipe_name, exc) from None
        self._etags[recipe_name] = answer["ETag"]

    def delete(self, recipe_name: str) -> None:
        try:
            self.client.delete_object(Bucket=self.config.bucket, Key=self._key(recipe_name, "json"))
        except Exception as exc:
            raise self._fail("delete", recipe_name, exc) from None
        self._etags.pop(recipe_name, None)

    def _lock_body(self, owner: str) -> bytes:
        expires = now() + self.config.lock_ttl_seconds
        return json.dumps(
            {
                "owner": owner,
                "expires_at": expires,
                "expires": datetime.fromtimestamp(expires, UTC).isoformat(),
            }
        ).encode()

    def _extend_lock(self, recipe_name: str) -> bool:
        """Push the held lock's expiry out by `lock_ttl_seconds`; False when it is not ours."""
        with self._lock_mutex:
            held = self._locks.get(recipe_name)
            if held is None:
                return True
            owner, etag = held
            try:
                answer = self.client.put_object(
                    Bucket=self.config.bucket,
                    Key=self._key(recipe_name, "lock"),
                    Body=self._lock_body(owner),
                    IfMatch=etag,
                )
            except Exception as exc:
                if error_code(exc) in PRECONDITION_FAILED:
                    return False
                raise self._fail("refresh the lock", recipe_name, exc, "lock") from None
            self._locks[recipe_name] = (owner, answer["ETag"])
            return True

    def _refresh_lock(self, recipe_name: str) -> None:
        keeper = self._keepers.get(recipe_name)
        if (keeper is not None and keeper.lost) or not self._extend_lock(recipe_name):
            raise StateError(
                f"s3 state backend: lost the lock {self._where(recipe_name, 'lock')} (it expired and another run took it)",
                key="state",
            )

    def renew_lock(self, recipe_name: str) -> None:
        """Renew the recipe's held lock now, as its heartbeat does every `lock_ttl_seconds / 3`."""
        self._keepers[recipe_name].beat()

    def _take_lock(self, recipe_name: str, owner: str) -> str:
        key = self._key(recipe_name, "lock")
        for _ in range(2):
            try:
                return self.client.put_object(
                    Bucket=self.config.bucket, Key=key, Body=self._lock_body(owner), IfNoneMatch="*"
                )["ETag"]
            except Exception as exc:
                if error_code(exc) not in PRECONDITION_FAILED:
                    raise self._fail("take the lock", recipe_name, exc, "lock") from None
            try:
                current = self.client.get_object(Bucket=self.config.bucket, Key=key)
            except Exception as exc:
                if error_code(exc) in {"NoSuchKey", "404"}:
                    continue
                raise self._fail("read the lock", recipe_name, exc, "lock") from None
            holder = json.loads(current["Body"].read() or b"{}")
            if holder.get("expires_at", 0) > now() and not owner_is_dead(
                str(holder.get("owner", ""))
            ):
                raise StateError(
                    f"recipe {recipe_name!r} is already running (lock {self._where(recipe_name, 'lock')} held by {holder.get('owner')} until {holder.get('expires')}); two runs of one recipe never interleave",
                    key="state",
                )
            try:  # expired: remove exactly the stale lock we read, then try again
                self.client.delete_object(
                    Bucket=self.config.bucket, Key=key, IfMatch=current["ETag"]
                )
            except Exception as exc:
                if error_code(exc) not in PRECONDITION_FAILED:
                    raise self._fail("clear a stale lock", recipe_name, exc, "lock") from None
        raise StateError(
            f"recipe {recipe_name!r} is already running (lock {self._where(recipe_name, 'lock')} changed while taking it)",
            key="state",
        )

    @contextmanager
    def lock(self, recipe_name: str) -> Iterator[None]:
        owner = lock_owner()
        self._locks[recipe_name] = (owner, self._take_lock(recipe_name, owner))
        keeper = self._keepers[recipe_name] = LockKeeper(
            f"the lock {self._where(recipe_name, 'lock')}",
            lambda: self._extend_lock(recipe_name),
            self.config.lock_ttl_seconds / 3,
        ).start()
        try:
            yield
        finally:
            keeper.stop()
            del self._keepers[recipe_name]
            _, etag = self._locks.pop(recipe_name)
            with suppress(Exception):  # an expired lock another run now holds is theirs to release
                self.client.delete_object(
                    Bucket=self.config.bucket, Key=self._key(recipe_name, "lock"), IfMatch=etag
                )
