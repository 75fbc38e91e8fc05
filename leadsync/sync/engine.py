"""One sync run: pull, map, store, match, reconcile, score and stage, plan, write, record.

    preflight each CRM described once; a field the mapping names that a CRM lacks, or a write
              target it cannot write, stops the run here (`leadsync.sync.preflight`)
    pull      each CRM's changes since its cursor; each page committed with the cursor; its
              related objects' pages first, laid over the lead records that name them
              (`leadsync.sync.related_objects`)
    match     the records pulled and not yet reconciled (and those whose refused write is due
              to be tried again), to leads (or the review queue); then the related records
              that are people no lead record names (a Contact sales created) to those leads
              (`leadsync.sync.people`)
    merge     each touched lead's fields under their rules; score; lifecycle transitions
              (what the CRMs hold is evidence, but never what leadsync itself wrote there);
              the SLA clocks those start and stop (leads with a clock past due are merged
              too, so their CRMs' breach flag is set)
    plan      what each CRM record should hold, minus what it holds
    write     in batches; each batch's results recorded with the values written (the echo
              fingerprints that stop the next pull mistaking our writes for a person's)
    handoff   leads at the handoff stage with no record in the CRM sales work in get one,
              exactly once, with an owner; its id goes back to the other CRM
              (`leadsync.sync.handoff`)
    settle    the pulled records marked reconciled, only once their writes are done
    SLA       breaches recorded and announced once, volume paced, the webhook posted
    names     the owners of SLA clocks the store cannot name yet asked of their CRM, for the
              reports (`leadsync.sync.owner_names`)

Match to settle go a slice of the pending records at a time, each person's records in one
slice (grouped by `leadsync.sync.grouping`, sliced by `leadsync.sync.slices`), so a first sync
of a big org holds one slice in memory.

The run's counts are a `RunSummary` (`leadsync.sync.run_summary`), kept in the run log.

A run killed anywhere resumes on the next: pages are committed with their cursor, records stay
pending until their writes are recorded, and the next pull sees what a cut-off batch wrote, so
it is not written again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

from leadsync.connectors.base import (
    Connector,
    CrmRecord,
    CrmTraits,
    HandoffTarget,
    Page,
    PersonRecord,
    Position,
    RecordUpdate,
    WriteResult,
    WriteStatus,
    merge_by_id,
)
from leadsync.connectors.classify import REQUEST_REFUSALS
from leadsync.connectors.traits import traits_of
from leadsync.errors import EXIT_OK, LeadsyncError, QuotaReserveReachedError, RunPausedError
from leadsync.logs import run_context
from leadsync.mapping.definition import LeadDefinition
from leadsync.mapping.fields import CONTACT, FieldMap
from leadsync.mapping.lifecycle import Stage, Transition, next_transitions
from leadsync.mapping.scoring import score_lead
from leadsync.mapping.transforms import TransformError, is_blank
from leadsync.mapping.types import CRM_NAMES, CRMS
from leadsync.sync.audit_log import WriteRow
from leadsync.sync.carry import Queued, WriteCarry
from leadsync.sync.collector import old_objects_left_alone
from leadsync.sync.deals import RULE as DEAL_RULE
from leadsync.sync.grouping import PendingGrouping
from leadsync.sync.handoff import (
    HandoffCounts,
    HandoffPreview,
    HandoffStep,
    LinkWrite,
    MergedLead,
    handoff_target,
)
from leadsync.sync.handoff_ledger import CREATED, Handoff
from leadsync.sync.identity import (
    InMemoryIdentityIndex,
    lookups_for,
    match_batch,
    normalise_email,
    people_named,
)
from leadsync.sync.ids import new_id
from leadsync.sync.ingest import (
    QuarantineError,
    fields_to_pull,
    own_fields,
    own_values,
    to_snapshot,
)
from leadsync.sync.model import FieldChoice, Lead, Match, MatchKind, Snapshot
from leadsync.sync.owner_names import learn_names, owner_directory, unknown_owners
from leadsync.sync.people import PeopleDecisions, match_people
from leadsync.sync.plan import (
    MovesBack,
    PlanTally,
    TextLimits,
    plan_updates,
    text_limits,
    with_score,
)
from leadsync.sync.preflight import PreflightError, context_of, describe_for, problems
from leadsync.sync.prewrite import PreWriteCheck, needs_check
from leadsync.sync.quarantine_ledger import Quarantined
from leadsync.sync.reconcile import reconcile
from leadsync.sync.related import (
    Related,
    contact_of,
    fields_of,
    stream_key,
)
from leadsync.sync.related_objects import RelatedObjects, deal_persons, record_ids_by_crm
from leadsync.sync.run_summary import CrmCounts, RunSummary, held_back
from leadsync.sync.sla.clocks import Clock, ClockChanges, SlaRules
from leadsync.sync.sla.monitor import SlaMonitor, monitor_for
from leadsync.sync.sla.response import NoResponseRule
from leadsync.sync.slices import Slice
from leadsync.sync.store import Store, content_digest

log = logging.getLogger("leadsync.sync")
K = TypeVar("K")

# Pending records settled at once: the peak RSS follows the slice. A first sync of 10,000 /
# 30,000 leads per CRM peaked at 346 / 394 MB in slices of 20,000, at 200 / 229 MB in slices
# of 5,000 (5.3 GB at 100,000 settled whole: docs/BENCHMARKS.md). A slice costs no write call
# a whole run would not: its part-full batches wait for the next (`leadsync.sync.carry`);
# what a slice still costs is a part-full stamp read of Salesforce's checks and a part-full
# handoff (its lookups and upserts): at 30,000 per CRM, 11 and 15 calls of 900.
SETTLE_SLICE = 5_000

# Asked between batches: should the run stop here (a shutdown, a lease lost)?
StopCheck = Callable[[], bool]
# Run in the transaction that records a write batch (`AuditLog.record`), told the CRM and
# the records the batch wrote (as `CrmCounts.written` counts them): what must be committed
# with the batch or not at all (a backfill's written counts).
WrittenHook = Callable[[Connection, str, int], None]
# Settles of a full pull's records before it ends: again while records were held back (changed
# since their pull, so read again); the next sync takes any still left.
SETTLE_ROUNDS = 3


@dataclass(frozen=True, slots=True)
class FullPull:
    """A backfill's pull of every record of `crm` (the list and Bulk APIs), from `checkpoint`
    (None: from the start): the records `keeps` takes are saved held for `stream`, each page
    with the checkpoint after it in `stream`, and settled only once every CRM of the backfill
    is pulled (`settle_full_pull`): a person's two records are merged together."""

    crm: str
    stream: str
    checkpoint: str | None
    keeps: Callable[[CrmRecord], bool]


@dataclass(frozen=True, slots=True)
class PulledPage:
    """One page of a full pull, saved: the records the CRM listed, those kept, and where the
    pull resumes after it (None: it was the last)."""

    listed: int
    kept: int
    checkpoint: str | None


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _never() -> bool:
    return False


class RunInterruptedError(LeadsyncError):
    """The run was asked to stop; what it did so far is committed. Not a failure: exit 0."""

    exit_code = EXIT_OK

    def __init__(self, message: str = "stopped on request; the next run goes on from here"):
        super().__init__(message)


def _stop_if(should_stop: StopCheck) -> None:
    if should_stop():
        raise RunInterruptedError


def _first_sight_of_created(
    snapshots: Mapping[str, Snapshot],
    choices: Mapping[str, FieldChoice],
    previous: Lead | None,
    created: tuple[str, str] | None,
) -> frozenset[str]:
    """The fields a record leadsync's handoff created brings at its first pull (linked to no
    lead yet) where the lead held no value: what the CRM gave the record leadsync made (a
    default Status, the owner leadsync sent), come back. A value the lead held is not one."""
    if created is None or previous is None:
        return frozenset()
    crm, record_id = created
    snapshot = snapshots.get(crm)
    if snapshot is None or snapshot.record_id != record_id or snapshot.lead_id is not None:
        return frozenset()
    return frozenset(
        name
        for name, choice in choices.items()
        if choice.crm == crm and is_blank(previous.values.get(name))
    )


@dataclass(frozen=True)
class Reevaluated:
    """One lead as stored (`before`) and as the files on disk would make it (`after`)."""

    before: Lead | None
    after: Lead
    transitions: tuple[Transition, ...]
    updates: Mapping[str, RecordUpdate | None]
    records: Sequence[Snapshot]


@dataclass
class _Merged:
    lead: Lead
    snapshots: dict[str, Snapshot]
    transitions: list[Transition]
    updates: dict[str, RecordUpdate | None]
    clocks: ClockChanges = field(default_factory=ClockChanges)
    # The record of a related object that is this person in a CRM where the lead has no
    # record (a Contact no lead names), and why such a record waits in review (`sync.people`).
    person: Related | None = None
    person_review: str = ""
    # The canonical fields whose value is leadsync's own write come back (`own_values`).
    echoed: frozenset[str] = frozenset()
    # The records as their CRMs hold them now, as far as leadsync knows: `snapshots` under
    # its own writes no pull has brought back yet (`_as_written`); what the plan started from.
    held: dict[str, Snapshot] | None = None
    # Why a CRM holds the person past the lead's stage (`SyncEngine._held_past`): empty if none.
    held_past: str = ""


class SyncEngine:
    def __init__(
        self,
        store: Store,
        connectors: Mapping[str, Connector],
        field_map: FieldMap,
        definition: LeadDefinition,
        *,
        clock: Callable[[], datetime] | None = None,
        sla_monitor: SlaMonitor | None = None,
        holder: str | None = None,
        full_sla_check: bool = False,
        slice_size: int = SETTLE_SLICE,
        moves_back: MovesBack | None = None,
    ) -> None:
        """`sla_monitor` checks the SLA ledger after each run (the webhook is its business);
        by default a monitor without webhook, when the definition has service levels. After
        a run it records breaches; with `full_sla_check` (a one-off `sync --once`, with no
        service's SLA job to do it) it also paces volume and posts the webhook.
        `holder` names who runs it in each run's record: the holder of the lease it runs
        under ("<replica>/<role>"; a take-over of that lease abandons it). `slice_size` is how
        many pending records a settle merges and writes at once (see SETTLE_SLICE)."""
        if slice_size < 1:
            raise ValueError("slice_size must be at least 1")
        self._slice_size = slice_size
        # The updates waiting for a whole write batch, from slice to slice of a settle.
        self._carry = WriteCarry()
        # The leads whose handoff's link write landed in the writes under way (`_linked`).
        self._linked_leads: list[str] = []
        # The settle's caller's, committed with each write batch (`settle`).
        self._on_written: WrittenHook | None = None
        self._holder = holder
        self._full_sla_check = full_sla_check
        self._store = store
        self._connectors = dict(connectors)
        self._map = field_map
        # What keeps each person's pending records in one slice (`_slices`).
        self._grouping = PendingGrouping(store, identity_field=field_map.identity_field)
        # The records of related objects, as they reach the leads (`_pull_related`, `_merge`).
        self._related = RelatedObjects(store, connectors=self._connectors, field_map=field_map)
        self._definition = definition
        self._clock = clock or _utc_now
        # For a CRM with no connector here (a what-if reads the store only).
        self._moves_back_unconnected = moves_back
        self._monitor = sla_monitor or monitor_for(store, definition)
        self._sla: SlaRules | None = self._monitor.rules if self._monitor else None
        # What each CRM's writes are made under (see `preflight`): a refused write is tried
        # again once it changes. Empty until a preflight ran: refusals then wait their time.
        self._contexts: dict[str, str] = {}
        # The most characters each CRM's write-back text fields hold, from the preflight.
        self._text_limits: TextLimits = {}
        # The records taken up again this run because their refused write was due.
        self._retrying: dict[str, set[str]] = {}
        # The pending records a plan pulled for this run, and those it quarantined (see
        # `run`): counted as its own.
        self._from_plans: dict[str, set[str]] = {}
        self._quarantined_by_plans: dict[str, set[str]] = {}
        # The lead records a related record's pull laid it over, not pulled themselves (yet),
        # and those read again just before their write: matched again, they are earlier.
        self._laid: dict[str, set[str]] = {}
        self._handoff_crm = (
            handoff_target(self._connectors, field_map) if definition.handoff else None
        )
        # A plan's handoff step: previews, never hands off.
        self._previewing: HandoffStep | None = None
        # A plan's: the owners of the clocks its merges would start (a sync names them).
        self._planned_clock_owners: set[str] = set()
        # The CRM that names the clocks' owners, for the reports.
        self._owner_directory = owner_directory(
            self._connectors,
            field_map,
            self._sla.model.owner_field if self._sla is not None else None,
            first=self._handoff_crm,
        )

    def preflight(self) -> None:
        """Describe each CRM (once: the connectors keep it for the run) and check the mapping
        against it. Raises PreflightError, naming every field the mapping needs that a CRM
        lacks or cannot write, with the fix: nothing is written then."""
        found = []
        contexts = {}
        leads = {}
        for crm, connector in self._connectors.items():
            descriptions = describe_for(connector, self._map)
            found += problems(self._map, crm, descriptions, file=self._map.path)
            contexts[crm] = context_of(self._map, self._definition, descriptions)
            leads[crm] = descriptions[0]
        if found:
            raise PreflightError(found)
        self._contexts = contexts
        self._text_limits = text_limits(self._map, leads)

    def run(self, *, write: bool = True, should_stop: StopCheck = _never) -> RunSummary:
        """One cycle; `write=False` is `leadsync plan`: the same up to the plan, writing
        nothing to either CRM and deciding nothing in the store but what was pulled.

        `should_stop` is asked between pages and between write batches: when it says yes, the
        run ends there (status "interrupted"), having committed what it did; the next run
        goes on from there."""
        with (
            old_objects_left_alone(),
            self.recording("sync" if write else "plan", write=write) as summary,
        ):
            self.preflight()
            # What a plan pulled and left pending is this run's to settle: counted pulled
            # here, once, however often the run's own pull brings it again.
            self._from_plans = self._store.pending_from_plans()
            for crm, record_ids in self._from_plans.items():
                if crm in summary.crms:
                    summary.crms[crm].pulled += len(record_ids)
            # And what it quarantined: pulled, and in quarantine.
            self._quarantined_by_plans = self._store.quarantine.left_by_plans(summary.run_id)
            for crm, record_ids in self._quarantined_by_plans.items():
                if crm in summary.crms:
                    summary.crms[crm].pulled += len(record_ids)
                    summary.crms[crm].quarantined += len(record_ids)
            for crm, connector in self._connectors.items():
                self._pull(crm, connector, summary, should_stop)
            self.settle(summary, should_stop=should_stop)
        return summary

    def retry(self, records: Mapping[str, Sequence[str]]) -> RunSummary:
        """Read these records of each CRM again now (`leadsync quarantine retry`): fetched,
        through the mapping, then settled and written like a sync's, a refused write tried
        again at once. A record still unusable stays in quarantine with today's reason."""
        with self.recording("retry", write=True) as summary:
            self.preflight()
            for crm, record_ids in records.items():
                connector = self._connectors.get(crm)
                if connector is None or not record_ids:
                    continue
                self._store.quarantine.refusals_due_now(crm, record_ids)
                fetched = connector.fetch(record_ids, fields=fields_to_pull(self._map, crm))
                found = tuple(fetched[rid] for rid in record_ids if rid in fetched)
                self.ingest(crm, connector, Page(found), summary, asked=True)
            self.settle(summary)
        return summary

    # ------------------------------------------------------------------------- full pulls

    @property
    def crms(self) -> tuple[str, ...]:
        """The CRMs this engine is connected to."""
        return tuple(self._connectors)

    def count_all(self, crm: str) -> int | None:
        """How many records a full pull of `crm` lists, where its API says (None elsewhere)."""
        counting = getattr(self._connectors[crm], "count_all", None)
        total: int | None = None if counting is None else counting()
        return total

    def full_pull_checkpoint(self, crm: str, stream: str) -> str | None:
        """Where `crm`'s full pull in `stream` stands, as its last saved page left it."""
        return self._store.cursors.checkpoint(crm, stream)

    def pull_full(self, full: FullPull, summary: RunSummary) -> Iterator[PulledPage]:
        """`full`'s pages, each saved (`ingest`) before it is yielded: the caller decides how
        many to take at once, and the pull goes on from the last one taken."""
        connector = self._connectors[full.crm]
        pages = connector.pull_all(full.checkpoint, fields=fields_to_pull(self._map, full.crm))
        for page in pages:
            kept = tuple(record for record in page.records if full.keeps(record))
            self.ingest(
                full.crm,
                connector,
                Page(kept, checkpoint=page.checkpoint),
                summary,
                checkpoint=page.checkpoint,
                stream=full.stream,
                hold_for=full.stream,
            )
            yield PulledPage(len(page.records), len(kept), page.checkpoint)

    def settle_full_pull(
        self,
        summary: RunSummary,
        *,
        stream: str,
        unlisted_since: Mapping[str, datetime] | None = None,
        should_stop: StopCheck = _never,
        on_written: WrittenHook | None = None,
    ) -> None:
        """After every CRM's full pull in `stream`: its records released to settle. For the
        sweep (`unlisted_since`, by CRM: when its listing began), the records a CRM no longer
        listed are marked deleted, and every lead is settled again, repairing what the
        incremental pulls missed. Then settled (`settle`), again while records found changed
        since their pull were read again, SETTLE_ROUNDS times at most."""
        self._store.release_held(stream)
        if unlisted_since is not None and summary.wrote:
            for crm, listed_since in unlisted_since.items():
                gone = self._store.mark_unlisted_deleted(
                    crm, listed_since=listed_since, run_id=summary.run_id
                )
                if gone:
                    log.info("sweep: %d %s records no longer listed: deleted", gone, crm)
            self._store.mark_all_pending()
        for _ in range(SETTLE_ROUNDS):
            held = held_back(summary)
            self.settle(summary, should_stop=should_stop, on_written=on_written)
            if not summary.wrote or held_back(summary) == held:
                break

    @contextmanager
    def recording(self, kind: str, *, write: bool) -> Iterator[RunSummary]:
        """A run of `kind` recorded in the store: started now, finished when the block ends,
        as succeeded, failed (the error goes on; or every write to a CRM failed), paused at
        the quota reserve or on purpose (RunPausedError; the error goes on) or interrupted
        (RunInterruptedError, swallowed: the summary says so)."""
        started = self._clock()
        run_id = self._store.run_log.start(kind, started_at=started, holder=self._holder)
        summary = RunSummary(run_id, write, started, kind=kind, holder=self._holder)
        summary.crms = {crm: CrmCounts() for crm in self._connectors}
        self._from_plans, self._quarantined_by_plans, self._laid = {}, {}, {}
        status = "succeeded"
        try:
            with run_context(run_id, run_kind=kind):
                yield summary
        except RunInterruptedError:
            status = "interrupted"
            summary.interrupted = True
            log.info("run %s interrupted; the next run goes on from here", run_id)
        except (QuotaReserveReachedError, RunPausedError):
            # Not a failure: leadsync stopped on purpose (at the reserve the operator set, say),
            # and the next run (or the backfill, resumed) goes on from its last commit.
            status = "paused"
            raise
        except BaseException:
            status = "failed"
            raise
        finally:
            if status == "succeeded" and summary.every_write_failed():
                # The command exits 1 for it: `leadsync runs` and the health check agree.
                status = "failed"
            summary.quota = self._quota()
            self._store.run_log.finish(
                run_id, status=status, summary=summary.as_dict(), finished_at=self._clock()
            )

    def _quota(self) -> dict[str, dict[str, int | None]]:
        figures = {}
        for crm, connector in self._connectors.items():
            quota = connector.quota()
            figures[crm] = {
                "daily_limit": quota.daily_limit,
                "daily_used": quota.daily_used,
                "daily_remaining": quota.daily_remaining,
            }
        return figures

    def settle(
        self,
        summary: RunSummary,
        *,
        should_stop: StopCheck = _never,
        on_written: WrittenHook | None = None,
    ) -> None:
        """Everything after the pull: match and merge the pending records, plan, write (when
        the run writes), mark them reconciled, check the SLA ledger and name its clocks'
        owners (when the run writes). A slice at a time (see `leadsync.sync.slices`), each
        committed before the next: memory stays bounded by the slice, and a run stopped
        between slices has settled the slices before. `on_written` is run in each write
        batch's transaction (`WrittenHook`)."""
        self._on_written = on_written
        try:
            self._settle(summary, should_stop)
        finally:
            self._on_written = None

    def _settle(self, summary: RunSummary, should_stop: StopCheck) -> None:
        _stop_if(should_stop)
        if summary.wrote:
            self._recheck_reviews()
        tally = PlanTally(keep_changes=not summary.wrote, traits=self._traits_of)
        overdue = (
            self._store.sla.overdue_leads(self._clock(), rules=self._sla.names) if self._sla else []
        )
        if self._handoff_crm is not None:
            # Handoffs a kill cut off (or the CRM deferred) are taken up again, whether their
            # records changed or not; a plan counts them as the sync then hands them off.
            overdue = sorted(set(overdue) | set(self._store.handoffs.unfinished()))
        self._previewing = None
        self._planned_clock_owners = set()
        if self._handoff_crm is not None and not summary.wrote:
            # One preview for the run: its round-robin goes on from slice to slice.
            self._previewing = self._handoff_step(summary.run_id)
            summary.handoff_plan = HandoffPreview()
        self._carry.clear()
        try:
            for part, last in _with_last(self._slices(overdue, summary.run_id)):
                self._settle_slice(part, summary, tally, should_stop, last=last)
        finally:
            # A run stopped with updates waiting for a whole batch leaves their records
            # pending (`leadsync.sync.carry`): the next run plans them again.
            self._carry.clear()
            summary.plan = tally.summary()
            if summary.handoff_plan is not None and self._handoff_crm is not None:
                target = self._connectors[self._handoff_crm]
                assert isinstance(target, HandoffTarget)
                summary.handoff_plan.estimate(target)
            if not summary.wrote and self._owner_directory is not None:
                summary.plan = replace(
                    summary.plan, owner_name_calls=self._owner_name_calls(summary)
                )
        if summary.wrote and self._monitor is not None:
            # Breaches recorded and announced. Under the service the volume pacing and the
            # webhook are the SLA job's, which no sync should wait for.
            full = self._full_sla_check
            summary.sla = self._monitor.check(
                self._clock(), volume=full, deliver=full, should_stop=should_stop
            )
        if summary.wrote and self._owner_directory is not None:
            # Owners a handoff named are named already; those leadsync never handed a lead
            # to (an existing record's owner) are asked now, once.
            learn_names(
                self._store.handoffs,
                self._owner_directory,
                self._store.sla.owners(),
                now=self._clock(),
            )

    def _owner_name_calls(self, summary: RunSummary) -> dict[str, int]:
        """A plan's count of the calls the sync's naming of the clocks' owners makes (see
        `settle`): the owners of the clocks stored and of those the plan's merges start, but
        those the store can name and those the handoff names first (its preview counts them)."""
        directory = self._owner_directory
        assert directory is not None
        owners = self._store.sla.owners() | self._planned_clock_owners
        if summary.handoff_plan is not None and self._handoff_crm == directory.crm:
            owners -= summary.handoff_plan.unnamed
        unknown = unknown_owners(self._store.handoffs, directory.crm, owners, now=self._clock())
        return {directory.crm: directory.owner_name_calls(unknown)}

    def _recheck_reviews(self) -> None:
        """The records waiting in review are matched again with the pending ones: one whose
        cause went away (a duplicate deleted) is linked, and its item closes itself (see
        Store.save_decisions); a deleted record's item closes now."""
        waiting: dict[str, list[str]] = {}
        candidates: dict[tuple[str, str], tuple[str, ...]] = {}
        for item in self._store.reviews.items():
            if item.crm in self._connectors:
                waiting.setdefault(item.crm, []).append(item.record_id)
                candidates[(item.crm, item.record_id)] = item.candidates
        for crm, record_ids in waiting.items():
            held = self._store.snapshots(crm, record_ids)
            # A person record no lead names (`sync.people`) has no snapshot: it is matched
            # again with the leads it could be the person of.
            people = self._store.related.get(crm, [rid for rid in record_ids if rid not in held])
            leads: set[str] = set()
            for record_id in record_ids:
                record = held.get(record_id)
                person = people.get(record_id)
                if person is not None and not person.deleted:
                    leads.update(candidates[(crm, record_id)])
                elif record is None or record.deleted:
                    self._store.reviews.resolve(
                        crm, record_id, resolution="closed itself: the record was deleted"
                    )
            alive = [rid for rid in record_ids if rid in held and not held[rid].deleted]
            self._store.mark_pending(crm, alive)
            for record_crm, ids in record_ids_by_crm(self._store.records_of(sorted(leads))):
                self._store.mark_pending(record_crm, ids)

    def _settle_slice(
        self,
        part: Slice,
        summary: RunSummary,
        tally: PlanTally,
        should_stop: StopCheck,
        *,
        last: bool = True,
    ) -> None:
        _stop_if(should_stop)
        pending = {
            crm: list(self._store.snapshots(crm, record_ids).values())
            for crm, record_ids in part.records.items()
        }
        merged = self._merge(summary, pending, part.leads, persist=summary.wrote)
        for m in merged:
            tally.add(m.updates)
            for crm, update in m.updates.items():
                if update is not None and crm in summary.crms:
                    summary.crms[crm].records_to_update += 1
        if not summary.wrote:
            if self._previewing is not None and summary.handoff_plan is not None:
                self._previewing.preview(
                    [self._merged_lead(m) for m in merged], summary.handoff_plan
                )
            return
        # The handoff before the writes: the ids it created go to the lead's other records
        # with the plan's values for them, in the same calls (written after, as calls of
        # their own, they cost a call per 100 handoffs, and moved the records' stamps).
        links = self._hand_off(merged, summary)
        # A batch boundary: the handoff's calls are a batch of their own (the lease renews).
        _stop_if(should_stop)
        unsettled = self._write(merged, summary, should_stop, links=links, last=last)
        self._forget_settled_refusals(part, merged)
        pending_ids = {crm: [s.record_id for s in snapshots] for crm, snapshots in pending.items()}
        in_slice = {crm: set(record_ids) for crm, record_ids in pending_ids.items()}
        held: dict[str, set[str]] = {}
        for m in merged:
            if not self._carry.waits(m.lead.lead_id):
                continue
            for crm, snapshot in m.snapshots.items():
                if snapshot.record_id in in_slice.get(crm, ()):
                    self._carry.hold(m.lead.lead_id, crm, [snapshot.record_id])
                    held.setdefault(crm, set()).add(snapshot.record_id)
        for crm, record_ids in pending_ids.items():
            kept = unsettled.get(crm, set()) | held.get(crm, set())
            self._store.mark_reconciled(crm, [i for i in record_ids if i not in kept])
        for crm, free in self._carry.released().items():
            again = unsettled.get(crm, set())
            self._store.mark_reconciled(crm, [i for i in free if i not in again])
        for crm, again in unsettled.items():
            # A deferred record need not have been pending (its lead's other record was).
            self._store.mark_pending(crm, sorted(again))

    def _forget_settled_refusals(self, part: Slice, merged: Sequence[_Merged]) -> None:
        """Records taken up again for a refused write that now have nothing to write (the CRM
        holds what it should, or the record is gone) wait no more."""
        for crm, record_ids in part.records.items():
            retried = self._retrying.get(crm, set()).intersection(record_ids)
            if not retried:
                continue
            planned = {
                update.record_id for m in merged if (update := m.updates.get(crm)) is not None
            }
            settled = sorted(retried - planned)
            if settled:
                self._store.quarantine.forget_refusals(crm, settled)

    def _slices(self, overdue: Sequence[str], run_id: str) -> Iterator[Slice]:
        """The pending records, those whose refused write is due again (refused by another
        run than `run_id`), and the `overdue` leads, in slices that keep each person's records
        together; one slice when they all fit in one."""
        pending = {crm: self._store.pending_ids(crm) for crm in self._connectors}
        now = self._clock()
        self._retrying = {}
        for crm, record_ids in pending.items():
            context = self._contexts.get(crm, "")
            due = self._store.quarantine.due_refusals(crm, context=context, now=now, run_id=run_id)
            self._retrying[crm] = set(due)
            record_ids.extend(sorted(set(due) - set(record_ids)))
        total = sum(len(ids) for ids in pending.values()) + len(overdue)
        if total <= self._slice_size:
            if total:
                yield Slice({crm: ids for crm, ids in pending.items() if ids}, list(overdue))
            return
        groups = self._grouping.grouped(pending, overdue)
        # The ids are the groups' now: this frame stays suspended for the whole settle.
        del pending
        log.info("settling %d pending records in slices of about %d", total, self._slice_size)
        yield from groups.slices(self._slice_size)

    # ---------------------------------------------------------------- pull

    def _pull(
        self, crm: str, connector: Connector, summary: RunSummary, should_stop: StopCheck
    ) -> None:
        # Related objects first: a lead converted since the last run then finds its new
        # Contact and Opportunity in the store, with no read of its own.
        for object_name in connector.streams[1:]:
            self._pull_related(crm, connector, object_name, summary, should_stop)
        pages = connector.pull(
            self._store.cursors.position(crm),
            fields=fields_to_pull(self._map, crm),
            started_at=summary.started_at,
            known=lambda ids: self._store.known_stamps(crm, ids),
        )
        for page in pages:
            self.ingest(crm, connector, page, summary, position=page.position)
            _stop_if(should_stop)

    def _pull_related(
        self,
        crm: str,
        connector: Connector,
        object_name: str,
        summary: RunSummary,
        should_stop: StopCheck,
    ) -> None:
        stream = stream_key(object_name)
        roles = connector.contact_roles
        extra = roles.fields if roles is not None and object_name == roles.object_name else ()
        pages = connector.pull(
            self._store.cursors.position(crm, stream),
            fields=(*fields_of(self._map, crm, object_name), *extra),
            started_at=summary.started_at,
            known=lambda ids: self._store.related.known_stamps(crm, ids),
            stream=object_name,
        )
        for page in pages:
            pending = self._related.ingest(crm, object_name, page, summary, position=page.position)
            # Lead records that changed with their related record, not pulled themselves.
            for record_crm, record_ids in pending.items():
                self._laid.setdefault(record_crm, set()).update(record_ids)
            _stop_if(should_stop)

    def ingest(
        self,
        crm: str,
        connector: Connector,
        page: Page,
        summary: RunSummary,
        *,
        position: Position | None = None,
        checkpoint: str | None = None,
        stream: str | None = None,
        hold_for: str | None = None,
        asked: bool = False,
        reread: bool = False,
    ) -> list[Snapshot]:
        """One pulled page through the mapping into the store, with the cursor past it (an
        incremental `position`, or a full pull's `checkpoint` in `stream`) in the same
        transaction; records leadsync cannot use are quarantined with their reason. `asked`:
        the records were asked for by id (a retry): each counts as pulled, each unusable one
        as quarantined, news or not. `reread`: records read again just before their write
        (changed since they were pulled): left for the next run, and counted by none of them
        as pulled (this run counted its pull of them; a later run matches them as earlier)."""
        ids = [record.id for record in page.records]
        previous = self._store.snapshots(crm, ids)
        expected = self._store.audit_log.expected(crm, ids)
        snapshots: list[Snapshot] = []
        quarantined: list[Quarantined] = []
        for record in page.records:
            try:
                snapshots.append(
                    to_snapshot(
                        record,
                        self._map,
                        previous=previous.get(record.id),
                        expected=expected.get(record.id),
                    )
                )
            except QuarantineError as bad:
                quarantined.append(
                    Quarantined(
                        crm,
                        record.id,
                        bad.reason,
                        dict(record.fields),
                        summary.run_id,
                        self._clock(),
                    )
                )
        # A pull gives again a record at the stamp it stopped at (Salesforce's whole seconds):
        # one quarantined as it is now stays so, from when it first was, and is no news.
        held = (
            self._store.quarantine.open_for(crm, [q.record_id for q in quarantined])
            if quarantined
            else {}
        )
        news = [q for q in quarantined if not _quarantined_as_is(q, held)]
        unusable = len(quarantined)
        read_again, quarantined = len(quarantined) - len(news), news
        snapshots, related = self._related.with_related(crm, connector, snapshots)
        self._store.save_page(
            crm,
            snapshots,
            quarantined=quarantined,
            position=position,
            checkpoint=checkpoint,
            stream=stream,
            hold_for=hold_for,
            run_id=summary.run_id,
            related=related,
        )
        counts = summary.crms.setdefault(crm, CrmCounts())
        if reread:
            # Matched again in this run (a sweep settles them at once), they are earlier.
            self._laid.setdefault(crm, set()).update(s.record_id for s in snapshots)
            return snapshots
        if asked:
            counts.pulled += len(page.records)
            counts.quarantined += unusable
            return snapshots
        counts.pulled += len(page.records) - len(_read_again(snapshots, previous)) - read_again
        counts.quarantined += len(quarantined)
        laid = self._laid.get(crm)
        if laid:
            laid.difference_update(s.record_id for s in snapshots)
        # A record the plan before this run pulled is counted already (`run`): pulled once,
        # and in quarantine only while it is.
        from_plans = self._from_plans.get(crm, set())
        by_plans = self._quarantined_by_plans.get(crm, set())
        if from_plans or by_plans:
            again = set(_read_again(snapshots, previous))
            for s in snapshots:
                if s.record_id in again:
                    continue
                if s.record_id in from_plans:
                    counts.pulled -= 1
                elif s.record_id in by_plans:
                    by_plans.discard(s.record_id)  # usable now: out of quarantine
                    counts.pulled -= 1
                    counts.quarantined -= 1
            for q in quarantined:
                if q.record_id in by_plans:
                    counts.pulled -= 1
                    counts.quarantined -= 1
        return snapshots

    # ---------------------------------------------------------------- match and merge

    def _merge(
        self,
        summary: RunSummary,
        pending: Mapping[str, Sequence[Snapshot]],
        overdue: Sequence[str],
        *,
        persist: bool,
    ) -> list[_Merged]:
        """Match the `pending` records and merge every lead they touch, with the `overdue`
        leads (an SLA clock past due); the decisions saved when `persist`."""
        batch = [snapshot for snapshots in pending.values() for snapshot in snapshots]
        if not batch and not overdue:
            return []
        stored = self._stored_records(batch, also=overdue)
        matches = match_batch(
            batch,
            InMemoryIdentityIndex.of(stored, identity_field=self._map.identity_field),
            identity_field=self._map.identity_field,
            new_lead_id=new_id,
        )
        self._count_matches(matches, self._pulled_now(pending, summary.run_id), summary)
        linked = {key: m for key, m in matches.items() if m.kind is not MatchKind.REVIEW}
        lead_ids = sorted(
            {m.lead_id for m in linked.values() if m.lead_id is not None}
            # A lead with a clock past due is merged again for its breach flag, if it still
            # has records to write to.
            | {lead_id for lead_id in overdue if stored.get(lead_id)}
        )
        records = _records_by_lead(stored, batch, linked)
        people = self._match_people(records, lead_ids)
        deals = self._related.deals(deal_persons(records, lead_ids, people.attached))
        written = self._written_to(records, lead_ids)
        unseen = self._unseen_writes(records, lead_ids)
        previous = self._store.leads(lead_ids)
        created = self._created_records(lead_ids)
        running = self._store.sla.running(lead_ids) if self._sla else {}
        watching_since = self._store.run_log.first_started_at() if self._sla else None
        merged = [
            self._merge_lead(
                lead_id,
                records.get(lead_id, []),
                previous.get(lead_id),
                running.get(lead_id, []),
                watching_since,
                written,
                person=people.attached.get(lead_id),
                person_review=people.in_review.get(lead_id, ""),
                deal=deals.get(lead_id, {}),
                unseen=unseen,
                created=created.get(lead_id),
            )
            for lead_id in lead_ids
        ]
        for m in merged:
            summary.count_merged(m.lead, previous.get(m.lead.lead_id), echoed=m.echoed)
        summary.transitions += sum(len(m.transitions) for m in merged)
        summary.clocks_started += sum(len(m.clocks.opened) for m in merged)
        summary.clocks_stopped += sum(len(m.clocks.stopped) for m in merged)
        if not summary.wrote:
            self._planned_clock_owners.update(
                clock.owner for m in merged for clock in m.clocks.opened if clock.owner
            )
        if persist:
            self._persist(summary.run_id, matches, merged, people)
        return merged

    def _pulled_now(
        self, pending: Mapping[str, Sequence[Snapshot]], run_id: str
    ) -> dict[str, set[str]]:
        """CRM -> the `pending` records this run pulled (or the plan before it pulled for it)."""
        found = {}
        for crm, snapshots in pending.items():
            ids = [s.record_id for s in snapshots]
            from_plans = self._from_plans.get(crm, set())
            saved = self._store.saved_by(crm, ids, run_id) - self._laid.get(crm, set())
            found[crm] = saved | from_plans.intersection(ids)
        return found

    def _created_records(self, lead_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Lead id -> (CRM, record id) of the record its handoff created, where it did."""
        if self._handoff_crm is None:
            return {}
        return {
            lead_id: (handoff.crm, handoff.record_id)
            for lead_id, handoff in self._store.handoffs.of(lead_ids).items()
            if handoff.status == CREATED and handoff.record_id
        }

    def _match_people(
        self, records: Mapping[str, Sequence[Snapshot]], lead_ids: Sequence[str]
    ) -> PeopleDecisions:
        """The records of related objects that are these leads' people, though no lead record
        names them (`sync.people`): found in the store by the ids the leads' records name and
        by their emails, and matched with the leads that could be theirs."""
        identity_field = self._map.identity_field
        named: dict[str, set[str]] = {}
        emails: set[str] = set()
        for lead_id in lead_ids:
            for snapshot in records.get(lead_id, ()):
                if snapshot.deleted:
                    continue
                for crm, record_id in people_named(snapshot):
                    named.setdefault(crm, set()).add(record_id)
                email = normalise_email(snapshot.canonical.get(identity_field))
                if email is not None:
                    emails.add(email)
        found: list[Related] = []
        links: dict[tuple[str, str], tuple[str, str]] = {}
        for crm in CRMS:
            # Without its connector (a what-if reads the store alone) the store tells: it
            # keeps emails for the records of people objects only.
            connector = self._connectors.get(crm)
            if connector is not None and not connector.people:
                continue
            # A person record linked already stays the person's whatever it holds now (a
            # Contact whose email a rep cleared): leadsync's own link comes first.
            named.setdefault(crm, set()).update(self._store.linked_to(crm, sorted(lead_ids)))
            if not (emails or named.get(crm)):
                continue
            held = self._store.related.people(
                crm, record_ids=sorted(named.get(crm, ())), emails=sorted(emails)
            )
            found += held.values()
            for record_id, link in self._store.links_for(crm, sorted(held)).items():
                links[(crm, record_id)] = link
        if not found:
            return PeopleDecisions()
        # Whoever else could be these records' person is matched against too.
        others = {lead_id for lead_id, _ in links.values()}
        by_email = self._store.leads_by_email(sorted({r.email for r in found if r.email}))
        others.update(lead_id for leads in by_email.values() for lead_id in leads)
        known = {**self._store.records_of(sorted(others - set(records))), **records}
        return match_people(found, known, links, leads=set(lead_ids), identity_field=identity_field)

    def _unseen_writes(
        self, records: Mapping[str, Sequence[Snapshot]], lead_ids: Sequence[str]
    ) -> dict[str, dict[str, dict[str, Any]]]:
        """CRM -> record id -> field -> what leadsync wrote to the records of these leads
        since their snapshots were read (`AuditLog.unseen`; one query per CRM)."""
        ids: dict[str, set[str]] = {}
        for lead_id in lead_ids:
            for snapshot in records.get(lead_id, ()):
                ids.setdefault(snapshot.crm, set()).add(snapshot.record_id)
        return {crm: self._store.audit_log.unseen(crm, sorted(found)) for crm, found in ids.items()}

    def _written_to(
        self,
        records: Mapping[str, Sequence[Snapshot]],
        lead_ids: Sequence[str],
        people: Iterable[Related] = (),
    ) -> dict[str, dict[str, dict[str, Any]]]:
        """CRM -> record id -> field -> what leadsync last wrote there, for the records of
        the leads about to be merged and their `people` records (one query per CRM)."""
        ids: dict[str, set[str]] = {}
        for person in people:
            ids.setdefault(person.crm, set()).add(person.record_id)
        for lead_id in lead_ids:
            for snapshot in records.get(lead_id, ()):
                ids.setdefault(snapshot.crm, set()).add(snapshot.record_id)
                # A converted lead's results are written to its Contact.
                contact = contact_of(snapshot)
                if contact is not None:
                    ids[snapshot.crm].add(contact[0])
        return {
            crm: self._store.audit_log.expected(crm, sorted(found)) for crm, found in ids.items()
        }

    def _stored_records(
        self, batch: Sequence[Snapshot], *, also: Sequence[str] = ()
    ) -> dict[str, list[Snapshot]]:
        """What the store knows that matching this batch can ask about, fetched in a few
        queries: the leads linked to these records or holding these emails (and the leads
        `also` names), and all their records. Every lead the batch then matches is among them
        or new."""
        wanted = lookups_for(batch, identity_field=self._map.identity_field)
        lead_ids: set[str] = set(also)
        by_crm: dict[str, list[str]] = {}
        for crm, record_id in wanted.records:
            by_crm.setdefault(crm, []).append(record_id)
        for crm, record_ids in by_crm.items():
            lead_ids.update(self._store.lead_ids_for(crm, record_ids).values())
        for leads in self._store.leads_by_email(sorted(wanted.emails)).values():
            lead_ids.update(leads)
        return self._store.records_of(sorted(lead_ids))

    def _merge_lead(
        self,
        lead_id: str,
        records: Sequence[Snapshot],
        previous: Lead | None,
        running: Sequence[Clock],
        watching_since: datetime | None = None,
        written: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
        *,
        person: Related | None = None,
        person_review: str = "",
        deal: Mapping[str, FieldChoice] | None = None,
        unseen: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
        created: tuple[str, str] | None = None,
    ) -> _Merged:
        """One lead merged from its records; `created`: the (CRM, record id) of the record
        its handoff created, if any."""
        snapshots = one_per_crm(records)
        # A person record's opportunity speaks where no lead record of its CRM does; what one
        # gave before and gives no more (its role deleted) is no longer the person's.
        choices = reconcile(self._map, snapshots, previous=previous)
        if previous is not None:
            # Only a previous merge's choices can be a deal's (reconcile keeps them).
            choices = {name: c for name, c in choices.items() if c.rule != DEAL_RULE}
        if deal:
            choices.update(deal)
        values = {name: choice.value for name, choice in choices.items()}
        now = self._clock()
        recorded_by = max((snapshot.modified_at for snapshot in snapshots.values()), default=None)
        score = score_lead(values, self._definition, now=now, recorded_by=recorded_by)
        current = Stage(previous.stage) if previous is not None and previous.stage else None
        # What a CRM holds because leadsync wrote it there is no person's signal: the rules
        # and the evidence see the other values only (a Status leadsync set when it
        # disqualified a lead must not recycle it once reopened).
        own = {
            crm: own_fields(s.raw, (written or {}).get(crm, {}).get(s.record_id, {}))
            for crm, s in snapshots.items()
        }
        mine = own_values(self._map, choices, own)
        transitions = next_transitions(
            current,
            {name: value for name, value in values.items() if name not in mine} if mine else values,
            score,
            self._definition,
            now=now,
            before=previous.values if previous is not None else None,
            sources=_Sources(choices),
        )
        stage = transitions[-1].to_stage if transitions else current
        lead = with_score(Lead(lead_id, values, choices), score, stage=stage)
        clocks = ClockChanges()
        breaches: tuple[str, ...] = ()
        if self._sla is not None:
            judged = transitions
            if previous is None and not _changed_since(snapshots, watching_since):
                # A lead leadsync meets for the first time, unchanged since before leadsync
                # began watching (the first sync of an org, a backfill): when it became an
                # MQL is not known, so no clock starts; its next moves start them.
                judged = []
            clocks = self._sla.clock_changes(
                lead_id, values, judged, running, snapshots, held=self._held_clocks(snapshots)
            )
            breaches = self._sla.breaches_at(clocks.running_after(running), now)
        # What each CRM holds now: a write of leadsync's that no pull has brought back yet
        # is there, and is not planned (nor linked by the handoff) again.
        held = {crm: _as_written(s, (unseen or {}).get(crm, {})) for crm, s in snapshots.items()}
        try:
            updates = plan_updates(
                self._map,
                lead,
                held,
                sla_breaches=breaches,
                moves_back=self._moves_back,
                own=own,
                written={
                    crm: (written or {}).get(crm, {}).get(s.record_id, {})
                    for crm, s in snapshots.items()
                },
                people=_person_values(person),
                limits=self._text_limits,
            )
        except TransformError as unwritable:
            log.warning(
                "lead %s: cannot write %s (%s); nothing planned for it",
                lead_id,
                unwritable.field,
                unwritable.reason,
            )
            updates = {}
        echoed = mine | _first_sight_of_created(snapshots, choices, previous, created)
        return _Merged(
            lead,
            snapshots,
            transitions,
            updates,
            clocks,
            person,
            person_review,
            echoed=echoed,
            held=held,
            held_past=self._held_past(lead.stage, held, own),
        )

    def reevaluate(self, lead_ids: Sequence[str]) -> list[Reevaluated]:
        """These leads merged again from what the store holds, under this engine's mapping and
        definition, deciding, saving and writing nothing: the what-if of an edit. Each record
        is taken as leadsync believes its CRM holds it (as pulled, under leadsync's own last
        writes), so what a sync wrote is not planned again. The same merge as a sync's or a
        sweep's: the stage moves are those the next sweep would make."""
        stored = self._store.records_of(lead_ids)
        people = self._match_people(stored, lead_ids)
        deals = self._related.deals(deal_persons(stored, lead_ids, people.attached))
        written = self._written_to(stored, lead_ids, people.attached.values())
        believed = {
            lead_id: [_as_written(s, written.get(s.crm, {})) for s in records]
            for lead_id, records in stored.items()
        }
        previous = self._store.leads(lead_ids)
        running = self._store.sla.running(lead_ids) if self._sla else {}
        found = []
        for lead_id in lead_ids:
            records = believed.get(lead_id, [])
            if not any(not record.deleted for record in records):
                continue  # a lead of deleted records only: nothing to decide or write
            person = people.attached.get(lead_id)
            m = self._merge_lead(
                lead_id,
                records,
                previous.get(lead_id),
                running.get(lead_id, []),
                None,
                written,
                person=_related_as_written(person, written) if person is not None else None,
                person_review=people.in_review.get(lead_id, ""),
                deal=deals.get(lead_id, {}),
            )
            found.append(
                Reevaluated(previous.get(lead_id), m.lead, tuple(m.transitions), m.updates, records)
            )
        return found

    def _held_clocks(self, snapshots: Mapping[str, Snapshot]) -> frozenset[str]:
        """The start stages whose clocks wait for the handoff: sales cannot see a lead that
        has no record in their CRM yet, so its acceptance clock starts when it gets one."""
        handoff = self._definition.handoff
        crm = self._handoff_crm
        if handoff is None or crm is None:
            return frozenset()
        live = snapshots.get(crm)
        return frozenset() if live is not None and not live.deleted else frozenset({handoff.stage})

    def _handoff_clocks(self, lead: Lead, handoff: Handoff) -> ClockChanges:
        if self._sla is None or handoff.handed_off_at is None:
            return ClockChanges()
        stage = self._definition.handoff.stage if self._definition.handoff else ""
        return self._sla.at_handoff(
            lead.lead_id, lead.values, stage, handoff.handed_off_at, handoff.owner
        )

    @staticmethod
    def _merged_lead(m: _Merged) -> MergedLead:
        """What the handoff needs of a merged lead, with the person record matched to it."""
        person = None
        if m.person is not None:
            person = PersonRecord(m.person.object_name, m.person.record_id)
        return MergedLead(
            m.lead,
            m.snapshots,
            m.transitions,
            person=person,
            person_review=m.person_review,
            held=m.held,
            held_past=m.held_past,
        )

    def _handoff_step(self, run_id: str) -> HandoffStep:
        crm, handoff = self._handoff_crm, self._definition.handoff
        # A handoff target is only found with a [handoff].
        assert crm is not None
        assert handoff is not None
        target = self._connectors[crm]
        assert isinstance(target, HandoffTarget)
        return HandoffStep(
            handoff,
            self._store.handoffs,
            target,
            self._map,
            clock=self._clock,
            run_id=run_id,
            clocks=self._handoff_clocks,
            responded_by=self._response_fields(handoff.stage),
            links=self._store.links_for,
            deleted=self._store.deleted_records,
            still_live=partial(self._still_live, run_id),
        )

    def _still_live(self, run_id: str, crm: str, record_ids: Sequence[str]) -> set[str]:
        """Which of `record_ids` `crm` still holds live, read now; those it does not are
        marked deleted in the store (a HubSpot search never tells of an archived contact)."""
        connector = self._connectors.get(crm)
        if connector is None:
            return set(record_ids)
        found = connector.fetch(record_ids, fields=fields_to_pull(self._map, crm))
        live = {record_id for record_id, record in found.items() if not record.deleted}
        gone = [record_id for record_id in record_ids if record_id not in live]
        if gone:
            self._store.mark_gone(crm, gone, run_id=run_id)
        return live

    def _response_fields(self, stage: str) -> tuple[str, ...]:
        """The fields whose change after the handoff is the lead's first response."""
        rule = NoResponseRule.of(self._sla, stage) if self._sla is not None else None
        return rule.fields if rule is not None else ()

    def _traits_of(self, crm: str) -> CrmTraits:
        """`crm`'s traits as its connector has them, by the CRM's defaults when none is here."""
        connector = self._connectors.get(crm)
        return connector.traits if connector is not None else traits_of(crm)

    def _held_past(
        self, stage: str | None, held: Mapping[str, Snapshot], own: Mapping[str, Collection[str]]
    ) -> str:
        """Why a CRM holds the person past `stage`: a stage a person set there (not leadsync's
        own write) that writing `stage`'s value over would move back, as the plan keeps it
        (HubSpot's `other`, or a portal's own stage after customer). Empty when none does."""
        if stage is None:
            return ""
        for crm, snapshot in sorted(held.items()):
            targets = self._map.writeback.get(crm)
            if snapshot.deleted or targets is None or targets.stage is None:
                continue
            name, wanted = targets.stage, targets.stage_values.get(stage)
            value = snapshot.raw.get(name)
            if wanted is None or is_blank(value) or name in own.get(crm, ()):
                continue
            if value not in targets.holding("stage", stage) and self._moves_back(
                crm, name, value, wanted
            ):
                return f"{crm} holds the person past {stage} ({name} {value})"
        return ""

    def _moves_back(self, crm: str, name: str, held: Any, wanted: Any) -> bool:
        connector = self._connectors.get(crm)
        if connector is None:
            unconnected = self._moves_back_unconnected
            return unconnected is not None and unconnected(crm, name, held, wanted)
        return connector.moves_back(name, held, wanted)

    def _persist(
        self,
        run_id: str,
        matches: Mapping[tuple[str, str], Match],
        merged: Sequence[_Merged],
        people: PeopleDecisions,
    ) -> None:
        """What this batch decided, in one transaction: a kill between leads and transitions
        would otherwise lose the transitions (the next run starts from the saved stage)."""
        decided = sorted(matches.items())
        self._store.save_decisions(
            leads=[m.lead for m in merged],
            links=[
                (crm, record_id, m.lead_id, m.kind.value)
                for (crm, record_id), m in decided
                if m.kind is not MatchKind.REVIEW and m.lead_id is not None
            ]
            + people.links,
            reviews=[
                (crm, record_id, m.candidates, m.reason)
                for (crm, record_id), m in decided
                if m.kind is MatchKind.REVIEW
            ]
            + people.reviews,
            transitions=[(m.lead.lead_id, t) for m in merged for t in m.transitions],
            clocks=[m.clocks for m in merged if m.clocks],
            run_id=run_id,
        )

    @staticmethod
    def _count_matches(
        matches: Mapping[tuple[str, str], Match],
        pulled_now: Mapping[str, set[str]],
        summary: RunSummary,
    ) -> None:
        """New, matched and in review: of the records this run pulled. Those an earlier run
        left pending (held back, deferred, cut off, a review or a refusal taken up again, a
        lead record whose Contact changed) are counted apart, as `earlier`."""
        for (crm, record_id), m in matches.items():
            counts = summary.crms.setdefault(crm, CrmCounts())
            if record_id not in pulled_now.get(crm, ()):
                counts.earlier += 1
            elif m.kind is MatchKind.REVIEW:
                counts.to_review += 1
            elif m.kind is MatchKind.NEW:
                counts.new_leads += 1
            else:
                counts.matched += 1

    # ---------------------------------------------------------------- write

    def _write(
        self,
        merged: Sequence[_Merged],
        summary: RunSummary,
        should_stop: StopCheck = _never,
        *,
        links: Sequence[LinkWrite] = (),
        last: bool = True,
    ) -> dict[str, set[str]]:
        """Write each CRM's updates in batches: the whole batches of them and of those waiting
        from earlier slices, or with `last` all (`leadsync.sync.carry`); the handoff's `links`
        with the plan's update of their record, or alone. Returns the records to leave
        pending, by CRM: those held back (changed since they were pulled; read again) and
        those whose write was deferred (a locked row, a CRM away): the next run plans them
        again."""
        unsettled: dict[str, set[str]] = {}
        for crm, connector in self._connectors.items():
            # Records written per batch and recorded before the next: a kill redoes at most
            # one batch. A stage moved back (HubSpot's lifecycle stage) takes a clear first,
            # one call per batch that holds such a move: grouped, they cost ⌈moves/batch⌉
            # clears, not one a batch. Within them, the updates that take a check before
            # they are written (`sync.prewrite`) come together: a check reads whole batches.
            traits = connector.traits
            targets = self._map.writeback.get(crm)
            linking = {link.update.record_id: link.update for link in links if link.crm == crm}
            new = []
            for m in merged:
                update = m.updates.get(crm)
                if update is None:
                    continue
                snapshot = m.snapshots.get(crm)
                # Of the plan's update alone: a link is written unchecked, as leadsync's own.
                kind = (traits.takes_a_clear(update), needs_check(targets, update))
                pulled_at = snapshot.modified_at if snapshot is not None else None
                link = linking.pop(update.record_id, None) if update.object_name is None else None
                if link is not None:
                    update = merge_by_id([update, link])[update.record_id]
                new.append(Queued(update, m.lead.lead_id, kind, pulled_at, link))
            for link_write in links:
                if link_write.crm == crm and link_write.update.record_id in linking:
                    alone = link_write.update
                    new.append(
                        Queued(alone, link_write.lead_id, (False, False), None, alone, False)
                    )
            batches = list(self._carry.batches(crm, new, traits.write_batch, last=last))
            check = PreWriteCheck(
                connector,
                [queued.update for batch in batches for queued in batch if queued.kind[1]],
                partial(self._fields_read, crm),
            )
            self._linked_leads = []
            try:
                for batch in batches:
                    _stop_if(should_stop)
                    self._write_batch(crm, connector, check, batch, summary, unsettled)
                    self._carry.written(batch)
            finally:
                # Also when stopped: a link that landed need not be written again.
                self._mark_linked(summary)
        return unsettled

    def _mark_linked(self, summary: RunSummary) -> None:
        if not self._linked_leads:
            return
        counts = summary.handoff = summary.handoff or HandoffCounts()
        counts.linked += len(self._linked_leads)
        self._handoff_step(summary.run_id).mark_linked(self._linked_leads)
        self._linked_leads = []

    def _write_batch(
        self,
        crm: str,
        connector: Connector,
        check: PreWriteCheck,
        queued: Sequence[Queued],
        summary: RunSummary,
        unsettled: dict[str, set[str]],
    ) -> None:
        """One batch: checked, written and recorded; the records to leave pending added to
        `unsettled`. A handoff's link write alone is leadsync's own, beside the plan: no
        record's count, recorded aside (`AuditLog.record`)."""
        pulled_at = {
            q.update.record_id: q.pulled_at
            for q in queued
            if q.pulled_at is not None and q.update.object_name is None
        }
        to_check = [q.update for q in queued if q.kind[1]]
        own = [u for u in to_check if u.object_name is None]
        batch, changed = self._unchanged_since_pulled(check, own, pulled_at)
        related, moved = self._related_unchanged(
            crm, check, [u for u in to_check if u.object_name is not None], summary
        )
        batch = [q.update for q in queued if not q.kind[1]] + batch + related
        counts = summary.crms[crm]
        counts.held_back += len(queued) - len(batch)
        for record_crm, record_ids in moved.items():
            unsettled.setdefault(record_crm, set()).update(record_ids)
        if changed:
            self.ingest(crm, connector, Page(tuple(changed)), summary, reread=True)
            unsettled.setdefault(crm, set()).update(record.id for record in changed)
        if not batch:
            return
        results = connector.write(batch)
        landed, gone = self._set_aside_gone(crm, batch, results, summary.run_id)
        again = self._refused_again(crm, landed)
        by_id = {q.update.record_id: q for q in queued}
        planned = {u.record_id for u in batch if by_id[u.record_id].planned}
        counts.held_back += sum(1 for r in results if r.record_id in planned) - sum(
            1 for r in landed if r.record_id in planned
        )
        unsettled.setdefault(crm, set()).update(gone)
        answered = {r.record_id for r in landed}
        results = [r for r in landed if r.record_id in planned]
        for aside in (False, True):
            mine = [
                u for u in batch if u.record_id in answered and (u.record_id in planned) != aside
            ]
            if aside and not mine:
                continue
            self._store.audit_log.record(
                summary.run_id,
                crm,
                _write_rows(mine, [r for r in landed if (r.record_id in planned) != aside]),
                context=self._contexts.get(crm, ""),
                at=self._clock(),
                aside=aside,
                also=None if aside else self._counted_with_batch(crm, results),
            )
        counts.count_results(results)
        counts.refused_again += sum(1 for r in results if r.record_id in again)
        unsettled.setdefault(crm, set()).update(
            r.record_id
            for r in landed
            if r.status is WriteStatus.DEFERRED and r.record_id in planned
        )
        linked = [by_id[r.record_id] for r in landed if by_id[r.record_id].link is not None]
        self._linked(crm, connector, linked, landed, summary)

    def _counted_with_batch(
        self, crm: str, results: Sequence[WriteResult]
    ) -> Callable[[Connection], None] | None:
        """The settle's `on_written` for a batch with these `results` of the plan's records,
        when it wrote any of them."""
        written = sum(1 for r in results if r.status is WriteStatus.WRITTEN)
        hook = self._on_written
        if hook is None or not written:
            return None
        return lambda connection: hook(connection, crm, written)

    def _linked(
        self,
        crm: str,
        connector: Connector,
        queued: Sequence[Queued],
        results: Sequence[WriteResult],
        summary: RunSummary,
    ) -> None:
        """The leads whose link write landed (with the plan's values, or alone) noted, to be
        marked linked after the slice's writes. A link whose record refused the plan's values
        is written again alone: the refusal is the plan's, not the link's."""
        status = {r.record_id: r.status for r in results}
        landed = [q for q in queued if status[q.update.record_id] is WriteStatus.WRITTEN]
        refused = [
            q
            for q in queued
            if status[q.update.record_id] is WriteStatus.FAILED and q.planned and q.link
        ]
        if refused:
            alone = [q.link for q in refused if q.link is not None]
            again = connector.write(alone)
            self._store.audit_log.record(
                summary.run_id,
                crm,
                _write_rows(alone, again),
                context=self._contexts.get(crm, ""),
                at=self._clock(),
                aside=True,
            )
            written = {r.record_id for r in again if r.status is WriteStatus.WRITTEN}
            landed += [q for q in refused if q.update.record_id in written]
        self._linked_leads += [q.lead_id for q in landed]

    def _refused_again(self, crm: str, results: Sequence[WriteResult]) -> set[str]:
        """The records of `results` refused for what they hold that were refused before and
        wait to be tried again: asked before the batch's refusals are recorded."""
        failed = [
            r.record_id
            for r in results
            if r.status is WriteStatus.FAILED and r.category not in REQUEST_REFUSALS
        ]
        if not failed:
            return set()
        return self._store.quarantine.refused_before(crm, failed)

    def _set_aside_gone(
        self, crm: str, batch: Sequence[RecordUpdate], results: Sequence[WriteResult], run_id: str
    ) -> tuple[list[WriteResult], list[str]]:
        """The results of a write batch without those of records gone since the pull (deleted,
        or converted: `CrmTraits.gone_errors`, `frozen_errors`), and the gone lead records'
        ids. Such a write was planned from a record that is no more: it is held back, as the
        check before it would have held it, neither a failure nor a refusal to try again. A
        deleted lead record is marked so in the store now (HubSpot's search never shows an
        archived contact); a converted one's next pull brings its conversion."""
        traits = self._connectors[crm].traits
        vanished = traits.gone_errors | traits.frozen_errors
        if not vanished:
            return list(results), []
        objects = {u.record_id: u.object_name for u in batch}
        kept: list[WriteResult] = []
        gone: list[str] = []
        deleted: list[str] = []
        for result in results:
            if result.status is not WriteStatus.FAILED or result.category not in vanished:
                kept.append(result)
                continue
            log.info(
                "%s record %s is gone since the pull (%s): its write is held back",
                crm,
                result.record_id,
                result.category,
            )
            if objects.get(result.record_id) is None:
                gone.append(result.record_id)
                if result.category in traits.gone_errors:
                    deleted.append(result.record_id)
        if deleted:
            self._store.mark_gone(crm, deleted, run_id=run_id)
        return kept, gone

    def _fields_read(self, crm: str, object_name: str | None) -> Sequence[str]:
        """The fields of `crm`'s records read again before a write: those a pull reads (of
        the lead object, or of the related `object_name`)."""
        if object_name is None:
            return fields_to_pull(self._map, crm)
        return fields_of(self._map, crm, object_name)

    def _hand_off(self, merged: Sequence[_Merged], summary: RunSummary) -> list[LinkWrite]:
        """The slice's handoffs (`leadsync.sync.handoff`): create, then record what was created
        as leadsync's own writes. Returns the writes of the new ids to the other CRM (the
        engine's write makes them, with the plan's)."""
        crm = self._handoff_crm
        if crm is None:
            return []
        counts = summary.handoff = summary.handoff or HandoffCounts()
        step = self._handoff_step(summary.run_id)
        outcome = step.run([self._merged_lead(m) for m in merged], counts)
        created = [
            WriteRow(record.record_id, name, None, value, WriteStatus.WRITTEN, "", "")
            for record in outcome.created
            for name, value in sorted(record.values.items())
        ]
        if created:
            self._store.audit_log.record(
                summary.run_id,
                crm,
                created,
                context=self._contexts.get(crm, ""),
                at=self._clock(),
                aside=True,
            )
        return outcome.links

    def _unchanged_since_pulled(
        self,
        check: PreWriteCheck,
        planned: Sequence[RecordUpdate],
        pulled_at: Mapping[str, datetime],
    ) -> tuple[list[RecordUpdate], list[CrmRecord]]:
        """The updates whose record nobody changed since it was pulled, and the records that
        changed, as they are now. A plan made from an older snapshot would overwrite a
        person's newer edit: such a record is held back; its current version goes into the
        store, pending, so the next merge plans from it (leadsync's own earlier write, a
        cut-off two-step lifecycle move, is then seen for what it is: an echo)."""
        found = check.check(None, [u.record_id for u in planned], pulled_at)
        unchanged = [u for u in planned if u.record_id in found.unchanged]
        return unchanged, list(found.changed.values())

    def _related_unchanged(
        self,
        crm: str,
        check: PreWriteCheck,
        planned: Sequence[RecordUpdate],
        summary: RunSummary,
    ) -> tuple[list[RecordUpdate], dict[str, list[str]]]:
        """`_unchanged_since_pulled` for updates of related records (Contacts): those whose
        record is as the store holds it, and the records (by CRM) to leave pending because
        theirs changed (its current version goes into the store, laid over them)."""
        unchanged: list[RecordUpdate] = []
        parents: dict[str, list[str]] = {}
        for object_name, updates in _by_object(planned).items():
            ids = [u.record_id for u in updates]
            held = self._store.related.get(crm, ids)
            found = check.check(
                object_name, ids, {i: record.modified_at for i, record in held.items()}
            )
            unchanged += [u for u in updates if u.record_id in found.unchanged]
            if found.changed:
                pending = self._related.ingest(
                    crm, object_name, Page(tuple(found.changed.values())), summary
                )
                for record_crm, record_ids in pending.items():
                    parents.setdefault(record_crm, []).extend(record_ids)
                    # Not pulled themselves: matched again, they are earlier, not matched.
                    self._laid.setdefault(record_crm, set()).update(record_ids)
        return unchanged, parents


def _with_last(items: Iterable[K]) -> Iterator[tuple[K, bool]]:
    """Each item, and whether it is the last."""
    iterator = iter(items)
    try:
        held = next(iterator)
    except StopIteration:
        return
    for item in iterator:
        yield held, False
        held = item
    yield held, True


def _by_object(updates: Sequence[RecordUpdate]) -> dict[str, list[RecordUpdate]]:
    grouped: dict[str, list[RecordUpdate]] = {}
    for update in updates:
        grouped.setdefault(update.object_name or "", []).append(update)
    return grouped


class _Sources(Mapping[str, str]):
    """Canonical field -> the CRM its merged value came from, as people name it: looked up
    when asked (only a stage adopted from the CRMs names its source), not made per lead."""

    __slots__ = ("_choices",)

    def __init__(self, choices: Mapping[str, FieldChoice]) -> None:
        self._choices = choices

    def __getitem__(self, name: str) -> str:
        crm = self._choices[name].crm
        if crm is None:
            raise KeyError(name)
        return CRM_NAMES.get(crm, crm)

    def __iter__(self) -> Iterator[str]:
        return (name for name, choice in self._choices.items() if choice.crm is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _changed_since(snapshots: Mapping[str, Snapshot], moment: datetime | None) -> bool:
    return moment is None or any(s.modified_at >= moment for s in snapshots.values())


def _records_by_lead(
    stored: Mapping[str, Sequence[Snapshot]],
    batch: Sequence[Snapshot],
    linked: Mapping[tuple[str, str], Match],
) -> dict[str, list[Snapshot]]:
    """Each lead's records: the stored ones, with this batch's fresher snapshots and links laid
    over them (in `plan` mode the new links are not stored)."""
    records = {
        lead_id: {(s.crm, s.record_id): s for s in snapshots}
        for lead_id, snapshots in stored.items()
    }
    owner = {key: lead_id for lead_id, found in records.items() for key in found}
    for snapshot in batch:
        key = (snapshot.crm, snapshot.record_id)
        match = linked.get(key)
        if match is None or match.lead_id is None:
            continue
        if key in owner:  # the record moves from the lead it was stored under
            records[owner[key]].pop(key, None)
        records.setdefault(match.lead_id, {})[key] = snapshot
        owner[key] = match.lead_id
    return {lead_id: list(found.values()) for lead_id, found in records.items()}


def one_per_crm(records: Iterable[Snapshot]) -> dict[str, Snapshot]:
    """The record each CRM votes with: the live one most recently changed (a lead may keep a
    deleted record, or a duplicate waiting in review)."""
    chosen: dict[str, Snapshot] = {}
    for snapshot in sorted(records, key=lambda s: (s.deleted, -s.modified_at.timestamp())):
        chosen.setdefault(snapshot.crm, snapshot)
    return chosen


def _write_rows(updates: Sequence[RecordUpdate], results: Sequence[WriteResult]) -> list[WriteRow]:
    outcomes = {result.record_id: result for result in results}
    rows = []
    for update in updates:
        result = outcomes[update.record_id]
        for name, value in sorted(update.values.items()):
            rows.append(
                WriteRow(
                    update.record_id,
                    name,
                    update.current.get(name),
                    value,
                    result.status,
                    result.category,
                    result.message,
                    result.modified_at,
                )
            )
    return rows


def _person_values(person: Related | None) -> dict[str, tuple[str, dict[str, Any]]]:
    """The plan's `people`: the person record as last pulled (a pull comes before every
    plan, so leadsync's own last writes to it are in)."""
    if person is None:
        return {}
    return {person.crm: (person.record_id, dict(person.fields))}


def _related_as_written(
    record: Related, written: Mapping[str, Mapping[str, Mapping[str, Any]]]
) -> Related:
    """`record` as leadsync believes its CRM holds it: as pulled, under leadsync's own last
    writes to it (the what-if's view, as `_as_written` is of lead records)."""
    own = written.get(record.crm, {}).get(record.record_id, {})
    return replace(record, fields={**record.fields, **own})


def _as_written(snapshot: Snapshot, written: Mapping[str, Mapping[str, Any]]) -> Snapshot:
    """`snapshot` as leadsync believes its CRM holds it: as pulled, under leadsync's own last
    writes to the record and to the Contact a converted lead became (`snapshot` itself when
    leadsync wrote to neither: a first sync's every record)."""
    if not written:
        return snapshot
    own = written.get(snapshot.record_id)
    contact = contact_of(snapshot)
    laid = written.get(contact[0]) if contact is not None else None
    if not own and not laid:
        return snapshot
    raw = {**snapshot.raw, **(own or {})}
    if laid:
        raw.update({f"{CONTACT}.{name}": value for name, value in laid.items()})
    return replace(snapshot, raw=raw)


def _quarantined_as_is(entry: Quarantined, held: Mapping[str, Quarantined]) -> bool:
    """Whether `entry` is what the store holds in quarantine already: same reason, same record."""
    open_entry = held.get(entry.record_id)
    return (
        open_entry is not None
        and open_entry.reason == entry.reason
        and dict(open_entry.raw) == dict(entry.raw)
    )


def _read_again(snapshots: Sequence[Snapshot], previous: Mapping[str, Snapshot]) -> list[str]:
    """The ids of `snapshots` the store already holds as they are: a pull gives again what
    sits at a stamp the store holds (Salesforce's whole seconds cannot tell two saves in one
    second apart), and such a record is not a change pulled. Only ties are digested."""
    return [
        snapshot.record_id
        for snapshot in snapshots
        if (held := previous.get(snapshot.record_id)) is not None
        and held.modified_at == snapshot.modified_at
        and content_digest(held) == content_digest(snapshot)
    ]
