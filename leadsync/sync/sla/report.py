"""What `leadsync sla` shows: the clocks as of now, compliance per rule, volume against plan.

A clock's status is read as of `now`: a running clock past due shows as breached even before a
check has recorded it. Compliance counts the clocks that are decided: met (or rejected) in
time, against those resolved late and those still running past due.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from leadsync.sync.handoff_ledger import Handoff
from leadsync.sync.sla.clocks import Clock, ClockStatus, Outcome, SlaRules
from leadsync.sync.sla.ledger import SlaLedger
from leadsync.sync.sla.monitor import SlaMonitor
from leadsync.sync.sla.response import NoResponseRule, format_no_response, no_response
from leadsync.sync.sla.speed import format_speed, speed_to_lead
from leadsync.sync.sla.volume import VolumePeriod

__all__ = ["ClockLine", "Only", "RuleFigures", "SlaView", "format_sla", "sla_view"]

Only = Literal["open", "breached"]
_BREACHES = (ClockStatus.BREACHED, ClockStatus.RESOLVED_LATE)


@dataclass(frozen=True, slots=True)
class ClockLine:
    clock: Clock
    status: ClockStatus  # as of the view's `now`
    email: str | None
    # The owner's name, where the store knows it (the CRM named them at a handoff).
    owner_name: str | None
    # Working time past due (breaches), or left before due (running, in time).
    late_by: timedelta | None
    left: timedelta | None

    def as_dict(self) -> dict[str, Any]:
        clock = self.clock
        return {
            "clock_id": clock.clock_id,
            "rule": clock.rule,
            "lead_id": clock.lead_id,
            "email": self.email,
            "owner": clock.owner,
            "owner_name": self.owner_name,
            "time_zone": clock.time_zone,
            "started_at": clock.started_at.isoformat(),
            "due_at": clock.due_at.isoformat(),
            "status": self.status.value,
            "stopped_at": None if clock.stopped_at is None else clock.stopped_at.isoformat(),
            "outcome": None if clock.outcome is None else clock.outcome.value,
            "stop_reason": clock.stop_reason or None,
            "working_hours_late": _hours(self.late_by),
            "working_hours_left": _hours(self.left),
        }


@dataclass(frozen=True, slots=True)
class RuleFigures:
    rule: str
    within_hours: float
    started: int
    met: int  # in time, rejections included
    rejected: int
    resolved_late: int
    breached_open: int
    running: int  # open and not yet due

    @property
    def compliance(self) -> float | None:
        decided = self.met + self.resolved_late + self.breached_open
        return None if decided == 0 else self.met / decided

    def as_dict(self) -> dict[str, Any]:
        compliance = self.compliance
        return {
            "rule": self.rule,
            "within_working_hours": self.within_hours,
            "started": self.started,
            "met": self.met,
            "rejected": self.rejected,
            "resolved_late": self.resolved_late,
            "breached_open": self.breached_open,
            "running": self.running,
            "compliance": None if compliance is None else round(compliance, 4),
        }


@dataclass(frozen=True, slots=True)
class SlaView:
    now: datetime
    clocks: tuple[ClockLine, ...]
    rules: tuple[RuleFigures, ...]
    volume: tuple[VolumePeriod, ...]
    # The handoff's speed to lead, split (leadsync.sync.sla.speed); None without a handoff.
    speed: dict[str, Any] | None = None
    # No response after handoff (leadsync.sync.sla.response); None without a handoff.
    no_response: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.now.isoformat(),
            "rules": [figures.as_dict() for figures in self.rules],
            "volume": [period.as_dict() for period in self.volume],
            "speed_to_lead": self.speed,
            "no_response": self.no_response,
            "clocks": [line.as_dict() for line in self.clocks],
        }


def sla_view(
    ledger: SlaLedger,
    monitor: SlaMonitor,
    emails: Callable[[Sequence[str]], Mapping[str, str | None]],
    *,
    now: datetime,
    since: datetime | None = None,
    only: Only | None = None,
    handoffs: Sequence[Handoff] | None = None,
    handoff_stage: str | None = None,
    owner_names: Mapping[str, str] | None = None,
) -> SlaView:
    """The ledger as of `now`: clocks started since `since` (all when None), narrowed to the
    running ones (`open`) or the breaches (`breached`); figures over all clocks since.
    `emails(lead_ids)` gives the leads' emails, to show who each clock is about; with the
    `handoffs`, the speed to lead and no response after handoff (per ISO week), owners
    named by `owner_names` where it knows them."""
    rules = monitor.rules
    clocks = ledger.clocks(since=since)
    found = emails(sorted({clock.lead_id for clock in clocks}))
    names = owner_names or {}
    lines = [_line(clock, rules, found, names, now) for clock in clocks]
    figures = tuple(_figures(rule.name, rule.within_hours, clocks, now) for rule in rules.rules)
    if only == "breached":
        lines = [line for line in lines if line.status in _BREACHES]
    elif only == "open":
        lines = [line for line in lines if line.status.running]
    speed = silent = None
    if handoffs is not None and handoff_stage is not None:
        response = NoResponseRule.of(rules, handoff_stage)
        if response is not None:
            silent = no_response(
                [h for h in handoffs if since is None or _handed_off_since(h, since)],
                response,
                now=now,
                period="week",
                names=owner_names,
            )
        speed = speed_to_lead(
            [h for h in handoffs if since is None or h.eligible_at >= since],
            clocks,
            acceptance_rules=[r.name for r in rules.rules if r.start == handoff_stage],
            working_hours=rules.working_hours,
            names=names,
        )
    volume = tuple(monitor.volume(now, since=since))
    return SlaView(now, tuple(lines), figures, volume, speed, silent)


def _handed_off_since(handoff: Handoff, since: datetime) -> bool:
    return handoff.handed_off_at is not None and handoff.handed_off_at >= since


def _line(
    clock: Clock,
    rules: SlaRules,
    emails: Mapping[str, str | None],
    names: Mapping[str, str],
    now: datetime,
) -> ClockLine:
    status = clock.status_at(now)
    calendar = rules.calendar_of(clock)
    late_by = left = None
    if calendar is not None:
        end = clock.stopped_at or now
        if status in _BREACHES:
            late_by = calendar.between(clock.due_at, end)
        elif status is ClockStatus.OPEN:
            left = calendar.between(now, clock.due_at)
    owner_name = names.get(clock.owner) if clock.owner else None
    return ClockLine(clock, status, emails.get(clock.lead_id), owner_name, late_by, left)


def compliance(clocks: Sequence[Clock], now: datetime) -> dict[str, Any]:
    """How `clocks` stand at `now`: started, met in time (rejections among them), resolved
    late, breached and still open, running in time; decided = met + late + breached, and the
    compliance, met of decided (None when nothing is decided)."""
    statuses = Counter(clock.status_at(now) for clock in clocks)
    met = statuses[ClockStatus.MET]
    decided = met + statuses[ClockStatus.RESOLVED_LATE] + statuses[ClockStatus.BREACHED]
    return {
        "started": len(clocks),
        "met": met,
        "rejected": sum(
            1
            for clock in clocks
            if clock.status_at(now) is ClockStatus.MET and clock.outcome is Outcome.REJECTED
        ),
        "resolved_late": statuses[ClockStatus.RESOLVED_LATE],
        "breached_open": statuses[ClockStatus.BREACHED],
        "running": statuses[ClockStatus.OPEN],
        "decided": decided,
        "compliance": None if decided == 0 else round(met / decided, 4),
    }


def _figures(rule: str, within: float, clocks: Sequence[Clock], now: datetime) -> RuleFigures:
    figures = compliance([clock for clock in clocks if clock.rule == rule], now)
    return RuleFigures(
        rule=rule,
        within_hours=within,
        started=figures["started"],
        met=figures["met"],
        rejected=figures["rejected"],
        resolved_late=figures["resolved_late"],
        breached_open=figures["breached_open"],
        running=figures["running"],
    )


def format_sla(view: SlaView, *, limit: int = 50) -> str:
    """The view as text for a terminal: figures per rule, volume, then the clocks."""
    out = [f"SLA ledger as of {_time(view.now)}", "", "Clocks per rule"]
    out.append(
        f"  {'rule':<22}{'within':>8}{'started':>9}{'met':>6}{'late':>6}"
        f"{'breached':>10}{'running':>9}{'compliance':>12}"
    )
    for f in view.rules:
        share = "-" if f.compliance is None else f"{f.compliance:.1%}"
        out.append(
            f"  {f.rule:<22}{f.within_hours:>7g}h{f.started:>9}{f.met:>6}{f.resolved_late:>6}"
            f"{f.breached_open:>10}{f.running:>9}{share:>12}"
        )
    if view.volume:
        out += ["", "Volume against plan"]
        for period in view.volume:
            segment = period.segment or "overall"
            out.append(
                f"  {period.rule:<22}{segment:<16}{period.start.date().isoformat():>11}"
                f"  {period.delivered:>4} of {period.target:<4} "
                f"(pace {period.expected:.1f})  {period.status.value}"
            )
    if view.speed is not None:
        out += ["", "Speed to lead (the handoff)"]
        out += format_speed(view.speed)
    if view.no_response is not None:
        out += ["", "No response after handoff (per owner, per week of the handoff)"]
        out += format_no_response(view.no_response)
    out += ["", f"Clocks ({len(view.clocks)})"]
    if view.clocks:
        out.append(
            f"  {'rule':<18}{'lead':<32}{'owner':<20}{'started':<18}{'due':<18}{'status':<14}note"
        )
    for line in view.clocks[:limit]:
        clock = line.clock
        note = ""
        if line.late_by is not None:
            note = f"{_hours(line.late_by)} working h late"
        elif line.left is not None:
            note = f"{_hours(line.left)} working h left"
        if clock.stop_reason:
            note = f"{note}; {clock.stop_reason}" if note else clock.stop_reason
        out.append(
            f"  {clock.rule:<18}{(line.email or clock.lead_id)[:31]:<32}"
            f"{(line.owner_name or clock.owner or '-')[:19]:<20}{_time(clock.started_at):<18}"
            f"{_time(clock.due_at):<18}{line.status.value:<14}{note}"
        )
    if len(view.clocks) > limit:
        out.append(f"  ... and {len(view.clocks) - limit} more (--json lists them all)")
    return "\n".join(out)


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def _hours(span: timedelta | None) -> float | None:
    return None if span is None else round(span.total_seconds() / 3600, 2)
