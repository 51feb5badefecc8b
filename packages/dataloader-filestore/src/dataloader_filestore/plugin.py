"""Entry-point module: registers the filestore connector and the built-in file formats.

It gives `PluginRef`s: the registry knows names, capabilities and extensions from them,
imports the config models (`dataloader_filestore.config` and `.format_options`: no pyarrow,
no fsspec) when a recipe binds a name, and the connector and formats only when they are used.
"""

from __future__ import annotations

from typing import Any

from dataloader import PluginRef, hookimpl

_FORMATS = "dataloader_filestore.formats"
_OPTIONS = "dataloader_filestore.format_options"


@hookimpl
def register_connectors() -> list[Any]:
    return [
        PluginRef(
            "filestore",
            "dataloader_filestore.connector:FileStoreConnector",
            config_model="dataloader_filestore.config:FileStoreConfig",
            capabilities={
                "read": True,
                "write": True,
                "write_modes": ("append", "overwrite"),
                "incremental": True,
                "transactional_state": True,
                "resumable": True,
                "quarantine": True,
                "child_tables": True,
                "can_split": True,
                "can_stage": True,
                "max_identifier_length": 255,
            },
        )
    ]


@hookimpl
def register_formats() -> list[Any]:
    return [
        PluginRef(name, f"{_FORMATS}:{cls}", config_model=f"{_OPTIONS}:{options}", extensions=ext)
        for name, cls, options, ext in (
            ("csv", "CsvFormat", "CsvOptions", (".csv",)),
            ("tsv", "TsvFormat", "TsvOptions", (".tsv",)),
            ("parquet", "ParquetFormat", "ParquetOptions", (".parquet", ".pq")),
            ("jsonl", "JsonlFormat", "JsonlOptions", (".jsonl", ".ndjson")),
            ("json", "JsonFormat", "JsonlOptions", (".json",)),
        )
    ]
