"""The one retry policy: transient errors only, exponential backoff with jitter, `Retry-After`
honoured, bounded in attempts and in total time, each retry logged. Two uses of it, shared by
both connectors:

    call_with_retry(policy, what, request)     a request, again while it fails transiently
    retry_records(policy, what, items, send,   a batch write, then again only the records the
                  again=...)                   CRM said to try later (locked rows, 429s per
                                               record), with the same backoff and bounds

The CRM clients' own retries are switched off (hubspot-api-client gets `Retry(total=False)`,
simple-salesforce retries nothing but its re-login, which the Salesforce connector does not
let it do), so this is the only place a request is repeated.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import tenacity

from leadsync.connectors.errors import TransientError

T = TypeVar("T")
Item = TypeVar("Item")
Result = TypeVar("Result")

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


def backoff(policy: RetryPolicy, attempt: int) -> float:
    """The wait after failed attempt number `attempt` (1, 2, ...): doubling from
    `initial_wait`, plus up to `jitter` at random (replicas do not retry in step), at most
    `max_wait`."""
    exponential = policy.initial_wait * 2.0 ** (attempt - 1)
    return min(policy.max_wait, exponential + random.uniform(0, policy.jitter))


def _wait(policy: RetryPolicy) -> Callable[[tenacity.RetryCallState], float]:
    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, TransientError) and error.retry_after is not None:
            # The server said when; waiting less only earns another refusal.
            return min(error.retry_after, policy.max_wait)
        return backoff(policy, state.attempt_number)

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


def retry_records(
    policy: RetryPolicy,
    description: str,
    items: Sequence[Item],
    send: Callable[[Sequence[Item], int], Sequence[Result]],
    *,
    again: Callable[[Result], bool],
) -> list[Result]:
    """`send(items, attempt)` (one result per item, in order), then again with only the items
    whose result `again` says to retry, with the policy's backoff, until none is left or the
    policy's attempts or time run out. One result per item, in order: its last."""
    results: dict[int, Result] = {}
    pending = list(range(len(items)))
    started = time.monotonic()
    for attempt in range(1, policy.max_attempts + 1):
        answers = send([items[index] for index in pending], attempt)
        for index, result in zip(pending, answers, strict=True):
            results[index] = result
        pending = [index for index in pending if again(results[index])]
        out_of_time = time.monotonic() - started >= policy.max_seconds
        if not pending or attempt == policy.max_attempts or out_of_time:
            break
        wait = backoff(policy, attempt)
        log.warning(
            "%s: %d of %d records to try again (attempt %d); retrying in %.2fs",
            description,
            len(pending),
            len(items),
            attempt,
            wait,
        )
        policy.sleep(wait)
    return [results[index] for index in range(len(items))]
