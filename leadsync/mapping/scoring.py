"""Scoring a canonical lead: fit plus engagement, capped, decayed, clamped and graded, with reasons.

Every number is whole except the decay factor, so rounding happens exactly once: decayed
engagement is rounded half up to an integer. Each reason that changes the score starts with
its signed points ("+20 employees ≥ 200", "-5 capped title at 20", "-6 decay since last
activity on 2024-05-01"), and those points add up to the total exactly; a reason without points
is a note ("no decay: ..."). Fit may be negative; the total is clamped to [0, max_score], and
the clamp is a reason too.

A score is written to both CRMs, so it must not change while nothing a person would care about
changed: reasons name dates, never "N days ago", and with a decay `step` of N points what decay
takes off moves in whole steps of N (all of it once the exact figure reaches 0). Where the
whole step would leave the score on the other side of a threshold than the exact figure (a
grade, a lifecycle criterion on the score or engagement), decay takes the next whole step
instead, so the threshold is crossed when it is crossed, and still only in steps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from leadsync.mapping.definition import (
    Condition,
    Criteria,
    Decay,
    Grade,
    LeadDefinition,
    Test,
)

__all__ = ["Score", "score_lead"]


@dataclass(frozen=True)
class Score:
    """A lead's score under one model version. `fit` and `engagement` are after their caps
    (and decay), before the total is clamped."""

    total: int
    fit: int
    engagement: int
    grade: str
    reasons: tuple[str, ...]
    model_version: str


@dataclass
class _Tally:
    """Points with the reasons that explain them."""

    points: int = 0
    reasons: list[str] = field(default_factory=list)

    def add(self, points: int, text: str) -> None:
        self.points += points
        self.reasons.append(f"{points:+d} {text}")

    def note(self, text: str) -> None:
        self.reasons.append(text)

    def cap(self, limit: int | None, what: str) -> None:
        if limit is not None and self.points > limit:
            self.add(limit - self.points, f"capped {what} at {limit}")


def score_lead(
    lead: Mapping[str, Any],
    definition: LeadDefinition,
    *,
    now: datetime,
    recorded_by: datetime | None = None,
) -> Score:
    """Score `lead` (canonical field -> value) under `definition`, as of `now` (aware).

    `recorded_by` is when the lead's CRM records were last modified: an activity dated after
    it (a typo, a bad import: 2099) is taken as of then, so decay runs from there instead of
    being off until that date."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    model = definition.compiled(_compile)
    fit = _fit(lead, model)
    engagement = _engagement(lead, model)
    decay = model.decay
    if decay is not None and engagement.points > 0:
        _decay(engagement, fit.points, lead, decay, now, model, recorded_by)
    total = _total(fit.points, engagement.points, model.max_score)
    return Score(
        total=total.points,
        fit=fit.points,
        engagement=engagement.points,
        grade=_grade(total.points, model.grades),
        reasons=(*fit.reasons, *engagement.reasons, *total.reasons),
        model_version=definition.model_version,
    )


class _Rule(NamedTuple):
    """A fit rule that gives points, compiled once per definition."""

    holds: Test
    points: int
    group: str | None
    reason: str  # its reason, points included: "+20 employees ≥ 200"


class _Model(NamedTuple):
    """What scoring a lead needs of the definition, looked up once."""

    rules: tuple[_Rule, ...]
    group_caps: Mapping[str, int]
    fit_cap: int | None
    signals: tuple[tuple[str, int, int | None, str], ...]  # field, points, cap, label
    engagement_cap: int | None
    decay: Decay | None
    max_score: int
    grades: tuple[Grade, ...]
    # The lifecycle conditions on the score or the engagement, which decay moves.
    thresholds: tuple[Test, ...]


def _compile(definition: LeadDefinition) -> _Model:
    scoring = definition.scoring
    fit = scoring.fit
    engagement = scoring.engagement
    return _Model(
        # A rule of no points changes nothing: not even tested.
        rules=tuple(
            _Rule(rule.compile(), rule.points, rule.group, f"{rule.points:+d} {rule.reason_label}")
            for rule in fit.rules
            if rule.points != 0
        ),
        group_caps={name: group.cap for name, group in fit.groups.items()},
        fit_cap=fit.cap,
        signals=tuple(
            (signal.field, signal.points, signal.cap, signal.reason_label)
            for signal in engagement.signals
        ),
        engagement_cap=engagement.cap,
        decay=engagement.decay,
        max_score=scoring.max_score,
        grades=tuple(scoring.grades),
        thresholds=tuple(condition.compile() for condition in _score_conditions(definition)),
    )


def _total(fit: int, engagement: int, max_score: int) -> _Tally:
    total = _Tally(fit + engagement)
    total.cap(max_score, "score")
    if total.points < 0:
        total.add(-total.points, "raised score to 0")
    return total


def _fit(lead: Mapping[str, Any], model: _Model) -> _Tally:
    tally = _Tally()
    reasons = tally.reasons
    # Group caps limit only the positive points of a group; in order of each group's first hit.
    positive_by_group: dict[str, int] = {}
    for holds, points, group, reason in model.rules:
        if not holds(lead):
            continue
        tally.points += points
        reasons.append(reason)
        if group is not None and points > 0:
            positive_by_group[group] = positive_by_group.get(group, 0) + points
    for group, positive in positive_by_group.items():
        cap = model.group_caps[group]
        if positive > cap:
            tally.add(cap - positive, f"capped {group} at {cap}")
    tally.cap(model.fit_cap, "fit")
    return tally


def _engagement(lead: Mapping[str, Any], model: _Model) -> _Tally:
    tally = _Tally()
    for name, points, cap, label in model.signals:
        count = _count(lead.get(name))
        if count <= 0:
            continue
        earned = count * points
        text = f"{label}: {count} × {points}"
        if cap is not None and earned > cap:
            tally.add(cap, f"{text}, capped at {cap}")
        else:
            tally.add(earned, text)
    tally.cap(model.engagement_cap, "engagement")
    return tally


def _count(value: Any) -> int:
    """A signal's count; anything but a non-negative number counts as none."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return max(0, int(value))


def _decay(
    tally: _Tally,
    fit: int,
    lead: Mapping[str, Any],
    decay: Decay,
    now: datetime,
    model: _Model,
    recorded_by: datetime | None,
) -> None:
    found = next(
        ((name, lead[name]) for name in decay.age_from if isinstance(lead.get(name), date)),
        None,
    )
    if found is None:
        tally.note(f"no decay: no {' or '.join(_words(name) for name in decay.age_from)} date")
        return
    name, when = found
    moment = _as_datetime(when)
    if recorded_by is not None and moment > recorded_by:
        tally.note(f"{_words(name)} {when.isoformat()} is after the record's last change: as of it")
        moment = min(recorded_by, now)
    age = now - moment
    if age < timedelta(0):
        tally.note(f"no decay: {_words(name)} is in the future ({when.isoformat()})")
        return
    factor = 0.5 ** ((age / timedelta(days=1)) / decay.half_life_days)
    exact = tally.points - _round_half_up(tally.points * factor)
    lost = _stepped(exact, tally.points, fit, decay.step, model)
    if lost:
        steps = f", in steps of {decay.step}" if decay.step > 1 else ""
        tally.add(-lost, f"decay since {_words(name)} on {_day(moment)}{steps}")


def _stepped(exact: int, points: int, fit: int, step: int, model: _Model) -> int:
    """What decay takes off `points` of engagement when its exact figure is `exact`: whole
    steps of `step` (all of it once nothing is left), the step below the exact figure unless
    that would leave the lead on the other side of a threshold than the exact figure does."""
    if step <= 1 or exact in (0, points):
        return exact
    below = step * (exact // step)
    if below == exact:
        return exact
    if _thresholds_agree(fit, points - exact, points - below, model):
        return below
    return min(points, below + step)


def _thresholds_agree(fit: int, one: int, other: int, model: _Model) -> bool:
    """Whether engagement `one` and `other` give the same grade, and the same answer to every
    lifecycle condition on the score or the engagement."""
    totals = [_total(fit, engagement, model.max_score).points for engagement in (one, other)]
    if _grade(totals[0], model.grades) != _grade(totals[1], model.grades):
        return False
    facts = [
        {"score": total, "fit": fit, "engagement": engagement}
        for total, engagement in zip(totals, (one, other), strict=True)
    ]
    return all(holds(facts[0]) == holds(facts[1]) for holds in model.thresholds)


def _score_conditions(definition: LeadDefinition) -> list[Condition]:
    """The lifecycle conditions that test the score or the engagement (which decay moves)."""
    lifecycle = definition.lifecycle
    stages = ("mql", "sal", "sql", "opportunity", "customer")
    rules: list[Criteria] = [lifecycle.stages.entry(name) for name in stages]
    rules += [*lifecycle.recycle, *lifecycle.disqualify, *lifecycle.requalify]
    return [
        condition
        for criteria in rules
        for condition in (*criteria.all, *criteria.any)
        if condition.field in ("score", "engagement")
    ]


def _round_half_up(value: float) -> int:
    # Not round(): Python rounds halves to even, and 7.5 points should be 8 like on paper.
    return math.floor(value + 0.5)


def _as_datetime(value: date) -> datetime:
    if isinstance(value, datetime):
        # Canonical datetimes are aware UTC; a naive one is read as UTC rather than failing.
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _day(value: date) -> str:
    """The UTC day of a date or datetime, for a reason that stays the same tomorrow."""
    return _as_datetime(value).astimezone(UTC).date().isoformat()


def _words(field_name: str) -> str:
    """`last_activity_at` -> `last activity`: a field as a reason names it."""
    return field_name.removesuffix("_at").replace("_", " ")


def _grade(total: int, grades: Sequence[Grade]) -> str:
    # Grades run from the highest min_score down and the last starts at 0 (checked on load).
    return next(grade.grade for grade in grades if total >= grade.min_score)
