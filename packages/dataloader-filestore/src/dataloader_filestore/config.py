"""The filestore connector's keys: a light module (pydantic, no pyarrow, no fsspec), so that a
recipe is validated without importing the connector."""

from __future__ import annotations

import os
from pathlib import PurePath
from typing import Any, Literal

from pydantic import ByteSize, Field, field_validator, model_validator

from dataloader.connectors import ConnectorConfig
from dataloader_filestore.backends import S3_KEYS, SFTP_KEYS, Backend, BackendSettings, backend_of

DEFAULT_TARGET_FILE_SIZE = 128 << 20
DESTINATION_KEYS = ("rows_per_file", "target_file_size")


class FileStoreConfig(BackendSettings, ConnectorConfig):
    """Options of the `filestore` connector.

    :param path: a file, directory or glob to read; the directory to write into. A string or
        a `pathlib.Path`; `s3://bucket/prefix` and `sftp://host/dir` select those backends.
    :param format: `csv`, `json`, `jsonl`, `parquet` or a registered custom format; default: by
        file extension when reading, required when writing.
    :param backend: `local`, `s3` or `sftp`; default: from the path's scheme. The remote
        backends' connection keys are described by `BackendSettings`.
    :param format_options: options of the format (e.g. `delimiter` for CSV).
    :param compression: compression of written files (`gzip`, `zstd`); read compression is
        inferred from the file extension.
    :param storage_options: options passed to the fsspec filesystem.
    :param allow_empty: a source only: read nothing, without an error, when `path` selects no
        file (a glob that matches none, an empty directory or S3 prefix). Off by default, so
        that an emptied landing area does not silently empty an overwritten table.
    :param rows_per_file: a destination only: a part file holds at most this many rows.
    :param target_file_size: a destination only: a part file is closed once it holds about this
        many bytes (`128MiB`, `1GB` or a number); default 128 MiB.
    """

    path: str
    format: str | None = None
    backend: Backend | None = None
    format_options: dict[str, Any] = Field(default_factory=dict)
    compression: Literal["none", "gzip", "zstd"] = "none"
    storage_options: dict[str, Any] = Field(default_factory=dict)
    allow_empty: bool = False
    rows_per_file: int | None = Field(default=None, gt=0)
    target_file_size: ByteSize = Field(default=ByteSize(DEFAULT_TARGET_FILE_SIZE), gt=0)

    @field_validator("path", mode="before")
    @classmethod
    def _path_to_str(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, PurePath) else value

    @model_validator(mode="after")
    def _keys_fit_backend(self) -> FileStoreConfig:
        backend = backend_of(self.path, self.backend)
        allowed = {"s3": S3_KEYS, "sftp": SFTP_KEYS, "local": frozenset()}[backend]
        stray = sorted((self.model_fields_set & (S3_KEYS | SFTP_KEYS)) - allowed)
        if stray:
            raise ValueError(f"{', '.join(stray)} do not apply to the {backend} backend")
        return self

    @property
    def resolved_backend(self) -> Backend:
        return backend_of(self.path, self.backend)
