"""`LocalStateBackend`: one JSON file per recipe under a directory, with a file lock."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dataloader.errors import StateError
from dataloader.state.backend import StateBackendConfig, StateBackendPlugin

if TYPE_CHECKING:
    from dataloader.recipe.models import Recipe


class LocalStateConfig(StateBackendConfig):
    path: str = ".state"


class LocalStateBackend(StateBackendPlugin):
    """State in `<path>/<recipe>.json`, written atomically; lock in `<path>/<recipe>.lock`.

    A relative `path` is taken from the working directory when the backend is made, so two runs
    of one recipe started in different directories have different state directories. Made for
    a recipe (`for_recipe`), the lock is also held on this host for the recipe file and its
    destination, so those two runs are kept apart all the same.
    """

    name = "local"
    config_model = LocalStateConfig

    def __init__(self, config: LocalStateConfig | str | os.PathLike[str] = ".state") -> None:
        if not isinstance(config, LocalStateConfig):
            config = LocalStateConfig(path=os.fspath(config))
        super().__init__(config)
        self.directory = Path(config.path).absolute()
        self._run_lock: Path | None = None

    def for_recipe(self, recipe: Recipe) -> LocalStateBackend:
        """Lock runs of `recipe` on this host whatever their state directory: the lock is also
        held on a file named after the recipe file, the recipe's name and its rendered
        `destination:` section, in a directory of the user's under the system's temp dir."""
        identity = json.dumps(
            {
                "file": str(recipe.file.resolve()) if recipe.file else None,
                "name": recipe.name,
                "destination": recipe.destination.model_dump(mode="json"),
            },
            sort_keys=True,
        )
        digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
        locks = Path(tempfile.gettempdir()) / f"dataloader-locks-{os.getuid()}"
        self._run_lock = locks / f"{recipe.name}-{digest}.lock"
        return self

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
        with ExitStack() as stack:
            self.directory.mkdir(parents=True, exist_ok=True)
            stack.enter_context(self._flock(self.directory / f"{recipe_name}.lock", recipe_name))
            if self._run_lock is not None:
                self._run_lock.parent.mkdir(mode=0o700, exist_ok=True)
                stack.enter_context(self._flock(self._run_lock, recipe_name))
            yield

    @contextmanager
    def _flock(self, lock_path: Path, recipe_name: str) -> Iterator[None]:
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
            handle.write(f"pid {os.getpid()}, state in {self.directory}")
            handle.flush()
            yield
        finally:
            handle.close()

    def location(self, recipe_name: str) -> str:
        """Where the recipe's state is kept, for people: the file's path."""
        return str(self._file(recipe_name))

    def __repr__(self) -> str:
        return f"LocalStateBackend({str(self.directory)!r})"


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
