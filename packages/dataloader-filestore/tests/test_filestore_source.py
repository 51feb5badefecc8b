"""The filestore source: what `path` selects, incremental by modification time, and resuming a
killed run in the middle of a file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dataloader import ConnectorError, EngineError, LocalStateBackend, Recipe, RunResult, State
from dataloader.recipe import RecipeLoader

Run = Callable[..., RunResult]


def write_csv(path: Path, ids: range | list[int], *, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("id,file\n" + "".join(f"{i},{path.name}\n" for i in ids), encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """`data/a.csv` (ids 1-3), `data/b.csv` (4-5), `data/sub/c.csv` (6), and files to ignore."""
    data = tmp_path / "data"
    write_csv(data / "a.csv", range(1, 4))
    write_csv(data / "b.csv", range(4, 6))
    write_csv(data / "sub" / "c.csv", [6])
    write_csv(data / ".hidden.csv", [100])
    write_csv(data / "_SUCCESS.csv", [101])
    write_csv(data / "_dataloader" / "meta.csv", [102])
    (data / "notes.txt").write_text("not data")
    return data


def ids(rows: list[dict[str, Any]]) -> list[int]:
    return sorted(row["id"] for row in rows)


def collect_recipe(
    path: Any, *, name: str = "files", batch_size: int = 50_000, **source: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"type": "filestore", "path": path, **source},
        "destination": {"type": "dl_test_collect", "into": name},
        "runtime": {"batch_size": batch_size},
    }


def test_directory_is_read_recursively_ignoring_hidden_and_underscore_files(
    read_back: Any, data_dir: Path
) -> None:
    assert ids(read_back(str(data_dir))) == [1, 2, 3, 4, 5, 6]


def test_glob_selects_matching_files(read_back: Any, data_dir: Path) -> None:
    assert ids(read_back(str(data_dir / "[ab].csv"))) == [1, 2, 3, 4, 5]
    assert ids(read_back(str(data_dir / "*.csv"))) == [1, 2, 3, 4, 5]


def test_single_file_path(read_back: Any, data_dir: Path) -> None:
    assert read_back(str(data_dir / "b.csv")) == [
        {"id": 4, "file": "b.csv"},
        {"id": 5, "file": "b.csv"},
    ]


def test_pathlib_path_is_accepted_as_path(
    run: Run, data_dir: Path, collected: dict[str, list[dict[str, Any]]]
) -> None:
    recipe = Recipe.model_validate(collect_recipe(data_dir / "sub"))

    run(recipe)

    assert ids(collected["files"]) == [6]


def test_yaml_recipe_reads_a_glob(
    run: Run, data_dir: Path, tmp_path: Path, collected: dict[str, list[dict[str, Any]]]
) -> None:
    path = tmp_path / "files.yaml"
    path.write_text(
        f"name: files\n"
        f"source: {{type: filestore, path: {str(data_dir / '*.csv')!r}}}\n"
        f"destination: {{type: dl_test_collect, into: yaml}}\n",
        encoding="utf-8",
    )

    run(RecipeLoader().load(path))

    assert ids(collected["yaml"]) == [1, 2, 3, 4, 5]


def test_missing_path_fails_naming_it(run: Run, tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match="does not exist"):
        run(collect_recipe(str(tmp_path / "nowhere")))


def overwrite_recipe(path: str, out: Path, **source: Any) -> dict[str, Any]:
    """Read `path` into a filestore destination at `out`, replacing what it holds."""
    return {
        "name": "mirror",
        "source": {"type": "filestore", "path": path, **source},
        "destination": {
            "type": "filestore",
            "path": str(out),
            "format": "csv",
            "write_mode": "overwrite",
        },
    }


def test_a_glob_under_a_vanished_directory_fails_and_the_overwrite_keeps_the_table(
    run: Run, read_back: Any, tmp_path: Path
) -> None:
    write_csv(tmp_path / "data" / "2024" / "a.csv", [1, 2])
    out = tmp_path / "out"
    run(overwrite_recipe(str(tmp_path / "data" / "2024" / "*.csv"), out))
    for file in (tmp_path / "data" / "2024").iterdir():
        file.unlink()
    (tmp_path / "data" / "2024").rmdir()

    with pytest.raises(ConnectorError) as caught:
        run(overwrite_recipe(str(tmp_path / "data" / "2024" / "*.csv"), out))

    message = str(caught.value)
    assert "does not exist" in message and str(tmp_path / "data" / "2024") in message
    assert ids(read_back(str(out))) == [1, 2]


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("data/*.json", "no file matches the glob"),
        ("data/sub/*.csv", "no file matches the glob"),
        ("empty", "holds no file to read"),
        ("data/notes.txt", "extension of a known format"),
    ],
)
def test_a_path_selecting_no_file_fails_unless_allow_empty(
    run: Run,
    data_dir: Path,
    tmp_path: Path,
    collected: dict[str, list[dict[str, Any]]],
    relative: str,
    expected: str,
) -> None:
    (tmp_path / "empty").mkdir()
    (data_dir / "sub" / "c.csv").unlink()
    path = str(tmp_path / relative)

    with pytest.raises(ConnectorError, match=expected) as caught:
        run(collect_recipe(path))
    assert path in str(caught.value)

    result = run(collect_recipe(path, allow_empty=True))
    assert result.rows_read == 0 and collected.get("files", []) == []


def test_allow_empty_does_not_excuse_a_missing_directory(run: Run, tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match="does not exist"):
        run(collect_recipe(str(tmp_path / "gone" / "*.csv"), allow_empty=True))


def test_allow_empty_on_a_destination_is_rejected(run: Run, tmp_path: Path) -> None:
    recipe = overwrite_recipe(str(tmp_path), tmp_path / "out")
    recipe["destination"]["allow_empty"] = True

    with pytest.raises(ConnectorError, match=r"destination\.allow_empty.*source"):
        run(recipe)


def test_unreadable_file_fails_naming_the_file(run: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")

    with pytest.raises(ConnectorError, match=r"bad\.json"):
        run(collect_recipe(str(bad)))


def test_modified_time_reads_new_and_changed_files_and_skips_unchanged(
    run: Run, tmp_path: Path, collected: dict[str, list[dict[str, Any]]]
) -> None:
    data = tmp_path / "data"
    write_csv(data / "a.csv", [1, 2], mtime=1_700_000_000)
    write_csv(data / "b.csv", [3], mtime=1_700_000_100)
    recipe = collect_recipe(str(data), incremental={"strategy": "modified_time"})

    assert run(recipe).rows_read == 3
    assert run(recipe).rows_read == 0  # nothing changed

    write_csv(data / "c.csv", [4], mtime=1_700_000_200)  # new
    write_csv(data / "a.csv", [1, 2, 22], mtime=1_700_000_300)  # changed: read again, whole
    third = run(recipe)

    assert third.rows_read == 4
    assert sorted(row["id"] for row in collected["files"]) == [1, 1, 2, 2, 3, 4, 22]
    assert run(recipe).rows_read == 0


def test_modified_time_rereads_a_file_rewritten_with_only_a_new_mtime(
    run: Run, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    path = write_csv(data / "a.csv", [1, 2], mtime=1_700_000_000)
    recipe = collect_recipe(str(data), incremental={"strategy": "modified_time"})
    run(recipe)

    os.utime(path, (1_700_000_050, 1_700_000_050))

    assert run(recipe).rows_read == 2


def test_full_read_reads_every_file_on_every_run(
    run: Run, data_dir: Path, collected: dict[str, list[dict[str, Any]]]
) -> None:
    recipe = collect_recipe(str(data_dir / "*.csv"))

    run(recipe)
    second = run(recipe)

    assert second.rows_read == 5
    assert len(collected["files"]) == 10


@pytest.mark.parametrize("incremental", [None, {"strategy": "modified_time"}])
@pytest.mark.parametrize("fail_on_write", [1, 2, 3, 4, 5, 6])
def test_killed_run_resumes_mid_file_and_every_row_arrives_once(
    run: Run,
    tmp_path: Path,
    collected: dict[str, list[dict[str, Any]]],
    incremental: dict[str, Any] | None,
    fail_on_write: int,
) -> None:
    data = tmp_path / "data"
    write_csv(data / "a.csv", range(1, 6), mtime=1_700_000_000)  # batches of 2: 2, 2, 1
    write_csv(data / "b.csv", range(6, 11), mtime=1_700_000_100)  # 2, 2, 1
    recipe = collect_recipe(str(data), batch_size=2)
    if incremental is not None:
        recipe["source"]["incremental"] = incremental
    dying = {**recipe, "destination": {**recipe["destination"], "fail_on_write": fail_on_write}}

    with pytest.raises(EngineError, match=f"killed on write {fail_on_write}"):
        run(dying)
    committed = len(collected.get("files", []))
    # Commits wait for 2 rows (batch_size): after writes 1, 2, 4 (1 + 2 rows) and 5.
    assert committed == [0, 2, 4, 4, 7, 9][fail_on_write - 1]

    resumed = run(recipe)

    assert resumed.rows_read == 10 - committed
    assert ids(collected["files"]) == list(range(1, 11))


def test_small_files_share_commits_of_batch_size_rows(
    run: Run, tmp_path: Path, state_dir: Path, collected: dict[str, list[dict[str, Any]]]
) -> None:
    data = tmp_path / "data"
    for number in range(25):
        write_csv(data / f"f{number:02d}.csv", [number], mtime=1_700_000_000)
    recipe = collect_recipe(str(data), batch_size=10)
    recipe["source"]["incremental"] = {"strategy": "modified_time"}

    result = run(recipe)

    assert (result.batches, result.commits) == (25, 3)  # 10 + 10 + the last 5 files
    assert ids(collected["files"]) == list(range(25))
    files = State.from_dict(LocalStateBackend(state_dir).load("files")).watermarks["files"]
    assert len(files) == 25 and all(entry["complete"] for entry in files.values())
    assert run(recipe).rows_read == 0


def test_state_of_a_full_read_is_cleared_after_success(
    run: Run, data_dir: Path, state_dir: Path
) -> None:
    run(collect_recipe(str(data_dir / "*.csv"), batch_size=2))

    state = State.from_dict(LocalStateBackend(state_dir).load("files"))

    assert state.watermarks == {}
    assert state.checkpoints[-1]["status"] == "success"


def test_row_estimate_for_progress_is_exact_for_parquet_and_close_for_csv(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    from dataloader import RunContext
    from dataloader_filestore import FileStoreConfig, FileStoreConnector

    for index in range(3):
        pq.write_table(
            pa.table({"id": list(range(index * 100, index * 100 + 100 + index))}),
            tmp_path / f"p{index}.parquet",
        )
    (tmp_path / "csv").mkdir()
    for index in range(2):
        (tmp_path / "csv" / f"c{index}.csv").write_text(
            "id,name\n" + "".join(f"{i},name-{i}\n" for i in range(500))
        )
    context = RunContext(recipe_name="estimate", run_id="r", started_at=datetime.now(UTC))

    def estimate(path: str) -> int | None:
        connector = FileStoreConnector(FileStoreConfig(path=path))
        connector.open(context)
        return connector.estimate_rows()

    assert estimate(str(tmp_path / "*.parquet")) == 303
    csv_estimate = estimate(str(tmp_path / "csv"))
    assert csv_estimate is not None and 990 <= csv_estimate <= 1010  # 1,000 rows + 2 headers
