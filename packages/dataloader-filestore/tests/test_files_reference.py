"""docs/files.md's reference lists every key of the filestore connector and every option of the
built-in formats, with the models' defaults: a key added, renamed or given a new default fails
here until the page says so."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from dataloader_filestore import FileStoreConfig
from dataloader_filestore.backends import S3_KEYS, SFTP_KEYS
from dataloader_filestore.formats import BUILTIN_FORMATS

PAGE = Path(__file__).resolve().parents[3] / "docs" / "files.md"
CELL = re.compile(r"`([^`]*)`")


def reference() -> str:
    text = PAGE.read_text(encoding="utf-8")
    assert "\n## Reference\n" in text, "docs/files.md has no `## Reference` section"
    start = text.index("\n## Reference\n")
    end = text.index("\n# ", start)
    return text[start:end]


def section(heading: str) -> str:
    """The text under `heading` (a `###` or `####` line), up to the next heading."""
    text = reference()
    found = re.search(rf"^#+ {re.escape(heading)}\n(.*?)(?=^#|\Z)", text, re.M | re.S)
    assert found is not None, f"docs/files.md has no reference section {heading!r}"
    return found.group(1)


def table(heading: str) -> dict[str, str]:
    """The table under `heading`: each row's key (first column) and default (third column, or
    second when the table has no `where` column)."""
    rows: dict[str, str] = {}
    for line in section(heading).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or cells[0] in ("key", "option") or set(cells[0]) <= {"-"}:
            continue
        key = CELL.fullmatch(cells[0])
        assert key is not None, f"{heading}: the first cell of {line!r} is not a `key`"
        default = cells[2] if cells[1] in ("both", "source", "destination") else cells[1]
        assert key.group(1) not in rows, f"{heading}: {key.group(1)} twice"
        rows[key.group(1)] = default
    return rows


def documented_default(cell: str) -> Any:
    if cell == "required":
        return PydanticUndefined
    value = CELL.match(cell)
    assert value is not None, f"default {cell!r} is neither `a value` nor required"
    return json.loads(value.group(1))


def model_default(model: type[BaseModel], key: str) -> Any:
    field = model.model_fields[key]
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    default = field.default
    return default if default is PydanticUndefined else json.loads(json.dumps(default))


def check(heading: str, model: type[BaseModel], keys: set[str]) -> None:
    documented = table(heading)
    assert set(documented) == keys, f"{heading}: documented {sorted(documented)}"
    for key, cell in documented.items():
        assert documented_default(cell) == model_default(model, key), f"{heading}: {key}"


def test_every_connector_key_is_documented_once_with_its_default() -> None:
    own = set(FileStoreConfig.model_fields) - S3_KEYS - SFTP_KEYS
    check("Keys", FileStoreConfig, own)
    check("S3 keys", FileStoreConfig, set(S3_KEYS))
    check("SFTP keys", FileStoreConfig, set(SFTP_KEYS))


@pytest.mark.parametrize("file_format", BUILTIN_FORMATS, ids=lambda f: f.name)
def test_every_option_of_every_builtin_format_is_documented(file_format: Any) -> None:
    model = file_format.options_model
    heading = f"`{file_format.name}`"
    if model.model_fields:
        check(heading, model, set(model.model_fields))
    else:
        assert section(heading).strip().startswith("No options"), heading
