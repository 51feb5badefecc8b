"""`BinaryCopyCodec`: the Postgres connector's `CopyCodec` over binary COPY, in Rust."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from dataloader_postgres.types import ColumnPlan


class BinaryCopyCodec:
    """Binary COPY both ways: decoded into and encoded from Arrow by the native module, with
    the GIL released; the same Arrow types, metadata and errors as `CsvCopyCodec`."""

    name = "binary"

    def read(
        self, connection: Any, query: str, plans: Sequence[ColumnPlan], batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        """Yield the rows of `query` as record batches of at most `batch_size` rows."""
        from dataloader_rust import copy_read

        return copy_read.read(connection, query, plans, batch_size)

    def write(self, connection: Any, table_sql: str, batch: pa.RecordBatch) -> None:
        """Append `batch` to the table `table_sql` (already quoted) inside the open transaction."""
        from dataloader_rust import copy_write

        copy_write.write_batch(connection, table_sql, batch)
