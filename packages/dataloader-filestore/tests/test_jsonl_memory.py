"""The JSONL reader holds a few pieces of the file at a time, however large the file and however
slow its consumer: Arrow's streaming reader read ahead of the consumer without bound."""

from __future__ import annotations

import io
import json

import pytest

from dataloader_filestore import formats, json_types
from dataloader_filestore.format_options import JsonlOptions
from dataloader_filestore.formats import JsonlFormat

BLOCK = 64 << 10


class CountingStream(io.RawIOBase):
    """A stream of `data` that counts the bytes read from it."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        data = self._data.read(size)
        self.read_bytes += len(data)
        return data

    def readable(self) -> bool:
        return True


def test_jsonl_read_holds_at_most_a_few_pieces_ahead_of_its_consumer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(formats, "BLOCK_SIZE", BLOCK)
    lines = [
        json.dumps({"id": i, "name": f"customer {i}", "tags": [i % 7, i % 11]}).encode() + b"\n"
        for i in range(60_000)
    ]
    data = b"".join(lines)
    assert len(data) > 40 * BLOCK
    ends = [0]
    for line in lines:
        ends.append(ends[-1] + len(line))
    stream = CountingStream(data)
    consumed = 0
    most_ahead = 0
    for batch in JsonlFormat(JsonlOptions(infer_rows=100)).read(stream, batch_size=500):
        consumed += batch.num_rows
        # the sample reads the file's start in pieces of json_types._CHUNK, kept for the reader
        ahead = stream.read_bytes - max(ends[consumed], json_types._CHUNK)
        most_ahead = max(most_ahead, ahead)
    assert consumed == len(lines)
    assert most_ahead <= 3 * BLOCK


def test_jsonl_line_longer_than_a_parse_block_after_the_first_piece_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(formats, "BLOCK_SIZE", 4096)
    monkeypatch.setattr(formats, "PARSE_BLOCK_SIZE", 1024)
    rows = [{"id": i, "text": "x" * (3000 if i == 300 else 10)} for i in range(400)]
    data = "".join(json.dumps(row) + "\n" for row in rows).encode()
    batches = list(JsonlFormat(JsonlOptions()).read(io.BytesIO(data), batch_size=1000))
    table = batches[0]
    assert table.num_rows == 400
    assert table.column("text").to_pylist() == [row["text"] for row in rows]
    assert table.column("id").to_pylist() == list(range(400))
