"""No response after handoff, a warning sign: the share of handed-off leads that nobody worked
within N working hours of reaching sales.

    worked       a person changed one of the response fields of the lead's record in the CRM
                 sales work in (a status, the last activity) after the handoff: the handoff
                 step records the first such change (`Handoff.responded_at`)
    due          the handoff plus N working hours of the calendar; met then is met in time
    no response  not worked by its due time, once that time has come (worked later, or not
                 yet); a lead still within its N hours is waiting, and counts in no share

Counted per owner (by name where the store knows it) and per period of the handoff. Only
leads whose own record sales got are followed: a person matched to a record of another kind
(a contact) is worked there, out of sight. A lead whose record sales deleted is neither
worked nor waiting: it is counted apart (`deleted_by_sales`), in no share.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, Literal

from leadsync.mapping.calendar import BusinessCalendar
from leadsync.sync.handoff_ledger import DELETED, Handoff, HandoffLedger
from leadsync.sync.sla.clocks import SlaRules
from leadsync.sync.sla.speed import owner_shown

__all__ = [
    "METRIC_WINDOW",
    "NoResponseRule",
    "Period",
    "format_no_response",
    "handed_off_within",
    "no_response",
    "period_of",
]

# What the service's metric counts: the leads handed off in the last week, a window an alert
# can follow day by day (the reports count by period instead).
METRIC_WINDOW = timedelta(days=7)

Period = Literal["week", "month"]


def period_of(moment: datetime, period: Period) -> str:
    """`2026-06` for a month, `2026-W23` for an ISO week (UTC)."""
    if period == "month":
        return f"{moment.year:04}-{moment.month:02}"
    year, week, _ = moment.isocalendar()
    return f"{year:04}-W{week:02}"


@dataclass(frozen=True)
class NoResponseRule:
    """`[sla.no_response]` resolved: the fields that count as work, the hours, the calendar."""

    fields: tuple[str, ...]
    within: timedelta
    calendar_name: str
    calendar: BusinessCalendar
    # Owner -> the zone their working hours are in, where the definition gives one.
    owner_zones: Mapping[str, tzinfo] = field(default_factory=dict)

    @classmethod
    def of(cls, rules: SlaRules, handoff_stage: str) -> NoResponseRule | None:
        """The rule for a handoff at `handoff_stage`; None when nothing says what work is (no
        `fields`, and no clock stops on a change) or which calendar (none is defined)."""
        settings = rules.model.no_response
        fields = settings.fields or list(
            dict.fromkeys(name for rule in rules.rules for name in rule.stop_on_change or ())
        )
        name = settings.calendar or next(
            (rule.calendar for rule in rules.rules if rule.start == handoff_stage),
            next(iter(sorted(rules.calendars)), None),
        )
        if not fields or name is None or name not in rules.calendars:
            return None
        zones = {
            owner: zone
            for owner in rules.model.owner_time_zones
            if (zone := rules.model.owner_zone(owner)) is not None
        }
        return cls(tuple(fields), settings.within, name, rules.calendars[name], zones)

    def due(self, handoff: Handoff) -> datetime | None:
        """The handoff plus the working hours, on the calendar in its owner's zone."""
        if handoff.handed_off_at is None:
            return None
        zone = self.owner_zones.get(handoff.owner or "")
        calendar = self.calendar if zone is None else self.calendar.with_zone(zone)
        return calendar.add(handoff.handed_off_at, self.within)


def handed_off_within(
    ledger: HandoffLedger,
    rules: SlaRules | None,
    handoff_stage: str | None,
    *,
    now: datetime,
    since: datetime | None = None,
    until: datetime | None = None,
    period: Period = "week",
) -> dict[str, Any] | None:
    """The figures of the leads handed off in [since, until) (until: now), from the store;
    None without a handoff, service levels or a rule (see NoResponseRule.of)."""
    rule = NoResponseRule.of(rules, handoff_stage) if rules and handoff_stage else None
    if rule is None:
        return None
    end = until or now
    handoffs = [
        h
        for h in ledger.all()
        if h.handed_off_at is not None
        and (since is None or h.handed_off_at >= since)
        and h.handed_off_at < end
    ]
    return no_response(handoffs, rule, now=now, period=period, names=ledger.names())


def followed(handoffs: Sequence[Handoff]) -> list[Handoff]:
    """The handed-off leads whose response can be seen: their own record went to sales."""
    return [h for h in handoffs if h.handed_off and h.handed_off_at and h.own_record]


def no_response(
    handoffs: Sequence[Handoff],
    rule: NoResponseRule,
    *,
    now: datetime,
    period: Period = "week",
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The figures over `handoffs` as of `now`: overall, per owner and per period of the
    handoff. `names` gives owners' names by id (an owner without one shows as its id)."""
    names = names or {}
    rows = [(h, _outcome(h, rule, now)) for h in followed(handoffs)]
    owners: dict[str, list[str]] = defaultdict(list)
    periods: dict[str, list[str]] = defaultdict(list)
    for handoff, outcome in rows:
        owner = handoff.owner or "-"
        owners[owner].append(outcome)
        assert handoff.handed_off_at is not None  # followed
        periods[period_of(handoff.handed_off_at, period)].append(outcome)
    return {
        "within_working_hours": rule.within.total_seconds() / 3600,
        "calendar": rule.calendar_name,
        "fields": list(rule.fields),
        **_shares([outcome for _, outcome in rows]),
        "deleted_by_sales": sum(1 for h in handoffs if h.status == DELETED),
        "by_owner": [
            {"owner": owner, "name": names.get(owner), **_shares(outcomes)}
            for owner, outcomes in sorted(owners.items(), key=lambda i: names.get(i[0], i[0]))
        ],
        "by_period": [
            {"period": key, **_shares(outcomes)} for key, outcomes in sorted(periods.items())
        ],
    }


_RESPONDED, _NONE, _WAITING = "responded", "no_response", "waiting"


def _outcome(handoff: Handoff, rule: NoResponseRule, now: datetime) -> str:
    due = rule.due(handoff)
    assert due is not None  # followed
    if handoff.responded_at is not None and handoff.responded_at <= due:
        return _RESPONDED
    return _NONE if due <= now else _WAITING


def _shares(outcomes: Sequence[str]) -> dict[str, Any]:
    silent = outcomes.count(_NONE)
    decided = silent + outcomes.count(_RESPONDED)
    return {
        "handed_off": len(outcomes),
        "responded": outcomes.count(_RESPONDED),
        "no_response": silent,
        "waiting": outcomes.count(_WAITING),
        "share": None if decided == 0 else round(silent / decided, 4),
    }


def format_no_response(figures: Mapping[str, Any]) -> list[str]:
    """The figures as text lines (`leadsync sla`, `leadsync report`)."""
    out = [
        f"  no response within {figures['within_working_hours']:g} working h "
        f"({', '.join(figures['fields'])}): {_line(figures)}"
    ]
    if figures.get("deleted_by_sales"):
        out.append(
            f"    deleted by sales after the handoff (not counted): {figures['deleted_by_sales']}"
        )
    for row in figures["by_owner"]:
        out.append(f"    {owner_shown(row)[:30]:<31}{_line(row)}")
    for row in figures["by_period"]:
        out.append(f"    {row['period']:<31}{_line(row)}")
    return out


def _line(row: Mapping[str, Any]) -> str:
    share = "-" if row["share"] is None else f"{row['share']:.1%}"
    return (
        f"{share} ({row['no_response']} of {row['no_response'] + row['responded']}; "
        f"{row['waiting']} waiting)"
    )
