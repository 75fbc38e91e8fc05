"""The handoff: a lead that reached the handoff stage and has no record in the CRM sales work
in gets one there, exactly once, with an owner, and the other CRM learns its id.

    find     the merged leads at the handoff stage (or later, up to SQL) with no live record
             in the target CRM, and those whose handoff a kill cut off (`unfinished`)
    resume   a cut-off handoff goes on only while its lead is still due: one whose stage moved
             back, or that nobody holds any more (its other records read live), is not sent;
             its create is looked up by the key (one query for them all): one that landed is
             recorded created, as if the pull had brought it; else the pending handoff is
             withdrawn (no row: due again later, the lead is handed off then, timed from then)
    check    the definition's `require` conditions and the routing: a lead that fails either
             is `blocked`, with its problem named in the run summary and the report
    pending  recorded before any call: the create that follows is keyed by the lead's id
    match    people the CRM already holds under the email (a lead, a contact): never doubled;
             a contact the store matched to the lead (`sync.people`) is matched without asking
    upsert   by the External ID (`handoff_key` of the mapping), 200 a call; a kill after it
             and before the record of it is harmless: the next run's upsert finds the record
    link     the id written back to the other CRM (`handoff_link`), by the engine
    deleted  a record it created or matched that sales then delete leaves the lead with none
             sales see: the handoff is `deleted`, and the lead is handed off again, as one
             never handed off, by the first run that finds it due (the upsert by its key
             passes over the deleted record: one live record, never two)
    respond  a handed-off lead whose record a person then changed in one of the `responded_by`
             fields (a status, the last activity) was worked: the first such change is
             recorded (`responded_at`), for "no response after handoff"
    name     the owners leads went to whose names the store does not know yet are asked
             (`leadsync.sync.owner_names`: one that cannot be named, again a week later)

A plan (`preview`) makes the same choices, leads and owners alike, and records and asks
nothing: it counts what a sync would hand off, and the calls that would cost.

Which CRM is the target is the connectors' business: the one that is a `HandoffTarget` and
has a `handoff_key` in the mapping.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from leadsync.connectors.base import (
    Connector,
    HandoffTarget,
    NewRecord,
    PersonRecord,
    RecordUpdate,
    UpsertResult,
    WriteStatus,
)
from leadsync.errors import ConnectorError
from leadsync.mapping.definition import HandoffModel
from leadsync.mapping.fields import FieldMap
from leadsync.mapping.lifecycle import FORWARD, Stage, Transition
from leadsync.mapping.transforms import TransformError
from leadsync.sync.handoff_ledger import (
    BLOCKED,
    CREATED,
    DELETED,
    FAILED,
    MATCHED,
    PENDING,
    Handoff,
    HandoffLedger,
)
from leadsync.sync.model import Lead, Snapshot
from leadsync.sync.owner_names import known_owners, learn_names
from leadsync.sync.plan import estimate_api_calls, plan_updates
from leadsync.sync.routing import OwnerRouter
from leadsync.sync.sla.clocks import ClockChanges, ClockStop, Outcome

log = logging.getLogger("leadsync.sync.handoff")


@dataclass
class HandoffProblem:
    """Leads that could not be handed off for one reason: how many, and one lead by id."""

    count: int = 0
    example: str = ""


@dataclass
class HandoffCounts:
    """What a run's handoffs came to (the run summary's `handoff`)."""

    handed_off: int = 0  # created in the target CRM with an owner
    matched: int = 0  # the CRM already held the person
    failed: int = 0  # the CRM refused the record
    deferred: int = 0  # the CRM was away: the next run tries again
    # Cut off by a kill, no longer due at the rerun, and its create had not landed: the
    # pending handoff went (due again later, handed off then).
    withdrawn: int = 0
    linked: int = 0  # ids written back to the other CRM
    problems: dict[str, HandoffProblem] = field(default_factory=dict)

    def problem(self, reason: str, lead_id: str) -> None:
        found = self.problems.setdefault(reason, HandoffProblem())
        found.count += 1
        found.example = found.example or f"lead {lead_id}"

    @property
    def blocked(self) -> int:
        return sum(problem.count for problem in self.problems.values())

    def lines(self) -> list[str]:
        """The summary in words; the problems one a line, most frequent first."""
        lines = [
            f"handoff: {self.handed_off} handed off, {self.matched} matched, "
            f"{self.failed} refused, {self.deferred} deferred, {self.withdrawn} withdrawn, "
            f"{self.blocked} cannot be handed off; {self.linked} linked back"
        ]
        for reason, problem in sorted(self.problems.items(), key=lambda i: (-i[1].count, i[0])):
            lines.append(f"  cannot hand off: {reason}: {problem.count}, e.g. {problem.example}")
        return lines


@dataclass
class HandoffPreview:
    """What a plan's handoffs would come to (`leadsync plan`): nothing created or recorded."""

    # (route, owner) -> leads it would hand off there
    owners: Counter[tuple[str, str]] = field(default_factory=Counter)
    problems: dict[str, HandoffProblem] = field(default_factory=dict)
    lookups: int = 0  # emails to look up first: a person the CRM holds is matched
    assigned: int = 0  # leads the CRM's own rules would give an owner, read back after
    unnamed: set[str] = field(default_factory=set)  # owners whose names it would ask
    names: dict[str, str] = field(default_factory=dict)  # owner id -> name, those known
    # CRM -> the writes giving the lead's other records the new record's id
    links: dict[str, list[RecordUpdate]] = field(default_factory=dict)
    # The target CRM's calls, by kind (find people, upsert, owner names): see `estimate`.
    target_calls: dict[str, int] = field(default_factory=dict)
    link_calls: dict[str, int] = field(default_factory=dict)

    def problem(self, reason: str, lead_id: str) -> None:
        found = self.problems.setdefault(reason, HandoffProblem())
        found.count += 1
        found.example = found.example or f"lead {lead_id}"

    @property
    def handed_off(self) -> int:
        return sum(self.owners.values())

    @property
    def blocked(self) -> int:
        return sum(problem.count for problem in self.problems.values())

    @property
    def calls(self) -> int:
        return sum(self.target_calls.values()) + sum(self.link_calls.values())

    def estimate(self, target: HandoffTarget) -> None:
        """The calls, by the target's own reckoning and the plan's for the link writes. Who
        the CRM's rules will pick is not known yet: each such lead counts as an owner to name
        (an upper bound)."""
        self.target_calls = target.handoff_calls(
            records=self.handed_off,
            lookups=self.lookups,
            owners=len(self.unnamed) + self.assigned,
            assigned=self.assigned,
        )
        self.link_calls = {
            crm: estimate_api_calls(crm, updates).calls for crm, updates in self.links.items()
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "would_hand_off": self.handed_off,
            "by_owner": [
                {"route": route, "owner": owner, "name": self.names.get(owner), "leads": n}
                for (route, owner), n in sorted(self.owners.items())
            ],
            "cannot_hand_off": {
                reason: {"count": p.count, "example": p.example}
                for reason, p in sorted(self.problems.items())
            },
            "calls": self.calls,
            "target_calls": dict(self.target_calls),
            "link_calls": dict(self.link_calls),
        }

    def lines(self) -> list[str]:
        """The preview in words, as the run summary's `handoff` line."""
        kinds = [f"{kind} {n}" for kind, n in self.target_calls.items() if n]
        kinds += [f"link back to {crm} {n}" for crm, n in sorted(self.link_calls.items()) if n]
        lines = [
            f"handoff (plan): {self.handed_off} would be handed off (or matched to a person "
            f"the CRM holds), {self.blocked} cannot be handed off; about {self.calls} "
            f"call(s)" + (f" ({', '.join(kinds)})" if kinds else "")
        ]
        for (route, owner), n in sorted(self.owners.items()):
            lines.append(f"  {route or '-'} -> {self.names.get(owner) or owner}: {n}")
        for reason, problem in sorted(self.problems.items(), key=lambda i: (-i[1].count, i[0])):
            lines.append(f"  cannot hand off: {reason}: {problem.count}, e.g. {problem.example}")
        return lines


@dataclass(frozen=True, slots=True)
class _Chosen:
    handoff: Handoff  # pending (with its owner) or blocked
    resumed: bool  # an earlier run's create may have landed: not looked up again
    route: str = ""


# The route a preview names for a lead a run cut off mid-handoff had given its owner.
RESUMED_PICK = "given before a cut-off run"

# The id a preview's link writes carry: the record is not created.
_NEW_RECORD = "(new)"


@dataclass(frozen=True, slots=True)
class MergedLead:
    """What the handoff needs of a merged lead."""

    lead: Lead
    snapshots: Mapping[str, Snapshot]
    transitions: Sequence[Transition]
    # The record the target CRM holds of this person though no lead record names it (a
    # Contact sales created), matched in the store (`sync.people`): the handoff matches it,
    # and asks the CRM for no other. Or why such a record waits in review: no handoff then.
    person: PersonRecord | None = None
    person_review: str = ""
    # The lead's records as their CRMs hold them now, as far as leadsync knows: `snapshots`
    # under its own writes no pull has brought back yet (none given: `snapshots`). A link
    # written by a run cut off before the handoff was marked linked is there, though HubSpot's
    # search, seconds behind its writes, shows the next run the record without it.
    held: Mapping[str, Snapshot] | None = None
    # Why a CRM holds the person past the lead's stage (a person parked them at a later stage
    # there: HubSpot's `other`, a portal's own): the lead is not handed off then.
    held_past: str = ""


@dataclass(frozen=True, slots=True)
class LinkWrite:
    """The target record's id, to write to the lead's record in another CRM."""

    crm: str
    lead_id: str
    update: RecordUpdate


@dataclass(frozen=True, slots=True)
class Created:
    """A record the handoff created, with the values it was created with (the engine records
    them as leadsync's own writes, so the next pull knows them for an echo)."""

    crm: str
    record_id: str
    values: Mapping[str, Any]


@dataclass
class HandoffOutcome:
    links: list[LinkWrite] = field(default_factory=list)
    created: list[Created] = field(default_factory=list)


def handoff_target(connectors: Mapping[str, Connector], field_map: FieldMap) -> str | None:
    """The CRM leads are handed off to: a HandoffTarget with a `handoff_key` in the mapping."""
    for crm, connector in connectors.items():
        targets = field_map.writeback.get(crm)
        if isinstance(connector, HandoffTarget) and targets and targets.handoff_key:
            return crm
    return None


class HandoffStep:
    """One run's handoffs (see the module's docstring)."""

    def __init__(
        self,
        handoff: HandoffModel,
        ledger: HandoffLedger,
        target: HandoffTarget,
        field_map: FieldMap,
        *,
        clock: Callable[[], datetime],
        run_id: str,
        clocks: Callable[[Lead, Handoff], ClockChanges] | None = None,
        responded_by: Sequence[str] = (),
        links: Callable[[str, Sequence[str]], Mapping[str, tuple[str, str]]] | None = None,
        deleted: Callable[[str, Sequence[str]], set[str]] | None = None,
        still_live: Callable[[str, Sequence[str]], set[str]] | None = None,
    ) -> None:
        """`clocks` gives the SLA clocks a lead's handoff starts (see SlaRules.at_handoff);
        a change of one of `responded_by` after the handoff is the lead's first response;
        `links` tells which lead a CRM record is linked to (the store's links_for);
        `deleted` which records of a CRM the store saw deleted (its deleted_records);
        `still_live` which of some records of a CRM the CRM itself still holds live (asked
        before a lead whose handed-off record sales deleted is handed off again)."""
        self._links_of = links
        self._deleted_of = deleted
        self._still_live = still_live
        self._clocks = clocks
        self._responded_by = tuple(responded_by)
        self._handoff = handoff
        self._ledger = ledger
        self._target = target
        self._crm = target.crm
        self._map = field_map
        self._clock = clock
        self._run_id = run_id
        targets = field_map.writeback[self._crm]
        assert targets.handoff_key is not None
        self._key_field = targets.handoff_key
        self._router = OwnerRouter(
            handoff, lambda owners: ledger.loads(owners, open_stage=handoff.stage)
        )
        start = FORWARD.index(Stage(handoff.stage))
        # Up to SQL: a lead at opportunity or customer is sales' already, or a deal of its own.
        self._stages = {stage.value for stage in FORWARD[start : FORWARD.index(Stage.SQL) + 1]}

    def run(self, merged: Sequence[MergedLead], counts: HandoffCounts) -> HandoffOutcome:
        outcome = HandoffOutcome()
        known = self._ledger.of([m.lead.lead_id for m in merged])
        gone = self._gone(merged, known)
        now = self._clock()
        settled: list[Handoff] = []
        stopped: list[ClockChanges] = []  # the clocks of handoffs whose record is gone
        responses: dict[str, datetime] = {}
        # (lead, its pending handoff, whether an earlier run's create may have landed)
        to_send: list[tuple[MergedLead, Handoff, bool]] = []
        undue: list[tuple[MergedLead, Handoff]] = []  # cut off, and no longer due
        # Cut off, and blocked now (a `require` no longer met): by lead, their blocked handoff.
        blocked_now: dict[str, Handoff] = {}
        landed_now: list[Handoff] = []  # cut-off creates found landed by this run
        for m in self._in_routing_order(merged):
            lead_id = m.lead.lead_id
            earlier = known.get(lead_id)
            live = m.snapshots.get(self._crm)
            if live is not None and not live.deleted:
                if earlier is not None and earlier.status == PENDING:
                    # The cut-off create landed: the pull brought its record.
                    earlier = replace(
                        earlier, status=CREATED, record_id=live.record_id, handed_off_at=now
                    )
                    settled.append(earlier)
                    landed_now.append(earlier)
                if earlier is not None and earlier.status == CREATED:
                    if earlier.owner is None:
                        settled.append(earlier)  # the CRM's rules picked one: read below
                    settled += self._link(m, earlier, outcome)
                responded = self._first_response(earlier, live)
                if responded is not None:
                    responses[lead_id] = responded
                continue
            lost = earlier is not None and earlier.handed_off and earlier.record_id in gone
            if earlier is not None and earlier.handed_off and not lost:
                # Handed off; the pull has not brought the record (yet, or it is a contact).
                settled += self._link(m, earlier, outcome)
                continue
            if earlier is not None and lost:
                stopped.append(self._deleted_clocks(m.lead, earlier, now))
                earlier = replace(earlier, status=DELETED)
            chosen = self._choose(m, earlier, now)
            if chosen is None:
                if earlier is not None and lost:
                    settled.append(earlier)  # not due now: recorded as deleted meanwhile
                elif earlier is not None and earlier.status == PENDING:
                    undue.append((m, earlier))
                continue
            if chosen.handoff.status == BLOCKED:
                if chosen.resumed and earlier is not None:
                    # Its cut-off create may have landed: asked with those no longer due,
                    # recorded blocked only if it did not.
                    undue.append((m, earlier))
                    blocked_now[lead_id] = chosen.handoff
                    continue
                counts.problem(chosen.handoff.problem, lead_id)
                settled.append(chosen.handoff)
                continue
            to_send.append((m, chosen.handoff, chosen.resumed))
        to_send, unheld, unheld_resumed = self._held_elsewhere(to_send, gone, known)
        settled += unheld
        landed, not_landed = self._no_longer_due(undue + unheld_resumed, outcome)
        settled += landed
        withdrawn = [lead_id for lead_id in not_landed if lead_id not in blocked_now]
        counts.withdrawn += len(withdrawn)
        for lead_id in set(not_landed) & set(blocked_now):
            counts.problem(blocked_now[lead_id].problem, lead_id)
            settled.append(blocked_now[lead_id])
        landed_now += landed
        leads = {m.lead.lead_id: m.lead for m in merged}
        unowned = {h.lead_id for h in settled if not h.owner}
        settled = self._owned(settled)
        owned_now = {h.lead_id for h in settled if h.owner and h.lead_id in unowned}
        self._save(
            settled + [pending for _, pending, _ in to_send],
            leads,
            stopped,
            owned_now=owned_now,
            withdrawn=withdrawn,
            unclocked=self._moved_on(landed_now, leads),
        )
        self._ledger.mark_responded(responses)
        owners = {h.owner for h in settled if h.owner}
        if to_send:
            owners |= self._send(to_send, counts, outcome)
        self._learn_names(owners)
        return outcome

    def preview(self, merged: Sequence[MergedLead], preview: HandoffPreview) -> None:
        """What `run` would do with these leads, added to `preview`: the leads it would hand
        off, by route and owner, those it could not, and the calls it would cost. Nothing is
        recorded and the CRM is not asked (whether it holds a person already is a call: a
        lead it holds is counted as handed off, then matched by the run)."""
        known = self._ledger.of([m.lead.lead_id for m in merged])
        gone = self._gone(merged, known)
        now = self._clock()
        preview.names.update(self._ledger.names(self._crm))
        named = known_owners(self._ledger, self._crm, now=now)
        for m in self._in_routing_order(merged):
            earlier = known.get(m.lead.lead_id)
            live = m.snapshots.get(self._crm)
            if live is not None and not live.deleted:
                continue
            if earlier is not None and earlier.handed_off:
                if earlier.record_id not in gone:
                    continue
                earlier = replace(earlier, status=DELETED)
            chosen = self._choose(m, earlier, now)
            if chosen is None:
                continue
            handoff = chosen.handoff
            if handoff.status == BLOCKED:
                preview.problem(handoff.problem, m.lead.lead_id)
                continue
            # Without an owner, the CRM's own rules assign it (the route says so): who they
            # picked is read after the create.
            preview.owners[(chosen.route, handoff.owner or "-")] += 1
            if handoff.owner is None:
                preview.assigned += 1
            if not chosen.resumed and m.person is None:
                preview.lookups += 1
            if handoff.owner and handoff.owner not in named:
                preview.unnamed.add(handoff.owner)
            for link in self._links(m, replace(handoff, record_id=_NEW_RECORD)):
                preview.links.setdefault(link.crm, []).append(link.update)

    def mark_linked(self, lead_ids: Iterable[str]) -> None:
        handoffs = self._ledger.of(sorted(set(lead_ids)))
        now = self._clock()
        self._ledger.save([replace(h, linked_at=now) for h in handoffs.values()])

    # ---------------------------------------------------------------- steps

    def _in_routing_order(self, merged: Sequence[MergedLead]) -> list[MergedLead]:
        # Round-robin follows this order: by email, so that any two runs over the same leads
        # (a sync, a backfill, a rerun after a kill, a plan) route them alike. A settle's
        # slices come in email order too (`leadsync.sync.slices`): however sliced, alike.
        identity = self._map.identity_field
        return sorted(
            merged, key=lambda m: (str(m.lead.values.get(identity) or ""), m.lead.lead_id)
        )

    def _choose(self, m: MergedLead, earlier: Handoff | None, now: datetime) -> _Chosen | None:
        """A lead not handed off yet: None when it is not due (not at the handoff stage), else
        its handoff, pending with an owner or blocked. A handoff a kill cut off is due as any
        other: a lead whose stage moved back meanwhile is not sent (`_no_longer_due`)."""
        lead_id = m.lead.lead_id
        resumed = earlier is not None and earlier.status == PENDING
        if m.lead.stage not in self._stages:
            return None
        if not any(not s.deleted for s in m.snapshots.values()):
            return None  # deleted in every CRM: nobody is left to hand off
        if earlier is None or earlier.status == DELETED:
            # Due again after a deletion: the system's part is timed from now on.
            eligible_at = _entered(m, self._handoff, now)
        else:
            eligible_at = earlier.eligible_at
        problem = self._problem(m)
        if problem:
            return _Chosen(self._blocked(lead_id, eligible_at, problem), resumed)
        if (
            resumed
            and earlier is not None
            and earlier.owner is not None
            and self._router.could_give(earlier.owner)
        ):
            # Its owner was given, and counted in the owners' loads, before the cut: routed
            # again, it would go to the next in the round-robin, counted twice, and a create
            # that landed would change hands. Unless the rules changed meanwhile so that they
            # no longer give that owner (out of every team, or the CRM assigns): then kept,
            # the owner would be one who left (the create refused, the lead stuck failed) or
            # one the CRM's rule overrides (the store naming another owner than the CRM's).
            return _Chosen(replace(earlier, run_id=self._run_id), resumed, RESUMED_PICK)
        routed = self._router.route(m.lead.values)
        if routed.problem:
            return _Chosen(self._blocked(lead_id, eligible_at, routed.problem), resumed)
        pending = Handoff(
            lead_id,
            self._crm,
            PENDING,
            eligible_at,
            self._run_id,
            owner=routed.owner,
            rule=routed.rule,
        )
        return _Chosen(pending, resumed, routed.route)

    def _gone(self, merged: Sequence[MergedLead], known: Mapping[str, Handoff]) -> set[str]:
        """The records handed-off leads got that the store saw deleted, of the leads whose
        target record the pull does not bring live."""
        if self._deleted_of is None:
            return set()
        held = []
        for m in merged:
            handoff = known.get(m.lead.lead_id)
            live = m.snapshots.get(self._crm)
            if handoff is None or not handoff.handed_off or not handoff.record_id:
                continue
            if live is None or live.deleted:
                held.append(handoff.record_id)
        return self._deleted_of(self._crm, sorted(set(held))) if held else set()

    def _held_elsewhere(
        self,
        to_send: list[tuple[MergedLead, Handoff, bool]],
        gone: set[str],
        known: Mapping[str, Handoff],
    ) -> tuple[
        list[tuple[MergedLead, Handoff, bool]], list[Handoff], list[tuple[MergedLead, Handoff]]
    ]:
        """The handoffs to send, less those of leads whose other records the CRMs no longer
        hold (HubSpot's search never shows an archived contact, so the store may still think
        one live): nobody holds the person, and handing them off would bring a deleted lead
        back. Asked of the leads whose handed-off record sales deleted (returned apart,
        recorded as deleted) and of those whose handoff a kill cut off (returned apart with
        their pending handoff: no longer due). One read per CRM, of these few leads' records
        alone."""
        if self._still_live is None:
            return to_send, [], []
        again = [
            entry
            for entry in to_send
            if entry[2]
            or (
                (earlier := known.get(entry[0].lead.lead_id)) is not None
                and earlier.record_id in gone
            )
        ]
        if not again:
            return to_send, [], []
        nobody = self._held_by_nobody([m for m, _, _ in again])
        kept = [entry for entry in to_send if entry[0].lead.lead_id not in nobody]
        dropped = [entry for entry in again if entry[0].lead.lead_id in nobody]
        deleted = [
            replace(known[m.lead.lead_id], status=DELETED)
            for m, _, resumed in dropped
            if not resumed
        ]
        undue = [
            (_held_nowhere_else(m, self._crm), known[m.lead.lead_id])
            for m, _, resumed in dropped
            if resumed
        ]
        return kept, deleted, undue

    def _held_by_nobody(self, leads: Sequence[MergedLead]) -> set[str]:
        """The ones of `leads` none of whose records in the other CRMs is live now, read."""
        assert self._still_live is not None
        held: dict[str, list[str]] = {}
        for m in leads:
            for crm, snapshot in m.snapshots.items():
                if crm != self._crm and not snapshot.deleted:
                    held.setdefault(crm, []).append(snapshot.record_id)
        live = {
            (crm, record_id)
            for crm, record_ids in held.items()
            for record_id in self._still_live(crm, sorted(set(record_ids)))
        }
        nobody: set[str] = set()
        for m in leads:
            others = [(c, s.record_id) for c, s in m.snapshots.items() if c != self._crm]
            if not any(other in live for other in others):
                nobody.add(m.lead.lead_id)
        return nobody

    def _no_longer_due(
        self, undue: Sequence[tuple[MergedLead, Handoff]], outcome: HandoffOutcome
    ) -> tuple[list[Handoff], list[str]]:
        """The handoffs a kill cut off whose leads are no longer due (their stage moved back,
        nobody holds the person) or are blocked now: not sent. Whether the cut-off create
        landed is asked, by the handoff key, one lookup for them all: one that did is recorded
        created, as if a pull had brought its record (returned, with its links queued); one
        that did not is returned by its lead id (withdrawn, or recorded blocked: `run`). A CRM
        that does not answer now leaves them pending, asked again at the next run."""
        if not undue:
            return [], []
        try:
            landed = self._target.records_by_key(
                sorted({m.lead.lead_id for m, _ in undue}), key_field=self._key_field
            )
        except ConnectorError as problem:
            log.warning("handoff: cut-off creates not looked up (%s)", type(problem).__name__)
            return [], []
        now = self._clock()
        created: list[Handoff] = []
        withdrawn: list[str] = []
        for m, pending in undue:
            record_id = landed.get(m.lead.lead_id)
            if record_id is None:
                withdrawn.append(m.lead.lead_id)
                continue
            handoff = replace(pending, status=CREATED, record_id=record_id, handed_off_at=now)
            created += [handoff, *self._link(m, handoff, outcome)]
        if withdrawn:
            log.info("handoff: %d cut-off create(s) not landed, not sent", len(withdrawn))
        return created, withdrawn

    def _moved_on(self, landed: Sequence[Handoff], leads: Mapping[str, Lead]) -> set[str]:
        """The leads of cut-off creates found landed whose stage left the handoff's stages
        meanwhile (disqualified, recycled, or on to a deal): recorded created, with no SLA
        clock. The move was judged before the create was known, stopping the lead's clocks
        (rejected, accepted); started now, one would run on to a breach nobody owes."""
        return {h.lead_id for h in landed if leads[h.lead_id].stage not in self._stages}

    def _deleted_clocks(self, lead: Lead, handoff: Handoff, now: datetime) -> ClockChanges:
        """The clocks `handoff` started, stopped now: sales decided about the lead by deleting
        its record (rejected; late if past due), and a new handoff starts clocks of its own."""
        if self._clocks is None:
            return ClockChanges()
        started = self._clocks(lead, handoff).opened
        reason = f"sales deleted the {self._crm} record"
        return ClockChanges(
            stopped=tuple(ClockStop(c.clock_id, now, Outcome.REJECTED, reason) for c in started)
        )

    def _first_response(self, handoff: Handoff | None, live: Snapshot) -> datetime | None:
        """When a person first changed one of the `responded_by` fields of the handed-off
        record after its handoff, as far as this snapshot tells (None: not yet, or known
        already). The snapshot keeps each field's last change: a field changed twice
        between two syncs counts from the second change."""
        if (
            handoff is None
            or not handoff.handed_off
            or handoff.handed_off_at is None
            or handoff.responded_at is not None
            or not handoff.own_record
            or handoff.record_id != live.record_id
        ):
            return None
        changes = [
            when
            for name in self._responded_by
            if (when := live.changed_at.get(name)) is not None and when > handoff.handed_off_at
        ]
        return min(changes, default=None)

    def _owned(self, handoffs: Sequence[Handoff]) -> list[Handoff]:
        """`handoffs`, each record created without an owner given the one the CRM's own
        assignment rules picked: the upsert's answer does not say, so the records are read
        (one call for them all). A CRM that does not answer now is asked at a later run."""
        unowned = sorted(
            {h.record_id for h in handoffs if h.status == CREATED and not h.owner and h.record_id}
        )
        if not unowned:
            return list(handoffs)
        try:
            owners = self._target.owners_of(unowned)
        except ConnectorError as problem:
            log.warning("handoff: owners not read (%s)", type(problem).__name__)
            return list(handoffs)
        return [
            replace(h, owner=owners[h.record_id])
            if h.status == CREATED and not h.owner and h.record_id in owners
            else h
            for h in handoffs
        ]

    def _learn_names(self, owners: set[str]) -> None:
        """Ask the CRM the names of the owners the store cannot name yet, for the reports
        (`leadsync.sync.owner_names`). A name is a nicety: a CRM that does not answer now is
        asked at a later run."""
        learn_names(self._ledger, self._target, owners, now=self._clock())

    def _problem(self, m: MergedLead) -> str:
        if m.person_review and m.person is None:
            # Creating a lead for someone the CRM may hold already would be a guess.
            return f"a {self._crm} record of the person is in review"
        lead = m.lead
        email = lead.values.get(self._map.identity_field)
        if not email:
            return f"no {self._map.identity_field}"
        if m.held_past:
            # The score says MQL; a person in that CRM says they are further on (or parked):
            # sales get no lead to accept for them. Lifted once that stage moves.
            return m.held_past
        unmet = [c.describe() for c in self._handoff.require if not c.holds(lead.values)]
        return f"requires {', '.join(unmet)}" if unmet else ""

    def _blocked(self, lead_id: str, eligible_at: datetime, problem: str) -> Handoff:
        return Handoff(lead_id, self._crm, BLOCKED, eligible_at, self._run_id, problem=problem)

    def _taken(self, people: Mapping[str, PersonRecord]) -> dict[str, str]:
        """Record id -> the lead it is linked to, for the records `find_people` found."""
        if self._links_of is None or not people:
            return {}
        ids = sorted({record.record_id for record in people.values()})
        return {record_id: lead for record_id, (lead, _) in self._links_of(self._crm, ids).items()}

    def _send(
        self,
        to_send: Sequence[tuple[MergedLead, Handoff, bool]],
        counts: HandoffCounts,
        outcome: HandoffOutcome,
    ) -> set[str]:
        """Match or create the records of `to_send`; returns the owners they went to."""
        # A resumed one is not looked for: the record found would be its own cut-off create,
        # which the upsert by its key finds again.
        fresh = [
            str(m.lead.values[self._map.identity_field])
            for m, _, resumed in to_send
            if not resumed and m.person is None
        ]
        people = self._target.find_people(fresh) if fresh else {}
        taken = self._taken(people)
        now = self._clock()
        done: list[Handoff] = []
        records: list[NewRecord] = []
        sent: dict[str, tuple[MergedLead, Handoff, dict[str, Any]]] = {}
        for m, pending, resumed in to_send:
            email = str(m.lead.values[self._map.identity_field]).strip().lower()
            held = None if resumed else (m.person or people.get(email))
            if held is not None and taken.get(held.record_id, m.lead.lead_id) != m.lead.lead_id:
                # The CRM's record with this email is another lead's person (its email changed
                # since): matching it would hand this lead to nobody, creating one would
                # duplicate a person. A person decides.
                problem = f"the {self._crm} {held.object_name} with this email is another lead's"
                counts.problem(problem, m.lead.lead_id)
                done.append(replace(pending, status=BLOCKED, problem=problem))
                continue
            if held is not None:
                counts.matched += 1
                done.append(
                    replace(
                        pending,
                        status=MATCHED,
                        record_id=held.record_id,
                        record_object=held.object_name,
                        handed_off_at=now,
                    )
                )
                continue
            try:
                values = self._values(m.lead)
            except TransformError as unwritable:
                problem = f"cannot write {unwritable.field}: {unwritable.reason}"
                counts.problem(problem, m.lead.lead_id)
                done.append(replace(pending, status=BLOCKED, problem=problem))
                continue
            records.append(NewRecord(m.lead.lead_id, values, pending.owner))
            sent[m.lead.lead_id] = (m, pending, values)
        results = self._target.upsert(
            records, key_field=self._key_field, assign=self._handoff.crm_assigns
        )
        finished = [
            handoff
            for result in results
            if (handoff := self._finished(sent[result.key][1], result, counts)) is not None
        ]
        for handoff in self._owned(finished):
            done.append(handoff)
            if handoff.status == CREATED and handoff.record_id:
                m, _, values = sent[handoff.lead_id]
                outcome.created.append(Created(self._crm, handoff.record_id, values))
                outcome.links += self._links(m, handoff)
        self._save(done, {m.lead.lead_id: m.lead for m, _, _ in to_send})
        return {h.owner for h in done if h.handed_off and h.owner}

    def _save(
        self,
        handoffs: Sequence[Handoff],
        leads: Mapping[str, Lead],
        stopped: Sequence[ClockChanges] = (),
        *,
        owned_now: Collection[str] = (),
        withdrawn: Sequence[str] = (),
        unclocked: Collection[str] = (),
    ) -> None:
        """Record `handoffs`, with the clocks of those that reached sales just now (starting
        one twice is harmless), and again of those whose owner became known just now
        (`owned_now`: read back a run late), which gives the clocks their owner. A lead named
        twice is recorded as last named: one statement writes a row once. The pending
        handoffs of the `withdrawn` leads go, in the same transaction. The `unclocked` leads'
        handoffs start no clock (`_moved_on`)."""
        clocks = []
        if self._clocks is not None:
            clocks = [
                self._clocks(leads[h.lead_id], h)
                for h in handoffs
                if h.handed_off
                and h.handed_off_at is not None
                and (h.linked_at is None or h.lead_id in owned_now)
                and h.lead_id not in unclocked
            ]
        rows = list({h.lead_id: h for h in handoffs}.values())
        changes = [*stopped, *clocks]
        self._ledger.save(
            rows, clocks=[c for c in changes if c], now=self._clock(), withdrawn=withdrawn
        )

    def _finished(
        self, pending: Handoff, result: UpsertResult, counts: HandoffCounts
    ) -> Handoff | None:
        if result.status is WriteStatus.WRITTEN:
            counts.handed_off += 1
            return replace(
                pending, status=CREATED, record_id=result.record_id, handed_off_at=self._clock()
            )
        if result.status is WriteStatus.DEFERRED:
            counts.deferred += 1
            return None  # still pending: the next run sends it again
        counts.failed += 1
        # The category and the fields the CRM named, never its message: it may quote values.
        named = f" ({', '.join(result.fields)})" if result.fields else ""
        problem = f"{self._crm} refused it: {result.category}{named}"
        counts.problem(problem, pending.lead_id)
        return replace(pending, status=FAILED, problem=problem)

    def _values(self, lead: Lead) -> dict[str, Any]:
        """What the new record holds: what a plan would write to an empty record, one that
        holds every field blank (a field the plan finds no value of is one it never read)."""
        blank = dict.fromkeys(self._map.crm_fields(self._crm))
        empty = Snapshot(self._crm, "", self._clock(), blank, {})
        update = plan_updates(self._map, lead, {self._crm: empty}).get(self._crm)
        if update is None:
            return {}
        return {name: value for name, value in update.values.items() if value is not None}

    def _link(self, m: MergedLead, handoff: Handoff, outcome: HandoffOutcome) -> list[Handoff]:
        """Queue the link writes of a handed-off lead; with none left to make (the other CRM
        holds the id: a link whose record was cut off, or whose write landed before a cut that
        kept the handoff from being marked linked), the handoff is done: returned so."""
        if handoff.linked_at is not None:
            return []  # written once; a person may change it since, as any of their fields
        links = self._links(m, handoff)
        outcome.links += links
        if links:
            return []
        return [replace(handoff, linked_at=self._clock())]

    def _links(self, m: MergedLead, handoff: Handoff) -> list[LinkWrite]:
        """The writes that give the lead's other records the target record's id."""
        if not handoff.own_record or not handoff.record_id:
            return []
        links = []
        for crm, snapshot in (m.snapshots if m.held is None else m.held).items():
            targets = self._map.writeback.get(crm)
            link_field = targets.handoff_link if targets else None
            if crm == self._crm or link_field is None or snapshot.deleted:
                continue
            held = snapshot.raw.get(link_field)
            if held == handoff.record_id:
                continue
            update = RecordUpdate(
                snapshot.record_id, {link_field: handoff.record_id}, {link_field: held}
            )
            links.append(LinkWrite(crm, m.lead.lead_id, update))
        return links


def _held_nowhere_else(m: MergedLead, crm: str) -> MergedLead:
    """`m` with its records outside `crm` deleted, as a read found them just now (in what
    was pulled and in what leadsync knows it wrote since): no link is written to a record
    that is gone."""

    def gone(snapshots: Mapping[str, Snapshot]) -> dict[str, Snapshot]:
        return {c: s if c == crm else replace(s, deleted=True) for c, s in snapshots.items()}

    return replace(m, snapshots=gone(m.snapshots), held=None if m.held is None else gone(m.held))


def _entered(m: MergedLead, handoff: HandoffModel, now: datetime) -> datetime:
    """When the lead reached the handoff stage: its transition of this run, else now (it was
    there before; the first run that sees it eligible starts the system's clock)."""
    eligible = {stage.value for stage in FORWARD[FORWARD.index(Stage(handoff.stage)) :]}
    for transition in m.transitions:
        if transition.to_stage.value in eligible:
            return transition.at
    return now
