"""Entry-point module: fills the core's accelerator slots with the native implementations.

Nothing native is imported here: the registry imports a target when its slot is first asked
for (a Postgres read or write, a row hash), so `list-connectors` and `validate` stay cheap.
The COPY codec is offered only where dataloader-postgres, which it plugs into, is installed.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

from dataloader import PluginRef, hookimpl


@hookimpl
def register_accelerators() -> list[Any]:
    slots = [
        PluginRef(
            "row_hash",
            "dataloader_rust.hashing:hash_rows",
            accelerates="the core's row hashing (normalization keys)",
        )
    ]
    if find_spec("dataloader_rest") is not None:
        slots.append(
            PluginRef(
                "rest_json_records",
                "dataloader_rust.json_records:JsonRecords",
                accelerates="the rest source's JSON pages (records to Arrow from the bytes)",
            )
        )
    if find_spec("dataloader_postgres") is not None:
        slots.append(
            PluginRef(
                "postgres_copy_codec",
                "dataloader_rust.codec:BinaryCopyCodec",
                accelerates="the postgres connector's COPY (binary format, both ways)",
            )
        )
    return slots
