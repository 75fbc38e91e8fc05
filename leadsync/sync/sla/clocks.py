"""SLA clocks: when the lead definition's service levels start, stop and fall due. No I/O.

    SlaRules.of(definition)            the [sla] rules with their business calendars built
    rules.clock_changes(...)           what one lead's merge does to its clocks: the clocks its
                                       transitions start, and the running ones they (or a
                                       person's edit of a watched field) stop
    rules.breaches_at(clocks, now)     the names of the rules a lead is in breach of now: what
                                       the CRMs' `sla_breaches` flag holds

A clock starts when the lead enters the rule's `start` stage, at the transition's time, and is
due `within_hours` of working time later on the rule's calendar (in the lead's own zone where
the calendar names a field for it). It stops, met, when the lead reaches `stop` or a later
stage, or for a `stop_on_change` rule when one of those fields changes in a CRM after the
start; it stops, rejected, when the lead leaves for a `rejected_by` stage. A clock that stops
after it was due was breached and is resolved late.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from leadsync.mapping.calendar import BusinessCalendar
from leadsync.mapping.definition import LeadDefinition
from leadsync.mapping.lifecycle import Transition
from leadsync.mapping.sla_rules import ClockRule, SlaModel, VolumeRule, time_zone
from leadsync.sync.model import Snapshot

__all__ = [
    "Clock",
    "ClockChanges",
    "ClockStatus",
    "ClockStop",
    "Outcome",
    "SlaRules",
    "clock_id",
]


class ClockStatus(StrEnum):
    OPEN = "open"  # running, not yet due
    BREACHED = "breached"  # running past its due time
    MET = "met"  # stopped in time (met, or rejected with a reason)
    RESOLVED_LATE = "resolved_late"  # stopped after it was due: a breach, resolved

    @property
    def running(self) -> bool:
        return self in (ClockStatus.OPEN, ClockStatus.BREACHED)


class Outcome(StrEnum):
    MET = "met"  # the lead got where the rule wants it
    REJECTED = "rejected"  # the lead was recycled or disqualified, with a reason


@dataclass(frozen=True, slots=True)
class Clock:
    """One rule's clock for one lead, as the ledger keeps it."""

    clock_id: str
    rule: str
    lead_id: str
    started_at: datetime
    due_at: datetime
    time_zone: str
    owner: str | None = None
    status: ClockStatus = ClockStatus.OPEN
    stopped_at: datetime | None = None
    outcome: Outcome | None = None
    stop_reason: str = ""
    breached_at: datetime | None = None

    def status_at(self, now: datetime) -> ClockStatus:
        """The status as of `now`: a running clock past due is breached, recorded or not. A
        clock is due *at* `due_at`: met then is met in time."""
        if self.status is ClockStatus.OPEN and self.due_at < now:
            return ClockStatus.BREACHED
        return self.status


@dataclass(frozen=True, slots=True)
class ClockStop:
    clock_id: str
    at: datetime
    outcome: Outcome
    reason: str


@dataclass(frozen=True, slots=True)
class ClockChanges:
    """What one merge does to the ledger: clocks started, and running clocks stopped."""

    opened: tuple[Clock, ...] = ()
    stopped: tuple[ClockStop, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.opened or self.stopped)

    def running_after(self, running: Iterable[Clock]) -> list[Clock]:
        """The clocks still running once these changes are applied to `running`."""
        stopped = {stop.clock_id for stop in self.stopped}
        return [clock for clock in (*running, *self.opened) if clock.clock_id not in stopped]


def clock_id(rule: str, lead_id: str, started_at: datetime) -> str:
    """A clock's id, the same however often (or by whichever replica) it is computed."""
    key = f"{rule}\x1f{lead_id}\x1f{started_at.isoformat()}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class SlaRules:
    """The service levels of one lead definition, ready to run."""

    model: SlaModel
    calendars: Mapping[str, BusinessCalendar] = field(default_factory=dict)

    @classmethod
    def of(cls, definition: LeadDefinition) -> SlaRules | None:
        """The definition's service levels; None when it has no [sla] section."""
        if definition.sla is None:
            return None
        calendars = {name: model.calendar() for name, model in definition.sla.calendars.items()}
        return cls(definition.sla, calendars)

    @property
    def rules(self) -> Sequence[ClockRule]:
        return self.model.rules

    @property
    def volume(self) -> Sequence[VolumeRule]:
        return self.model.volume

    def calendar_for(
        self, rule: ClockRule | VolumeRule, values: Mapping[str, Any]
    ) -> BusinessCalendar:
        """The rule's calendar, kept in the lead's own zone (or its owner's) where the
        definition names one."""
        calendar = self.calendars[rule.calendar]
        owner = values.get(self.model.owner_field) if self.model.owner_field else None
        zone = self.model.calendars[rule.calendar].zone_for(values) or self.model.owner_zone(owner)
        return calendar if zone is None else calendar.with_zone(zone)

    def clock_changes(
        self,
        lead_id: str,
        values: Mapping[str, Any],
        transitions: Sequence[Transition],
        running: Sequence[Clock],
        snapshots: Mapping[str, Snapshot],
        *,
        held: frozenset[str] = frozenset(),
    ) -> ClockChanges:
        """The clocks `transitions` start and the running ones they stop, in order; then the
        `stop_on_change` clocks, running before this merge, whose fields a person changed
        after their start. Clocks that start at a stage in `held` are not started: they start
        at the handoff (`at_handoff`), when sales can see the lead."""
        by_rule = {rule.name: rule for rule in self.rules}
        live = {clock.rule: clock for clock in running if clock.rule in by_rule}
        opened: list[Clock] = []
        stopped: list[ClockStop] = []
        for move in transitions:
            for name, clock in list(live.items()):
                stop = _stop_for(by_rule[name], move)
                if stop is not None:
                    stopped.append(ClockStop(clock.clock_id, move.at, *stop))
                    del live[name]
            for rule in self.rules:
                if (
                    move.to_stage.value == rule.start
                    and rule.name not in live
                    and rule.start not in held
                ):
                    clock = self._start(rule, lead_id, values, move.at)
                    opened.append(clock)
                    live[rule.name] = clock
        # A clock started by this merge was started by these very snapshots: the edit that
        # made the lead an SAL is not the work the response clock waits for.
        already = {clock.clock_id for clock in running}
        for name, clock in live.items():
            if clock.clock_id not in already:
                continue
            change = _first_change(by_rule[name], clock, snapshots)
            if change is not None:
                stopped.append(ClockStop(clock.clock_id, change[0], Outcome.MET, change[1]))
        return ClockChanges(tuple(opened), tuple(stopped))

    def at_handoff(
        self,
        lead_id: str,
        values: Mapping[str, Any],
        stage: str,
        at: datetime,
        owner: str | None,
    ) -> ClockChanges:
        """The clocks that start at `stage`, started when the lead was handed off to sales,
        owned by who it went to."""
        return ClockChanges(
            tuple(
                self._start(rule, lead_id, values, at, owner=owner)
                for rule in self.rules
                if rule.start == stage
            )
        )

    def _start(
        self,
        rule: ClockRule,
        lead_id: str,
        values: Mapping[str, Any],
        at: datetime,
        *,
        owner: str | None = None,
    ) -> Clock:
        calendar = self.calendar_for(rule, values)
        if owner is None and self.model.owner_field:
            owner = values.get(self.model.owner_field)
        return Clock(
            clock_id=clock_id(rule.name, lead_id, at),
            rule=rule.name,
            lead_id=lead_id,
            started_at=at,
            due_at=calendar.add(at, rule.within),
            time_zone=str(calendar.zone),
            owner=None if owner is None or owner == "" else str(owner),
        )

    def working_hours(self, clock: Clock, start: datetime, end: datetime) -> float | None:
        """Working hours between two moments, by the calendar of `clock`."""
        calendar = self.calendar_of(clock)
        if calendar is None:
            return None
        return round(calendar.between(start, end).total_seconds() / 3600, 2)

    @property
    def names(self) -> tuple[str, ...]:
        """The clock rules' names: clocks of rules since removed are not judged any more."""
        return tuple(rule.name for rule in self.rules)

    def breaches_at(self, running: Iterable[Clock], now: datetime) -> tuple[str, ...]:
        """The rules whose running clocks are past due at `now`, by name."""
        names = set(self.names)
        return tuple(sorted({c.rule for c in running if c.due_at < now and c.rule in names}))

    def calendar_of(self, clock: Clock) -> BusinessCalendar | None:
        """The calendar a clock runs on, in the zone it was started in; None for a clock of
        a rule since removed."""
        rule = next((rule for rule in self.rules if rule.name == clock.rule), None)
        if rule is None:
            return None
        zone = time_zone(clock.time_zone)
        calendar = self.calendars[rule.calendar]
        return calendar if zone is None else calendar.with_zone(zone)


def _stop_for(rule: ClockRule, move: Transition) -> tuple[Outcome, str] | None:
    stage = move.to_stage.value
    if stage in rule.rejected_by:
        return Outcome.REJECTED, move.reason
    if rule.stops_at_stage(stage):
        return Outcome.MET, f"reached {stage}: {move.reason}"
    return None


def _first_change(
    rule: ClockRule, clock: Clock, snapshots: Mapping[str, Snapshot]
) -> tuple[datetime, str] | None:
    """The earliest edit of one of the rule's fields after the clock started, in any CRM."""
    changes = [
        (when, f"{name} changed in {snapshot.crm}")
        for name in rule.stop_on_change or ()
        for snapshot in snapshots.values()
        if (when := snapshot.changed_at.get(name)) is not None and when > clock.started_at
    ]
    return min(changes, default=None)
