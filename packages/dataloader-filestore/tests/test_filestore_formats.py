"""Formats and compression: what the filestore destination writes, its source reads back."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from dataloader import ConnectorError, Format, FormatOptions, RunResult, register_format
from dataloader.registry import unregister
from dataloader_filestore.formats import CsvFormat

Run = Callable[..., RunResult]

ROWS = [
    {"id": 1, "name": "plain", "score": 1.5, "ok": True},
    {"id": 2, "name": 'with, comma and "quotes"', "score": None, "ok": False},
    {"id": 3, "name": "multi\nline", "score": -2.25, "ok": True},
    {"id": 4, "name": "ünïcødé ✓", "score": 0.0, "ok": False},
]


def write_recipe(
    out: Path, file_format: str, batches: list[list[dict[str, Any]]], **options: Any
) -> dict[str, Any]:
    return {
        "name": "export",
        "source": {"type": "dl_test_rows", "batches": batches},
        "destination": {"type": "filestore", "path": str(out), "format": file_format, **options},
    }


def visible_files(directory: Path) -> list[str]:
    return sorted(
        p.name for p in directory.iterdir() if p.is_file() and not p.name.startswith((".", "_"))
    )


@pytest.mark.parametrize("file_format", ["csv", "json", "jsonl", "parquet"])
def test_format_round_trips_through_write_and_read(
    run: Run, read_back: Any, tmp_path: Path, file_format: str
) -> None:
    out = tmp_path / "out"

    result = run(write_recipe(out, file_format, [ROWS[:3], ROWS[3:]]))

    assert result.rows_written == 4
    files = visible_files(out)
    assert len(files) == 1  # one part holds both batches
    assert all(name.startswith("export-") and name.endswith(f".{file_format}") for name in files)
    assert sorted(read_back(str(out)), key=lambda row: row["id"]) == ROWS


def test_parquet_keeps_exact_arrow_types(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rows = [
        {
            "amount": Decimal("12345678901234.567890"),
            "at": datetime(2024, 5, 17, 12, 30, 0, 123456, tzinfo=UTC),
            "big": 2**62,
        }
    ]

    run(write_recipe(out, "parquet", [rows]))

    (name,) = visible_files(out)
    table = pq.read_table(out / name)
    assert table.schema.field("amount").type == pa.decimal128(20, 6)
    assert table.schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert table.to_pylist() == rows


@pytest.mark.parametrize(
    ("compression", "suffix", "magic", "decompress"),
    [
        ("gzip", ".gz", b"\x1f\x8b", gzip.decompress),
        (
            "zstd",
            ".zst",
            b"\x28\xb5\x2f\xfd",
            lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
        ),
    ],
)
@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
def test_compression_is_written_and_read_back_by_extension(
    run: Run,
    read_back: Any,
    tmp_path: Path,
    compression: str,
    suffix: str,
    magic: bytes,
    decompress: Callable[[bytes], bytes],
    file_format: str,
) -> None:
    out = tmp_path / "out"

    run(write_recipe(out, file_format, [ROWS], compression=compression))

    (name,) = visible_files(out)
    assert name.endswith(f".{file_format}{suffix}")
    data = (out / name).read_bytes()
    assert data.startswith(magic)
    assert b"plain" in decompress(data)
    assert sorted(read_back(str(out)), key=lambda row: row["id"]) == ROWS


def test_compressed_inputs_are_detected_from_the_file_name(read_back: Any, tmp_path: Path) -> None:
    data = tmp_path / "in"
    data.mkdir()
    (data / "a.csv.gz").write_bytes(gzip.compress(b"id,v\n1,a\n2,b\n"))
    (data / "b.jsonl.zst").write_bytes(zstandard.compress(b'{"id": 3, "v": "c"}\n'))
    (data / "c.csv").write_text("id,v\n4,d\n")

    rows = read_back(str(data))

    assert sorted((row["id"], row["v"]) for row in rows) == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]


def test_format_option_overrides_the_extension(read_back: Any, tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("id;v\n1;a\n")

    assert read_back(str(path), format="csv", format_options={"delimiter": ";"}) == [
        {"id": 1, "v": "a"}
    ]


class PipeOptions(FormatOptions):
    pass


def test_custom_format_registered_in_process_is_used_by_extension(
    run: Run, read_back: Any, tmp_path: Path
) -> None:
    @register_format("dl_test_pipes", extensions=(".pipes",))
    class Pipes(Format):
        """`key|value` lines."""

        options_model = PipeOptions

        def read(self, stream: IO[bytes], *, batch_size: int) -> Iterator[pa.RecordBatch]:
            lines = stream.read().decode().splitlines()
            pairs = [line.split("|", 1) for line in lines if line]
            yield pa.RecordBatch.from_pylist([{"key": k, "value": v} for k, v in pairs])

        def write(self, batches: Any, stream: IO[bytes], schema: pa.Schema) -> int:
            rows = [row for batch in batches for row in batch.to_pylist()]
            stream.write("".join(f"{r['key']}|{r['value']}\n" for r in rows).encode())
            return len(rows)

    try:
        data = tmp_path / "in"
        data.mkdir()
        (data / "one.pipes").write_text("a|1\nb|2\n")
        (data / "ignored.unknown").write_text("not a known format")

        assert read_back(str(data)) == [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]

        out = tmp_path / "out"
        run(write_recipe(out, "dl_test_pipes", [[{"key": "c", "value": "3"}]]))
        (name,) = visible_files(out)
        assert name.endswith(".pipes")
        assert (out / name).read_text() == "c|3\n"
    finally:
        unregister("format", "dl_test_pipes")


# -- truncated compressed inputs -----------------------------------------------------------
COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    ".gz": gzip.compress,
    ".zst": zstandard.compress,
    ".bz2": bz2.compress,
    ".xz": lzma.compress,
}


def many_rows(file_format: str, count: int) -> bytes:
    if file_format == "csv":
        return ("id,name\n" + "".join(f"{i},name-{i}\n" for i in range(count))).encode()
    return "".join(f'{{"id": {i}, "name": "name-{i}"}}\n' for i in range(count)).encode()


@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
def test_a_truncated_compressed_file_fails_naming_it_and_nothing_of_it_is_committed(
    run: Run,
    tmp_path: Path,
    collected: dict[str, list[dict[str, Any]]],
    suffix: str,
    file_format: str,
) -> None:
    data = tmp_path / "in"
    data.mkdir()
    whole = COMPRESSORS[suffix](many_rows(file_format, 20_000))
    cut = data / f"orders.{file_format}{suffix}"
    cut.write_bytes(whole[: len(whole) // 2])
    recipe = {
        "name": "cut",
        "source": {
            "type": "filestore",
            "path": str(data),
            "incremental": {"strategy": "modified_time"},
        },
        "destination": {"type": "dl_test_collect", "into": "cut"},
        "runtime": {"batch_size": 1000},
    }

    for _ in range(2):  # the file is not recorded as read: the next run fails the same way
        with pytest.raises(ConnectorError, match="is truncated") as caught:
            run(recipe)
        assert str(cut) in str(caught.value)
        assert collected.get("cut", []) == []


def test_every_frame_of_a_multi_frame_zstd_file_is_read(read_back: Any, tmp_path: Path) -> None:
    path = tmp_path / "frames.csv.zst"
    path.write_bytes(zstandard.compress(b"id,v\n1,a\n") + zstandard.compress(b"2,b\n3,c\n"))

    assert read_back(str(path)) == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 3, "v": "c"}]


# -- JSON arrays: the columns of every object ------------------------------------------------
@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            [{"id": 1, "name": "a"}, {"id": 2, "name": "b", "email": "x@y"}],
            [
                {"id": 1, "name": "a", "email": None},
                {"id": 2, "name": "b", "email": "x@y"},
            ],
        ),
        (
            [{"id": 1, "score": None}, {"id": 2}, {"id": 3, "score": 2.5}],
            [{"id": 1, "score": None}, {"id": 2, "score": None}, {"id": 3, "score": 2.5}],
        ),
        (
            [{"id": 1}, {"id": 2, "meta": {"a": 1}}, {"id": 3, "meta": {"a": 2, "b": "x"}}],
            [
                {"id": 1, "meta": None},
                {"id": 2, "meta": {"a": 1, "b": None}},
                {"id": 3, "meta": {"a": 2, "b": "x"}},
            ],
        ),
    ],
    ids=["key-appears-late", "null-first-then-value", "nested-objects"],
)
def test_json_array_columns_come_from_every_object(
    read_back: Any, tmp_path: Path, rows: list[dict[str, Any]], expected: list[dict[str, Any]]
) -> None:
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows))

    assert read_back(str(path)) == expected


def test_json_array_items_must_be_objects(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    path.write_text('[{"id": 1}, 2]')
    recipe = {
        "name": "items",
        "source": {"type": "filestore", "path": str(path)},
        "destination": {"type": "dl_test_collect", "into": "items"},
    }

    with pytest.raises(ConnectorError, match=r"rows\.json.*item 1 is int"):
        run(recipe)


# -- TSV and ragged CSV rows -------------------------------------------------------------------
def test_tsv_files_are_read_with_tabs(read_back: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.tsv").write_text("id\tname\n1\tone, with a comma\n")
    (data / "b.tsv.gz").write_bytes(gzip.compress(b"id\tname\n2\ttwo\n"))

    rows = read_back(str(data))

    assert rows == [{"id": 1, "name": "one, with a comma"}, {"id": 2, "name": "two"}]


def test_tsv_is_written_with_tabs_and_a_tsv_extension(
    run: Run, read_back: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"

    run(write_recipe(out, "tsv", [[{"id": 1, "name": "a, b"}]]))

    (name,) = visible_files(out)
    assert name.endswith(".tsv")
    assert [line.split("\t") for line in (out / name).read_text().splitlines()] == [
        ['"id"', '"name"'],
        ["1", '"a, b"'],
    ]
    assert read_back(str(out)) == [{"id": 1, "name": "a, b"}]


@pytest.mark.parametrize("suffix", ["", *sorted(COMPRESSORS)])
def test_a_ragged_csv_row_fails_naming_the_file_and_its_line(
    run: Run, tmp_path: Path, suffix: str
) -> None:
    # Line 6 holds the ragged row (row 4 as Arrow counts): a blank line and a quoted value
    # spanning two lines come first.
    text = b'id,name\n1,a\n\n2,"two\nlines"\n3,c,extra\n4,d\n'
    path = tmp_path / f"ragged.csv{suffix}"
    path.write_bytes(COMPRESSORS[suffix](text) if suffix else text)
    recipe = {
        "name": "ragged",
        "source": {"type": "filestore", "path": str(path)},
        "destination": {"type": "dl_test_collect", "into": "ragged"},
    }

    with pytest.raises(ConnectorError, match=r"ragged\.csv.*line 6: expected 2 columns, got 3"):
        run(recipe)


def test_a_ragged_row_in_a_stream_that_cannot_be_read_again_is_named_by_its_row() -> None:
    class OneWay(io.BytesIO):
        def seekable(self) -> bool:
            return False

    stream = OneWay(b'id,name\n1,a\n\n2,"two\nlines"\n3,c,extra\n')

    with pytest.raises(pa.ArrowInvalid, match=r"row 4 \(the header is row 1\): expected 2"):
        list(CsvFormat().read(stream, batch_size=10))


def test_a_csv_that_is_not_utf8_fails_naming_the_encoding_option(
    run: Run, read_back: Any, tmp_path: Path
) -> None:
    """Arrow reads such a column as bytes without a word; it landed as escaped bytes."""
    path = tmp_path / "latin1.csv"
    path.write_bytes("id,city\n1,Zürich\n".encode("latin-1"))
    recipe = {
        "name": "latin1",
        "source": {"type": "filestore", "path": str(path)},
        "destination": {"type": "dl_test_collect", "into": "latin1"},
    }

    with pytest.raises(ConnectorError, match=r"latin1\.csv.*'city'.*format_options\.encoding"):
        run(recipe)
    assert read_back(path, format_options={"encoding": "latin-1"}) == [{"id": 1, "city": "Zürich"}]
