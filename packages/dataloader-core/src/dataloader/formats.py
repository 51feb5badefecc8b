"""The file format API: how file-based connectors turn bytes into Arrow and back."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from typing import IO, Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict


class FormatOptions(BaseModel):
    """Base of every format's options model (the connector's `format_options:`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
