"""The SLA webhook: each announced event POSTed as JSON, signed with a shared secret, retried.

    POST <url>
    Content-Type: application/json
    X-Leadsync-Event-Id: breached:4f1c...        (the same on every retry: deduplicate on it)
    X-Leadsync-Timestamp: 1764582000             (seconds since the epoch, when it was signed)
    X-Leadsync-Signature: sha256=<hex>           (HMAC-SHA256 of "<timestamp>.<body>")

    {"id": "breached:4f1c...", "type": "sla.breached", "created_at": "...", "data": {...}}

A receiver checks the signature with the secret and refuses old timestamps, so a captured
request cannot be replayed. Delivery is at least once: the outbox keeps an event until a 2xx.
The URL and the secret are secrets (a Slack or Teams webhook URL is a credential): errors name
the host only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from leadsync import __version__
from leadsync.errors import RunError
from leadsync.secrets import Secret
from leadsync.sync.sla.ledger import SlaEvent

__all__ = ["SIGNATURE_HEADER", "WebhookError", "WebhookSender", "signature"]

log = logging.getLogger("leadsync.sla")

SIGNATURE_HEADER = "X-Leadsync-Signature"
TIMESTAMP_HEADER = "X-Leadsync-Timestamp"
EVENT_HEADER = "X-Leadsync-Event-Id"
# Answers worth a second try at once: the receiver is busy or briefly down.
_RETRIABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class WebhookError(RunError):
    """A delivery that did not get a 2xx; `retriable` when a later attempt may succeed."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for `body` signed at `timestamp`."""
    signed = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


class WebhookSender:
    """POSTs events to one URL; a few quick retries per call, the outbox does the rest."""

    def __init__(
        self,
        url: Secret,
        secret: Secret,
        *,
        timeout_seconds: float = 10.0,
        attempts: int = 3,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._url = url
        self._secret = secret
        self._timeout = timeout_seconds
        self._session = session or requests.Session()
        self._session.trust_env = False
        self._clock = clock
        self._send = retry(
            retry=retry_if_exception(lambda error: getattr(error, "retriable", False)),
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=0.5, max=5.0),
            sleep=sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )(self._post)

    @property
    def host(self) -> str:
        """Where the webhook goes: host and port only, without the userinfo (`user:pass@`),
        path and query that may each hold a credential."""
        try:
            parts = urlsplit(self._url.reveal())
            host, port = parts.hostname, parts.port
        except ValueError:
            return "the webhook"
        if not host:
            return "the webhook"
        return f"{host}:{port}" if port else host

    def send(self, event: SlaEvent) -> None:
        """Deliver `event`; raises WebhookError when every attempt failed."""
        self._send(event)

    def close(self) -> None:
        self._session.close()

    def _post(self, event: SlaEvent) -> None:
        body = json.dumps(_envelope(event), sort_keys=True, separators=(",", ":")).encode()
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"leadsync/{__version__}",
            EVENT_HEADER: event.event_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(self._secret.reveal(), timestamp, body),
        }
        try:
            answer = self._session.post(
                self._url.reveal(), data=body, headers=headers, timeout=self._timeout
            )
        except requests.RequestException as error:
            # The exception's text carries the URL: name the kind of failure only.
            raise WebhookError(f"{self.host}: {type(error).__name__}", retriable=True) from None
        if not 200 <= answer.status_code < 300:
            raise WebhookError(
                f"{self.host} answered {answer.status_code}",
                retriable=answer.status_code in _RETRIABLE_STATUS,
            )

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.info("SLA webhook attempt %d failed (%s), retrying", state.attempt_number, error)


def _envelope(event: SlaEvent) -> dict[str, Any]:
    return {
        "id": event.event_id,
        "type": f"sla.{event.kind}",
        "created_at": _iso(event.at),
        "data": dict(event.payload),
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat()
