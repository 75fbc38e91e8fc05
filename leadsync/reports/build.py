"""The whole report: funnel, SLA, score calibration and sync health, as one JSON-ready dict.

Its shape is stable for other tools: `schema` changes when a key is renamed or removed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from leadsync import __version__
from leadsync.mapping.definition import LeadDefinition
from leadsync.mapping.fields import FieldMap
from leadsync.reports import figures
from leadsync.reports.data import load
from leadsync.reports.revenue import revenue
from leadsync.runtime import Runtime
from leadsync.sync.sla.clocks import Clock, SlaRules
from leadsync.sync.sla.monitor import SlaMonitor
from leadsync.sync.sla.response import handed_off_within
from leadsync.sync.sla.speed import speed_to_lead
from leadsync.sync.store import Store

__all__ = ["SCHEMA", "SEGMENT_FIELD", "build_report", "mql_threshold", "report_for"]

SCHEMA = 1
# What the funnel is broken down by, when the mapping has it.
SEGMENT_FIELD = "lead_source"
Period = Literal["week", "month"]


def build_report(
    store: Store,
    field_map: FieldMap,
    definition: LeadDefinition,
    *,
    monitor: SlaMonitor | None,
    now: datetime,
    since: datetime | None = None,
    until: datetime | None = None,
    period: Period = "month",
    spend: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The report of the window [since, until) (until defaults to `now`); `spend` is the
    marketing spend per period, for CAC (leadsync has none of its own)."""
    end = until or now
    segment = SEGMENT_FIELD if SEGMENT_FIELD in field_map.fields else None
    data = load(store, segment_field=segment, since=since, until=end)
    rules = monitor.rules if monitor is not None else None

    def working_hours_late(clock: Clock, at: datetime) -> float | None:
        calendar = rules.calendar_of(clock) if rules is not None else None
        if calendar is None:
            return None
        return round(calendar.between(clock.due_at, at).total_seconds() / 3600, 2)

    # A report "from the start" shows every volume period since leadsync's first run.
    volume_since = since or store.run_log.first_started_at()
    volume = monitor.volume(now, since=volume_since) if monitor is not None else []
    names = store.handoffs.names()
    return {
        "schema": SCHEMA,
        "generator": f"leadsync {__version__}",
        "generated_at": now.isoformat(),
        "since": None if since is None else since.isoformat(),
        "until": end.isoformat(),
        "period": period,
        "model_version": definition.model_version,
        "segment_field": segment,
        "funnel": figures.funnel(data, since=since, until=end, period=period),
        "sla": figures.sla(
            data,
            rules=[(rule.name, rule.within_hours) for rule in (rules.rules if rules else [])],
            volume=volume,
            working_hours_late=working_hours_late,
            emails={lead.lead_id: lead.email for lead in data.leads},
            now=now,
            period=period,
            names=names,
        ),
        "calibration": figures.calibration(
            data,
            since=since,
            until=end,
            grades=[grade.grade for grade in definition.scoring.grades],
            mql_threshold=mql_threshold(definition),
        ),
        "revenue": revenue(
            data,
            since=since,
            until=end,
            period=period,
            grades=[grade.grade for grade in definition.scoring.grades],
            spend=spend,
        ),
        "health": figures.health(data),
        "speed_to_lead": _speed(store, definition, data.clocks, rules, since, end, names),
        "no_response": handed_off_within(
            store.handoffs,
            rules,
            definition.handoff.stage if definition.handoff else None,
            now=now,
            since=since,
            until=end,
            period=period,
        ),
    }


def _speed(
    store: Store,
    definition: LeadDefinition,
    clocks: Sequence[Clock],
    rules: SlaRules | None,
    since: datetime | None,
    until: datetime,
    names: Mapping[str, str],
) -> dict[str, Any] | None:
    """Speed to lead, split, of the leads that reached the handoff stage in the window."""
    handoff = definition.handoff
    if handoff is None or rules is None:
        return None
    return speed_to_lead(
        [
            h
            for h in store.handoffs.all()
            if (since is None or h.eligible_at >= since) and h.eligible_at < until
        ],
        clocks,
        acceptance_rules=[rule.name for rule in rules.rules if rule.start == handoff.stage],
        working_hours=rules.working_hours,
        names=names,
    )


def report_for(
    runtime: Runtime,
    *,
    now: datetime,
    since: datetime | None = None,
    until: datetime | None = None,
    period: Period = "month",
    spend: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The report of a runtime's store, mapping, definition and SLA monitor."""
    return build_report(
        runtime.store,
        runtime.field_map,
        runtime.definition,
        monitor=runtime.sla_monitor(),
        now=now,
        since=since,
        until=until,
        period=period,
        spend=spend,
    )


def mql_threshold(definition: LeadDefinition) -> float | None:
    """The score an MQL needs, when the MQL criteria require one (`score >= N`)."""
    criteria = definition.lifecycle.stages.mql
    for condition in criteria.all:
        if condition.field == "score" and condition.gte is not None:
            return condition.gte
        if condition.field == "score" and condition.gt is not None:
            return condition.gt
    return None
