"""`LocalStateBackend`: one JSON file per recipe under a directory, with a file lock."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dataloader.errors import StateError
from dataloader.state.backend import StateBackendConfig, StateBackendPlugin


class LocalStateConfig(StateBackendConfig):
    path: str = ".state"


class LocalStateBackend(StateBackendPlugin):
    """State in `<path>/<recipe>.json`, written atomically; lock in `<path>/<recipe>.lock`."""

    name = "local"
    config_model = LocalStateConfig

    def __init__(self, config: LocalStateConfig | str | os.PathLike[str] = ".state") -> None:
        if not isinstance(config, LocalStateConfig):
            config = LocalStateConfig(path=os.fspath(config))
        super().__init__(config)
        self.directory = Path(config.path)

    def _file(self, recipe_name: str) -> Path:
        return self.directory / f"{recipe_name}.json"

    def load(self, recipe_name: str) -> dict[str, Any]:
        path = self._file(recipe_name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StateError(f"cannot read state: {exc.strerror}", file=str(path)) from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StateError(
                f"state file is not valid JSON ({exc.msg} at line {exc.lineno})",
                file=str(path),
                expected="a JSON object written by dataloader",
            ) from exc
        if not isinstance(data, dict):
            raise StateError("state file does not hold a JSON object", file=str(path))
        return data

    def save(self, recipe_name: str, state: dict[str, Any]) -> None:
        path = self._file(recipe_name)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{recipe_name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(state, handle, indent=2, sort_keys=True)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)  # a failed save leaves no temporary file
                raise
            _fsync_directory(self.directory)
        except OSError as exc:
            raise StateError(f"cannot write state: {exc.strerror}", file=str(path)) from exc

    def delete(self, recipe_name: str) -> None:
        self._file(recipe_name).unlink(missing_ok=True)

    @contextmanager
    def lock(self, recipe_name: str) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        lock_path = self.directory / f"{recipe_name}.lock"
        handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
        try:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise StateError(
                    f"recipe {recipe_name!r} is already running (lock held by {holder}); "
                    "two runs of one recipe never interleave",
                    file=str(lock_path),
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            yield
        finally:
            handle.close()

    def __repr__(self) -> str:
        return f"LocalStateBackend({str(self.directory)!r})"


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
