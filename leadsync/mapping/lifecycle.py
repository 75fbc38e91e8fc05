"""The lifecycle state machine: lead -> mql -> sal -> sql -> opportunity -> customer, forward only.

One evaluation (`next_transitions`) proposes, in order:

1. `enter` or `adopt`: a lead seen for the first time starts where the CRMs already put it: at
   the latest stage whose `evidence` holds (an `adopt`, "adopted from HubSpot: customer"), else
   at `lead` (`enter`).
2. Customer is final: nothing more.
3. `disqualify`: when a disqualify rule holds, any stage but customer goes to `disqualified`,
   directly (a disqualified lead is not counted as having qualified). A disqualified lead leaves
   only by `requalify`, to `lead`, when a requalify rule holds and no disqualify rule does.
4. `adopt`: a person's move in a CRM is adopted, not undone: when the evidence now points to a
   later stage than the lead is at, and it is not the evidence the previous evaluation saw (a
   move already adopted, or one a rule has since taken back, is not adopted again).
5. `advance`: the lead enters, one after the other, every later stage whose entry criteria hold;
   stages whose criteria do not hold are skipped, unless the next one `requires_previous`.
   A recycled lead is evaluated as from `lead`, and its first move is a `requalify` (normally to
   `mql`), but not while a recycle rule still holds: that would recycle it again on every run.
6. `recycle`: when a recycle rule holds and the lead ends at mql, sal, sql or opportunity, it
   goes to `recycled`. It is checked after advancing, so the history shows how far the lead got
   (an opportunity Closed Lost: lead -> opportunity -> recycled).

Nothing moves a lead backwards otherwise: a lead whose score drops stays an MQL. The facts an
evaluation is given are the caller's business: the sync engine leaves out the values leadsync
itself wrote to the CRMs, so that its own writes are never evidence for its own rules.
`LifecycleState` keeps the stage and the history, and refuses any transition the machine does
not allow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from leadsync.errors import RecordError
from leadsync.mapping.definition import (
    Condition,
    LeadDefinition,
    StageCriteria,
    Test,
    TransitionRule,
)
from leadsync.mapping.scoring import Score

__all__ = [
    "Evidence",
    "LifecycleState",
    "Stage",
    "Transition",
    "TransitionKind",
    "TransitionRefusedError",
    "evidence_for",
    "left_by",
    "next_transitions",
    "refusal",
]


class Stage(StrEnum):
    LEAD = "lead"
    MQL = "mql"
    SAL = "sal"
    SQL = "sql"
    OPPORTUNITY = "opportunity"
    CUSTOMER = "customer"
    RECYCLED = "recycled"
    DISQUALIFIED = "disqualified"


TransitionKind = Literal["enter", "adopt", "advance", "recycle", "disqualify", "requalify"]

FORWARD: tuple[Stage, ...] = (
    Stage.LEAD,
    Stage.MQL,
    Stage.SAL,
    Stage.SQL,
    Stage.OPPORTUNITY,
    Stage.CUSTOMER,
)
RECYCLABLE = frozenset({Stage.MQL, Stage.SAL, Stage.SQL, Stage.OPPORTUNITY})
DISQUALIFIABLE = frozenset({*FORWARD, Stage.RECYCLED} - {Stage.CUSTOMER})
NEW_LEAD_REASON = "new lead"


def left_by(stage: str) -> frozenset[str]:
    """The stages a rule that moves a lead to `stage` takes it from: recycle from mql, sal,
    sql or opportunity, disqualify from any but customer (empty for the other stages)."""
    rules = {Stage.RECYCLED: RECYCLABLE, Stage.DISQUALIFIED: DISQUALIFIABLE}
    return frozenset(s.value for s in rules.get(Stage(stage), ()))


@dataclass(frozen=True)
class Transition:
    """One move of the lifecycle, when it happened and why."""

    from_stage: Stage | None
    to_stage: Stage
    at: datetime
    reason: str
    kind: TransitionKind


class TransitionRefusedError(RecordError):
    """A transition the state machine does not allow from where the lead is."""


def refusal(from_stage: Stage | None, to_stage: Stage, kind: TransitionKind) -> str | None:
    """Why the machine refuses this move, or None when it allows it."""
    if from_stage is Stage.CUSTOMER:
        return "customer is final"
    allowed = {
        "enter": from_stage is None and to_stage is Stage.LEAD,
        "adopt": to_stage in FORWARD and _later(to_stage, from_stage),
        "advance": from_stage in FORWARD and to_stage in FORWARD and _after(to_stage, from_stage),
        "recycle": from_stage in RECYCLABLE and to_stage is Stage.RECYCLED,
        "disqualify": from_stage in DISQUALIFIABLE and to_stage is Stage.DISQUALIFIED,
        "requalify": (from_stage is Stage.RECYCLED and to_stage in FORWARD[1:])
        or (from_stage is Stage.DISQUALIFIED and to_stage is Stage.LEAD),
    }
    if allowed[kind]:
        return None
    return f"{kind} from {from_stage or 'nothing'} to {to_stage} is not allowed"


@dataclass(frozen=True)
class LifecycleState:
    """Where a lead is and every transition that took it there (None: not seen yet)."""

    stage: Stage | None = None
    history: tuple[Transition, ...] = ()

    @classmethod
    def replay(cls, history: Iterable[Transition]) -> LifecycleState:
        """The state a stored history leads to; raises TransitionRefusedError if it is not valid."""
        return cls().apply(history)

    def apply(self, transitions: Iterable[Transition]) -> LifecycleState:
        """The state after `transitions`, each checked against the machine and the clock."""
        state = self
        for transition in transitions:
            state._check(transition)
            state = LifecycleState(transition.to_stage, (*state.history, transition))
        return state

    def _check(self, transition: Transition) -> None:
        if transition.from_stage != self.stage:
            raise TransitionRefusedError(
                f"the lead is at {self.stage or 'nothing'}, not {transition.from_stage}"
            )
        if transition.at.tzinfo is None:
            raise TransitionRefusedError("a transition's time must be timezone-aware")
        if self.history and transition.at < self.history[-1].at:
            raise TransitionRefusedError("a transition cannot happen before the previous one")
        problem = refusal(transition.from_stage, transition.to_stage, transition.kind)
        if problem is not None:
            raise TransitionRefusedError(problem)


def next_transitions(
    current: Stage | None,
    lead: Mapping[str, Any],
    score: Score,
    definition: LeadDefinition,
    *,
    now: datetime,
    before: Mapping[str, Any] | None = None,
    sources: Mapping[str, str] | None = None,
) -> list[Transition]:
    """The transitions to apply now, in order; empty when the lead stays where it is.

    `lead` holds the facts (canonical field -> value); `before` the facts the previous
    evaluation of this lead saw (None: not known, so any evidence is new); `sources` names
    where a field's value came from ("HubSpot"), for the reason of an adopted stage."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    # Criteria may test the score as pseudo-fields, over any canonical field of the same name.
    facts = {**lead, "score": score.total, "fit": score.fit, "engagement": score.engagement}
    lifecycle = definition.compiled(_compile)
    evidence = _evidence(lead, definition)
    moves = _Moves(current, now)
    if current is None:
        if evidence is not None:
            moves.add(evidence.stage, evidence.reason(lead, sources or {}), "adopt")
        else:
            moves.add(Stage.LEAD, NEW_LEAD_REASON, "enter")
        evidence = None  # taken
    elif before is not None and _stage_of(_evidence(before, definition)) == _stage_of(evidence):
        evidence = None  # seen by the previous evaluation: adopted then, or taken back since
    if moves.stage is Stage.CUSTOMER:
        return moves.made
    disqualify = _first_holding(lifecycle.disqualify, facts)
    if moves.stage is Stage.DISQUALIFIED:
        requalify = _first_holding(lifecycle.requalify, facts)
        if disqualify is not None or requalify is None:
            return moves.made
        moves.add(Stage.LEAD, requalify.reason, "requalify")
    elif disqualify is not None:
        moves.add(Stage.DISQUALIFIED, disqualify.reason, "disqualify")
        return moves.made
    if evidence is not None and _later(evidence.stage, moves.stage):
        # Adopted as customer, nothing below moves it: customer is not recyclable.
        moves.add(evidence.stage, evidence.reason(lead, sources or {}), "adopt")
    recycle = _first_holding(lifecycle.recycle, facts)
    if moves.stage is Stage.RECYCLED and recycle is not None:
        return moves.made
    _advance(moves, facts, lifecycle)
    if recycle is not None and moves.stage in RECYCLABLE:
        moves.add(Stage.RECYCLED, recycle.reason, "recycle")
    return moves.made


@dataclass(frozen=True)
class Evidence:
    """The latest stage the CRMs' values put a lead at, and the condition that says so."""

    stage: Stage
    condition: Condition

    def reason(self, facts: Mapping[str, Any], sources: Mapping[str, str]) -> str:
        """`adopted from HubSpot: customer`, or with the condition where the value alone
        says little: `adopted from Salesforce: is_converted is true`."""
        name = self.condition.field
        value = facts.get(name)
        plain = self.condition.kind in ("equals", "in") and isinstance(value, str)
        shown = value if plain else self.condition.explain(facts)
        return f"adopted from {sources.get(name, name)}: {shown}"


def evidence_for(facts: Mapping[str, Any], definition: LeadDefinition) -> Evidence | None:
    """The latest stage whose evidence holds in `facts`, or None when none does."""
    return _evidence(facts, definition)


def _evidence(facts: Mapping[str, Any], definition: LeadDefinition) -> Evidence | None:
    for stage, conditions in definition.compiled(_compile).evidence:
        for condition, holds in conditions:
            if holds(facts):
                return Evidence(stage, condition)
    return None


class _Lifecycle(NamedTuple):
    """What staging a lead needs of the definition, compiled once (`LeadDefinition.compiled`):
    each rule and criteria with its test."""

    # The latest stage first, each with its evidence conditions in the file's order.
    evidence: tuple[tuple[Stage, tuple[tuple[Condition, Test], ...]], ...]
    entry: Mapping[Stage, tuple[StageCriteria, Test]]  # the forward stages after `lead`
    disqualify: tuple[tuple[TransitionRule, Test], ...]
    requalify: tuple[tuple[TransitionRule, Test], ...]
    recycle: tuple[tuple[TransitionRule, Test], ...]


def _compile(definition: LeadDefinition) -> _Lifecycle:
    lifecycle = definition.lifecycle
    entries = {stage: lifecycle.stages.entry(stage.value) for stage in FORWARD[1:]}
    return _Lifecycle(
        evidence=tuple(
            (stage, tuple((c, c.compile()) for c in entries[stage].evidence))
            for stage in reversed(FORWARD[1:])
        ),
        entry={stage: (criteria, criteria.compile()) for stage, criteria in entries.items()},
        disqualify=tuple((rule, rule.compile()) for rule in lifecycle.disqualify),
        requalify=tuple((rule, rule.compile()) for rule in lifecycle.requalify),
        recycle=tuple((rule, rule.compile()) for rule in lifecycle.recycle),
    )


def _stage_of(evidence: Evidence | None) -> Stage | None:
    return None if evidence is None else evidence.stage


class _Moves:
    """The transitions of one evaluation, chained from the stage the lead is at."""

    def __init__(self, stage: Stage | None, now: datetime) -> None:
        self.stage = stage
        self.now = now
        self.made: list[Transition] = []

    def add(self, to_stage: Stage, reason: str, kind: TransitionKind) -> None:
        self.made.append(Transition(self.stage, to_stage, self.now, reason, kind))
        self.stage = to_stage


def _advance(moves: _Moves, facts: Mapping[str, Any], lifecycle: _Lifecycle) -> None:
    # A recycled lead starts over from `lead`; its way back in is a requalification.
    reached: Stage = Stage.LEAD
    if moves.stage is not None and moves.stage in FORWARD:
        reached = moves.stage
    for stage in FORWARD[FORWARD.index(reached) + 1 :]:
        criteria, holds = lifecycle.entry[stage]
        if not holds(facts):
            continue
        if criteria.requires_previous and reached is not _previous(stage):
            continue
        kind: TransitionKind = "requalify" if moves.stage is Stage.RECYCLED else "advance"
        moves.add(stage, criteria.explain(facts), kind)
        reached = stage


def _first_holding(
    rules: Sequence[tuple[TransitionRule, Test]], facts: Mapping[str, Any]
) -> TransitionRule | None:
    for rule, holds in rules:
        if holds(facts):
            return rule
    return None


def _after(later: Stage, earlier: Stage | None) -> bool:
    return earlier in FORWARD and FORWARD.index(later) > FORWARD.index(earlier)


def _later(stage: Stage, than: Stage | None) -> bool:
    """Whether moving to the forward `stage` is a move on from `than`: from nothing, from an
    earlier stage, or from recycled (which starts over from `lead`). Never from disqualified:
    only a requalify rule lets a lead out of it."""
    if than is None:
        return True
    if than is Stage.RECYCLED:
        return stage in FORWARD[1:]
    return _after(stage, than)


def _previous(stage: Stage) -> Stage:
    return FORWARD[FORWARD.index(stage) - 1]
