"""Response bodies: parsing JSON, JSON Lines and CSV, and taking a page's records out."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any, Literal

import httpx

from dataloader.errors import ConnectorError
from dataloader_rest.selectors import find_records, select

Format = Literal["json", "jsonl", "csv"]
_EXCERPT = 200


class BodyError(ConnectorError):
    """A response body cannot be read in the expected format."""


def _text(response: httpx.Response) -> str:
    """The body decoded strictly: in its declared charset, UTF-8 when it declares none.
    (`Response.text` would put U+FFFD in place of bytes the encoding does not have.)"""
    text = _decode(response, response.content, response.encoding or "utf-8")
    return text[1:] if text.startswith("\ufeff") else text


def _decode(response: httpx.Response, content: bytes, encoding: str) -> str:
    # surrogatepass as `json.loads` decodes bytes: a lone surrogate is the JSON's concern.
    try:
        return content.decode(encoding, "surrogatepass" if "utf" in encoding else "strict")
    except UnicodeDecodeError as error:
        bad = error.object[error.start : error.end]
        content_type = response.headers.get("content-type", "no content type")
        raise BodyError(
            f"{_where(response)} is not valid {encoding} ({content_type}): byte "
            f"{error.start} ({bad.hex(' ')}) {error.reason}; it begins "
            f"{_excerpt(response.content.decode(encoding, 'replace'))!r}",
            expected=f"a body in the charset its Content-Type declares ({encoding} when it "
            "declares none); no row of this page was loaded",
            context={"encoding": encoding, "offset": error.start, "content_type": content_type},
        ) from None


def _excerpt(text: str) -> str:
    return text[:_EXCERPT] + ("…" if len(text) > _EXCERPT else "")


def _where(response: httpx.Response) -> str:
    try:
        request = response.request
    except RuntimeError:
        return "the response"
    return f"the response of {request.method} {request.url.copy_with(query=None)}"


def _parse_json(response: httpx.Response) -> Any:
    if not response.content.strip():
        return None
    # UTF-8/16/32 detected as RFC 8259 says (as `json.loads` does with bytes); a declared
    # charset wins.
    if response.charset_encoding:
        text = _text(response)
    else:
        content = response.content
        text = _decode(response, content, json.detect_encoding(content))
        text = text[1:] if text.startswith("\ufeff") else text
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as error:
        content_type = response.headers.get("content-type", "no content type")
        raise BodyError(
            f"{_where(response)} is not JSON ({content_type}, status "
            f"{response.status_code}): {error}; it begins {_excerpt(response.text)!r}",
            context={"content_type": content_type, "status": response.status_code},
        ) from None


def _parse_jsonl(response: httpx.Response) -> list[Any]:
    values: list[Any] = []
    # Only "\n" ends a line: U+2028 and other breaks `splitlines` knows are valid in a string.
    for number, line in enumerate(_text(response).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            values.append(json.loads(line, parse_float=Decimal))
        except json.JSONDecodeError as error:
            raise BodyError(
                f"{_where(response)}: line {number} is not JSON ({error.msg}): {_excerpt(line)!r}",
                context={"line": number},
            ) from None
    return values


def _parse_csv(response: httpx.Response) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    reader = csv.DictReader(io.StringIO(_text(response), newline=""))
    header = reader.fieldnames or []
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        # A row would keep only the last column of a name: the others would go unseen.
        raise BodyError(
            f"{_where(response)}: the CSV header names "
            f"{', '.join(repr(name) for name in repeated)} more than once ({header})",
            expected="a header naming each column once (a row would keep only the last "
            "column of a repeated name)",
            context={"columns": repeated},
        )
    for row in reader:
        if None in row:
            raise BodyError(
                f"{_where(response)}: CSV line {reader.line_num} has more fields than the "
                f"header ({len(reader.fieldnames or [])})",
                context={"line": reader.line_num},
            )
        rows.append(row)
    return rows


def parse_body(response: httpx.Response, format: Format = "json") -> Any:
    """The parsed body: for `json` the document (None for an empty body), for `jsonl` the
    list of its lines' values, for `csv` the list of its rows (every value a string, a
    missing trailing field None)."""
    if format == "json":
        return _parse_json(response)
    if format == "jsonl":
        return _parse_jsonl(response)
    if format == "csv":
        return _parse_csv(response)
    raise BodyError(f"unknown response format {format!r}", expected="json, jsonl or csv")


def _as_records(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [item if isinstance(item, dict) else {"value": item} for item in items]


def records_from(
    body_or_response: Any | httpx.Response,
    format: Format = "json",
    data_selector: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The records of one page, from its response or its already parsed body, and the
    selector that found them (pass it back for the next pages, so they are read alike).

    `json`: the value at `data_selector`, or the list `find_records` detects (its path is
    returned); an object is one record. `jsonl`: every line, or the value at
    `data_selector` in every line. `csv`: every row (a `data_selector` is refused). A value
    that is not an object becomes `{"value": x}`.
    """
    body = (
        parse_body(body_or_response, format)
        if isinstance(body_or_response, httpx.Response)
        else body_or_response
    )
    if format == "json":
        if body is None:
            return [], data_selector
        if data_selector is not None:
            return _as_records(select(body, data_selector)), data_selector
        found, path = find_records(body)
        return _as_records(found), path
    if format == "jsonl":
        if data_selector is None:
            return _as_records(body), None
        records: list[dict[str, Any]] = []
        for line in body:
            records.extend(_as_records(select(line, data_selector)))
        return records, data_selector
    if format == "csv":
        if data_selector is not None:
            raise BodyError(
                f"`data_selector` ({data_selector!r}) does not apply to CSV responses",
                expected="no data_selector with format csv",
            )
        return _as_records(body), None
    raise BodyError(f"unknown response format {format!r}", expected="json, jsonl or csv")
