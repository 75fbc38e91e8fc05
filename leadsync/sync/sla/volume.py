"""Volume service levels: did marketing deliver its leads this period, and is it on pace? No I/O.

A period (a calendar week from Monday, or a month, in the rule's calendar zone) delivers the
distinct leads that entered the rule's stage within it. While it runs, its pace is the target
times the share of the period's working time gone by: fewer delivered than the whole leads of
that is `behind` (a warning). A period that has ended with fewer than its target is `missed`;
reaching the target at any time is `met`. A period leadsync began watching in the middle of
is `partial`: its leads are counted from the first run on, and it is never judged (its
earlier leads nobody counted); a period that ended before the first run is not listed at all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from leadsync.mapping.calendar import BusinessCalendar
from leadsync.mapping.sla_rules import VolumeRule

__all__ = ["PeriodStatus", "VolumePeriod", "period_starts", "volume_periods"]


class PeriodStatus(StrEnum):
    ON_PLAN = "on_plan"
    BEHIND = "behind"
    MET = "met"
    MISSED = "missed"
    PARTIAL = "partial"  # leadsync began watching during it: counted, not judged


@dataclass(frozen=True, slots=True)
class VolumePeriod:
    """One rule's figures for one period and segment (None: overall)."""

    rule: str
    segment: str | None
    start: datetime
    end: datetime
    target: int
    delivered: int
    expected: float  # what the pace asked for by `as_of`
    status: PeriodStatus
    as_of: datetime

    @property
    def event_key(self) -> str:
        return f"{self.rule}:{self.segment or '*'}:{self.start.date().isoformat()}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "segment": self.segment,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "target": self.target,
            "delivered": self.delivered,
            "expected_by_now": round(self.expected, 1),
            "status": self.status.value,
        }


def volume_periods(
    rule: VolumeRule,
    calendar: BusinessCalendar,
    entries: Mapping[str, tuple[datetime, Any]],
    *,
    start: datetime,
    now: datetime,
    watching_since: datetime | None = None,
) -> list[VolumePeriod]:
    """The figures of the period starting at `start`, as of `now`, per segment of the rule.

    `entries` maps each lead that entered the stage in the period to (when, its segment value);
    `watching_since` is when leadsync's first run started (None: judge every period)."""
    period_start, period_end = calendar.period(start, rule.period)
    as_of = min(now, period_end)
    working = calendar.between(period_start, period_end)
    gone = calendar.between(period_start, as_of)
    share = gone / working if working > timedelta(0) else 1.0
    found = []
    for segment, target in rule.goals().items():
        delivered = sum(
            1
            for at, value in entries.values()
            if period_start <= at < period_end and (segment is None or _same(value, segment))
        )
        expected = target * share
        found.append(
            VolumePeriod(
                rule=rule.name,
                segment=segment,
                start=period_start,
                end=period_end,
                target=target,
                delivered=delivered,
                expected=expected,
                status=PeriodStatus.PARTIAL
                if watching_since is not None and period_start < watching_since
                else _status(delivered, target, expected, ended=now >= period_end),
                as_of=as_of,
            )
        )
    return found


def period_starts(
    rule: VolumeRule,
    calendar: BusinessCalendar,
    *,
    since: datetime,
    now: datetime,
    watching_since: datetime | None = None,
) -> list[datetime]:
    """The starts of the periods from the one holding `since` to the one holding `now`, less
    those that ended before `watching_since` (leadsync's first run): nobody counted them."""
    starts = []
    moment = calendar.period(since, rule.period)[0]
    while moment <= now:
        end = calendar.period(moment, rule.period)[1]
        if watching_since is None or end > watching_since:
            starts.append(moment)
        moment = end
    return starts


def _status(delivered: int, target: int, expected: float, *, ended: bool) -> PeriodStatus:
    if delivered >= target:
        return PeriodStatus.MET
    if ended:
        return PeriodStatus.MISSED
    # A lead is whole: the pace asks for the leads it has fully accrued (none in the first
    # hours of a week of 25), or every check early on Monday would warn.
    return PeriodStatus.BEHIND if delivered < math.floor(expected) else PeriodStatus.ON_PLAN


def _same(value: Any, segment: str) -> bool:
    # Segments are named in the TOML as text; lead values may differ in case.
    return isinstance(value, str) and value.strip().casefold() == segment.casefold()
