"""The built-in formats' options (`format_options:`): a light module (pydantic, no pyarrow), so
that `validate` checks a recipe's format options without importing the formats."""

from __future__ import annotations

from pydantic import Field

from dataloader.formats import FormatOptions

DEFAULT_INFER_ROWS = 10_000  # rows sampled to infer the types of text columns


class CsvOptions(FormatOptions):
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quote_char: str = Field(default='"', min_length=1, max_length=1)
    header: bool = True
    column_names: list[str] | None = None
    null_values: list[str] = Field(default_factory=lambda: [""])
    column_types: dict[str, str] = Field(default_factory=dict)
    encoding: str = "utf8"
    infer_rows: int = Field(default=DEFAULT_INFER_ROWS, gt=0)


class TsvOptions(CsvOptions):
    delimiter: str = Field(default="\t", min_length=1, max_length=1)


class ParquetOptions(FormatOptions):
    compression: str = "zstd"
    row_group_size: int | None = None


class JsonlOptions(FormatOptions):
    column_types: dict[str, str] = Field(default_factory=dict)
    infer_rows: int = Field(default=DEFAULT_INFER_ROWS, gt=0)
