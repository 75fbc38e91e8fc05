"""The one table that says what each CRM answer means: retry, log in again, or fail.

Request-level rules map an HTTP status (and, where the CRM says more, its error code and a
telling word of its message) to an exception class; record-level rules map the per-record
error codes of batch writes to "retry this record" or "this record failed for good". The first
matching rule wins, so specific rules come before general ones.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from leadsync.connectors.errors import (
    AuthenticationError,
    ConnectionFailedError,
    ConnectorError,
    QuotaExhaustedError,
    RateLimitedError,
    RequestRejectedError,
    ServerError,
    SessionExpiredError,
    TransientError,
    UnreachableError,
)
from leadsync.urls import is_loopback, shown

ANY = "*"


@dataclass(frozen=True, slots=True)
class Rule:
    crm: str
    statuses: range
    outcome: type[ConnectorError]
    category: str
    code: str | None = None
    message_has: str | None = None

    def matches(self, crm: str, status: int, code: str | None, message: str) -> bool:
        return (
            self.crm in (ANY, crm)
            and status in self.statuses
            and (self.code is None or self.code == code)
            and (self.message_has is None or self.message_has.lower() in message.lower())
        )


def _status(code: int) -> range:
    return range(code, code + 1)


_4XX = range(400, 500)
_5XX = range(500, 600)

REQUEST_RULES: tuple[Rule, ...] = (
    # HubSpot: the daily limit is spent for the day; the ten-secondly and secondly ones pass.
    Rule("hubspot", _status(429), QuotaExhaustedError, "daily_limit", message_has="daily"),
    Rule("hubspot", _status(429), RateLimitedError, "rate_limit"),
    # Salesforce answers its limits with 403 REQUEST_LIMIT_EXCEEDED: the daily total is final,
    # the concurrent long-request limit ("ConcurrentPerOrgLongTxn") passes.
    Rule(
        "salesforce",
        _status(403),
        QuotaExhaustedError,
        "daily_limit",
        code="REQUEST_LIMIT_EXCEEDED",
        message_has="TotalRequests",
    ),
    Rule(
        "salesforce",
        _status(403),
        RateLimitedError,
        "concurrency_limit",
        code="REQUEST_LIMIT_EXCEEDED",
    ),
    Rule("salesforce", _status(401), SessionExpiredError, "session_expired", "INVALID_SESSION_ID"),
    Rule(ANY, _status(401), AuthenticationError, "authentication"),
    Rule(ANY, _status(403), RequestRejectedError, "forbidden"),
    Rule(ANY, _status(404), RequestRejectedError, "not_found"),
    Rule(ANY, _status(408), ServerError, "timeout"),
    Rule(ANY, _status(409), RequestRejectedError, "conflict"),
    Rule(ANY, _status(429), RateLimitedError, "rate_limit"),
    Rule(ANY, _4XX, RequestRejectedError, "bad_request"),
    Rule(ANY, _5XX, ServerError, "server_error"),
)

# The categories of a write refused for the request itself (a 403: the app lacks a scope or a
# permission), not for anything its records hold: every record of the request gets it, and
# nothing leadsync can see tells when a person fixes the cause, so such a refusal is tried
# again by the next run rather than after a wait.
REQUEST_REFUSALS = frozenset({"forbidden"})

# Per-record error codes of batch writes that are worth another try; every other code fails
# that record for good (its category is the lower-cased code).
RETRIABLE_RECORD_CODES: dict[str, frozenset[str]] = {
    "salesforce": frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"}),
    "hubspot": frozenset({"RATE_LIMITS", "INTERNAL_ERROR", "LOCKED"}),
}


def classify(
    crm: str,
    status: int,
    *,
    code: str | None = None,
    message: str = "",
    retry_after: float | None = None,
) -> ConnectorError:
    """The exception for a CRM answer with `status` (a status below 400 is not an error)."""
    for rule in REQUEST_RULES:
        if rule.matches(crm, status, code, message):
            text = message or f"HTTP {status}"
            if issubclass(rule.outcome, TransientError):
                return rule.outcome(
                    text,
                    crm=crm,
                    status=status,
                    code=code,
                    category=rule.category,
                    retry_after=retry_after,
                )
            return rule.outcome(text, crm=crm, status=status, code=code, category=rule.category)
    return ConnectorError(message or f"unexpected HTTP {status}", crm=crm, status=status, code=code)


def record_error_is_retriable(crm: str, code: str) -> bool:
    """Whether a per-record batch error is worth another try."""
    return code in RETRIABLE_RECORD_CODES.get(crm, frozenset())


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (the seconds form; HTTP dates are not used by either
    CRM)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds)


# ------------------------------------------------------------------------------ connections


def connection_failure(crm: str, error: BaseException, url: str, doing: str) -> ConnectorError:
    """A request that got no answer. Refused, or a host that does not resolve, means nothing
    is there: a wrong URL, or a sandbox not running. Retrying that for a minute only delays
    saying so; a reset, a drop or a timeout is worth another try."""
    for cause in _causes(error):
        if isinstance(cause, ConnectionRefusedError | socket.gaierror):
            refused = isinstance(cause, ConnectionRefusedError)
            host = urlsplit(url).hostname if "://" in url else None
            hint = (
                "is the sandbox running (`leadsync sandbox`)?"
                if host is not None and is_loopback(host)
                else "is the URL in the config right?"
            )
            reason = "connection refused" if refused else "no such host"
            message = f"{doing}: nothing answers at {shown(url)} ({reason}): {hint}"
            return UnreachableError(message, crm=crm)
    return ConnectionFailedError(f"{doing}: {type(error).__name__}", crm=crm)


def _causes(error: BaseException) -> Iterator[BaseException]:
    """`error` and what it wraps: causes, contexts, urllib3's `reason`, requests' args."""
    seen: set[int] = set()
    pending = [error]
    while pending and len(seen) < 20:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        nested.extend(arg for arg in current.args if isinstance(arg, BaseException))
        pending.extend(item for item in nested if isinstance(item, BaseException))
