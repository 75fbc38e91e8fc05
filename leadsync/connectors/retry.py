"""The one retry policy: transient errors only, exponential backoff with jitter, `Retry-After`
honoured, bounded in attempts and in total time, each retry logged.

The CRM clients' own retries are switched off (hubspot-api-client gets `Retry(total=False)`,
simple-salesforce retries nothing but its re-login, which the Salesforce connector does not
let it do), so this is the only place a request is repeated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import tenacity

from leadsync.connectors.errors import TransientError

T = TypeVar("T")

log = logging.getLogger("leadsync.connectors.retry")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try. The defaults ride out a minute-long CRM hiccup; tests shrink them."""

    max_attempts: int = 8
    max_seconds: float = 120.0
    initial_wait: float = 0.5
    max_wait: float = 30.0
    jitter: float = 0.5
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)


def _wait(policy: RetryPolicy) -> Callable[[tenacity.RetryCallState], float]:
    backoff = tenacity.wait_exponential_jitter(
        multiplier=policy.initial_wait, max=policy.max_wait, jitter=policy.jitter
    )

    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, TransientError) and error.retry_after is not None:
            # The server said when; waiting less only earns another refusal.
            return min(error.retry_after, policy.max_wait)
        return float(backoff(state))

    return wait


def _log_retry(description: str) -> Callable[[tenacity.RetryCallState], None]:
    def log_attempt(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.upcoming_sleep
        log.warning(
            "%s: attempt %d failed (%s); retrying in %.2fs",
            description,
            state.attempt_number,
            error,
            wait,
        )

    return log_attempt


def call_with_retry(policy: RetryPolicy, description: str, operation: Callable[[], T]) -> T:
    """`operation()`, repeated while it raises a TransientError and the policy allows.

    The last error is re-raised as it was when the attempts or the time run out.
    """
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TransientError),
        stop=tenacity.stop_after_attempt(policy.max_attempts)
        | tenacity.stop_after_delay(policy.max_seconds),
        wait=_wait(policy),
        sleep=policy.sleep,
        before_sleep=_log_retry(description),
        reraise=True,
    )
    return retrying(operation)
