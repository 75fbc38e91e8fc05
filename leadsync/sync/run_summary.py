"""A run's summary: what each CRM's pull, match and writes came to (`CrmCounts`, with the
causes of the writes that did not land), the leads the run changed and their stages, and the
plan's, the SLA ledger's, the quota's and the handoff's figures.

The engine fills it as a run goes; the run log keeps it (`RunSummary.as_dict`), and the
commands, the jobs, the backfill runner and the metrics read it. It lives apart from the
engine so that they can, without importing the engine, and so that how a run is counted
(a lead merged twice counted once, a failure cause kept with one example) is read in one place.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from leadsync.connectors.base import WriteResult, WriteStatus
from leadsync.sync.handoff import HandoffCounts, HandoffPreview
from leadsync.sync.ids import is_new_id
from leadsync.sync.model import Lead
from leadsync.sync.plan import PlanSummary
from leadsync.sync.sla.monitor import SlaCheckResult


@dataclass
class Failures:
    """The writes that did not land for one cause: how many, and one of them by record id
    with the fields the CRM named (never a value: values may be personal data)."""

    count: int = 0
    example: str = ""


@dataclass
class CrmCounts:
    # The distinct records the run pulled that it had not already (a record pulled again at
    # the stamp the store holds is no news), with those the plan before it pulled for it.
    pulled: int = 0
    quarantined: int = 0
    # Of the records pulled and not quarantined: matched to a lead, new, or in review.
    matched: int = 0
    new_leads: int = 0
    to_review: int = 0
    # Records an earlier run left pending (held back, deferred, cut off; a review or a
    # refused write taken up again), matched again by this one: not in `pulled`.
    earlier: int = 0
    # Records planned: written + failed + deferred + held back, once the run is done.
    records_to_update: int = 0
    written: int = 0
    failed: int = 0
    deferred: int = 0
    # Changed in the CRM after it was pulled: not written this run, pulled again next run.
    held_back: int = 0
    # Records of related objects pulled (Salesforce Contacts and Opportunities).
    related_pulled: int = 0
    # Why writes failed or were deferred: the CRM's error category -> count and an example.
    failures: dict[str, Failures] = field(default_factory=dict)
    # Of `failed`: records that already waited in quarantine, refused for what they hold,
    # tried again and refused again. No news: they do not make a run one that failed.
    refused_again: int = 0

    def count_results(self, results: Sequence[WriteResult]) -> None:
        for result in results:
            if result.status is WriteStatus.WRITTEN:
                self.written += 1
                continue
            if result.status is WriteStatus.FAILED:
                self.failed += 1
            else:
                self.deferred += 1
            cause = self.failures.setdefault(result.category or "unknown", Failures())
            cause.count += 1
            if not cause.example:
                named = f" ({', '.join(result.fields)})" if result.fields else ""
                cause.example = f"record {result.record_id}{named}"

    def causes(self) -> list[tuple[str, Failures]]:
        """The failure categories, most frequent first."""
        return sorted(self.failures.items(), key=lambda item: (-item[1].count, item[0]))


def _without(lead: Lead, echoed: frozenset[str]) -> Lead:
    """`lead` as a run's count compares it: without why its values won, nor the `echoed`."""
    values = {name: value for name, value in lead.values.items() if name not in echoed}
    return replace(lead, values=values, choices={})


def _lead_key(lead_id: str) -> str | int:
    """A lead id as a run's counts keep it for the whole run: leadsync's own ids as numbers
    (~36-48 bytes, not a string's ~70-90: ~6 MB of a first sync of 100,000 leads per CRM);
    any other id as it is. Two ids make one key only when they are one id: a number comes only
    from an id's one canonical spelling, today's ids (`new_id`) as negative numbers and an
    earlier release's UUIDs as non-negative ones."""
    if is_new_id(lead_id):
        return -1 - int(lead_id, 16)
    try:
        number = uuid.UUID(lead_id)
    except ValueError:
        return lead_id
    return number.int if str(number) == lead_id else lead_id


@dataclass
class RunSummary:
    run_id: str
    wrote: bool
    started_at: datetime
    kind: str = ""
    # The run was told to stop, and did, between two batches.
    interrupted: bool = False
    holder: str | None = None  # who ran it: the lease holder, "<replica>/<role>"
    crms: dict[str, CrmCounts] = field(default_factory=dict)
    leads_changed: int = 0
    transitions: int = 0
    # The stage of every lead this run touched: on a first run, the whole funnel.
    stages: Counter[str] = field(default_factory=Counter)
    plan: PlanSummary | None = None
    clocks_started: int = 0
    clocks_stopped: int = 0
    sla: SlaCheckResult | None = None
    # What each CRM said of its daily API quota by the end of the run.
    quota: dict[str, dict[str, int | None]] = field(default_factory=dict)
    # The handoffs of the run, when the lead definition has a [handoff].
    handoff: HandoffCounts | None = None
    # A plan's: the handoffs the run would make, and their calls (nothing is created).
    handoff_plan: HandoffPreview | None = None
    # Per lead merged, its last stage and whether it changed, so a lead merged twice in one
    # run (a backfill settles again what changed meanwhile) is counted once, with its last
    # stage. Each value is one of a few shared pairs (`_marks`): a first sync of 100,000
    # leads holds one dict entry a lead, not a dict's, a set's and a stage string's; and each
    # key is the lead id as a number where it is leadsync's own (`_lead_key`).
    _merged: dict[str | int, tuple[str, bool]] = field(default_factory=dict, repr=False)
    _marks: dict[tuple[str, bool], tuple[str, bool]] = field(default_factory=dict, repr=False)

    def count_merged(
        self, lead: Lead, previous: Lead | None, *, echoed: frozenset[str] = frozenset()
    ) -> None:
        """Count a merged lead in `leads_changed` and `stages`, once however often merged.
        A lead changed when what it says of the person did: its values, score or stage. Why
        a value won (`choices`) is explanation, and moves when leadsync's own write comes back
        from the other CRM ("both hold the same value"): that is no change. Nor is the value
        of a field in `echoed`, leadsync's own write come back (a stage it wrote, read back
        into a field it only pulls): the run that wrote it counted the change."""
        changed = previous is None or _without(previous, echoed) != _without(lead, echoed)
        key = _lead_key(lead.lead_id)
        before, changed_before = self._merged.get(key, (None, False))
        if changed and not changed_before:
            self.leads_changed += 1
        if before is not None:
            self.stages[before] -= 1
            if not self.stages[before]:
                del self.stages[before]
        stage = lead.stage or "none"
        mark = (stage, changed or changed_before)
        self._merged[key] = self._marks.setdefault(mark, mark)
        self.stages[mark[0]] += 1

    def every_write_failed(self) -> dict[str, str]:
        """CRM -> what went wrong, for each CRM the run tried to write to and could not write
        a single record: a run to report as failed, with its causes. A deferred write counts:
        the CRM was away (5xx, locked rows, outlasting the retries), a CRM down. A write held
        back by design (the record changed or went since the pull) or waiting for a later
        batch of the run is no try: it is never counted as deferred."""
        found = {}
        for crm, counts in sorted(self.crms.items()):
            missed = counts.failed + counts.deferred
            if counts.written or not missed - counts.refused_again:
                continue
            causes = "; ".join(
                f"{category} ×{cause.count}, e.g. {cause.example}"
                for category, cause in counts.causes()
            )
            # Said as it was: a deferred write is tried again by the next run, not refused.
            outcome = "failed or was deferred" if counts.deferred else "failed"
            found[crm] = f"every {crm} write of the run {outcome} ({missed}): {causes}"
        return found

    def as_dict(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "run_id": self.run_id,
            "mode": self.kind or ("sync" if self.wrote else "plan"),
            # A run of a kind that writes, told not to (a backfill's --dry-run): a plan.
            "wrote": self.wrote,
            "interrupted": self.interrupted,
            "holder": self.holder,
            "started_at": self.started_at.isoformat(),
            "leads_changed": self.leads_changed,
            "stage_transitions": self.transitions,
            "stages_of_leads_touched": dict(self.stages),
            "crms": {crm: asdict(counts) for crm, counts in sorted(self.crms.items())},
            "sla_clocks_started": self.clocks_started,
            "sla_clocks_stopped": self.clocks_stopped,
        }
        failed = self.every_write_failed()
        if failed:
            summary["every_write_failed"] = failed
        if self.sla is not None:
            summary["sla"] = self.sla.as_dict()
        if self.quota:
            summary["api_quota"] = self.quota
        if self.handoff is not None:
            summary["handoff"] = {**asdict(self.handoff), "blocked": self.handoff.blocked}
        if self.handoff_plan is not None:
            summary["handoff_plan"] = self.handoff_plan.as_dict()
        if self.plan is not None:
            summary["api_calls"] = {
                crm: asdict(calls) for crm, calls in sorted(self.plan.calls.items())
            }
            summary["changes"] = self.plan.change_count
            if self.plan.owner_name_calls:
                summary["owner_name_calls"] = dict(sorted(self.plan.owner_name_calls.items()))
        return summary


def held_back(summary: RunSummary) -> int:
    """The writes `summary`'s run held back, over every CRM (changed since their pull)."""
    return sum(counts.held_back for counts in summary.crms.values())
