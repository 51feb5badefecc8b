"""Nested JSONL normalized end to end (issue 13) into DuckDB, Postgres and Parquet files: each
table holds the rows DuckDB's own `read_json` + `unnest` count in the file, children link to
their parent and root, a merge re-run changes nothing, an updated parent loses its stale
children, a kill mid-write leaves every table at one commit, and an overwrite empties a child
table the new data has no rows for."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from e2e_support import DESTINATIONS, Gate, kill_at_gate, run_counting_cli

from dataloader import LocalStateBackend, from_yaml, run_recipe
from dataloader_postgres.testing import PostgresServer

ROOT = "customers"
LONG_LIST = "an_extraordinarily_long_list_field_name_that_no_postgres_identifier_can_hold"
LONG_LEAF = "a_leaf_whose_flattened_column_name_is_longer_than_sixty_three_bytes"
POSTGRES_LIMIT = 63

# Each list of the data, by its path below the root table, with its parent's path (None: the
# root) and the query counting its elements — null elements included, null and empty lists
# none — written independently of the loader, on DuckDB's JSON reader.
LISTS: dict[str, tuple[str | None, str]] = {
    "orders": (None, "SELECT count(*) FROM (SELECT unnest(orders) FROM {src})"),
    "orders__items": (
        "orders",
        "SELECT count(*) FROM (SELECT unnest(o.items) FROM (SELECT unnest(orders) AS o FROM {src}))",
    ),
    "tags": (None, "SELECT count(*) FROM (SELECT unnest(tags) FROM {src})"),
    "profile__history": (None, "SELECT count(*) FROM (SELECT unnest(profile.history) FROM {src})"),
    LONG_LIST: (None, f'SELECT count(*) FROM (SELECT unnest("{LONG_LIST}") FROM {{src}})'),
}
ROOT_COUNT = "SELECT count(*) FROM {src}"
FULL_NAMES = {"": ROOT, **{path: f"{ROOT}__{path}" for path in LISTS}}


def record(i: int, *, shrink: bool = False, tags: bool = True) -> dict[str, Any]:
    """Record `i`: structs in lists in structs, empty and null lists, null structs, elements and
    leaves, keys in some records only, keys needing quotes. `shrink`: fewer orders and items."""
    row: dict[str, Any] = {"id": i, "price": round(i * 1.1 + 0.05, 2)}
    if i % 3:
        row["name"] = f"Zoë 日本 «{i}»"
    if i % 7 == 0:
        row["profile"] = None
    elif i % 5:
        row["profile"] = {
            "first name": f"f{i}",
            'say "hi"': "q" if i % 2 else None,
            "dot.key": i,
            "ünï": "ü",
            LONG_LEAF: "long",
            "address": None
            if i % 4 == 0
            else {"city": f"c{i}", "geo": {"lat": i / 10, "lon": None if i % 2 else -i / 10}},
            "history": [
                {"event": {"kind": f"k{h}", "at": None if h == 1 else h}} if h != 2 else None
                for h in range(i % 4)
            ],
        }
    if i % 11 == 0:
        row["orders"] = None
    elif i % 13 == 0:
        row["orders"] = []
    else:
        row["orders"] = [order(i, j, shrink) for j in range(1 if shrink else i % 4 + 1)]
    if tags and i % 9:
        row["tags"] = [None if t == 1 and i % 2 else f"t{t}" for t in range(i % 3)]
    if i % 10 == 0:
        row[LONG_LIST] = [{"v": i}, {"v": None}]
    return row


def order(i: int, j: int, shrink: bool) -> dict[str, Any] | None:
    if j == 1 and i % 6 == 0:
        return None
    data: dict[str, Any] = {"sku": f"s{i}-{j}", "qty": None if j == 2 else j}
    if (i + j) % 7 == 0:
        return data  # no `items` key at all
    if (i + j) % 5 == 0:
        data["items"] = None
    elif (i + j) % 3 == 0:
        data["items"] = []
    else:
        count = 1 if shrink else (i + j) % 4 + 1
        data["items"] = [
            None
            if m == 1 and i % 2 == 0
            else {"code": f"x{m}", "meta": {"weight": m * 0.25, "k y": None if m else "z"}}
            for m in range(count)
        ]
    return data


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (json.dumps(row, ensure_ascii=False) for row in rows)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def write_parts(directory: Path, rows: list[dict[str, Any]], parts: int = 4) -> None:
    """`rows` as `parts` JSONL files (each read as its own batch), replacing any there were."""
    for old in directory.glob("*.jsonl"):
        old.unlink()
    size = -(-len(rows) // parts)
    for n in range(parts):
        write_jsonl(directory / f"part{n}.jsonl", rows[n * size : (n + 1) * size])


def expected_counts(source: str) -> dict[str, int]:
    """Rows per table (by path below the root: "" the root) counted by DuckDB over `source`."""
    src = f"read_json('{source}', format = 'newline_delimited')"
    with duckdb.connect() as connection:
        counts = {"": connection.execute(ROOT_COUNT.format(src=src)).fetchone()[0]}
        fields = {row[0] for row in connection.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
        for path, (_, query) in LISTS.items():
            top = path.split("__")[0]  # a field no record has: no rows
            found = connection.execute(query.format(src=src)).fetchone()[0] if top in fields else 0
            counts[path] = found
    return counts


# Destinations and what they hold.

Tables = dict[str, list[dict[str, Any]]]


def new_destination(kind: str, tmp_path: Path, request: pytest.FixtureRequest, tag: str) -> dict:
    if kind == "duckdb":
        return {"type": "duckdb", "database": str(tmp_path / f"{tag}.duckdb"), "table": ROOT}
    if kind == "parquet":
        return {"type": "filestore", "path": str(tmp_path / tag / ROOT), "format": "parquet"}
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return {
        "type": "postgres",
        **server.connection_settings(server.create_database()),
        "table": ROOT,
    }


def stored(destination: dict[str, Any], request: pytest.FixtureRequest) -> Tables:
    """Every table of the load (the root table and those named after it), rows by `_dl_id`."""
    tables: Tables = {}
    if destination["type"] == "duckdb":
        with duckdb.connect(destination["database"], read_only=True) as connection:
            names = [
                n
                for (n,) in connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()
            ]
            for name in filter(is_ours, names):
                cursor = connection.execute(f'SELECT * FROM "{name}"')
                columns = [c[0] for c in cursor.description]
                tables[name] = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    elif destination["type"] == "filestore":
        out = Path(destination["path"]).parent
        for directory in sorted(p for p in out.iterdir() if p.is_dir() and is_ours(p.name)):
            tables[directory.name] = parquet_rows(directory)
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        connection = server.connect(destination["database"])
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema()"
                )
                for name in filter(is_ours, [n for (n,) in cursor.fetchall()]):
                    cursor.execute(f'SELECT * FROM "{name}"')
                    columns = [c.name for c in cursor.description]
                    tables[name] = [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]
        finally:
            connection.close()
    return {name: sorted(rows, key=lambda row: row["_dl_id"]) for name, rows in tables.items()}


def parquet_rows(directory: Path) -> list[dict[str, Any]]:
    """The rows of a table's visible parts; parts written before a column widened (a decimal's
    precision) are read widened, like the DuckDB reader of the files would."""
    files = sorted(str(p) for p in directory.glob("*.parquet") if not p.name.startswith((".", "_")))
    if not files:
        return []
    with duckdb.connect() as connection:
        cursor = connection.execute("SELECT * FROM read_parquet(?, union_by_name = true)", [files])
        columns = [c[0] for c in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def is_ours(name: str) -> bool:
    return name == ROOT or (name.startswith(f"{ROOT}__") and not name.endswith("quarantine"))


def resolve(kind: str, tables: Tables) -> dict[str, str]:
    """The stored table of each path (by path below the root), checking Postgres's cut of a
    name over 63 bytes: to 54 bytes, then `_` and 8 hex characters of a hash."""
    found: dict[str, str] = {}
    for path, full in FULL_NAMES.items():
        if kind != "postgres" or len(full.encode()) <= POSTGRES_LIMIT:
            found[path] = full
            continue
        cut = [
            name
            for name in tables
            if len(name.encode()) == POSTGRES_LIMIT
            and re.fullmatch(r"_[0-9a-f]{8}", name[-9:])
            and full.startswith(name[:-9])
            and len(name[:-9].encode()) == POSTGRES_LIMIT - 9
        ]
        assert len(cut) == 1, f"no table name cut from {full!r} among {sorted(tables)}"
        found[path] = cut[0]
    return found


def check_tables(kind: str, tables: Tables, source: str) -> dict[str, str]:
    """Each table has the rows DuckDB counts in `source`, and its children link to it."""
    names = resolve(kind, tables)
    assert set(tables) == set(names.values())
    counts = {path: len(tables[name]) for path, name in names.items()}
    assert counts == expected_counts(source)
    check_links(tables, names)
    return names


def check_links(tables: Tables, names: dict[str, str]) -> None:
    """Every child's parent and root exist, its id is unique, and the positions under each
    parent run 0..n-1."""
    roots = {row["_dl_id"] for row in tables[names[""]]}
    assert len(roots) == len(tables[names[""]])
    for path, (parent_path, _) in LISTS.items():
        rows = tables[names[path]]
        parents = {row["_dl_id"]: row for row in tables[names[parent_path or ""]]}
        assert len({row["_dl_id"] for row in rows}) == len(rows), path
        positions: dict[str, list[int]] = {}
        for row in rows:
            parent = parents[row["_dl_parent_id"]]  # KeyError: an orphan
            assert row["_dl_root_id"] == parent.get("_dl_root_id", parent["_dl_id"]), path
            assert row["_dl_root_id"] in roots
            positions.setdefault(row["_dl_parent_id"], []).append(row["_dl_list_idx"])
        for found in positions.values():
            assert sorted(found) == list(range(len(found))), path


def recipe(tmp_path: Path, destination: dict[str, Any], source: str, name: str = "recipe") -> Path:
    """A recipe file loading the JSONL files `source` (a path or glob) with normalization on."""
    settings = {"name": ROOT, "source": {"type": "filestore", "path": source}}
    settings |= {"normalization": {"enabled": True}, "destination": destination}
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(settings, ensure_ascii=False), encoding="utf-8")
    return path


def load(path: Path, state: Path) -> None:
    run_recipe(from_yaml(path), LocalStateBackend(state))


def merging(destination: dict[str, Any]) -> dict[str, Any]:
    return {**destination, "write_mode": "merge", "merge_keys": ["id"]}


@pytest.fixture(params=["duckdb", "postgres", "parquet"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=["duckdb", "postgres"])
def sql_kind(request: pytest.FixtureRequest) -> str:
    return request.param


RECORDS = [record(i) for i in range(1, 241)]


def test_each_table_holds_the_rows_duckdb_counts_in_the_file_linked_to_their_parents(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    source = write_jsonl(tmp_path / "in" / "data.jsonl", RECORDS)
    destination = new_destination(kind, tmp_path, request, "out")
    load(recipe(tmp_path, destination, str(source)), tmp_path / ".state")

    tables = stored(destination, request)
    names = check_tables(kind, tables, str(source))
    root = {row["id"]: row for row in tables[ROOT]}
    assert Decimal(str(root[1]["price"])) == Decimal("1.15")
    assert Decimal(str(root[29]["price"])) == Decimal("31.95")
    assert root[1]["name"] == "Zoë 日本 «1»" and root[3]["name"] is None
    assert root[1]['profile__say "hi"'] == "q" and root[2]['profile__say "hi"'] is None
    assert root[1]["profile__ünï"] == "ü" and root[1]["profile__dot.key"] == 1
    assert root[7]["profile__first name"] is None  # a null struct
    assert root[3]["profile__address__geo__lat"] == Decimal("0.3")
    assert root[2]["profile__address__geo__lon"] == Decimal("-0.2")
    leaf = f"profile__{LONG_LEAF}"
    if kind == "postgres":
        (leaf,) = [c for c in root[1] if c.startswith(leaf[:40])]
        assert len(leaf.encode()) == POSTGRES_LIMIT and re.fullmatch(r"_[0-9a-f]{8}", leaf[-9:])
    assert root[1][leaf] == "long"

    orders = {(row["_dl_root_id"], row["_dl_list_idx"]): row for row in tables[names["orders"]]}
    third = orders[root[2]["_dl_id"], 2]
    assert third["sku"] == "s2-2" and third["qty"] is None  # a null leaf
    assert orders[root[6]["_dl_id"], 1]["sku"] is None  # a null element
    items = [row for row in tables[names["orders__items"]] if row["code"] == "x1"]
    assert {Decimal(str(row["meta__weight"])) for row in items} == {Decimal("0.25")}
    assert {row["meta__k y"] for row in items} == {None}
    history = tables[names["profile__history"]]
    assert {row["event__kind"] for row in history} == {"k0", "k1", None}


def test_a_merge_rerun_of_the_same_file_leaves_every_table_identical(
    tmp_path: Path, sql_kind: str, request: pytest.FixtureRequest
) -> None:
    source = write_jsonl(tmp_path / "in" / "data.jsonl", RECORDS)
    destination = merging(new_destination(sql_kind, tmp_path, request, "out"))
    path = recipe(tmp_path, destination, str(source))
    load(path, tmp_path / ".state")
    first = stored(destination, request)
    check_tables(sql_kind, first, str(source))

    load(path, tmp_path / ".state")
    assert stored(destination, request) == first


def test_a_parent_updated_with_fewer_items_loses_its_stale_children_and_grandchildren(
    tmp_path: Path, sql_kind: str, request: pytest.FixtureRequest
) -> None:
    source = write_jsonl(tmp_path / "in" / "data.jsonl", RECORDS)
    destination = merging(new_destination(sql_kind, tmp_path, request, "out"))
    path = recipe(tmp_path, destination, str(source))
    load(path, tmp_path / ".state")
    before = stored(destination, request)
    names = resolve(sql_kind, before)

    updated = {i: record(i, shrink=True) for i in range(2, 241, 4)}
    write_jsonl(source, list(updated.values()))
    load(path, tmp_path / ".state")

    after = stored(destination, request)
    merged = write_jsonl(tmp_path / "merged.jsonl", [updated.get(r["id"], r) for r in RECORDS])
    check_tables(sql_kind, after, str(merged))
    clean = merging(new_destination(sql_kind, tmp_path, request, "clean"))
    load(recipe(tmp_path, clean, str(merged), "clean"), tmp_path / ".clean-state")
    assert after == stored(clean, request)

    kept = {row["_dl_id"] for row in before[ROOT] if row["id"] not in updated}
    for path_below in LISTS:
        name = names[path_below]
        untouched = [row for row in before[name] if row["_dl_root_id"] in kept]
        assert untouched == [row for row in after[name] if row["_dl_root_id"] in kept]
    for shrunk in ("orders", "orders__items"):
        assert len(after[names[shrunk]]) < len(before[names[shrunk]])


def kill_gates(kind: str) -> list[tuple[Gate, set[str]]]:
    """Where a run is killed, with the commit the tables may show then: mid-way through the
    child tables' writes (the old), inside the destination's commit (the old; a file
    destination's commit record is written, its renames not done: old or new), and after it,
    before the state backend's mirror is saved (the new)."""
    connector = DESTINATIONS["filestore" if kind == "parquet" else kind]
    inside = "_apply_pending" if kind == "parquet" else "_save_state"
    return [
        (Gate("child-written", f"{connector}.write_child_batch", 0.5), {"old"}),
        (
            Gate("in-commit", f"{connector}.{inside}", 0, "before"),
            {"old", "new"} if kind == "parquet" else {"old"},
        ),
        (Gate("committed", f"{connector}.commit", 0), {"new"}),
    ]


def test_a_kill_during_a_multi_table_write_leaves_the_tables_at_one_commit(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest, cli_env: dict
) -> None:
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    new_rows = [record(i, shrink=i % 4 == 2) for i in range(1, 241)]
    write_parts(old_dir, RECORDS)
    write_parts(new_dir, new_rows)
    mode = {"write_mode": "overwrite"} if kind == "parquet" else merging({})

    def fresh(tag: str) -> dict[str, Any]:
        return {**new_destination(kind, tmp_path, request, tag), **mode}

    clean = fresh("clean")
    clean_run = ["run", str(recipe(tmp_path, clean, str(new_dir / "*.jsonl"), "clean"))]
    gates = kill_gates(kind)
    (code, _, err), counts = run_counting_cli(
        [*clean_run, "--state-dir", ".clean"], tmp_path, cli_env, [g.target for g, _ in gates]
    )
    assert code == 0, err
    new = stored(clean, request)
    check_tables(kind, new, str(new_dir / "*.jsonl"))

    for n, (gate, allowed) in enumerate(gates):
        destination = fresh(f"out{n}")
        state = tmp_path / f".state{n}"
        load(recipe(tmp_path, destination, str(old_dir / "*.jsonl"), f"old{n}"), state)
        old = stored(destination, request)
        check_tables(kind, old, str(old_dir / "*.jsonl"))
        assert old != new
        path = recipe(tmp_path, destination, str(new_dir / "*.jsonl"), f"new{n}")

        run = ["run", str(path), "--state-dir", state.name]
        kill_at_gate(run, tmp_path, cli_env, gate.at_counts(counts))
        killed = stored(destination, request)
        seen = {name for name, tables in (("old", old), ("new", new)) if killed == tables}
        assert seen, f"{gate.name}: the tables are not at one commit"
        assert seen <= allowed, f"{gate.name}: the tables are at the {seen.pop()} commit"

        load(path, state)
        assert stored(destination, request) == new, gate.name


def test_overwrite_with_records_without_tags_empties_the_tags_table(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    source = write_jsonl(tmp_path / "in" / "data.jsonl", RECORDS)
    destination = {**new_destination(kind, tmp_path, request, "out"), "write_mode": "overwrite"}
    path = recipe(tmp_path, destination, str(source))
    load(path, tmp_path / ".state")
    assert stored(destination, request)[f"{ROOT}__tags"]

    write_jsonl(source, [record(i, tags=False) for i in range(1, 241)])
    load(path, tmp_path / ".state")
    tables = stored(destination, request)
    assert tables[f"{ROOT}__tags"] == []
    check_tables(kind, tables, str(source))
    assert expected_counts(str(source))["tags"] == 0 and len(tables[ROOT]) == len(RECORDS)
