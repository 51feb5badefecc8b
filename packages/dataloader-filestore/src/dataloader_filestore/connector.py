"""`FileStoreConnector`: read files (a file, a directory or a glob) and write part files.

Reading: each batch belongs to one file and carries a checkpoint (file signature and rows done),
so a killed run resumes mid-file and `modified_time` incremental runs read only new or changed
files. Writing: each commit's part files are written under hidden temporary names, recorded in
`<dir>/_dataloader/<recipe>.json` together with the recipe's progress, then renamed into place;
an interrupted commit is rolled forward by the next run, and stray temporary files are removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
from collections.abc import Iterator
from pathlib import PurePath
from typing import Any, Literal

import pyarrow as pa
from dataloader import (
    ArrowBatch,
    BaseConnector,
    Capabilities,
    ConnectorConfig,
    ConnectorError,
    State,
)
from dataloader.registry import Registration, get_registry
from pydantic import Field, field_validator

RECORD_DIR = "_dataloader"
COMPRESSION_SUFFIX = {"gzip": ".gz", "zstd": ".zst"}
_GLOB_CHARS = set("*?[")


class FileStoreConfig(ConnectorConfig):
    """Options of the `filestore` connector.

    :param path: a file, directory or glob to read; the directory to write into. A string or
        a `pathlib.Path`.
    :param format: `csv`, `json`, `jsonl`, `parquet` or a registered custom format; default: by
        file extension when reading, required when writing.
    :param backend: where the files live. Only `local` is available in this release.
    :param format_options: options of the format (e.g. `delimiter` for CSV).
    :param compression: compression of written files (`gzip`, `zstd`); read compression is
        inferred from the file extension.
    :param storage_options: options passed to the fsspec filesystem.
    """

    path: str
    format: str | None = None
    backend: Literal["local"] = "local"
    format_options: dict[str, Any] = Field(default_factory=dict)
    compression: Literal["none", "gzip", "zstd"] = "none"
    storage_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("path", mode="before")
    @classmethod
    def _path_to_str(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, PurePath) else value


class FileStoreConnector(BaseConnector):
    """Files as a source and a destination."""

    name = "filestore"
    config_model = FileStoreConfig
    capabilities = Capabilities(
        read=True,
        write=True,
        write_modes=("append", "overwrite"),
        incremental=True,
        transactional_state=True,
        resumable=True,
    )

    def __init__(self, config: FileStoreConfig) -> None:
        super().__init__(config)
        self.fs: Any = None
        self.root = ""
        self._pending: list[tuple[str, str]] = []
        self._part = 0

    # -- lifecycle -------------------------------------------------------------------
    def open(self, context: Any) -> None:
        import fsspec

        super().open(context)
        try:
            self.fs, self.root = fsspec.core.url_to_fs(
                self.config.path, **self.config.storage_options
            )
        except Exception as exc:
            raise ConnectorError(
                f"cannot open file storage: {exc}",
                key=f"{context.role}.path",
                value=self.config.path,
            ) from exc
        if context.role == "destination":
            if self.config.format is None:
                raise ConnectorError(
                    "a filestore destination needs `format`",
                    key="destination.format",
                    expected="csv, json, jsonl, parquet or a registered format",
                )
            self._format_registration(self.config.format)
            self.fs.makedirs(self.root, exist_ok=True)
        incremental = context.incremental
        if (
            context.role == "source"
            and incremental is not None
            and incremental.strategy != "modified_time"
        ):
            raise ConnectorError(
                "filestore sources are incremental by `modified_time` only",
                key="source.incremental.strategy",
                value=incremental.strategy,
                expected="modified_time",
            )

    def _format_registration(self, name: str) -> Registration:
        try:
            return get_registry().format(name)
        except Exception as exc:
            raise ConnectorError(str(exc), key=f"{self._role()}.format", value=name) from None

    def _role(self) -> str:
        return self.context.role if self.context else "source"

    def _format(self, path: str) -> Any:
        registration = (
            self._format_registration(self.config.format)
            if self.config.format
            else get_registry().format_for_path(path)
        )
        if registration is None:
            raise ConnectorError(
                f"cannot tell the format of {path!r} from its name",
                key="source.format",
                expected="set `format:` (csv, json, jsonl, parquet, …)",
            )
        return registration.create(
            registration.config_model.model_validate(self.config.format_options)
        )

    # -- source ----------------------------------------------------------------------
    def _list(self) -> list[dict[str, Any]]:
        root = self.root
        try:
            if _GLOB_CHARS & set(root):
                found = self.fs.glob(root, detail=True)
            elif self.fs.isdir(root):
                found = self.fs.find(root, detail=True)
            elif self.fs.exists(root):
                found = {root: self.fs.info(root)}
            else:
                raise ConnectorError(
                    "path does not exist", key="source.path", value=self.config.path
                )
        except ConnectorError:
            raise
        except Exception as exc:
            raise ConnectorError(
                f"cannot list files: {exc}", key="source.path", value=self.config.path
            ) from exc
        files = []
        for path, info in found.items():
            name = posixpath.basename(path)
            if (
                info.get("type") != "file"
                or name.startswith((".", "_"))
                or f"/{RECORD_DIR}/" in path
            ):
                continue
            if self.config.format is None and get_registry().format_for_path(path) is None:
                continue
            files.append({"path": path, "mtime": _mtime(info), "size": int(info.get("size") or 0)})
        if self.context and self.context.incremental is not None:
            files.sort(key=lambda f: (f["mtime"], f["path"]))
        else:
            files.sort(key=lambda f: f["path"])
        return files

    def estimate_rows(self) -> int | None:
        return None

    def read_batches(self, state: State) -> Iterator[ArrowBatch]:
        assert self.context is not None
        seen: dict[str, Any] = state.watermarks.get("files", {})
        for file in self._list():
            path = file["path"]
            signature = {"mtime": file["mtime"], "size": file["size"]}
            entry = seen.get(path)
            same = (
                entry is not None
                and entry.get("mtime") == file["mtime"]
                and entry.get("size") == file["size"]
            )
            if same and entry.get("complete"):
                continue
            skip = int(entry.get("rows", 0)) if same else 0
            yield from self._read_file(path, signature, skip)

    def _read_file(self, path: str, signature: dict[str, Any], skip: int) -> Iterator[ArrowBatch]:
        assert self.context is not None
        done = 0
        previous: pa.RecordBatch | None = None

        def batch(data: pa.RecordBatch, rows: int, complete: bool) -> ArrowBatch:
            checkpoint = {"files": {path: {**signature, "rows": rows, "complete": complete}}}
            return ArrowBatch(data, {"source_file": path, "checkpoint": checkpoint})

        try:
            with self.fs.open(path, "rb", compression="infer") as stream:
                for data in self._format(path).read(stream, batch_size=self.context.batch_size):
                    if skip:
                        dropped = min(skip, data.num_rows)
                        data, skip, done = data.slice(dropped), skip - dropped, done + dropped
                        if data.num_rows == 0:
                            continue
                    if previous is not None:
                        yield batch(previous, done, False)
                    previous = data
                    done += data.num_rows
        except FileNotFoundError as exc:
            raise ConnectorError(
                "file disappeared while reading", key="source.path", value=path
            ) from exc
        except ConnectorError:
            raise
        except (pa.ArrowInvalid, ValueError, OSError, UnicodeDecodeError) as exc:
            raise ConnectorError(
                f"cannot read {path}: {exc}",
                key="source.path",
                value=self.config.path,
                context={"file": path},
            ) from exc
        if previous is None:
            previous = pa.RecordBatch.from_pylist([])
        yield batch(previous, done, True)

    # -- destination -----------------------------------------------------------------
    def _record_path(self) -> str:
        assert self.context is not None
        return posixpath.join(self.root, RECORD_DIR, f"{self.context.recipe_name}.json")

    def _read_record(self) -> dict[str, Any]:
        path = self._record_path()
        if not self.fs.exists(path):
            return {}
        with self.fs.open(path, "rb") as handle:
            return json.loads(handle.read())

    def _write_record(self, record: dict[str, Any]) -> None:
        path = self._record_path()
        tmp = posixpath.join(posixpath.dirname(path), "." + posixpath.basename(path) + ".tmp")
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        with self.fs.open(tmp, "wb") as handle:
            handle.write(json.dumps(record, indent=1, sort_keys=True).encode())
            if hasattr(handle, "flush"):
                handle.flush()
            if hasattr(handle, "fileno"):
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    os.fsync(handle.fileno())
        self.fs.mv(tmp, path)

    def _apply_pending(self, record: dict[str, Any]) -> None:
        pending = record.get("pending") or {}
        for tmp, final in pending.get("renames", []):
            if self.fs.exists(tmp):
                self.fs.mv(tmp, final)
        for obsolete in pending.get("deletes", []):
            if self.fs.exists(obsolete):
                self.fs.rm(obsolete)
        if pending:
            record["pending"] = {}
            self._write_record(record)

    def load_state(self) -> State | None:
        record = self._read_record()
        if not record:
            return None
        self._apply_pending(record)
        return State.from_dict(record.get("state"))

    def reset_state(self) -> None:
        path = self._record_path()
        if self.fs.exists(path):
            self.fs.rm(path)

    def _prefix(self) -> str:
        assert self.context is not None
        return f"{self.context.recipe_name}-"

    def begin(self, state: State) -> None:
        prefix = "." + self._prefix()
        for path in self.fs.ls(self.root, detail=False):
            name = posixpath.basename(path)
            if name.startswith(prefix) and name.endswith(".tmp"):
                self.fs.rm(path)

    def _extension(self) -> str:
        registration = self._format_registration(self.config.format or "")
        extension = (
            registration.extensions[0] if registration.extensions else f".{registration.name}"
        )
        return extension + COMPRESSION_SUFFIX.get(self.config.compression, "")

    def write_batch(self, batch: Any, state: State) -> None:
        assert self.context is not None
        data: pa.RecordBatch = batch.to_arrow()
        if data.num_rows == 0:
            return
        self._part += 1
        final_name = f"{self._prefix()}{self.context.run_id}-{self._part:05d}{self._extension()}"
        final = posixpath.join(self.root, final_name)
        tmp = posixpath.join(self.root, f".{final_name}.tmp")
        registration = self._format_registration(self.config.format or "")
        file_format = registration.create(
            registration.config_model.model_validate(self.config.format_options)
        )
        compression = None if self.config.compression == "none" else self.config.compression
        try:
            with self.fs.open(tmp, "wb", compression=compression) as stream:
                file_format.write([data], stream, data.schema)
        except Exception as exc:
            raise ConnectorError(
                f"cannot write {final}: {exc}", key="destination.path", value=self.config.path
            ) from exc
        self._pending.append((tmp, final))

    def commit(self, state: State) -> None:
        assert self.context is not None
        record = self._read_record()
        finals = {final for _, final in self._pending}
        deletes: list[str] = []
        if self.context.write_mode == "overwrite":
            prefix = self._prefix()
            for path in self.fs.ls(self.root, detail=False):
                name = posixpath.basename(path)
                if name.startswith(prefix) and path not in finals and not name.endswith(".tmp"):
                    deletes.append(path)
        progress = state.to_dict()
        record = {
            "state": {
                "cursor_values": progress["cursor_values"],
                "watermarks": progress["watermarks"],
            },
            "pending": {"renames": [list(pair) for pair in self._pending], "deletes": deletes},
        }
        self._write_record(record)
        self._pending = []
        self._apply_pending(record)

    def abort(self) -> None:
        for tmp, _ in self._pending:
            if self.fs is not None and self.fs.exists(tmp):
                self.fs.rm(tmp)
        self._pending = []


def _mtime(info: dict[str, Any]) -> float:
    value = info.get("mtime", info.get("LastModified", info.get("last_modified", 0)))
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    return float(value or 0)
