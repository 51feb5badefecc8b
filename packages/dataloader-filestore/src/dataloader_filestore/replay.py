"""`Replay`: a read-only stream whose start can be read again, without seeking the source."""

from __future__ import annotations

from typing import IO


class Replay:
    """Reads `source`, keeping what it reads; `rewind` serves the kept bytes again, then the
    rest of the source. Compressed and remote streams cannot always seek: a reader that looks
    at the start of a file before it reads the file whole reads through this."""

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self._kept = bytearray()
        self._keeping = True
        self._position = 0
        self.closed = False

    def rewind(self, *, keep: bool = True) -> None:
        """Read from the start again; with `keep=False` for the last time (the kept bytes are
        dropped once served, and nothing more is kept)."""
        self._position = 0
        self._keeping = keep

    def read(self, size: int | None = -1) -> bytes:
        whole = size is None or size < 0
        data = b""
        if self._position < len(self._kept):
            end = len(self._kept) if whole else min(len(self._kept), self._position + size)
            data = bytes(self._kept[self._position : end])
            self._position = end
            if not whole and len(data) == size:
                return data
        if not self._keeping and self._kept:
            self._kept, self._position = bytearray(), 0
        more = self._source.read() if whole else self._source.read(size - len(data))
        if self._keeping:
            self._kept += more
            self._position += len(more)
        return data + more

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True
