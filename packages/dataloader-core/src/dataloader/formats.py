"""The file format API: how file-based connectors turn bytes into Arrow and back."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    import pyarrow as pa  # a format's options are validated without it


class FormatOptions(BaseModel):
    """Base of every format's options model (the connector's `format_options:`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FormatWriter(ABC):
    """One file being written a batch at a time; made by `Format.open_writer`."""

    @abstractmethod
    def write_batch(self, batch: pa.RecordBatch) -> None:
        """Add the rows of `batch` (of the schema the writer was opened with) to the file."""

    @abstractmethod
    def close(self) -> int:
        """Finish the file (its footer, its closing bracket…), leaving the stream open; return
        the rows written."""

    @property
    def buffered_bytes(self) -> int:
        """Bytes of rows held in memory, not yet in the stream (at their in-memory size); a file
        destination counts them toward the file's size."""
        return 0


class _CollectingWriter(FormatWriter):
    """The writer of a format that writes a file in one call: the batches are held in memory
    and handed to `Format.write` on `close`."""

    def __init__(self, file_format: Format, stream: IO[bytes], schema: pa.Schema) -> None:
        self._format, self._stream, self._schema = file_format, stream, schema
        self._batches: list[pa.RecordBatch] = []
        self._bytes = 0

    def write_batch(self, batch: pa.RecordBatch) -> None:
        self._batches.append(batch)
        self._bytes += batch.nbytes

    def close(self) -> int:
        batches, self._batches, self._bytes = self._batches, [], 0
        return self._format.write(batches, self._stream, self._schema)

    @property
    def buffered_bytes(self) -> int:
        return self._bytes


class Format(ABC):
    """A file format. Registered through `register_formats` or `@register_format`.

    :cvar name: the name recipes use (`format: csv`).
    :cvar extensions: file name endings that select this format when `format` is not given.
    :cvar options_model: the pydantic model of the format's options.
    """

    name: ClassVar[str]
    extensions: ClassVar[tuple[str, ...]] = ()
    options_model: ClassVar[type[FormatOptions]] = FormatOptions

    def __init__(self, options: FormatOptions | dict[str, Any] | None = None) -> None:
        if not isinstance(options, FormatOptions):
            options = self.options_model.model_validate(options or {})
        self.options = options

    @abstractmethod
    def read(self, stream: IO[bytes], *, batch_size: int) -> Iterator[pa.RecordBatch]:
        """Yield record batches of at most `batch_size` rows from an open binary stream."""

    @abstractmethod
    def write(self, batches: Iterable[pa.RecordBatch], stream: IO[bytes], schema: pa.Schema) -> int:
        """Write all `batches` (sharing `schema`) to an open binary stream; return rows written."""

    def open_writer(self, stream: IO[bytes], schema: pa.Schema) -> FormatWriter:
        """Start one file on `stream`, to be written a batch at a time (a file destination
        fills a file from many batches). This default holds the batches in memory and calls
        `write` on `close`; a format that can write as it goes overrides it."""
        return _CollectingWriter(self, stream, schema)
