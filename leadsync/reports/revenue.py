"""Revenue figures, from the store: what the opportunities converted leads became say about
the funnel and the score. No CRM is called.

    conversion   lead -> opportunity, by period of entry and by source
    outcomes     win rate and average won amount, by score band and by grade: does the score
                 predict revenue, not only SQLs? (a lead's score is its latest)
    velocity     per period of opportunity creation: opportunities x win rate x average won
                 amount / average cycle (days from created to close of the won ones), a day
    time_to      days from MQL to opportunity and to won (customer), from the leads' history
    cac          spend / new customers per period, when a spend table is given: leadsync has
                 no spend data of its own
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from leadsync.errors import ConfigError
from leadsync.mapping.lifecycle import Stage
from leadsync.problems import ConfigProblem
from leadsync.reports.data import LeadFacts, OpportunityFacts, ReportData
from leadsync.reports.figures import BANDS, Period, _rate, period_of
from leadsync.sync.sla.speed import percentile

__all__ = ["NO_SPEND", "read_spend", "revenue"]

NO_SPEND = (
    "leadsync has no marketing spend data, so no CAC: give a spend table "
    "(`leadsync report --spend FILE.csv`, columns period,spend) to compute it"
)
_NO_SOURCE = "(none)"


@dataclass(frozen=True, slots=True)
class _Person:
    lead: LeadFacts
    opportunity: OpportunityFacts | None


def revenue(
    data: ReportData,
    *,
    since: datetime | None,
    until: datetime,
    period: Period,
    grades: Sequence[str],
    spend: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The revenue section of the report: leads that entered in [since, until)."""
    people = [
        _Person(lead, data.opportunities.get(lead.lead_id))
        for lead in data.leads
        if lead.entered_at is not None
        and (since is None or lead.entered_at >= since)
        and lead.entered_at < until
    ]
    return {
        "opportunities": sum(p.opportunity is not None for p in people),
        "conversion": {
            "by_period": _conversion(people, lambda p: period_of(p.lead.entered_at, period)),  # type: ignore[arg-type]
            "by_source": _conversion(people, lambda p: str(p.lead.segment or _NO_SOURCE)),
        },
        "outcomes": {
            "by_band": [
                {"band": f"{low}-{high}", **_outcomes(p for p in people if _in(p, low, high))}
                for low, high in BANDS
            ],
            "by_grade": [
                {"grade": grade, **_outcomes(p for p in people if p.lead.grade == grade)}
                for grade in grades
            ],
        },
        "velocity": _velocity(people, period),
        "time_to": {
            "opportunity": _days_between(people, Stage.MQL, Stage.OPPORTUNITY),
            "won": _days_between(people, Stage.MQL, Stage.CUSTOMER),
        },
        "cac": _cac(people, period, spend),
    }


def _in(person: _Person, low: int, high: int) -> bool:
    return person.lead.score is not None and low <= person.lead.score <= high


def _conversion(people: Sequence[_Person], key: Callable[[_Person], str]) -> list[dict[str, Any]]:
    groups: dict[str, list[_Person]] = {}
    for person in people:
        groups.setdefault(key(person), []).append(person)
    rows = []
    for name in sorted(groups):
        members = groups[name]
        converted = sum(p.opportunity is not None for p in members)
        rows.append(
            {
                "key": name,
                "leads": len(members),
                "opportunities": converted,
                "rate": _rate(converted, len(members)),
            }
        )
    return rows


def _outcomes(people: Any) -> dict[str, Any]:
    closed = [p.opportunity for p in people if p.opportunity is not None and p.opportunity.closed]
    won = [o for o in closed if o.won]
    amounts = [o.amount for o in won if o.amount is not None]
    return {
        "closed": len(closed),
        "won": len(won),
        "win_rate": _rate(len(won), len(closed)),
        "average_won_amount": round(sum(amounts) / len(amounts), 2) if amounts else None,
    }


def _velocity(people: Sequence[_Person], period: Period) -> list[dict[str, Any]]:
    """Per period the opportunities were created in: pipeline velocity, in money a day."""
    groups: dict[str, list[OpportunityFacts]] = {}
    for person in people:
        opportunity = person.opportunity
        if opportunity is not None and opportunity.created_at is not None:
            groups.setdefault(period_of(opportunity.created_at, period), []).append(opportunity)
    rows = []
    for name in sorted(groups):
        found = groups[name]
        outcome = _outcomes(_Person(_NOBODY, o) for o in found)
        cycles = [
            (datetime.combine(o.close_date, time(), UTC) - o.created_at).total_seconds() / 86_400
            for o in found
            if o.won and o.close_date is not None and o.created_at is not None
        ]
        cycle = round(sum(cycles) / len(cycles), 2) if cycles else None
        win_rate, amount = outcome["win_rate"], outcome["average_won_amount"]
        velocity = None
        if win_rate is not None and amount is not None and cycle:
            velocity = round(len(found) * win_rate * amount / max(cycle, 1.0), 2)
        rows.append(
            {
                "period": name,
                "opportunities": len(found),
                "win_rate": win_rate,
                "average_won_amount": amount,
                "cycle_days": cycle,
                "velocity_per_day": velocity,
            }
        )
    return rows


_NOBODY = LeadFacts("", None, None, None, None)


def _days_between(people: Sequence[_Person], start: Stage, end: Stage) -> dict[str, Any]:
    days = []
    for person in people:
        began = _first(person.lead, start)
        reached = _first(person.lead, end)
        if began is not None and reached is not None and reached >= began:
            days.append((reached - began).total_seconds() / 86_400)
    return {
        "leads": len(days),
        "median_days": percentile(days, 0.5),
        "p90_days": percentile(days, 0.9),
    }


def _first(lead: LeadFacts, stage: Stage) -> datetime | None:
    return next((t.at for t in lead.history if t.to_stage is stage), None)


def _cac(
    people: Sequence[_Person], period: Period, spend: Mapping[str, float] | None
) -> dict[str, Any]:
    if spend is None:
        return {"spend_known": False, "note": NO_SPEND, "periods": []}
    customers: dict[str, int] = {}
    for person in people:
        opportunity = person.opportunity
        if opportunity is not None and opportunity.won and opportunity.close_date is not None:
            moment = datetime.combine(opportunity.close_date, time(), UTC)
            key = period_of(moment, period)
            customers[key] = customers.get(key, 0) + 1
    rows = []
    for name in sorted(set(spend) | set(customers)):
        won = customers.get(name, 0)
        money = spend.get(name)
        rows.append(
            {
                "period": name,
                "spend": money,
                "new_customers": won,
                "cac": None if money is None or not won else round(money / won, 2),
            }
        )
    return {"spend_known": True, "note": "", "periods": rows}


_PERIOD_SHAPES = {
    "month": re.compile(r"\d{4}-(0[1-9]|1[0-2])"),
    "week": re.compile(r"\d{4}-W\d{2}"),
}
_PERIOD_EXAMPLES = {"month": "2026-06", "week": "2026-W23"}


def read_spend(path: Path, *, period: Period = "month") -> dict[str, float]:
    """A spend table: a CSV with the columns `period` (as the report names periods: 2026-06
    or 2026-W23) and `spend`. Mistakes are a ConfigError naming the file and line; so is a
    period of another length than the report's `period` (it would match no period of the
    report, and show 0 new customers beside its spend)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([ConfigProblem(str(path), "", f"cannot read it: {error}")]) from None
    rows = csv.DictReader(text.splitlines())
    if rows.fieldnames is None or not {"period", "spend"} <= set(rows.fieldnames):
        raise ConfigError([ConfigProblem(str(path), "", "needs the columns period,spend", 1)])
    spend: dict[str, float] = {}
    problems = []
    for line, row in enumerate(rows, start=2):
        name = str(row["period"]).strip()
        problem = _period_problem(name, period)
        if problem:
            problems.append(ConfigProblem(str(path), "period", problem, line))
        try:
            spend[name] = float(row["spend"])
        except (TypeError, ValueError):
            problems.append(ConfigProblem(str(path), "spend", "not a number", line))
    if problems:
        raise ConfigError(problems)
    return spend


def _period_problem(name: str, period: Period) -> str:
    """Why `name` names no period of a report by `period`, or ""."""
    if _PERIOD_SHAPES[period].fullmatch(name):
        return ""
    other: Period = "week" if period == "month" else "month"
    if _PERIOD_SHAPES[other].fullmatch(name):
        return (
            f"{name!r} is a {other}, and the report is by {period} (--period {period}): give "
            f"spend per {period} ({_PERIOD_EXAMPLES[period]}) or run with --period {other}"
        )
    return f"{name!r} is not a {period} as the report names them ({_PERIOD_EXAMPLES[period]})"
