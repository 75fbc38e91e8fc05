"""API quota: what each CRM says is left today, and the reserve leadsync keeps for others.

HubSpot reports `X-HubSpot-RateLimit-Daily` / `-Daily-Remaining` (and the ten-secondly window)
on most answers; Salesforce reports `Sforce-Limit-Info: api-usage=USED/MAX`. A connector feeds
every answer's headers here and asks `check()` before it starts new work: below the reserve it
stops and says so, leaving the rest of the day's calls to the CRM's other users.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from leadsync.connectors.errors import QuotaReserveReachedError

_API_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


@dataclass(frozen=True, slots=True)
class Quota:
    """The last figures a CRM reported; None where it has not said."""

    crm: str
    daily_limit: int | None = None
    daily_remaining: int | None = None
    window_limit: int | None = None
    window_remaining: int | None = None
    reserve: int = 0
    observed_at: datetime | None = None

    @property
    def daily_used(self) -> int | None:
        if self.daily_limit is None or self.daily_remaining is None:
            return None
        return self.daily_limit - self.daily_remaining


class QuotaTracker:
    def __init__(self, crm: str, *, reserve: int = 0) -> None:
        self.crm = crm
        self.reserve = reserve
        self._quota = Quota(crm, reserve=reserve)
        self._lock = threading.Lock()

    @property
    def quota(self) -> Quota:
        return self._quota

    def observe(self, headers: Mapping[str, str]) -> None:
        """Update from one answer's headers (names matched case-insensitively)."""
        lowered = {name.lower(): value for name, value in headers.items()}
        figures: dict[str, int] = {}
        if self.crm == "hubspot":
            for header, name in (
                ("x-hubspot-ratelimit-daily", "daily_limit"),
                ("x-hubspot-ratelimit-daily-remaining", "daily_remaining"),
                ("x-hubspot-ratelimit-max", "window_limit"),
                ("x-hubspot-ratelimit-remaining", "window_remaining"),
            ):
                value = lowered.get(header)
                if value is not None and value.strip().isdigit():
                    figures[name] = int(value)
        else:
            usage = _API_USAGE.search(lowered.get("sforce-limit-info", ""))
            if usage is not None:
                used, limit = int(usage.group(1)), int(usage.group(2))
                figures = {"daily_limit": limit, "daily_remaining": max(0, limit - used)}
        if figures:
            self.update(**figures)

    def update(self, **figures: int) -> None:
        with self._lock:
            current = self._quota
            self._quota = Quota(
                self.crm,
                daily_limit=figures.get("daily_limit", current.daily_limit),
                daily_remaining=figures.get("daily_remaining", current.daily_remaining),
                window_limit=figures.get("window_limit", current.window_limit),
                window_remaining=figures.get("window_remaining", current.window_remaining),
                reserve=self.reserve,
                observed_at=datetime.now(UTC),
            )

    def check(self, calls: int = 1) -> None:
        """Raise QuotaReserveReachedError if `calls` more would eat into the reserve."""
        remaining = self._quota.daily_remaining
        if remaining is not None and remaining - calls < self.reserve:
            raise QuotaReserveReachedError(
                f"{remaining} API calls left today, a reserve of {self.reserve} is kept: "
                "starting no new work until the quota recovers",
                crm=self.crm,
            )
