"""Attack on the REST source's native JSON path (issue 14): where the native converter and
the pure-Python path (`records_to_table(json.loads(text, parse_float=Decimal))`) part ways.

Every test here compares the two paths (end to end through a served API, or directly) and
fails where they differ; each names its finding in a comment. Nothing is xfailed: a failing
test here is a finding to fix in the code, not in the test.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import dataloader_rest.connector as rest_connector
from dataloader.testing import local_runner
from dataloader_rest import records
from dataloader_rest.raw import accelerator
from dataloader_rest.testing import serve_app
from dataloader_rust.json_records import JsonRecords

READER = JsonRecords()
Endpoint = Callable[[Request], Response]


# --- the two paths, directly -----------------------------------------------------------------


def python_table(text: str) -> pa.Table:
    return records.records_to_table(json.loads(text, parse_float=Decimal))


def native_table(text: str) -> pa.Table | None:
    """The native path's table, or None where it declines (the Python path then runs)."""
    out = READER.to_arrays(text.encode("utf-8"))
    return None if out is None else records.table_from_columns(*out)


def assert_paths_agree(text: str) -> None:
    """The native path declines `text` or builds exactly the Python path's table."""
    want = python_table(text)
    got = native_table(text)
    if got is not None:
        assert got.schema == want.schema
        assert got.to_pylist() == want.to_pylist()


# --- the two paths, end to end -----------------------------------------------------------------


@pytest.fixture
def serve() -> Iterator[Callable[[Endpoint], str]]:
    """`serve(endpoint)`: the base URL of an API answering `/items` with `endpoint`."""
    contexts: list[Any] = []

    def start(endpoint: Endpoint) -> str:
        async def route(request: Request) -> Response:
            return endpoint(request)

        context = serve_app(Starlette(routes=[Route("/items", route)]))
        contexts.append(context)
        return str(context.__enter__())

    yield start
    for context in contexts:
        context.__exit__(None, None, None)


def json_response(body: str | bytes, content_type: str = "application/json") -> Response:
    content = body.encode("utf-8") if isinstance(body, str) else body
    return Response(content, headers={"content-type": content_type})


def recipe(base_url: str, out: Path, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "attack",
        "source": {
            "type": "rest",
            "client": {"base_url": base_url},
            "resource": {"path": "/items", **resource},
        },
        "destination": {"type": "filestore", "path": str(out), "format": "parquet"},
        "runtime": {"retries": 0},
    }


def parquet_rows(out: Path) -> list[dict[str, Any]]:
    tables = [pq.read_table(path) for path in sorted(out.rglob("*.parquet"))]
    return [row for table in tables for row in table.to_pylist()]


def load_both(
    base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resource: dict[str, Any]
) -> tuple[Any, Any]:
    """The run's outcome with the native path, then without it: the rows loaded into
    Parquet, or the exception the run raised (as `type: message`)."""
    native = accelerator()
    assert native is not None, "the dataloader-rust accelerator is not installed"
    outcomes = []
    for name, slot in (("native", lambda: native), ("python", lambda: None)):
        monkeypatch.setattr(rest_connector, "accelerator", slot)
        out = tmp_path / name
        try:
            local_runner(tmp_path / f"{name}-state")(recipe(base_url, out, resource))
        except Exception as exc:  # the outcome compared, whatever it is
            outcomes.append(f"{type(exc).__name__}: {exc}")
            continue
        outcomes.append(parquet_rows(out))
    return outcomes[0], outcomes[1]


def numbered(pages: list[str], past_end: Callable[[int], str]) -> Endpoint:
    """`?page=0`, `?page=1`, …: `pages`, then `past_end(page)` for pages past them."""

    def endpoint(request: Request) -> Response:
        page = int(request.query_params.get("page", "0"))
        return json_response(pages[page] if page < len(pages) else past_end(page))

    return endpoint


PAGE_NUMBER = {"type": "page_number", "initial_page": 0}


# --- findings ----------------------------------------------------------------------------------


def test_a_last_page_repeated_past_the_end_in_another_key_order_is_loaded_once(
    serve: Callable[[Endpoint], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FINDING (silent duplication): the repeat guard compares native pages by their text
    # (`same_records`), the Python path by their parsed records. An API answering past its
    # end with its last page serialized again (here its members in another order on each
    # answer, as a hash map writes them) is stopped at once on the Python path, and loads
    # that page again and again on the native path (up to `max_pages`; forever without it).
    pages = ['{"items": [{"id": 1, "name": "a"}]}', '{"items": [{"id": 2, "name": "b"}]}']

    def past_end(page: int) -> str:
        member = ['"id": 2', '"name": "b"']
        return '{"items": [{' + ", ".join(member if page % 2 else member[::-1]) + "}]}"

    base_url = serve(numbered(pages, past_end))
    resource = {"data_selector": "items", "paginator": {**PAGE_NUMBER, "max_pages": 6}}
    native, python = load_both(base_url, tmp_path, monkeypatch, resource)
    assert python == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    assert native == python


def test_a_last_page_repeated_past_the_end_with_other_whitespace_is_loaded_once(
    serve: Callable[[Endpoint], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FINDING (silent duplication): as above with the plainest re-serialization (the past-end
    # answer pretty-printed): the native path loads the last page twice.
    pages = ['{"items": [{"id": 1}]}', '{"items": [{"id": 2}]}']
    base_url = serve(numbered(pages, lambda page: '{"items": [\n  {"id": 2}\n]}'))
    resource = {"data_selector": "items", "paginator": PAGE_NUMBER}
    native, python = load_both(base_url, tmp_path, monkeypatch, resource)
    assert python == [{"id": 1}, {"id": 2}]
    assert native == python


@pytest.mark.parametrize("same_value", ["1.0", "true"])
def test_a_page_equal_in_value_but_not_in_json_type_is_no_repeat(
    same_value: str,
    serve: Callable[[Endpoint], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # FINDING (data loss, both paths since `same_records` compares parsed records on the
    # native path too): the repeat guard compares parsed records, where 1 == 1.0 == true, so
    # a page whose records differ from the page before only by `1.0` for `1` (or `true` for
    # `1`) is taken for an API repeating its last page: that page and every page after it
    # are not loaded, and the run succeeds. (Before the fix in progress, the native path
    # compared text and read them all: the paths differed.)
    pages = [
        '{"items": [{"id": 1, "v": 1}]}',
        '{"items": [{"id": 1, "v": ' + same_value + "}]}",
        '{"items": [{"id": 3, "v": 3}]}',
    ]
    # Records alike only when their values are of the same JSON type: three pages read.
    base_url = serve(numbered(pages, lambda page: '{"items": []}'))
    resource = {"data_selector": "items", "paginator": PAGE_NUMBER}
    native, python = load_both(base_url, tmp_path, monkeypatch, resource)
    assert [row["id"] for row in native] == [1, 1, 3]
    assert python == native


@pytest.mark.parametrize("charset", ["unknown-8bit", "", '""'])
def test_an_unknown_or_empty_charset_is_read_as_the_python_path_reads_it(
    charset: str,
    serve: Callable[[Endpoint], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # FINDING (the run fails on the native path only): `split_page` calls
    # `codecs.lookup(response.charset_encoding)`, which raises LookupError for a charset
    # Python does not know (`unknown-8bit` is IANA-registered) or an empty one
    # (`charset=`, which httpx gives as ""); the Python path reads the body as UTF-8 (httpx's
    # `Response.encoding` falls back to it; "" is no declared charset there) and loads it.
    body = '{"items": [{"id": 1, "name": "Zoë"}]}'

    def endpoint(request: Request) -> Response:
        return json_response(body, f"application/json; charset={charset}")

    base_url = serve(endpoint)
    resource = {"data_selector": "items", "paginator": {"type": "single_page"}}
    native, python = load_both(base_url, tmp_path, monkeypatch, resource)
    assert python == [{"id": 1, "name": "Zoë"}]
    assert native == python


def test_a_key_holding_a_nul_character_is_converted_as_python_converts_it() -> None:
    # FINDING (the run fails on the native path only): a field name holding U+0000 (`"a\u0000b"`,
    # at the top or in an object) makes the Arrow C data interface refuse the native array
    # ("Null byte … not allowed in name", a bare `Exception` out of `to_arrays`); the Python
    # path builds the column. The native code should decline such names.
    for text in ['[{"a\\u0000b": 1}]', '[{"s": {"\\u0000": 1}}]', '[{"l": [{"k\\u0000": 1}]}]']:
        assert_paths_agree(text)


def test_a_key_holding_a_nul_character_loads_as_on_the_python_path(
    serve: Callable[[Endpoint], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FINDING (as above, end to end): the Python path loads the page into Parquet; the native
    # path fails the run.
    base_url = serve(lambda request: json_response('{"items": [{"id": 1, "a\\u0000b": 2}]}'))
    resource = {"data_selector": "items", "paginator": {"type": "single_page"}}
    native, python = load_both(base_url, tmp_path, monkeypatch, resource)
    assert python == [{"id": 1, "a\x00b": 2}]
    assert native == python


def test_records_nested_64_deep_are_converted_as_python_converts_them() -> None:
    # FINDING (the run fails on the native path only): the native parser reads up to 256
    # levels, but pyarrow imports an array through the C data interface only up to 64
    # levels of nesting ("Recursion level in ArrowSchema struct exceeded", ArrowInvalid out
    # of `to_arrays`); the Python path builds the column (pyarrow's own inference has no
    # such limit). 63 levels pass; the native code should decline from 64 on.
    for depth in (64, 100):
        assert_paths_agree('[{"a": ' + "[" * depth + "1" + "]" * depth + "}]")
    nested = '{"b": ' * 70 + "1" + "}" * 70
    assert_paths_agree('[{"a": ' + nested + "}]")


def test_auto_pagination_with_a_total_inside_the_records_stops_as_python_stops(
    serve: Callable[[Endpoint], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FINDING (the run fails on the native path only): `leaves_records` checks the paths of
    # the paginator `auto` picked, but not `auto`'s own options; its `total_path` (here the
    # listing's total repeated in every record, as `count(*) over ()` writes it) is read by
    # `should_stop` from a body whose records were replaced by `[]`: SelectorError on the
    # native path from the second page on, where the Python path stops at the total.
    def endpoint(request: Request) -> Response:
        cursor = request.query_params.get("cursor")
        ids = [1, 2] if cursor is None else [3]
        rows = ", ".join(f'{{"id": {i}, "full_count": 3}}' for i in ids)
        next_cursor = '"c2"' if cursor is None else '"c3"'
        return json_response(f'{{"data": [{rows}], "next_cursor": {next_cursor}}}')

    base_url = serve(endpoint)
    resource = {
        "data_selector": "data",
        "paginator": {"type": "auto", "total_path": "data[0].full_count"},
    }
    native, python = load_both(base_url, tmp_path, monkeypatch, resource)
    assert python == [
        {"id": 1, "full_count": 3},
        {"id": 2, "full_count": 3},
        {"id": 3, "full_count": 3},
    ]
    assert native == python


def test_a_number_python_refuses_in_a_repeated_key_is_refused_natively_too() -> None:
    # FINDING (the paths differ; the Python path fails, the native one loads): Python's
    # `json.loads` converts every number as it reads it, also one a repeated key then
    # replaces, and refuses integers past `sys.get_int_max_str_digits()` (4300 digits,
    # ValueError) and exponents past `Decimal`'s limits (InvalidOperation): the run fails.
    # The native parser keeps the number's text and drops it with the replaced member, so it
    # builds the table. It should decline such a page (the Python path then raises as
    # before) or the Python path should read it alike.
    huge = "9" * 4301
    for text in [
        f'[{{"id": 1, "a": {huge}, "a": 2}}]',
        f'[{{"s": {{"x": {huge}, "x": 1}}}}]',
        '[{"id": 1, "a": 1e99999999999999999999, "a": 2}]',
    ]:
        with pytest.raises((ValueError, ArithmeticError)):
            python_table(text)
        assert native_table(text) is None
