"""Retrying transient failures: exponential backoff with jitter, per `runtime.retries`."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from dataloader.recipe.models import RetryConfig

T = TypeVar("T")
log = logging.getLogger("dataloader.retry")


def backoff_delay(policy: RetryConfig, attempt: int) -> float:
    """Seconds to wait before retry number `attempt` (1-based)."""
    delay = min(policy.max_backoff, policy.initial_backoff * (2 ** (attempt - 1)))
    return delay * (1 + random.uniform(-policy.jitter, policy.jitter))


def call_with_retries(
    operation: Callable[..., T],
    *args: Any,
    policy: RetryConfig | None,
    is_transient: Callable[[BaseException], bool],
    on_retry: Callable[[BaseException, int], None] | None = None,
    **kwargs: Any,
) -> T:
    """Call `operation`; on an error `is_transient` accepts, wait and try again.

    A permanent error, or a transient one after `policy.attempts` retries, is raised as is.
    """
    policy = policy or RetryConfig()
    attempt = 0
    while True:
        try:
            return operation(*args, **kwargs)
        except Exception as exc:
            attempt += 1
            if attempt > policy.attempts or not is_transient(exc):
                raise
            delay = backoff_delay(policy, attempt)
            log.warning(
                "transient error, retry %d of %d in %.2fs: %s",
                attempt,
                policy.attempts,
                delay,
                type(exc).__name__,
            )
            if on_retry is not None:
                on_retry(exc, attempt)
            time.sleep(delay)
