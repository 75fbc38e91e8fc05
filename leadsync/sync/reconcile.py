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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

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


@dataclass(frozen=True, slots=True)
class _Vote:
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
    choices = {}
    for name, mapping in field_map.fields.items():
        choice = _choose(mapping, snapshots, _previous_choice(previous, mapping))
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


def _previous_choice(previous: Lead | None, mapping: FieldMapping) -> FieldChoice | None:
    if previous is None:
        return None
    choice = previous.choices.get(mapping.name)
    if choice is None and mapping.name in previous.values:
        # A lead stored without its choices still has its values.
        value = previous.values[mapping.name]
        return FieldChoice(value, None, mapping.rule.value, "previous value")
    return choice


def _choose(
    mapping: FieldMapping, snapshots: Mapping[str, Snapshot], previous: FieldChoice | None
) -> FieldChoice | None:
    if mapping.direction is Direction.NONE:
        return None
    if not mapping.direction.pulls:
        return previous  # push only: leadsync's value, kept
    votes = _votes(mapping, snapshots)
    rule = mapping.rule
    if not votes:
        return previous
    if len(votes) == 1 and not (rule is SyncRule.NEVER_BLANK and votes[0].blank):
        return _only(mapping, votes[0])
    if rule is SyncRule.MOST_RECENT:
        return _most_recent(rule, votes, previous)
    if rule is SyncRule.NEVER_BLANK:
        return _never_blank(rule, votes, previous)
    preferred = rule.preferred_crm
    if preferred is None:  # every rule but the two above names a CRM
        raise AssertionError(f"rule {rule} names no CRM")
    if rule.unless_blank:
        return _prefer_unless_blank(rule, votes, preferred)
    return _prefer(rule, votes, preferred)


def _votes(mapping: FieldMapping, snapshots: Mapping[str, Snapshot]) -> list[_Vote]:
    votes = []
    for crm in TIE_ORDER:
        snapshot = snapshots.get(crm)
        if snapshot is None or snapshot.deleted or mapping.binding(crm) is None:
            continue
        if mapping.name in snapshot.canonical:
            value = snapshot.canonical[mapping.name]
            votes.append(_Vote(crm, value, snapshot.changed_at.get(mapping.name)))
    return votes


# ------------------------------------------------------------------------------- the rules


def _only(mapping: FieldMapping, vote: _Vote) -> FieldChoice:
    if len(mapping.bindings) == 1:
        reason = f"{vote.crm}: the only CRM it is mapped to"
    else:
        reason = f"{vote.crm}: the only CRM that holds it"
    return FieldChoice(vote.value, vote.crm, mapping.rule.value, reason)


def _prefer(rule: SyncRule, votes: Sequence[_Vote], preferred: str) -> FieldChoice:
    # Two votes, one of them the preferred CRM's (a lone vote is taken before the rules).
    vote = next(vote for vote in votes if vote.crm == preferred)
    return FieldChoice(vote.value, vote.crm, rule.value, f"{vote.crm}: {rule.value}")


def _prefer_unless_blank(rule: SyncRule, votes: Sequence[_Vote], preferred: str) -> FieldChoice:
    first = next(vote for vote in votes if vote.crm == preferred)
    other = next(vote for vote in votes if vote.crm != preferred)
    if not first.blank:
        return FieldChoice(first.value, first.crm, rule.value, f"{first.crm}: {rule.value}")
    if not other.blank:
        reason = f"{other.crm}: {first.crm}'s is blank ({rule.value})"
        return FieldChoice(other.value, other.crm, rule.value, reason)
    reason = f"{first.crm}: {rule.value}, both blank"
    return FieldChoice(first.value, first.crm, rule.value, reason)


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
