"""HTTP sessions for simple-salesforce: a default timeout on every request, and routing to a
plain-http instance such as the local sandbox.

simple-salesforce passes `timeout=` through for its REST calls but not for its logins or its
Bulk 2.0 client, and `requests` waits forever without one: `TimeoutSession` gives every request
a default.

simple-salesforce builds every URL as `https://{instance}/...` and logs in at
`https://{domain}.salesforce.com`, so it cannot reach `http://127.0.0.1:PORT` by configuration
alone (CRM_FACTS.md). A `requests.Session` that rewrites the scheme and host of every request
reaches it without touching the library: login, REST, Bulk 2.0 and `nextRecordsUrl` alike.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests


class TimeoutSession(requests.Session):
    """A session whose requests time out after `timeout` seconds unless a call says otherwise."""

    def __init__(self, *, timeout: float | None = None) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if self.timeout is not None and kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().request(method, url, *args, **kwargs)


class RoutingSession(TimeoutSession):
    """A session that sends every request to `base_url`, keeping path and query."""

    def __init__(self, base_url: str, *, timeout: float | None = None) -> None:
        super().__init__(timeout=timeout)
        target = urlsplit(base_url)
        if target.scheme not in ("http", "https") or not target.netloc:
            raise ValueError(f"not an http(s) base URL: {base_url!r}")
        self._scheme = target.scheme
        self._netloc = target.netloc
        # The environment's proxy and CA settings are for the real internet, not a local peer.
        self.trust_env = False

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        text = url.decode() if isinstance(url, bytes) else url
        parts = urlsplit(text)
        routed = urlunsplit((self._scheme, self._netloc, parts.path, parts.query, parts.fragment))
        return super().request(method, routed, *args, **kwargs)


def needs_routing(instance_url: str) -> bool:
    """True for instance URLs simple-salesforce cannot reach by itself: plain http ones."""
    return urlsplit(instance_url).scheme == "http"
