"""Timestamps in the exact text forms each CRM returns, from and to epoch milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def to_ms(moment: datetime) -> int:
    # Integer arithmetic on timedeltas: float seconds would round some milliseconds down.
    return (moment - _EPOCH) // _ONE_MS


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def hubspot_iso(ms: int) -> str:
    """HubSpot's form: `2024-05-01T10:00:00.123Z`."""
    moment = _utc(ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def salesforce_datetime(ms: int) -> str:
    """Salesforce's form, `2024-05-01T10:00:00.000+0000`: a datetime Salesforce stores keeps
    whole seconds, so the milliseconds always read .000 (salesforce.stackexchange.com question
    234824); `SystemModstamp` ties between separate requests are as common as in a real org."""
    moment = _utc(ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + ".000+0000"


def salesforce_date(ms: int) -> str:
    return _utc(ms).strftime("%Y-%m-%d")


def parse_ms(text: str) -> int:
    """Epoch milliseconds from either an integer string or an ISO-8601 text with an offset.

    Raises ValueError for anything else, and for an ISO text without a time zone, which would be
    ambiguous.
    """
    stripped = text.strip()
    if stripped.lstrip("-").isdigit():
        return int(stripped)
    normalised = stripped
    # Python 3.11 reads "Z" and "+00:00" but not Salesforce's "+0000".
    if len(normalised) > 5 and normalised[-5] in "+-" and normalised[-4:].isdigit():
        normalised = f"{normalised[:-2]}:{normalised[-2:]}"
    moment = datetime.fromisoformat(normalised)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return to_ms(moment)
