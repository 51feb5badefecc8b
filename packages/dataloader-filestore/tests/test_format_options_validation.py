"""`validate` checks a filestore recipe's `format_options` against its format before any file
is read: a typo exits 2 naming the file, the key path, a suggestion and the valid keys."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def validate(tmp_path: Path, recipe: str) -> tuple[int, str]:
    (tmp_path / "r.yaml").write_text(textwrap.dedent(recipe), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATALOADER_")}
    proc = subprocess.run(
        [sys.executable, "-m", "dataloader", "validate", "r.yaml"],
        cwd=tmp_path,
        env=env | {"NO_COLOR": "1", "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("source", "key", "suggestion", "valid"),
    [
        (  # `format:` given; the directory need not exist to validate
            "{type: filestore, path: in/, format: csv, format_options: {delimeter: ';'}}",
            "delimeter",
            "delimiter",
            ["column_names", "delimiter", "header", "null_values", "quote_char"],
        ),
        (  # the format told by the path's extension
            "{type: filestore, path: 'in/*.parquet', format_options: {compresion: zstd}}",
            "compresion",
            "compression",
            ["compression", "row_group_size"],
        ),
    ],
)
def test_a_format_options_typo_fails_validate_with_a_suggestion(
    tmp_path: Path, source: str, key: str, suggestion: str, valid: list[str]
) -> None:
    code, text = validate(
        tmp_path,
        f"""
        name: typo
        source: {source}
        destination: {{type: filestore, path: out/, format: jsonl}}
        """,
    )
    assert code == 2, text
    assert "Traceback" not in text
    assert f"r.yaml:source.format_options.{key}: unknown key {key!r} for format" in text
    assert f"did you mean {suggestion!r}?" in text
    for name in valid:
        assert name in text


def test_a_destination_format_options_typo_and_an_unknown_format(tmp_path: Path) -> None:
    code, text = validate(
        tmp_path,
        """
        name: typo
        source: {type: filestore, path: in/, format: jsno}
        destination:
          type: filestore
          path: out/
          format: parquet
          format_options: {row_group: 1000}
        """,
    )
    assert code == 2, text
    assert "r.yaml:source.format: unknown format 'jsno'" in text
    assert "r.yaml:destination.format_options.row_group: unknown key 'row_group'" in text
    assert "did you mean 'row_group_size'?" in text


def test_valid_format_options_pass(tmp_path: Path) -> None:
    code, text = validate(
        tmp_path,
        """
        name: ok
        source:
          type: filestore
          path: in/data.csv
          format_options: {delimiter: ";", null_values: ["", "NA"]}
        destination: {type: filestore, path: out/, format: parquet,
                      format_options: {compression: snappy}}
        """,
    )
    assert code == 0, text
