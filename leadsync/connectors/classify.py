"""The one table that says what each CRM answer means: retry, log in again, or fail.

Request-level rules map an HTTP status (and, where the CRM says more, its error code and a
telling word of its message) to an exception class; record-level rules map the per-record
error codes of batch writes to "retry this record" or "this record failed for good". The first
matching rule wins, so specific rules come before general ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from leadsync.connectors.errors import (
    AuthenticationError,
    ConnectorError,
    QuotaExhaustedError,
    RateLimitedError,
    RequestRejectedError,
    ServerError,
    SessionExpiredError,
    TransientError,
)

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
