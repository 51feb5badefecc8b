"""Helpers shared by the S3 and SFTP backend tests: a source that fails after N batches, recipe
builders, and the check that an error names what it should and no secret."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from dataloader import (
    ArrowBatch,
    BaseConnector,
    Capabilities,
    ConnectorConfig,
    LocalStateBackend,
    RecipeLoader,
    RunResult,
    State,
    register_connector,
    run_recipe,
)
from dataloader.registry import unregister

ROWS = [
    {"id": 1, "name": "alpha", "amount": 1.5},
    {"id": 2, "name": 'beta, "quoted"', "amount": -2.25},
    {"id": 3, "name": "gamma\tü", "amount": 0.0},
    {"id": 4, "name": "delta", "amount": 1e-3},
    {"id": 5, "name": "epsilon", "amount": 12345.678},
]

FAILING = "dl_test_failing_rows"
FAILING_RESUMABLE = "dl_test_failing_rows_resumable"
# Called with the batch index before the failing source yields (or refuses) each batch.
OBSERVERS: list[Callable[[int], None]] = []


class SourceFailed(Exception):
    """What the failing source raises in the middle of a run."""


class FailingConfig(ConnectorConfig):
    """`batches` batches of `rows_per_batch` rows (ids from 1); fail before batch `fail_after`+1."""

    batches: int = 5
    rows_per_batch: int = 2
    fail_after: int | None = None


class FailingRowsSource(BaseConnector):
    """Numbered batches with checkpoints; calls `OBSERVERS` before each; fails after N batches.

    It cannot resume, so the engine commits once, at the end of the run.
    """

    config_model = FailingConfig
    capabilities = Capabilities(read=True)

    def read_batches(self, state: State) -> Iterator[ArrowBatch]:
        done = int(state.watermarks.get("failing", {}).get("batches", 0))
        per = self.config.rows_per_batch
        for index in range(done, self.config.batches):
            for observe in OBSERVERS:
                observe(index)
            if self.config.fail_after is not None and index >= self.config.fail_after:
                raise SourceFailed(f"source failed before batch {index + 1}")
            rows = [
                {"id": i, "name": f"row {i}"} for i in range(index * per + 1, (index + 1) * per + 1)
            ]
            yield ArrowBatch.from_pylist(rows, checkpoint={"failing": {"batches": index + 1}})


class ResumableFailingRowsSource(FailingRowsSource):
    """The same, resumable: the engine commits after every batch of `runtime.batch_size` rows
    (`FAILING_RUNTIME`)."""

    capabilities = Capabilities(read=True, resumable=True)


def register_failing_sources() -> Iterator[list[Callable[[int], None]]]:
    """Body of a fixture: register both failing sources, yield `OBSERVERS`, clean up."""
    register_connector(FAILING)(FailingRowsSource)
    register_connector(FAILING_RESUMABLE)(ResumableFailingRowsSource)
    OBSERVERS.clear()
    yield OBSERVERS
    OBSERVERS.clear()
    unregister("connector", FAILING)
    unregister("connector", FAILING_RESUMABLE)


# batch_size = rows_per_batch: every batch is a full one. The observers look at the
# destination from inside the source ("before batch i, i commits"): reads and writes in turn.
FAILING_RUNTIME = {"batch_size": 2, "read_ahead": 0}


def failing_source(*, resumable: bool, fail_after: int | None, batches: int = 5) -> dict[str, Any]:
    return {
        "type": FAILING_RESUMABLE if resumable else FAILING,
        "batches": batches,
        "fail_after": fail_after,
    }


class YamlRunner:
    """`runner(recipe_dict)`: write it as YAML, load it with `RecipeLoader`, run it in process
    with a `LocalStateBackend` (the same one for every run of a test)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0

    def __call__(self, recipe: dict[str, Any]) -> RunResult:
        self.count += 1
        path = self.directory / f"recipe-{self.count}.yaml"
        path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
        return run_recipe(RecipeLoader().load(path), LocalStateBackend(self.directory / "state"))


def rows_source(batch_size: int = 2) -> dict[str, Any]:
    """The in-process `dl_test_rows` source yielding `ROWS` in batches of `batch_size`."""
    return {
        "type": "dl_test_rows",
        "batches": [ROWS[i : i + batch_size] for i in range(0, len(ROWS), batch_size)],
    }


def collect(name: str, source: dict[str, Any], **runtime: Any) -> dict[str, Any]:
    """A recipe reading `source` into the collecting destination under key `name`."""
    recipe: dict[str, Any] = {
        "name": name,
        "source": source,
        "destination": {"type": "dl_test_collect", "into": name},
    }
    if runtime:
        recipe["runtime"] = runtime
    return recipe


def by_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows in id order, decimals as floats: the text formats read `0.001`, written from
    the float, back as an exact decimal (docs/files.md, types of text columns)."""
    exact = [{key: _float(value) for key, value in row.items()} for row in rows]
    return sorted(exact, key=lambda row: row["id"])


def _float(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def ids_of(rows: list[dict[str, Any]]) -> list[int]:
    return sorted(row["id"] for row in rows)


def csv_text(ids: list[int] | range, tag: str = "r") -> str:
    return "id,tag\n" + "".join(f"{i},{tag}{i}\n" for i in ids)


def assert_clean_error(error: BaseException, secrets: list[str], *parts: str) -> None:
    """The message names every part (backend, path, cause…) and contains none of `secrets`,
    neither as printed (masked) nor as raised (the raw message and the structured context)."""
    text = str(error)
    for part in parts:
        assert part in text, f"{part!r} not in {text!r}"
    raw = " ".join(str(arg) for arg in error.args)
    context = repr(getattr(error, "context", {}))
    for secret in secrets:
        assert secret not in text, text
        assert secret not in raw, raw
        assert secret not in context, context
