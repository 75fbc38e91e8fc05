"""The exceptions a connector raises; nothing else escapes one (no urllib3 or requests error).

    ConnectorError                  anything a CRM call can end in
    ├── TransientError              worth retrying: the retry policy does, with backoff
    │   ├── RateLimitedError        429, Salesforce's concurrent-request 403
    │   ├── ServerError             5xx
    │   └── ConnectionFailedError   refused, reset or dropped connections, timeouts
    ├── SessionExpiredError         Salesforce 401 INVALID_SESSION_ID: log in once, replay
    ├── AuthenticationError         credentials refused
    ├── QuotaExhaustedError         the CRM's own daily limit is spent
    ├── QuotaReserveReachedError    our reserve is reached: start no new work
    └── RequestRejectedError        a 4xx for the request as a whole (bad query, bad field)

Messages never hold a secret: they are built from status, error code and the CRM's message.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """A CRM call that did not succeed. `category` groups errors for metrics and reports."""

    category = "error"

    def __init__(
        self,
        message: str,
        *,
        crm: str,
        status: int | None = None,
        code: str | None = None,
        category: str | None = None,
        field_errors: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.crm = crm
        self.status = status
        self.code = code
        # (field, the CRM's code for what is wrong with it): a request refused for its values.
        self.field_errors = field_errors
        if category is not None:
            self.category = category

    def __str__(self) -> str:
        parts = [self.crm]
        if self.status is not None:
            parts.append(str(self.status))
        if self.code:
            parts.append(self.code)
        return f"{' '.join(parts)}: {self.message}"


class TransientError(ConnectorError):
    """Worth retrying. `retry_after` is the server's own hint in seconds, when it gave one."""

    category = "transient"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class RateLimitedError(TransientError):
    category = "rate_limit"


class ServerError(TransientError):
    category = "server_error"


class ConnectionFailedError(TransientError):
    category = "connection"


class SessionExpiredError(ConnectorError):
    category = "session_expired"


class AuthenticationError(ConnectorError):
    category = "authentication"


class QuotaExhaustedError(ConnectorError):
    category = "daily_limit"


class QuotaReserveReachedError(ConnectorError):
    category = "quota_reserve"


class RequestRejectedError(ConnectorError):
    category = "bad_request"
