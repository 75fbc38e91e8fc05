"""Plan: the values each CRM record should hold, minus what it already holds = the writes.

Desired values are the lead's canonical values of every field leadsync pushes (direction push
or both) that is mapped on the CRM's lead object, written through the binding, plus the
write-back targets: score, its parts, grade, reasons (one per line), model version, the stage
through `stage_values`, the status field through `status_values` for the stages listed, and the
names of the service levels the lead is in breach of (`sla_breaches`).

A value is left out when the CRM already holds it *in meaning*: canonical fields are compared
through the binding's reading (HubSpot's "60" and 60, " a@x.com" and "a@x.com" after trim,
"50-100" and 60 when 60 writes as "50-100"), write-back numbers as numbers and text with
surrounding whitespace ignored. Formatting alone never causes a write, so a run after a run
writes nothing: no ping-pong.

Blanks: leadsync never writes a blank over a value, except for fields whose rule lets a blank
win (prefer_hubspot, prefer_salesforce, most_recent: a person clearing the field is an edit like
any other). Write-back targets are written only when leadsync has a value for them, except the
SLA flag: leadsync owns it, and clears it when the last breach is resolved.

Records not written at all: deleted ones, and those the CRM refuses to update (its traits'
`is_writable`: a converted Salesforce lead, CANNOT_UPDATE_CONVERTED_LEAD). A converted lead's
person lives on in its Contact: the write-back targets `[writeback.salesforce.contact]` names
are written there instead (`sync.related`), compared with what the Contact holds as any record
is.

Stages: a CRM that orders its stages (HubSpot's lifecycle stage, as its connector says through
`moves_back`) keeps a later stage a person gave it. leadsync moves a CRM's stage back only when
the lead went back by a rule (recycled, disqualified), or when what the CRM holds there is
leadsync's own earlier write (`own`: its stage only ever went back by a rule since). A rule's
stage is written only over a stage the rule leaves (`left_by`: a disqualify rule never makes a
CRM's customer "other"), or over a value the mapping does not read as any stage, if that is no
move back. And a stage or status a person changed after leadsync wrote it (`written`: what
leadsync last wrote there) is not written again while leadsync's wish is the same: the person's
later move stands, whatever its direction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from operator import attrgetter
from typing import Any, NamedTuple, TypeVar

from leadsync.connectors.base import CrmTraits, ObjectDescription, RecordUpdate
from leadsync.connectors.traits import traits_of
from leadsync.mapping.fields import CONTACT, FieldMap, WritebackTargets
from leadsync.mapping.lifecycle import Stage, left_by
from leadsync.mapping.scoring import Score
from leadsync.mapping.transforms import WRITERS, Reader, TransformError, is_blank
from leadsync.mapping.types import CRMS, SyncRule
from leadsync.sync.ingest import same_read
from leadsync.sync.model import Lead, Snapshot
from leadsync.sync.related import contact_of

__all__ = [
    "ApiCalls",
    "FieldChange",
    "MovesBack",
    "PlanSummary",
    "PlanTally",
    "TraitsOf",
    "estimate_api_calls",
    "field_changes",
    "never_back",
    "plan_summary",
    "plan_updates",
    "with_score",
]

# Rules under which a blank may win, so it may also be written over the other CRM's value.
BLANK_WINS: frozenset[SyncRule] = frozenset(rule for rule in SyncRule if rule.blank_wins)
# Stages a lead reaches only through a rule: the moves back leadsync makes in the CRMs.
_BACK_BY_RULE = frozenset({Stage.RECYCLED.value, Stage.DISQUALIFIED.value})

# (crm, field, held, wanted) -> whether writing `wanted` over `held` moves a stage back there.
MovesBack = Callable[[str, str, Any, Any], bool]


def never_back(crm: str, field: str, held: Any, wanted: Any) -> bool:
    """A MovesBack for CRMs whose stages have no order."""
    return False


def with_score(lead: Lead, score: Score, *, stage: Stage | None) -> Lead:
    """`lead` carrying `score` and lifecycle `stage`: what the write-back targets are fed from."""
    # The constructor, not dataclasses.replace: made for every lead merged, and replace
    # looks the fields up again each time.
    return Lead(
        lead.lead_id,
        lead.values,
        lead.choices,
        score=score.total,
        fit=score.fit,
        engagement=score.engagement,
        grade=score.grade,
        reasons=score.reasons,
        model_version=score.model_version,
        stage=stage.value if stage is not None else None,
    )


def plan_updates(
    field_map: FieldMap,
    lead: Lead,
    snapshots: Mapping[str, Snapshot],
    *,
    sla_breaches: Sequence[str] = (),
    moves_back: MovesBack = never_back,
    own: Mapping[str, Collection[str]] | None = None,
    written: Mapping[str, Mapping[str, Any]] | None = None,
    people: Mapping[str, tuple[str, Mapping[str, Any]]] | None = None,
    limits: TextLimits | None = None,
) -> dict[str, RecordUpdate | None]:
    """CRM -> the update that makes its record of `lead` hold what it should, or None when it
    already does (or cannot be written). `snapshots` holds the lead's records, one per CRM;
    `people` the record of a related object that is the lead's person in a CRM where the lead
    has no live record (crm -> (its id, the values it holds): a Contact no lead names, see
    `sync.people`), which gets the write-back targets a converted lead's Contact gets;
    `sla_breaches` the names of the service levels the lead is in breach of now; `moves_back`
    says which stage writes move a CRM's stage back; `own` names, per CRM, the fields whose
    value there is what leadsync itself last wrote; `written` holds, per CRM, what leadsync
    last wrote to the record's fields; `limits` the most characters each CRM's write-back text
    fields hold (`text_limits`): leadsync's own texts longer are cut to fit.

    Raises TransformError when a value cannot be written through the mapping (a canonical
    value a strict value_map has no CRM value for): the engine quarantines the lead with it.
    """
    flags = ", ".join(sorted(sla_breaches))
    owned = own or {}
    updates = {
        crm: _update(
            field_map,
            lead,
            snapshots[crm],
            flags,
            partial(moves_back, crm),
            frozenset(owned.get(crm, ())),
            (written or {}).get(crm, {}),
            (limits or {}).get(crm, {}),
        )
        for crm in sorted(snapshots)
    }
    for crm, (record_id, held) in sorted((people or {}).items()):
        if crm in snapshots and not snapshots[crm].deleted:
            continue  # the lead's own record is written; a person record there is in review
        updates[crm] = _person_update(field_map, lead, crm, record_id, held, flags)
    return updates


def _update(
    field_map: FieldMap,
    lead: Lead,
    snapshot: Snapshot,
    flags: str,
    moves_back: Callable[[str, Any, Any], bool],
    own: frozenset[str],
    written: Mapping[str, Any],
    limits: Mapping[str, int],
) -> RecordUpdate | None:
    if snapshot.deleted:
        return None
    if not traits_of(snapshot.crm).is_writable(snapshot.raw):
        return _contact_update(field_map, lead, snapshot, flags)
    compiled = field_map.compiled(_compile).get(snapshot.crm, _NOTHING)
    targets = field_map.writeback.get(snapshot.crm)
    writeback = _writeback_writes(compiled.writeback, lead, snapshot.raw, flags, limits)
    if targets is not None:
        if written:
            _keep_persons_stages(writeback, targets, snapshot, written)
        judged: frozenset[str] = frozenset()
        if lead.stage in _BACK_BY_RULE:
            judged = _keep_stages_the_rule_does_not_leave(writeback, targets, lead.stage, snapshot)
        _keep_later_stages(writeback, snapshot, moves_back, own | judged)
    values = {**_field_writes(compiled.pushes, lead, snapshot.raw), **writeback}
    if not values:
        return None
    current = {name: snapshot.raw.get(name) for name in values}
    return RecordUpdate(snapshot.record_id, values, current)


def _keep_later_stages(
    writes: dict[str, Any],
    snapshot: Snapshot,
    moves_back: Callable[[str, Any, Any], bool],
    exempt: frozenset[str],
) -> None:
    """Leave out the stage writes that would move back a stage a person set in the CRM, but
    for the `exempt` fields (leadsync's own earlier write; a rule's move, judged already)."""
    for name in list(writes):
        held = snapshot.raw.get(name)
        if name not in exempt and moves_back(name, held, writes[name]):
            del writes[name]


def _keep_persons_stages(
    writes: dict[str, Any],
    targets: WritebackTargets,
    snapshot: Snapshot,
    written: Mapping[str, Any],
) -> None:
    """Leave out the stage and status writes of the value leadsync wrote there last, when
    the CRM holds another now: a person changed it since, and leadsync's wish did not."""
    for name in (targets.stage, targets.status_field):
        if name is None or name not in writes or name not in written:
            continue
        changed_since = not _same_text(written[name], snapshot.raw.get(name))
        if changed_since and _same_text(writes[name], written[name]):
            del writes[name]


def _keep_stages_the_rule_does_not_leave(
    writes: dict[str, Any], targets: WritebackTargets, stage: str, snapshot: Snapshot
) -> frozenset[str]:
    """Leave out the write of a rule's stage (recycled, disqualified) over a stage the CRM
    holds that the rule does not take a lead from (a customer is not disqualified). Returns
    the stage field when the move was judged so: what the CRM holds reads as a stage (or
    nothing). A value the mapping reads as no stage is judged as any other: by its order."""
    name = targets.stage
    if name is None or name not in writes:
        return frozenset()
    held = snapshot.raw.get(name)
    if is_blank(held):
        return frozenset({name})
    stages = targets.stages_held_by(str(held).strip())
    if not stages:
        return frozenset()
    if not stages & left_by(stage):
        del writes[name]
    return frozenset({name})


def _contact_update(
    field_map: FieldMap, lead: Lead, snapshot: Snapshot, flags: str
) -> RecordUpdate | None:
    """The update of the Contact a converted lead (a record its CRM does not update) became:
    the lead's results in the Contact's write-back targets. None when the mapping names
    none, or leadsync has not seen a live Contact (yet)."""
    found = contact_of(snapshot)
    if found is None:
        return None
    contact_id, held = found
    return _person_update(field_map, lead, snapshot.crm, contact_id, held, flags)


def _person_update(
    field_map: FieldMap,
    lead: Lead,
    crm: str,
    record_id: str,
    held: Mapping[str, Any],
    flags: str,
) -> RecordUpdate | None:
    """The update of a Contact that is the lead's person in `crm` (`held`: what it holds):
    the lead's results in the Contact's write-back targets; None when the mapping names
    none or the Contact holds them already."""
    contact = field_map.compiled(_compile).get(crm, _NOTHING).contact
    if contact is None:
        return None
    values = _writeback_writes(contact, lead, held, flags)
    if not values:
        return None
    current = {name: held.get(name) for name in values}
    return RecordUpdate(record_id, values, current, object_name=CONTACT)


# ------------------------------------------------------------------------- compiled once


class _Push(NamedTuple):
    """One canonical field pushed to a CRM's lead object, compiled once per mapping."""

    name: str  # canonical
    field: str  # the CRM's
    blank_wins: bool  # its rule lets a blank win (BLANK_WINS): it may clear the field
    read: Reader
    write: Reader
    # Whether two raw values of the field mean the same (`same_value`).
    same: Callable[[Any, Any], bool]


class _Role(NamedTuple):
    """One write-back target of a CRM, compiled once per mapping."""

    field: str  # the CRM's
    wanted: Callable[[Lead], Any]  # what leadsync wants there (blank: nothing)
    same: Callable[[Any, Any], bool]


class _FlagRole(NamedTuple):
    """The SLA flag: the names of the breaches, comma-separated. leadsync owns it: a blank is
    a value it writes (the breach is over), not "nothing"."""

    field: str
    blank: Any  # how the CRM clears a field: Salesforce with null, HubSpot with ""


class _StageRole(NamedTuple):
    """The stage or status target: canonical stage -> the values that hold it (the first is
    written), and the same as text (`_text`), which what the CRM holds is compared with."""

    field: str
    holding: Mapping[str, tuple[str, ...]]
    texts: Mapping[str, frozenset[str]]


_Writeback = tuple[_Role | _FlagRole | _StageRole, ...]


class _Compiled(NamedTuple):
    """What a plan for one CRM needs of the mapping, looked up once."""

    pushes: tuple[_Push, ...] = ()
    writeback: _Writeback = ()
    contact: _Writeback | None = None  # a converted lead's Contact; None: not written


_NOTHING = _Compiled()


def _compile(field_map: FieldMap) -> dict[str, _Compiled]:
    """CRM -> the fields pushed to its lead object (in the mapping's order) and its
    write-back targets, and those of the Contact a converted lead became."""
    compiled: dict[str, _Compiled] = {}
    for crm in CRMS:
        pushes = []
        for mapping in field_map.fields.values():
            binding = mapping.binding(crm)
            if mapping.direction.pushes and binding is not None and binding.object is None:
                read, write = mapping.reader(crm), mapping.writer(crm)
                blank_wins = mapping.rule in BLANK_WINS
                same = partial(same_read, read)
                pushes.append(_Push(mapping.name, binding.field, blank_wins, read, write, same))
        targets = field_map.writeback.get(crm)
        writeback: _Writeback = () if targets is None else _roles(targets, crm)
        contact = (
            _roles(targets.contact_targets(), crm)
            if targets is not None and targets.contact
            else None
        )
        compiled[crm] = _Compiled(tuple(pushes), writeback, contact)
    return compiled


# Write-back role -> the lead's number written there, or its text.
_NUMBERS: dict[str, Callable[[Lead], int | None]] = {
    "score": attrgetter("score"),
    "fit_score": attrgetter("fit"),
    "engagement_score": attrgetter("engagement"),
}
_TEXTS: dict[str, Callable[[Lead], Any]] = {
    "grade": attrgetter("grade"),
    "reasons": lambda lead: "\n".join(lead.reasons),  # one per line
    "model_version": attrgetter("model_version"),
}


def _roles(targets: WritebackTargets, crm: str) -> _Writeback:
    """The write-back targets set, in WRITEBACK_ROLES order; the handoff's are left out: the
    handoff writes them, once (leadsync.sync.handoff), never a plan."""
    roles: list[_Role | _FlagRole | _StageRole] = []
    for role, name in targets.targets().items():
        if role in _NUMBERS:
            roles.append(
                _Role(name, _number(_NUMBERS[role], WRITERS[crm]["integer"]), _same_number)
            )
        elif role in _TEXTS:
            roles.append(_Role(name, _TEXTS[role], _same_text))
        elif role == "sla_breaches":
            roles.append(_FlagRole(name, traits_of(crm).blank))
        elif role in ("stage", "status_field"):
            values = targets.stage_values if role == "stage" else targets.status_values
            holds = targets.stage_holds if role == "stage" else targets.status_holds
            held = {stage: targets.holding(role, stage) for stage in {*values, *holds}}
            holding = {stage: found for stage, found in held.items() if found}
            texts = {stage: frozenset(map(_text, found)) for stage, found in holding.items()}
            roles.append(_StageRole(name, holding, texts))
    return tuple(roles)


def _number(of: Callable[[Lead], int | None], write: Callable[[Any], Any]) -> Callable[[Lead], Any]:
    def wanted(lead: Lead) -> Any:
        value = of(lead)
        return None if value is None else write(value)

    return wanted


# ------------------------------------------------------------------------- canonical fields


def _field_writes(pushes: tuple[_Push, ...], lead: Lead, raw: Mapping[str, Any]) -> dict[str, Any]:
    writes: dict[str, Any] = {}
    values = lead.values
    for name, crm_field, blank_wins, read, write, same in pushes:
        if name not in values:
            continue  # leadsync knows nothing of it: nothing to say
        if crm_field not in raw:
            # The record was read without the field (mapped since): what the CRM holds there
            # is unknown, not blank, and a write could bury a person's value. The record's
            # next pull (or a backfill) reads it.
            continue
        value = values[name]
        held = raw[crm_field]
        # A blank is written only when the rule lets a blank win, or there is nothing to lose.
        if is_blank(value) and not (blank_wins or _reads_blank(read, held)):
            continue
        desired = write(value)
        if not same(desired, held):
            writes[crm_field] = desired
    return writes


def _reads_blank(read: Reader, raw: Any) -> bool:
    try:
        return is_blank(read(raw))
    except TransformError:
        return False


# ------------------------------------------------------------------------- write-back


def _writeback_writes(
    roles: _Writeback,
    lead: Lead,
    raw: Mapping[str, Any],
    flags: str,
    limits: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    writes: dict[str, Any] = {}
    stage = lead.stage
    for role in roles:
        if isinstance(role, _Role):
            value = role.wanted(lead)
            if limits and role.field in limits:
                value = fit_text(value, limits[role.field])
            if not is_blank(value) and not role.same(value, raw.get(role.field)):
                writes[role.field] = value
        elif isinstance(role, _FlagRole):
            value = flags or role.blank
            if flags and limits and role.field in limits:
                value = fit_text(value, limits[role.field])
            if not _same_text(value, raw.get(role.field)):
                writes[role.field] = value
        elif stage and stage in role.holding and role.field in raw:
            # A record holding any value the mapping lists for the stage already holds it
            # (a HubSpot subscriber is not made a lead). One read without the field (mapped
            # since) may hold a later stage a person set: not written until it is read.
            value = role.holding[stage][0]
            if not is_blank(value) and _text(raw.get(role.field)) not in role.texts[stage]:
                writes[role.field] = value
    return writes


# CRM -> write-back text field -> the most characters it holds (Salesforce's Text(255)).
TextLimits = Mapping[str, Mapping[str, int]]
ELLIPSIS = "…"


def text_limits(field_map: FieldMap, descriptions: Mapping[str, ObjectDescription]) -> TextLimits:
    """CRM -> the write-back fields of leadsync's own results on its lead object that hold a
    limited number of characters, as `descriptions` (each CRM's lead object) say: a reasons
    field an admin made Text(255) gets reasons cut to fit, not a refusal every day."""
    limits: dict[str, dict[str, int]] = {}
    for crm, description in descriptions.items():
        targets = field_map.writeback.get(crm)
        if targets is None:
            continue
        for name in targets.result_fields():
            info = description.field(name)
            if info is not None and info.max_length:
                limits.setdefault(crm, {})[name] = info.max_length
    return limits


def fit_text(value: Any, limit: int) -> Any:
    """`value` as a text field of `limit` characters holds it: a longer text cut at the last
    line (or else character) that fits, with an ellipsis; anything else as it is."""
    if not isinstance(value, str) or len(value) <= limit or limit < 2:
        return value
    room = value[: limit - len(ELLIPSIS)]
    cut = room.rfind("\n")
    kept = room[: cut + 1] if cut > 0 else room
    return kept + ELLIPSIS


def _same_number(desired: Any, held: Any) -> bool:
    number = _as_number(held)
    return number is not None and number == _as_number(desired)


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or is_blank(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _same_text(desired: Any, held: Any) -> bool:
    if held is None:
        # What a first sync meets in most write-back targets: only a blank is "" as text.
        return is_blank(desired)
    if desired == held and type(desired) is str and type(held) is str:
        return True  # what a run after a run meets: the same text, read alike
    return _text(desired) == _text(held)


def _text(value: Any) -> str:
    # Line ends and the whitespace around lines are not worth a write (reasons are multi-line).
    if value is None:
        return ""
    text = str(value).strip()
    lines = text.splitlines()
    if len(lines) < 2:
        # Blank, or one line: stripped already (every line end is whitespace to strip), as
        # most values a plan compares are; no line-by-line join.
        return text
    return "\n".join(line.strip() for line in lines)


# ------------------------------------------------------------------------- summaries

# CRM -> its traits: the batch sizes and the stage order estimates go by. By default each
# CRM's defaults (no connection needed); a sync passes its connectors' own.
TraitsOf = Callable[[str], CrmTraits]


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One value a plan changes in one record."""

    crm: str
    record_id: str
    field: str
    old: Any
    new: Any

    def describe(self) -> str:
        return f"{self.crm} {self.record_id} {self.field}: {_shown(self.old)} → {_shown(self.new)}"


@dataclass(frozen=True, slots=True)
class ApiCalls:
    """An estimate of the write calls one CRM's updates cost."""

    crm: str
    records: int
    calls: int
    how: str


@dataclass(frozen=True, slots=True)
class PlanSummary:
    """What `leadsync plan` shows: every change, how many per field, the API calls."""

    # Empty when the tally did not keep them (a sync's summary counts its changes only).
    changes: tuple[FieldChange, ...]
    calls: Mapping[str, ApiCalls] = field(default_factory=dict)
    field_counts: Mapping[tuple[str, str], int] = field(default_factory=dict)
    # CRM -> the calls naming the owners of SLA clocks the store cannot name yet, which a
    # writing sync makes after its SLA check (`leadsync.sync.owner_names`); the handoff's own
    # are its preview's.
    owner_name_calls: Mapping[str, int] = field(default_factory=dict)

    @property
    def change_count(self) -> int:
        return sum(self.field_counts.values())

    def per_field(self) -> dict[tuple[str, str], int]:
        """(crm, field) -> how many records the plan changes it in, most first."""
        return dict(sorted(self.field_counts.items(), key=lambda item: (-item[1], item[0])))

    def lines(self) -> list[str]:
        """The summary as text: per CRM the records and calls, then per field the counts."""
        lines = [
            f"{calls.crm}: {calls.records} record(s), about {calls.calls} call(s) ({calls.how})"
            for calls in self.calls.values()
        ]
        lines += [
            f"{crm}: about {calls} call(s) naming the owners of SLA clocks"
            for crm, calls in sorted(self.owner_name_calls.items())
            if calls
        ]
        lines += [f"  {crm} {name}: {count}" for (crm, name), count in self.per_field().items()]
        return lines


def field_changes(updates: Mapping[str, RecordUpdate | None]) -> list[FieldChange]:
    """The changes of one lead's plan (crm -> update), old value from `current`."""
    return [
        FieldChange(crm, update.record_id, name, update.current.get(name), value)
        for crm, update in sorted(updates.items())
        if update is not None
        for name, value in update.values.items()
    ]


def estimate_api_calls(
    crm: str, updates: Sequence[RecordUpdate], *, traits: TraitsOf = traits_of
) -> ApiCalls:
    """The write calls `updates` cost `crm`, when nothing fails, as its traits count them:
    HubSpot ⌈n/100⌉ batch updates, plus one batch of clears per 100 backward lifecycle moves
    (the engine writes those moves in batches of their own); Salesforce ⌈n/200⌉ collections."""
    of_crm = traits(crm)
    backward = sum(1 for update in updates if of_crm.takes_a_clear(update))
    return _api_calls(of_crm, len(updates), backward)


def _api_calls(traits: CrmTraits, count: int, backward: int) -> ApiCalls:
    calls = traits.write_calls(count, backward)
    return ApiCalls(traits.crm, count, calls.calls, calls.how)


class PlanTally:
    """A PlanSummary built a lead's plan at a time, as a settle goes slice by slice: counts
    always, the changes themselves only with `keep_changes` (`leadsync plan` shows them; a
    sync of 100,000 leads would only hold them in memory). The API calls are estimated over
    all the plans added, the fewest a single batching of them could take."""

    def __init__(self, *, keep_changes: bool = True, traits: TraitsOf = traits_of) -> None:
        self._keep_changes = keep_changes
        self._traits = traits
        self._changes: list[FieldChange] = []
        self._field_counts: dict[tuple[str, str], int] = {}
        self._records: dict[str, int] = {}
        self._backward: dict[str, int] = {}

    def add(self, plan: Mapping[str, RecordUpdate | None]) -> None:
        changes = field_changes(plan)
        if self._keep_changes:
            self._changes.extend(changes)
        for change in changes:
            key = (change.crm, change.field)
            self._field_counts[key] = self._field_counts.get(key, 0) + 1
        for crm, update in plan.items():
            if update is not None:
                self._records[crm] = self._records.get(crm, 0) + 1
                if self._traits(crm).takes_a_clear(update):
                    self._backward[crm] = self._backward.get(crm, 0) + 1

    def merge(self, later: PlanTally) -> None:
        """Add the plans `later` tallied, as if added here after these."""
        self._changes.extend(later._changes)
        _add_counts(self._field_counts, later._field_counts)
        _add_counts(self._records, later._records)
        _add_counts(self._backward, later._backward)

    def summary(self) -> PlanSummary:
        calls = {
            crm: _api_calls(self._traits(crm), count, self._backward.get(crm, 0))
            for crm, count in sorted(self._records.items())
        }
        return PlanSummary(tuple(self._changes), calls, dict(self._field_counts))


Key = TypeVar("Key")


def _add_counts(counts: dict[Key, int], more: Mapping[Key, int]) -> None:
    for key, count in more.items():
        counts[key] = counts.get(key, 0) + count


def plan_summary(
    plans: Iterable[Mapping[str, RecordUpdate | None]], *, traits: TraitsOf = traits_of
) -> PlanSummary:
    """Summarise the plans of many leads (each crm -> update) for `leadsync plan`."""
    tally = PlanTally(traits=traits)
    for plan in plans:
        tally.add(plan)
    return tally.summary()


def _shown(value: Any) -> str:
    if is_blank(value):
        return "(blank)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
