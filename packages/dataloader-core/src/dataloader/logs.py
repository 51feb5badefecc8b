"""Logging: plain lines for people by default, one JSON object per line with `--log-format json`.

Every record carries the recipe and run id of the run that emitted it (a context variable, so
concurrent runs in threads keep theirs), an optional stage and counts, and is masked: no value
registered as a secret ever reaches a handler.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from dataloader.secrets import mask_text

_run: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "dataloader_run", default=None
)
LOGGER_NAME = "dataloader"


@contextmanager
def run_context(recipe_name: str, run_id: str) -> Iterator[None]:
    """Tag every record logged inside the block with this recipe and run id."""
    token = _run.set((recipe_name, run_id))
    try:
        yield
    finally:
        _run.reset(token)


class RunContextFilter(logging.Filter):
    """Adds `recipe`, `run_id`, `stage` and `counts` to records, and masks secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _run.get()
        record.recipe, record.run_id = (
            current
            if current
            else (getattr(record, "recipe", None), getattr(record, "run_id", None))
        )
        record.stage = getattr(record, "stage", None)
        record.counts = getattr(record, "counts", None)
        record.msg = mask_text(record.getMessage())
        record.args = ()
        return True


class MaskSecretsFilter(logging.Filter):
    """Masks the known secrets in every record of the logger it is added to."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = ()
        return True


def mask_secrets_in(logger_name: str) -> None:
    """Mask secrets in what a library logs itself (httpx logs each request's URL, query
    API key included, at INFO), whoever handles its records."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, MaskSecretsFilter) for f in logger.filters):
        logger.addFilter(MaskSecretsFilter())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "recipe": getattr(record, "recipe", None),
            "run_id": getattr(record, "run_id", None),
            "stage": getattr(record, "stage", None),
            "message": record.getMessage(),
        }
        counts = getattr(record, "counts", None)
        if counts:
            entry["counts"] = counts
        details = getattr(record, "details", None)
        if details:
            entry.update({k: v for k, v in details.items() if k not in entry})
        if record.exc_info:
            entry["error"] = mask_text(self.formatException(record.exc_info).splitlines()[-1])
        return json.dumps({k: v for k, v in entry.items() if v is not None}, default=str)


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        where = " ".join(
            part
            for part in (getattr(record, "recipe", None), getattr(record, "stage", None))
            if part
        )
        counts = getattr(record, "counts", None)
        suffix = " " + " ".join(f"{k}={v}" for k, v in counts.items()) if counts else ""
        text = f"{when} {record.levelname.lower():<7} {where + ': ' if where else ''}{record.getMessage()}{suffix}"
        if record.exc_info and record.levelno >= logging.ERROR:
            text += "\n" + mask_text(self.formatException(record.exc_info))
        return text


def configure_logging(level: str = "warning", fmt: str = "plain", stream: Any = None) -> None:
    """Send dataloader's logs to `stream` (stderr) at `level`, as `plain` text or `json`."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if getattr(handler, "_dataloader", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._dataloader = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
    handler.addFilter(RunContextFilter())
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
