"""The exceptions a connector raises; nothing else escapes one (no urllib3 or requests error).

They are the `ConnectorError` branch of leadsync's one exception tree, `leadsync.errors`, where
they are defined; this module names them for the connectors. Messages never hold a secret:
they are built from status, error code and the CRM's message (cut, values masked).
"""

from leadsync.errors import (
    AuthenticationError,
    ConnectionFailedError,
    ConnectorError,
    QuotaExhaustedError,
    QuotaReserveReachedError,
    RateLimitedError,
    RequestRejectedError,
    ServerError,
    SessionExpiredError,
    TransientError,
    UnreachableError,
)

__all__ = [
    "AuthenticationError",
    "ConnectionFailedError",
    "ConnectorError",
    "QuotaExhaustedError",
    "QuotaReserveReachedError",
    "RateLimitedError",
    "RequestRejectedError",
    "ServerError",
    "SessionExpiredError",
    "TransientError",
    "UnreachableError",
]
