"""Reconcile: one value per canonical field from the CRM records of one lead, under each field's
sync rule, with the reason it won.

A CRM *votes* on a field when its record is live (deleted records do not vote), the field is
mapped there, and the record holds the field (a value or a blank: `canonical` has the key).
The rules, when both CRMs vote:

    prefer_X                 X's value, blank included: X is the system of record for it
    prefer_X_unless_blank    X's value, unless blank; then the other's
    most_recent              the value a person changed last (per-field `changed_at`; no time
                             counts as oldest); on a tie the previous choice stays when it is
                             one of the tied values, else the first CRM in TIE_ORDER wins
    never_blank              the non-blank value; both non-blank: most_recent; both blank: the
                             previous value stays

When only one CRM votes, its value is taken (never_blank still keeps a previous value over a
blank). When none votes, the previous choice stays. Fields of direction `none` are left out;
push-only fields keep their previous value (leadsync owns them). Values the CRMs agree on are
taken from the first CRM in TIE_ORDER, so the winner does not flip between runs.

Same inputs, same choices: the CRMs are visited in a fixed order, never in the order given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from leadsync.connectors.traits import traits_of
from leadsync.mapping.fields import FieldMap, FieldMapping
from leadsync.mapping.transforms import is_blank
from leadsync.mapping.types import CRMS, Direction, SyncRule
from leadsync.sync.model import FieldChoice, Lead, Snapshot

__all__ = ["TIE_ORDER", "missing_required", "reconcile"]

# Who wins when two people changed a field at the very same moment: each CRM's connector says
# (its tie rank). Salesforce first, because its values are entered by people who have spoken
# with the lead.
TIE_ORDER: tuple[str, ...] = tuple(sorted(CRMS, key=lambda crm: traits_of(crm).tie_rank))


class _Vote(NamedTuple):
    # A tuple, not a frozen dataclass: made for every field of every lead, and a frozen
    # dataclass's __init__ is the slower by far.
    crm: str
    value: object
    changed_at: datetime | None

    @property
    def blank(self) -> bool:
        return is_blank(self.value)


def reconcile(
    field_map: FieldMap, snapshots: Mapping[str, Snapshot], *, previous: Lead | None
) -> dict[str, FieldChoice]:
    """Canonical field -> the value it takes and why, from `snapshots` (crm -> that CRM's record
    of this lead, at most one each) and the lead's `previous` merge (None for a new lead)."""
    for crm, snapshot in snapshots.items():
        if snapshot.crm != crm:
            raise ValueError(f"the snapshot under {crm!r} is a {snapshot.crm} record")
    # The voters, once per lead rather than once per field: live records, in TIE_ORDER.
    live = [
        found
        for crm in TIE_ORDER
        if (found := snapshots.get(crm)) is not None and not found.deleted
    ]
    choices = {}
    if len(live) == 1:
        # Most leads have a record in one CRM: its vote on each field it holds is the choice
        # (`_chooser`'s lone vote), taken here without a chooser's call or a list of voters.
        (voter,) = live
        crm = voter.crm
        canonical = voter.canonical
        for name, choose, lone in field_map.compiled(_compile):
            taken = lone.get(crm)
            if taken is not None and name in canonical:
                value = canonical[name]
                rule_value, reason, never_blank = taken
                if not (never_blank and is_blank(value)):
                    choices[name] = FieldChoice(value, crm, rule_value, reason)
                    continue
            choice = choose(live, previous)
            if choice is not None:
                choices[name] = choice
        return choices
    for name, choose, _lone in field_map.compiled(_compile):
        choice = choose(live, previous)
        if choice is not None:
            choices[name] = choice
    return choices


def missing_required(field_map: FieldMap, choices: Mapping[str, FieldChoice]) -> list[str]:
    """The required fields that are blank after reconciling: the lead cannot be processed."""
    return [
        name
        for name, mapping in field_map.fields.items()
        if mapping.required and (name not in choices or is_blank(choices[name].value))
    ]


# A field's choice from the live records (in TIE_ORDER) and the lead's previous merge.
_Chooser = Callable[[Sequence[Snapshot], Lead | None], FieldChoice | None]


# CRM -> (rule, reason, whether the rule is never_blank): how a field's lone vote wins.
_Lone = Mapping[str, tuple[str, str, bool]]


def _compile(field_map: FieldMap) -> tuple[tuple[str, _Chooser, _Lone], ...]:
    """Each field's chooser, and how a lone vote wins it per CRM, made once per mapping;
    fields of direction `none` left out."""
    return tuple(
        (name, _chooser(mapping), _lone(mapping))
        for name, mapping in field_map.fields.items()
        if mapping.direction is not Direction.NONE
    )


def _lone(mapping: FieldMapping) -> _Lone:
    """The CRMs whose lone vote `_chooser` takes for the field (those it is pulled from),
    with the reason it wins by; never_blank still keeps a previous value over a blank."""
    if not mapping.direction.pulls:
        return {}
    rule = mapping.rule
    never_blank = rule is SyncRule.NEVER_BLANK
    return {
        crm: (rule.value, reason, never_blank) for crm, reason in _lone_reasons(mapping).items()
    }


def _lone_reasons(mapping: FieldMapping) -> dict[str, str]:
    bound = frozenset(crm for crm in CRMS if mapping.binding(crm) is not None)
    alone = "only CRM it is mapped to" if len(mapping.bindings) == 1 else "only CRM that holds it"
    return {crm: f"{crm}: the {alone}" for crm in bound}


def _chooser(mapping: FieldMapping) -> _Chooser:
    """`mapping`'s rule as one function, with what it tells looked up once: the CRMs that
    vote on the field and the reasons a lone vote or the preferred CRM wins by."""
    name = mapping.name
    rule = mapping.rule
    rule_value = rule.value
    if not mapping.direction.pulls:
        # Push only: leadsync's value, kept.
        return lambda live, lead: _previous_choice(lead, name=name, rule=rule_value)
    only = _lone_reasons(mapping)
    bound = frozenset(only)
    never_blank = rule is SyncRule.NEVER_BLANK
    decide = _decider(rule)

    def choose(live: Sequence[Snapshot], lead: Lead | None) -> FieldChoice | None:
        voters = []
        for snapshot in live:  # a loop, not a comprehension: one or two records
            if name in snapshot.canonical and snapshot.crm in bound:
                voters.append(snapshot)
        if not voters:
            return _previous_choice(lead, name=name, rule=rule_value)
        if len(voters) == 1:
            voter = voters[0]
            value = voter.canonical[name]
            if not (never_blank and is_blank(value)):
                return FieldChoice(value, voter.crm, rule_value, only[voter.crm])
        votes = [_Vote(s.crm, s.canonical[name], s.changed_at.get(name)) for s in voters]
        return decide(votes, lambda: _previous_choice(lead, name=name, rule=rule_value))

    return choose


def _decider(
    rule: SyncRule,
) -> Callable[[Sequence[_Vote], Callable[[], FieldChoice | None]], FieldChoice]:
    """The rule between two votes or more (a lone vote is taken before), given the votes and
    how to find the previous choice: only the rules that may keep it ask."""
    if rule is SyncRule.MOST_RECENT or rule is SyncRule.NEVER_BLANK:
        decides = _most_recent if rule is SyncRule.MOST_RECENT else _never_blank
        return lambda votes, previous: decides(rule, votes, previous())
    preferred = rule.preferred_crm
    if preferred is None:  # every rule but the two above names a CRM
        raise AssertionError(f"rule {rule} names no CRM")
    prefer = _prefer_unless_blank if rule.unless_blank else _prefer
    return lambda votes, previous: prefer(rule, votes, preferred)


def _previous_choice(previous: Lead | None, *, name: str, rule: str) -> FieldChoice | None:
    if previous is None:
        return None
    choice = previous.choices.get(name)
    if choice is None and name in previous.values:
        # A lead stored without its choices still has its values.
        return FieldChoice(previous.values[name], None, rule, "previous value")
    return choice


# ------------------------------------------------------------------------------- the rules


def _prefer(rule: SyncRule, votes: Sequence[_Vote], preferred: str) -> FieldChoice:
    # Two votes, one of them the preferred CRM's (a lone vote is taken before the rules).
    vote = votes[0] if votes[0].crm == preferred else _of(votes, preferred)
    return FieldChoice(vote.value, vote.crm, rule.value, f"{vote.crm}: {rule.value}")


def _prefer_unless_blank(rule: SyncRule, votes: Sequence[_Vote], preferred: str) -> FieldChoice:
    # Two votes, one per CRM (`one_per_crm`): the preferred CRM's and the other's.
    if len(votes) == 2 and (votes[0].crm == preferred) != (votes[1].crm == preferred):
        first, other = (votes[0], votes[1]) if votes[0].crm == preferred else (votes[1], votes[0])
    else:
        first = _of(votes, preferred)
        other = next(vote for vote in votes if vote.crm != preferred)
    if not first.blank:
        return FieldChoice(first.value, first.crm, rule.value, f"{first.crm}: {rule.value}")
    if not other.blank:
        reason = f"{other.crm}: {first.crm}'s is blank ({rule.value})"
        return FieldChoice(other.value, other.crm, rule.value, reason)
    reason = f"{first.crm}: {rule.value}, both blank"
    return FieldChoice(first.value, first.crm, rule.value, reason)


def _of(votes: Sequence[_Vote], crm: str) -> _Vote:
    return next(vote for vote in votes if vote.crm == crm)


def _never_blank(
    rule: SyncRule, votes: Sequence[_Vote], previous: FieldChoice | None
) -> FieldChoice:
    filled = [vote for vote in votes if not vote.blank]
    if len(filled) > 1:
        return _most_recent(rule, filled, previous)
    if filled:
        vote = filled[0]
        reason = f"{vote.crm}: the only value that is not blank ({rule.value})"
        return FieldChoice(vote.value, vote.crm, rule.value, reason)
    if previous is not None and not is_blank(previous.value):
        reason = f"all blank: kept the previous value ({rule.value})"
        return FieldChoice(previous.value, previous.crm, rule.value, reason)
    vote = votes[0]
    return FieldChoice(vote.value, vote.crm, rule.value, f"{vote.crm}: all blank ({rule.value})")


def _most_recent(
    rule: SyncRule, votes: Sequence[_Vote], previous: FieldChoice | None
) -> FieldChoice:
    """The latest change wins. `votes` come in TIE_ORDER, so `max` keeps the first on a tie."""
    if all(_same(vote.value, votes[0].value) for vote in votes):
        vote = votes[0]
        others = ", ".join(other.crm for other in votes[1:])
        reason = f"{vote.crm}: {others} holds the same value"
        return FieldChoice(vote.value, vote.crm, rule.value, reason)
    latest = max(votes, key=_when)
    tied = [vote for vote in votes if _when(vote) == _when(latest)]
    losers = [vote for vote in votes if vote not in tied]
    if len(tied) == 1:
        return FieldChoice(latest.value, latest.crm, rule.value, _later(latest, losers[0]))
    kept = next(
        (vote for vote in tied if previous is not None and _same(vote.value, previous.value)),
        None,
    )
    winner = kept or tied[0]
    others = ", ".join(vote.crm for vote in tied if vote is not winner)
    if winner.changed_at is None:
        tie = f"no change time known, as for {others}"
    else:
        tie = f"changed at the same time as {others} ({_moments(winner.changed_at)[0]})"
    why = "kept the previous value" if kept is not None else f"{winner.crm} goes first on a tie"
    return FieldChoice(winner.value, winner.crm, rule.value, f"{winner.crm}: {tie}; {why}")


_OLDEST = datetime.min.replace(tzinfo=UTC)


def _when(vote: _Vote) -> tuple[bool, datetime]:
    # A vote without a time sorts before every time.
    return (vote.changed_at is not None, vote.changed_at or _OLDEST)


def _same(one: object, other: object) -> bool:
    # Blank is blank, whether None or "".
    return (is_blank(one) and is_blank(other)) or bool(one == other)


def _later(winner: _Vote, loser: _Vote) -> str:
    # The latest of two votes that are not tied has a time; the loser may have none.
    when, before = _moments(winner.changed_at or _OLDEST, loser.changed_at)
    if loser.changed_at is None:
        return f"{winner.crm}: changed {when}; no change by a person known in {loser.crm}"
    return f"{winner.crm}: changed {when} after {loser.crm}'s {before}"


def _moments(one: datetime, other: datetime | None = None) -> tuple[str, str]:
    """Times in UTC as a person reads them: to the minute, or finer when the minute alone
    would hide which came first."""
    one = one.astimezone(UTC)
    other = one if other is None else other.astimezone(UTC)
    for pattern in ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"):
        if one.strftime(pattern) != other.strftime(pattern) or one == other:
            return one.strftime(pattern), other.strftime(pattern)
    return one.isoformat(timespec="microseconds"), other.isoformat(timespec="microseconds")
