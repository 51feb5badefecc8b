"""Reading compressed files, chosen by extension, that fail on a truncated file.

A compressed stream knows where it ends (gzip's trailer, bzip2's and xz's end-of-stream
marker, a zstd frame's last block), so a file cut short — an upload still in progress, a
copy interrupted — is an error, never a shorter file read as if it were complete. Python's
gzip, bz2 and lzma readers already raise `EOFError` there; zstandard's stream reader just
stops, so zstd is decompressed frame by frame here and an unfinished frame is reported.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
from typing import IO, Any

SUFFIXES = {".gz": "gzip", ".zst": "zstd", ".bz2": "bz2", ".xz": "xz"}
READ_SIZE = 1 << 20  # compressed bytes read from the file at a time (zstd)


class TruncatedFile(Exception):
    """A compressed file ends before its compressed stream does."""


def compression_of(path: str) -> str | None:
    """The compression of a file by its extension (`.gz`, `.zst`, `.bz2`, `.xz`), or None."""
    lowered = path.lower()
    return next((name for suffix, name in SUFFIXES.items() if lowered.endswith(suffix)), None)


def open_decompressed(raw: IO[bytes], path: str) -> IO[bytes]:
    """`raw` itself, or a reader of its decompressed bytes when `path` names a compressed file.
    Reading past the end of a truncated file raises `TruncatedFile`."""
    compression = compression_of(path)
    if compression is None:
        return raw
    return io.BufferedReader(_CheckedReader(_decompressor(compression, raw), compression))


def compressing_writer(raw: IO[bytes], compression: str) -> IO[bytes]:
    """A writer that compresses into `raw` (`gzip` at level 6 or `zstd` at level 3, the
    defaults of their command-line tools); closing it ends the compressed stream and leaves
    `raw` open."""
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6)  # type: ignore[return-value]
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False)  # type: ignore[return-value]
    raise ValueError(f"cannot write {compression!r} compression: gzip or zstd")


class _CheckedReader(io.RawIOBase):
    """A decompressing reader whose `EOFError` (the stream ended early) is a `TruncatedFile`."""

    def __init__(self, inner: Any, compression: str) -> None:
        self._inner = inner
        self._compression = compression

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return bool(self._inner.seekable())

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Seek in the decompressed bytes (to read a file again from its start, to point at a
        bad row)."""
        return int(self._inner.seek(offset, whence))

    def readinto(self, buffer: Any) -> int:
        try:
            return self._inner.readinto(buffer)
        except EOFError:
            raise TruncatedFile(
                f"the file ends before its {self._compression} stream does"
            ) from None

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


class _ZstdReader(io.RawIOBase):
    """zstd frames, one after another, decompressed; like Python's own readers, it raises
    `EOFError` when the file ends inside a frame."""

    def __init__(self, raw: IO[bytes]) -> None:
        import zstandard

        self._raw = raw
        self._context = zstandard.ZstdDecompressor()
        self._frame: Any = None  # the decompressor of the frame being read
        self._output = memoryview(b"")
        self._ended = False
        self._position = 0  # decompressed bytes read so far

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return bool(self._raw.seekable())

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Tell the position, or go back to the start; zstd cannot seek anywhere else."""
        if whence == io.SEEK_CUR and offset == 0:
            return self._position
        if whence == io.SEEK_SET and offset == 0:
            self._raw.seek(0)
            self._frame, self._output, self._ended, self._position = None, memoryview(b""), False, 0
            return 0
        raise io.UnsupportedOperation("a zstd stream can only be read again from its start")

    def readinto(self, buffer: Any) -> int:
        while not self._output and not self._ended:
            self._decompress(self._raw.read(READ_SIZE))
        size = min(len(buffer), len(self._output))
        buffer[:size] = self._output[:size]
        self._output = self._output[size:]
        self._position += size
        return size

    def _decompress(self, data: bytes) -> None:
        if not data:
            self._ended = True
            if self._frame is not None and not self._frame.eof:
                raise EOFError("the file ends inside a zstd frame")
            return
        output = []
        while data:
            if self._frame is None or self._frame.eof:
                self._frame = self._context.decompressobj()
            output.append(self._frame.decompress(data))
            data = self._frame.unused_data if self._frame.eof else b""
        self._output = memoryview(b"".join(output))


def _decompressor(compression: str, raw: IO[bytes]) -> Any:
    """The decompressing reader of `raw` (closed with the `_CheckedReader` that holds it)."""
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if compression == "bz2":
        return bz2.BZ2File(raw, mode="rb")
    if compression == "xz":
        return lzma.LZMAFile(raw, mode="rb")
    return _ZstdReader(raw)
