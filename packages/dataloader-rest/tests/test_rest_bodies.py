"""Parsing response bodies (JSON, JSON Lines, CSV) and taking their records out."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from dataloader_rest.bodies import BodyError, parse_body, records_from
from dataloader_rest.selectors import SelectorError

URL = "https://api.example.com/v1/items?api_key=k3y-v4lue"


def respond(content: bytes | str, content_type: str, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status,
        content=content.encode() if isinstance(content, str) else content,
        headers={"content-type": content_type},
        request=httpx.Request("GET", URL),
    )


def records(*args: Any) -> list[dict[str, Any]]:
    """Only the records of `records_from`."""
    found, _ = records_from(*args)
    return found


def test_json_numbers_survive() -> None:
    text = '{"data": [{"id": 12345678901234567890123, "price": 0.1, "big": 1e400}]}'
    body = parse_body(respond(text, "application/json"), "json")
    record = body["data"][0]
    assert record["id"] == 12345678901234567890123
    # Exact: not the float nearest 0.1, and not infinity for a number past a double's range.
    assert record["price"] == Decimal("0.1") and isinstance(record["price"], Decimal)
    assert record["big"] == Decimal("1E+400")


def test_json_encodings() -> None:
    document = {"name": "Zoë"}
    utf16 = json.dumps(document, ensure_ascii=False).encode("utf-16")
    assert parse_body(respond(utf16, "application/json"), "json") == document
    latin = json.dumps(document, ensure_ascii=False).encode("latin-1")
    assert parse_body(respond(latin, "application/json; charset=latin-1"), "json") == document
    bom = b"\xef\xbb\xbf" + json.dumps(document).encode()
    assert parse_body(respond(bom, "application/json; charset=utf-8"), "json") == document


@pytest.mark.parametrize(
    ("format", "content_type", "text", "offset"),
    [
        ("csv", "text/csv", "id,name\n1,Café Müller\n", 13),
        ("jsonl", "application/x-ndjson", '{"id": 1}\n{"name": "Café"}\n', 23),
        ("json", "application/json; charset=utf-8", '{"name": "Café"}', 13),
        ("json", "application/json", '{"name": "Café"}', 13),
    ],
)
def test_bytes_the_encoding_does_not_have_are_an_error_not_replaced(
    format: Any, content_type: str, text: str, offset: int
) -> None:
    """Latin-1 bytes read as UTF-8 became U+FFFD without a word (CSV, JSON Lines, JSON with
    a charset), or an error that did not say it was the encoding (JSON without one)."""
    response = respond(text.encode("cp1252"), content_type)
    with pytest.raises(BodyError) as caught:
        parse_body(response, format)
    message = str(caught.value)
    assert f"is not valid utf-8 ({content_type}): byte {offset} (e9)" in message
    assert "GET https://api.example.com/v1/items" in message and "k3y" not in message
    assert caught.value.context["encoding"] == "utf-8"
    assert caught.value.context["offset"] == offset
    declared = respond(text.encode("cp1252"), "text/plain; charset=cp1252")
    assert "Café" in json.dumps(parse_body(declared, format), default=str, ensure_ascii=False)


def test_empty_json_body_has_no_records() -> None:
    response = respond(b"", "application/json", status=204)
    assert parse_body(response, "json") is None
    assert records(response, "json") == []


def test_html_for_json_is_a_clear_error() -> None:
    page = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>" + "x" * 500
    with pytest.raises(BodyError) as caught:
        parse_body(respond(page, "text/html; charset=utf-8", status=502), "json")
    message = str(caught.value)
    assert "not JSON" in message
    assert "text/html; charset=utf-8" in message
    assert "<!DOCTYPE html><html><head><title>502 Bad Gateway" in message
    assert "x" * 200 not in message  # only the first 200 characters
    assert "GET https://api.example.com/v1/items" in message
    assert "k3y-v4lue" not in message  # the query (an API key, perhaps) is not shown
    assert caught.value.context["status"] == 502


def test_records_from_json_with_and_without_selector() -> None:
    body = {"result": {"users": [{"id": 1}, {"id": 2}]}, "meta": {"n": 2}}
    assert records(body, "json", "result.users") == [{"id": 1}, {"id": 2}]
    assert records(body, "json") == [{"id": 1}, {"id": 2}]
    response = respond(json.dumps({"items": [{"id": 3}]}), "application/json")
    assert records(response, "json") == [{"id": 3}]
    assert records(response, "json", "$.items[*]") == [{"id": 3}]


def test_records_from_returns_the_selector_for_the_next_pages() -> None:
    body = {"meta": {}, "results": [{"id": 1}]}
    assert records_from(body, "json") == ([{"id": 1}], "$.results")
    assert records_from({"results": []}, "json", "$.results") == ([], "$.results")
    assert records_from([{"id": 1}], "json") == ([{"id": 1}], "$")
    assert records_from(body, "json", "results[0]") == ([{"id": 1}], "results[0]")
    assert records_from(None, "json") == ([], None)  # an empty body fixes no path
    assert records_from([{"e": {"id": 1}}], "jsonl", "e") == ([{"id": 1}], "e")
    assert records_from([{"id": "1"}], "csv") == ([{"id": "1"}], None)


def test_records_from_json_shapes() -> None:
    assert records({"data": [1, "a", None]}, "json") == [
        {"value": 1},
        {"value": "a"},
        {"value": None},
    ]
    assert records({"user": {"id": 1}}, "json", "user") == [{"id": 1}]
    assert records({"user": {"id": 1}}, "json", "$") == [{"user": {"id": 1}}]
    assert records({"data": None}, "json", "data") == []
    assert records({"ids": [[1, 2]]}, "json", "ids") == [{"value": [1, 2]}]
    with pytest.raises(SelectorError, match="has no key 'rows'"):
        records({"data": []}, "json", "rows")


def test_jsonl() -> None:
    text = '{"id": 1}\n\n{"id": 2, "x": 0.5}\r\n  \n3\n'
    response = respond(text, "application/x-ndjson")
    assert parse_body(response, "jsonl") == [{"id": 1}, {"id": 2, "x": 0.5}, 3]
    assert records(response, "jsonl") == [{"id": 1}, {"id": 2, "x": 0.5}, {"value": 3}]


def test_jsonl_with_selector_per_line() -> None:
    text = '{"event": {"id": 1}}\n{"event": {"id": 2}}\n'
    response = respond(text, "application/jsonl")
    assert records(response, "jsonl", "event") == [{"id": 1}, {"id": 2}]


def test_jsonl_bad_line_names_its_number() -> None:
    text = '{"id": 1}\n\n{"id": 2\n{"id": 3}\n'
    with pytest.raises(BodyError, match=r"line 3 is not JSON.*'\{\"id\": 2'") as caught:
        records(respond(text, "application/jsonl"), "jsonl")
    assert caught.value.context["line"] == 3


def test_csv_values_are_strings() -> None:
    text = 'id,name,amount\r\n1,"Smith, Jo",0.10\r\n2,"multi\nline",\r\n'
    response = respond(text, "text/csv")
    assert records(response, "csv") == [
        {"id": "1", "name": "Smith, Jo", "amount": "0.10"},
        {"id": "2", "name": "multi\nline", "amount": ""},
    ]


def test_csv_bom_short_and_long_rows() -> None:
    text = "\ufeffid,name\n1,a\n2\n"
    assert records(respond(text.encode(), "text/csv; charset=utf-8"), "csv") == [
        {"id": "1", "name": "a"},
        {"id": "2", "name": None},
    ]
    with pytest.raises(BodyError, match="CSV line 3 has more fields than the header"):
        records(respond("id,name\n1,a\n2,b,c\n", "text/csv"), "csv")


def test_a_csv_header_naming_a_column_twice_is_refused() -> None:
    """csv.DictReader keeps the last of two columns of one name: the first was lost."""
    text = "id,email,phone,email,phone\n1,home@a.example,1,work@a.example,2\n"
    with pytest.raises(BodyError, match=r"names 'email', 'phone' more than once") as caught:
        parse_body(respond(text, "text/csv"), "csv")
    assert "naming each column once" in str(caught.value)
    assert caught.value.context["columns"] == ["email", "phone"]
    with pytest.raises(BodyError, match="names '' more than once"):
        parse_body(respond("id,,\n1,a,b\n", "text/csv"), "csv")
    assert parse_body(respond("id,\n1,a\n", "text/csv"), "csv") == [{"id": "1", "": "a"}]


def test_csv_refuses_a_selector() -> None:
    with pytest.raises(BodyError, match="does not apply to CSV"):
        records(respond("id\n1\n", "text/csv"), "csv", "data")


def test_unknown_format() -> None:
    with pytest.raises(BodyError, match="unknown response format 'xml'"):
        parse_body(respond("<a/>", "text/xml"), "xml")  # type: ignore[arg-type]
