"""URLs leadsync is given: which it accepts for a CRM, and how it shows any of them.

`shown(url)` is the only form in which a URL reaches a log line, an error or the store: its
userinfo (`user:pass@`) and the values of its query (`?token=...`) masked, since a webhook URL
or a proxy URL may carry credentials in either. `crm_url_problem(url)` says why a URL is no
place to send CRM credentials: https to a named host, plain http only to this machine (the
sandbox).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit

from leadsync.secrets import MASK

__all__ = ["crm_url_problem", "is_loopback", "shown"]


def shown(url: str) -> str:
    """`url` fit to print: userinfo and query values masked, the rest as it was."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return MASK  # not even a URL: nothing of it is safe to assume harmless
    if not parts.scheme or host is None:
        return url if "@" not in url and "?" not in url else MASK
    netloc = parts.netloc.rpartition("@")[2]
    if parts.username is not None or parts.password is not None:
        netloc = f"{MASK}@{netloc}"
    query = urlencode([(name, MASK) for name, _ in parse_qsl(parts.query, keep_blank_values=True)])
    query = query.replace("%2A", "*")
    return SplitResult(parts.scheme, netloc, parts.path, query, "").geturl()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def crm_url_problem(url: str) -> str | None:
    """Why `url` cannot be a CRM's base or instance URL, or None when it can."""
    if not url.strip():
        return "must be a URL, like https://yourorg.my.salesforce.com; it is empty"
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as problem:
        return f"not a URL: {problem}"
    if parts.scheme not in ("https", "http") or not host:
        return f"must be an https:// URL with a host, not {shown(url)!r}"
    if parts.username is not None or parts.password is not None:
        return "must not hold credentials (user:password@): they go in the secrets"
    if parts.query or parts.fragment:
        return f"must be the site alone, without ?query or #fragment: {shown(url)!r}"
    if parts.scheme == "http" and not is_loopback(host):
        return (
            f"plain http would send the credentials in clear to {host}: use https "
            "(http is for the sandbox on this machine only: 127.0.0.1 or localhost)"
        )
    return None
