"""`dataloader plan` at 80 columns: the source's partitions with estimated rows and size and
a total line, the default count, a source that cannot split, secrets masked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner, Result

from dataloader.cli.app import _register_commands, cli

Write = Callable[[str, str], Path]
COLUMNS = 80


def invoke(*args: str) -> Result:
    _register_commands()
    return CliRunner(env={"COLUMNS": str(COLUMNS)}).invoke(cli, list(args))


def fits(text: str) -> None:
    for line in text.splitlines():
        assert len(line) <= COLUMNS, f"{len(line)} > {COLUMNS}: {line!r}"


def cells(text: str) -> list[list[str]]:
    """The cells of each body and footer line of the rich table."""
    return [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in text.splitlines()
        if line.startswith("│")
    ]


def data_files(directory: Path, lines: dict[str, int]) -> dict[str, int]:
    directory.mkdir(exist_ok=True)
    for name, count in lines.items():
        (directory / name).write_text("id,name\n" + "".join(f"{i},x{i}\n" for i in range(count)))
    return {name: (directory / name).stat().st_size for name in lines}


def recipe(write: Write, tmp_path: Path, sink: str, runtime: str = "", token: str = "t") -> Path:
    return write(
        "files.yaml",
        f"""
        name: files
        source: {{type: filestore, path: "{tmp_path / "data"}"}}
        destination: {{type: {sink}, table: files, token: {token}}}
        {runtime}
        """,
    )


def test_the_plan_of_a_file_source_fits_80_columns(write: Write, tmp_path: Path, sink: str) -> None:
    names = {
        "customers_2024_with_a_rather_long_file_name_indeed.csv": 900,
        "b.csv": 300,
        "c.csv": 500,
        "d.csv": 100,
        "e.csv": 40,
    }
    sizes = data_files(tmp_path / "data", names)
    path = recipe(write, tmp_path, sink)
    result = invoke("plan", str(path), "--partitions", "3", "--state-dir", str(tmp_path / "s"))
    assert result.exit_code == 0, result.output
    fits(result.output)
    assert "files: 3 partitions of the filestore source" in result.output
    header = next(line for line in result.output.splitlines() if line.startswith("┃"))
    assert [cell.strip() for cell in header.split("┃")[1:-1]] == [
        "#",
        "partition",
        "est. rows",
        "est. size",
    ]
    rows = cells(result.output)
    assert [row[0] for row in rows if row[0]] == ["0", "1", "2", "total"]
    assert rows[-1][2:] == ["?", f"{sum(sizes.values()) / 1024:.1f} KiB"]  # CSV rows: unknown
    assert "3 files, b.csv … e.csv" in result.output  # 300+100+40 beside 900 and 500
    assert "1 file, c.csv" in result.output


def test_the_default_count_is_the_parallelism_or_8_or_the_distributed_runs(
    write: Write, tmp_path: Path, sink: str
) -> None:
    data_files(tmp_path / "data", {f"f{i}.csv": 10 * (i + 1) for i in range(10)})
    state = ["--state-dir", str(tmp_path / "s")]
    result = invoke("plan", str(recipe(write, tmp_path, sink)), *state)
    assert result.exit_code == 0, result.output
    assert "8 partitions" in result.output
    parallel = recipe(write, tmp_path, sink, runtime="runtime: {parallelism: 3}")
    result = invoke("plan", str(parallel), *state)
    assert "3 partitions" in result.output
    result = invoke("plan", str(parallel), "-n", "20", *state)
    assert "10 partitions of the filestore source (20 asked for)" in result.output
    fits(result.output)
    # On an executor: what the distributed run asks for, 4 per worker.
    spread = recipe(write, tmp_path, sink, runtime="runtime: {executor: dask, parallelism: 2}")
    result = invoke("plan", str(spread), *state)
    assert "8 partitions" in result.output
    spread = recipe(write, tmp_path, sink, runtime="runtime: {executor: dask, parallelism: 3}")
    result = invoke("plan", str(spread), *state)
    assert "10 partitions of the filestore source (12 asked for)" in result.output


def test_a_source_that_cannot_split_says_so(write: Write, tmp_path: Path, sink: str) -> None:
    path = write(
        "seq.yaml",
        f"""
        name: seq
        source: {{type: sequence, stop: 10}}
        destination: {{type: {sink}, table: seq}}
        """,
    )
    result = invoke("plan", str(path), "--state-dir", str(tmp_path / "s"))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "source sequence cannot be split"


def test_secrets_are_never_printed(write: Write, tmp_path: Path, sink: str) -> None:
    data_files(tmp_path / "data", {"hunter2secret.csv": 5})
    path = recipe(write, tmp_path, sink, token="hunter2secret")
    result = invoke("plan", str(path), "--state-dir", str(tmp_path / "s"))
    assert result.exit_code == 0, result.output
    assert "hunter2secret" not in result.output
    assert "1 file, " in result.output
