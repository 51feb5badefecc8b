"""Paths into JSON bodies and the detection of a page's records."""

from __future__ import annotations

from typing import Any

import pytest

from dataloader.errors import ConnectorError
from dataloader_rest.selectors import SelectorError, find_records, format_path, parse_path, select

BODY: dict[str, Any] = {
    "data": [{"id": 1, "tags": {"a": 1}}, {"id": 2, "tags": {"a": 2}}],
    "meta": {"next": None, "total": 2, "page": {"size": 10}},
    "links.self": "/items",
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", BODY),
        ("meta.total", 2),
        ("$.meta.total", 2),
        ("meta.page.size", 10),
        ("data[0].id", 1),
        ("$.data[-1].id", 2),
        ("$.data[*]", BODY["data"]),
        ("data.*", BODY["data"]),
        ("data[*].id", [1, 2]),
        ("$.data[*].tags.a", [1, 2]),
        ("meta.*", [None, 2, {"size": 10}]),
        ("$['links.self']", "/items"),
        ('$["meta"]["total"]', 2),
        ("meta.next", None),
    ],
)
def test_select(path: str, expected: Any) -> None:
    assert select(BODY, path) == expected


def test_select_on_a_top_level_list() -> None:
    assert select([{"id": 5}], "[0].id") == 5
    assert select([{"id": 5}, {"id": 6}], "$[*].id") == [5, 6]


def test_a_missing_key_names_the_segment_and_the_keys_present() -> None:
    with pytest.raises(SelectorError) as caught:
        select(BODY, "meta.cursor.next")
    message = str(caught.value)
    assert "meta.cursor.next" in message
    assert "$.meta has no key 'cursor'" in message
    assert "'next', 'total', 'page'" in message
    assert isinstance(caught.value, ConnectorError)


def test_a_missing_index_and_a_null_on_the_way() -> None:
    with pytest.raises(SelectorError, match=r"\$\.data has no item \[5\] \(it holds 2\)"):
        select(BODY, "data[5].id")
    with pytest.raises(SelectorError, match=r"\$\.meta\.next is null, so key 'url' is missing"):
        select(BODY, "meta.next.url")


def test_default_replaces_a_missing_value_only() -> None:
    assert select(BODY, "meta.cursor.next", default="none") == "none"
    assert select(BODY, "meta.next.url", default=None) is None
    assert select(BODY, "data[9]", default=0) == 0
    with pytest.raises(SelectorError, match="is a list, not an object"):
        select(BODY, "data.id", default=None)
    with pytest.raises(SelectorError, match="not a list"):
        select(BODY, "meta[0]", default=None)


@pytest.mark.parametrize("path", ["data..id", "data[x]", "data[0]id", "$.a b", "data["])
def test_invalid_paths(path: str) -> None:
    with pytest.raises(SelectorError, match="invalid path"):
        select(BODY, path)


def test_parse_and_format_round_trip() -> None:
    assert parse_path("$.a[0].b[*]") == ["a", 0, "b", "*"]
    assert parse_path("$") == []
    assert format_path(["a", 0, "b.c", "*"]) == "$.a[0]['b.c'][*]"
    assert select({"b.c": [7]}, format_path(["b.c", 0])) == 7


def test_find_records_top_level_list() -> None:
    assert find_records([{"id": 1}]) == ([{"id": 1}], "$")
    assert find_records([]) == ([], "$")


@pytest.mark.parametrize("key", ["data", "items", "results", "records", "entries", "rows", "value"])
def test_find_records_under_a_common_key(key: str) -> None:
    records, path = find_records({key: [{"id": 1}], "count": 1, "next": None})
    assert records == [{"id": 1}]
    assert select({key: [{"id": 1}]}, path) == records


def test_find_records_empty_page_under_a_common_key() -> None:
    assert find_records({"data": [], "has_more": False}) == ([], "$.data")
    assert find_records({"items": None, "total": 0}) == ([], "$.items")


def test_find_records_prefers_the_list_of_objects() -> None:
    assert find_records({"data": [{"id": 1}], "values": [1, 2]}) == ([{"id": 1}], "$.data")
    assert find_records({"data": [1, 2], "meta": {}}) == ([1, 2], "$.data")


def test_find_records_the_only_list_of_objects() -> None:
    body = {"customers": [{"id": "c"}], "tags": ["x"], "count": 1}
    assert find_records(body) == ([{"id": "c"}], "$.customers")
    assert find_records({"my.users": [{"id": 1}]}) == ([{"id": 1}], "$['my.users']")


def test_find_records_one_level_down() -> None:
    body = {"data": {"children": [{"id": 1}], "after": "x"}, "kind": "Listing"}
    assert find_records(body) == ([{"id": 1}], "$.data.children")
    hits = {"hits": {"total": 1, "hits": [{"_id": "a"}]}}
    assert find_records(hits) == ([{"_id": "a"}], "$.hits.hits")


def test_find_records_ambiguous_names_the_candidates() -> None:
    with pytest.raises(SelectorError, match=r"ambiguous.*'data', 'items'.*data_selector"):
        find_records({"data": [{"id": 1}], "items": [{"id": 2}]})
    with pytest.raises(SelectorError, match=r"ambiguous.*'users', 'groups'"):
        find_records({"users": [{"id": 1}], "groups": [{"id": 2}]})


def test_find_records_none_found() -> None:
    with pytest.raises(SelectorError, match=r"no list of objects.*lists found under 'tags'"):
        find_records({"tags": ["a"], "count": 1})
    with pytest.raises(SelectorError, match="keys present: 'id', 'name'"):
        find_records({"id": 1, "name": "x"})
    with pytest.raises(SelectorError, match="body that is a str"):
        find_records("hello")
