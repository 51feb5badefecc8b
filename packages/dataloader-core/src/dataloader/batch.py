"""Batches: the unit of data that moves from source through transforms to destination.

The engine's currency is `ArrowBatch` (a pyarrow RecordBatch plus metadata). Plugins whose
sources produce Python rows may yield `DictBatch`; the engine converts it to Arrow once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa


@runtime_checkable
class Batch(Protocol):
    """What every batch offers, whatever holds its data."""

    @property
    def columns(self) -> list[str]: ...

    @property
    def rows(self) -> list[list[Any]]: ...

    @property
    def metadata(self) -> dict[str, Any]: ...

    @property
    def row_count(self) -> int: ...

    def to_dict(self) -> dict[str, Any]: ...

    def to_arrow(self) -> pa.RecordBatch: ...


class ArrowBatch:
    """A pyarrow RecordBatch with metadata (source file, checkpoint, …)."""

    __slots__ = ("_metadata", "_nbytes", "_record_batch")

    def __init__(
        self, data: pa.RecordBatch | pa.Table, metadata: dict[str, Any] | None = None
    ) -> None:
        if isinstance(data, pa.Table):
            data = (
                data.combine_chunks().to_batches()[0]
                if data.num_rows
                else pa.RecordBatch.from_pylist([], schema=data.schema)
            )
        self._record_batch: pa.RecordBatch = data
        self._metadata: dict[str, Any] = dict(metadata or {})
        self._nbytes: int | None = None

    @classmethod
    def from_pylist(
        cls, rows: Sequence[dict[str, Any]], schema: pa.Schema | None = None, **metadata: Any
    ) -> ArrowBatch:
        """Rows as dicts, converted once. Without `schema`, a column for every key of any row
        (in the order keys first appear), null where a row lacks it, typed as Arrow infers."""
        rows = list(rows)
        if schema is not None or not rows:
            return cls(pa.RecordBatch.from_pylist(rows, schema=schema), metadata)
        # RecordBatch.from_pylist would name the columns after the first row's keys only.
        names = list(dict.fromkeys(chain.from_iterable(rows)))
        arrays = [pa.array([row.get(name) for row in rows]) for name in names]
        return cls(pa.RecordBatch.from_arrays(arrays, names=names), metadata)

    @property
    def columns(self) -> list[str]:
        return list(self._record_batch.schema.names)

    @property
    def rows(self) -> list[list[Any]]:
        """Rows as Python lists. Costly on large batches: meant for tests and small plugins."""
        columns = [column.to_pylist() for column in self._record_batch.columns]
        return [list(row) for row in zip(*columns, strict=True)] if columns else []

    @property
    def metadata(self) -> dict[str, Any]:
        return self._metadata

    @property
    def row_count(self) -> int:
        return self._record_batch.num_rows

    @property
    def schema(self) -> pa.Schema:
        return self._record_batch.schema

    @property
    def nbytes(self) -> int:
        """The batch's Arrow buffer size (computed once: Arrow walks every nested child)."""
        if self._nbytes is None:
            self._nbytes = self._record_batch.nbytes
        return self._nbytes

    def to_arrow(self) -> pa.RecordBatch:
        return self._record_batch

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows, "metadata": dict(self._metadata)}

    def with_data(self, data: pa.RecordBatch | pa.Table) -> ArrowBatch:
        """A new batch with other data and the same metadata."""
        return ArrowBatch(data, self._metadata)

    def __repr__(self) -> str:
        return f"ArrowBatch(rows={self.row_count}, columns={self.columns})"


class DictBatch:
    """A batch of plain Python rows, for plugins whose sources give rows, not columns."""

    def __init__(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._columns = list(columns)
        self._rows = [list(row) for row in rows]
        self._metadata = dict(metadata or {})
        for index, row in enumerate(self._rows):
            if len(row) != len(self._columns):
                raise ValueError(
                    f"row {index} has {len(row)} values; expected {len(self._columns)} "
                    f"(columns {self._columns})"
                )

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    @property
    def rows(self) -> list[list[Any]]:
        return self._rows

    @property
    def metadata(self) -> dict[str, Any]:
        return self._metadata

    @property
    def row_count(self) -> int:
        return len(self._rows)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self._rows, "metadata": dict(self._metadata)}

    def to_arrow(self, schema: pa.Schema | None = None) -> pa.RecordBatch:
        arrays = (
            [list(values) for values in zip(*self._rows, strict=True)]
            if self._rows
            else [[] for _ in self._columns]
        )
        if schema is not None:
            return pa.RecordBatch.from_arrays(
                [
                    pa.array(values, type=schema.field(name).type)
                    for name, values in zip(self._columns, arrays, strict=True)
                ],
                schema=schema,
            )
        return pa.RecordBatch.from_arrays(
            [pa.array(values) for values in arrays], names=self._columns
        )


def as_arrow_batch(batch: Batch | pa.RecordBatch | pa.Table) -> ArrowBatch:
    """Convert whatever a plugin produced into an `ArrowBatch`, once."""
    if isinstance(batch, ArrowBatch):
        return batch
    if isinstance(batch, (pa.RecordBatch, pa.Table)):
        return ArrowBatch(batch)
    if isinstance(batch, DictBatch):
        return ArrowBatch(batch.to_arrow(), batch.metadata)
    return ArrowBatch(batch.to_arrow(), batch.metadata)
