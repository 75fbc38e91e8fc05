"""The report's numbers, computed from `ReportData`: no I/O.

funnel       the leads that entered within the window: how many reached each stage (or a
             later one), stage-to-stage and cumulative conversion, median and 90th
             percentile time in each stage, the same by period of entry and by segment
sla          compliance per rule, per owner and per period; breaches still open; volume
calibration  conversion to SQL and to opportunity by score band and by grade
health       runs by kind and outcome, records pulled and written, errors by category,
             quarantine by reason, the API quota the CRMs last reported
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from leadsync.mapping.lifecycle import FORWARD, Stage
from leadsync.reports.data import LeadFacts, ReportData
from leadsync.sync.sla.clocks import Clock, ClockStatus
from leadsync.sync.sla.report import compliance
from leadsync.sync.sla.response import period_of
from leadsync.sync.sla.speed import percentile
from leadsync.sync.sla.volume import VolumePeriod

__all__ = ["BANDS", "calibration", "funnel", "health", "period_of", "sla"]

Period = Literal["week", "month"]
FUNNEL: tuple[str, ...] = tuple(stage.value for stage in FORWARD)
EXITS: tuple[str, ...] = (Stage.RECYCLED.value, Stage.DISQUALIFIED.value)
BANDS: tuple[tuple[int, int], ...] = ((0, 19), (20, 39), (40, 59), (60, 79), (80, 100))
_NO_SEGMENT = "(none)"


def _in_window(moment: datetime | None, since: datetime | None, until: datetime) -> bool:
    return moment is not None and (since is None or moment >= since) and moment < until


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


# ------------------------------------------------------------------------------ the funnel


def furthest(lead: LeadFacts) -> int:
    """The index in FUNNEL of the furthest forward stage the lead ever entered (-1: none)."""
    reached = [
        FUNNEL.index(move.to_stage.value) for move in lead.history if move.to_stage in FORWARD
    ]
    return max(reached, default=-1)


def _reached(leads: Iterable[LeadFacts]) -> dict[str, int]:
    counts = Counter(furthest(lead) for lead in leads)
    return {
        stage: sum(n for index, n in counts.items() if index >= at)
        for at, stage in enumerate(FUNNEL)
    }


def _conversion(reached: Mapping[str, int]) -> list[dict[str, Any]]:
    top = reached[FUNNEL[0]]
    return [
        {
            "from": earlier,
            "to": later,
            "rate": _rate(reached[later], reached[earlier]),
            "cumulative": _rate(reached[later], top),
        }
        for earlier, later in itertools.pairwise(FUNNEL)
    ]


def _time_in_stage(leads: Iterable[LeadFacts]) -> dict[str, dict[str, Any]]:
    """Hours from entering a stage to leaving it, for each stay that has ended. A lead that
    entered and left a stage in one sync run passed through it: leadsync saw no time spent
    there, so such stays are counted apart, not as zero hours."""
    stays: dict[str, list[float]] = defaultdict(list)
    passed: Counter[str] = Counter()
    for lead in leads:
        for move, following in itertools.pairwise(lead.history):
            stage = move.to_stage.value
            if following.at == move.at:
                passed[stage] += 1
                continue
            stays[stage].append((following.at - move.at).total_seconds() / 3600)
    return {
        stage: {
            "stays": len(stays[stage]),
            "passed_through": passed[stage],
            "median_hours": percentile(stays[stage], 0.5),
            "p90_hours": percentile(stays[stage], 0.9),
        }
        for stage in (*FUNNEL[:-1], *EXITS)
    }


def funnel(
    data: ReportData, *, since: datetime | None, until: datetime, period: Period
) -> dict[str, Any]:
    cohort = [lead for lead in data.leads if _in_window(lead.entered_at, since, until)]
    reached = _reached(cohort)
    current = Counter(lead.stage or "none" for lead in cohort)
    by_period: dict[str, list[LeadFacts]] = defaultdict(list)
    by_segment: dict[str, list[LeadFacts]] = defaultdict(list)
    for lead in cohort:
        assert lead.entered_at is not None  # in the window
        by_period[period_of(lead.entered_at, period)].append(lead)
        segment = lead.segment if lead.segment not in (None, "") else _NO_SEGMENT
        by_segment[str(segment)].append(lead)
    return {
        "leads": len(cohort),
        "current": {stage: current.get(stage, 0) for stage in (*FUNNEL, *EXITS)},
        "reached": reached,
        "conversion": _conversion(reached),
        "time_in_stage": _time_in_stage(cohort),
        "by_period": [_group("period", key, by_period[key]) for key in sorted(by_period)],
        "by_segment": [
            _group("segment", key, leads)
            for key, leads in sorted(by_segment.items(), key=lambda item: (-len(item[1]), item[0]))
        ],
    }


def _group(name: str, key: str, leads: Sequence[LeadFacts]) -> dict[str, Any]:
    reached = _reached(leads)
    return {
        name: key,
        "leads": len(leads),
        "reached": reached,
        "to_mql": _rate(reached["mql"], reached["lead"]),
        "to_sql": _rate(reached["sql"], reached["lead"]),
        "to_customer": _rate(reached["customer"], reached["lead"]),
    }


# ------------------------------------------------------------------------------ SLA


def sla(
    data: ReportData,
    *,
    rules: Sequence[tuple[str, float]],
    volume: Sequence[VolumePeriod],
    working_hours_late: Callable[[Clock, datetime], float | None],
    emails: Mapping[str, Any],
    now: datetime,
    period: Period,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`rules` are (name, within_hours) of the definition's clock rules; `names` the owners'
    names by id, where the store knows them (rows carry both)."""
    names = names or {}
    by_rule: dict[str, list[Clock]] = defaultdict(list)
    for clock in data.clocks:
        by_rule[clock.rule].append(clock)
    owners: dict[tuple[str, str], list[Clock]] = defaultdict(list)
    periods: dict[tuple[str, str], list[Clock]] = defaultdict(list)
    for clock in data.clocks:
        owners[(clock.rule, clock.owner or _NO_SEGMENT)].append(clock)
        periods[(period_of(clock.started_at, period), clock.rule)].append(clock)
    breaches = sorted(
        (clock for clock in data.clocks if clock.status_at(now) is ClockStatus.BREACHED),
        key=lambda clock: (clock.due_at, clock.rule, clock.lead_id),
    )
    return {
        "rules": [
            {"rule": name, "within_hours": within, **compliance(by_rule.get(name, []), now)}
            for name, within in rules
        ],
        "by_owner": [
            {"rule": rule, "owner": owner, "name": names.get(owner), **compliance(clocks, now)}
            for (rule, owner), clocks in sorted(owners.items())
        ],
        "over_time": [
            {"period": key, "rule": rule, **compliance(clocks, now)}
            for (key, rule), clocks in sorted(periods.items())
        ],
        "open_breaches": [
            {
                "rule": clock.rule,
                "lead_id": clock.lead_id,
                "email": emails.get(clock.lead_id),
                "owner": clock.owner,
                "owner_name": names.get(clock.owner) if clock.owner else None,
                "started_at": clock.started_at.isoformat(),
                "due_at": clock.due_at.isoformat(),
                "working_hours_late": working_hours_late(clock, now),
            }
            for clock in breaches
        ],
        "volume": [period_figures.as_dict() for period_figures in volume],
    }


# ------------------------------------------------------------------------------ calibration


def _outcomes(leads: Sequence[LeadFacts]) -> dict[str, Any]:
    sql = sum(1 for lead in leads if furthest(lead) >= FUNNEL.index("sql"))
    opportunity = sum(1 for lead in leads if furthest(lead) >= FUNNEL.index("opportunity"))
    return {
        "leads": len(leads),
        "reached_sql": sql,
        "reached_opportunity": opportunity,
        "sql_rate": _rate(sql, len(leads)),
        "opportunity_rate": _rate(opportunity, len(leads)),
    }


def calibration(
    data: ReportData,
    *,
    since: datetime | None,
    until: datetime,
    grades: Sequence[str],
    mql_threshold: float | None,
) -> dict[str, Any]:
    """Leads that entered within the window, by their current score band and grade: did the
    higher scores go further? (A lead's score is its latest: engagement decays.)"""
    scored = [
        lead
        for lead in data.leads
        if lead.score is not None and _in_window(lead.entered_at, since, until)
    ]
    bands = []
    for low, high in BANDS:
        inside = [lead for lead in scored if low <= (lead.score or 0) <= high]
        bands.append({"band": f"{low}-{high}", "low": low, "high": high, **_outcomes(inside)})
    above = [
        lead for lead in scored if mql_threshold is not None and (lead.score or 0) >= mql_threshold
    ]
    below = [
        lead for lead in scored if mql_threshold is not None and (lead.score or 0) < mql_threshold
    ]
    return {
        "scored_leads": len(scored),
        "mql_threshold": mql_threshold,
        "bands": bands,
        "grades": [
            {"grade": grade, **_outcomes([lead for lead in scored if lead.grade == grade])}
            for grade in grades
        ],
        "threshold": None
        if mql_threshold is None
        else {"at_or_above": _outcomes(above), "below": _outcomes(below)},
    }


# ------------------------------------------------------------------------------ sync health

# Quarantine reasons, grouped: "no email", "cannot read annual_revenue", "write refused by
# salesforce: INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST".
_REASON = re.compile(r"^(no \w+|invalid \w+|cannot read \w+|write refused by \w+: \w+)")


def health(data: ReportData) -> dict[str, Any]:
    runs: dict[str, Counter[str]] = defaultdict(Counter)
    pulled: Counter[str] = Counter()
    written: Counter[str] = Counter()
    failed_runs = 0
    for run in data.runs:
        runs[run.kind][run.status] += 1
        failed_runs += run.status == "failed"
        for crm, counts in run.summary.get("crms", {}).items():
            pulled[crm] += int(counts.get("pulled", 0))
            written[crm] += int(counts.get("written", 0))
    reasons = Counter(
        (found.group(1) if (found := _REASON.match(reason)) else reason.split(":")[0])
        for reason in data.quarantine_reasons
    )
    errors = dict(data.write_errors)
    if failed_runs:
        errors["runs failed"] = failed_runs
    last_quota: dict[str, Any] = next(
        (run.summary["api_quota"] for run in reversed(data.runs) if run.summary.get("api_quota")),
        {},
    )
    good = [run for run in data.runs if run.kind == "sync" and run.status == "succeeded"]
    return {
        "runs": {kind: dict(sorted(counts.items())) for kind, counts in sorted(runs.items())},
        "records_pulled": dict(sorted(pulled.items())),
        "records_written": dict(sorted(written.items())),
        "errors": [{"category": key, "count": count} for key, count in errors.items()],
        "quarantine": {
            "open": len(data.quarantine_reasons),
            "by_reason": [
                {"reason": reason, "count": count}
                for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
            ],
        },
        "api_quota": last_quota,
        "last_good_sync": None
        if not good or good[-1].finished_at is None
        else good[-1].finished_at.isoformat(),
    }
