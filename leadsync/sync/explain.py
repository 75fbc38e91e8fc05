"""`leadsync explain EMAIL|CRM-ID`: everything leadsync knows and decided about one lead.

Both CRM records as last pulled, each merged value with the rule that chose it, the score with
its reasons, the stage history, its SLA clocks, the writes made, and the writes still pending
(what a sync would write now from the store's state). It reads the store only: no CRM is
called.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from leadsync.mapping.fields import FieldMap
from leadsync.mapping.lifecycle import Transition
from leadsync.mapping.transforms import TransformError
from leadsync.sync.audit_log import LoggedWrite
from leadsync.sync.engine import one_per_crm
from leadsync.sync.handoff_ledger import BLOCKED, DELETED, FAILED, MATCHED, PENDING, Handoff
from leadsync.sync.model import Lead, Snapshot
from leadsync.sync.plan import MovesBack, never_back, plan_updates
from leadsync.sync.sla.clocks import Clock, SlaRules
from leadsync.sync.store import Store

RECENT_WRITES = 20
# The lead's own figures, as `--json` names them.
_LEAD_FIGURES = ("lead_id", "stage", "score", "fit", "engagement", "grade", "model_version")


@dataclass(frozen=True)
class Explanation:
    lead: Lead
    records: list[Snapshot]
    history: list[Transition]
    writes: list[LoggedWrite]
    pending: dict[str, dict[str, Any]]
    clocks: list[Clock]
    now: datetime
    handoff: Handoff | None = None
    # Owner id -> name, of the owners shown (the handoff's, the clocks') the store can name.
    owner_names: Mapping[str, str] = field(default_factory=dict)

    def owner_name(self, owner: str | None) -> str | None:
        return self.owner_names.get(owner) if owner else None

    def owner_shown(self, owner: str | None) -> str:
        """The owner as the text shows them: their name beside the id where it is known."""
        name = self.owner_name(owner)
        return f"{name} ({owner})" if name else owner or "-"

    def as_dict(self) -> dict[str, Any]:
        """`explain --json`: what the text shows, each time in ISO 8601 with its offset."""
        lead = self.lead
        return {
            **{name: getattr(lead, name) for name in _LEAD_FIGURES},
            "records": [
                {
                    "crm": record.crm,
                    "record_id": record.record_id,
                    "deleted": record.deleted,
                    "modified_at": record.modified_at.isoformat(),
                }
                for record in sorted(self.records, key=lambda r: (r.crm, r.record_id))
            ],
            "values": {
                name: {
                    "value": json_value(lead.values[name]),
                    "rule": choice.reason if (choice := lead.choices.get(name)) else None,
                }
                for name in sorted(lead.values)
            },
            "score_reasons": list(lead.reasons),
            "stage_history": [
                {
                    "at": t.at.isoformat(),
                    "from": t.from_stage,
                    "to": t.to_stage,
                    "kind": t.kind,
                    "reason": t.reason,
                }
                for t in self.history
            ],
            "handoff": self._handoff_dict(),
            "sla_clocks": [
                {
                    "rule": clock.rule,
                    "owner": clock.owner,
                    "owner_name": self.owner_name(clock.owner),
                    "started_at": clock.started_at.isoformat(),
                    "due_at": clock.due_at.isoformat(),
                    "status": str(clock.status_at(self.now)),
                    "stopped_at": clock.stopped_at.isoformat() if clock.stopped_at else None,
                    "stop_reason": clock.stop_reason or None,
                }
                for clock in self.clocks
            ],
            "writes": [write.as_dict() for write in self.writes],
            "pending_writes": {
                crm: {name: json_value(value) for name, value in sorted(values.items())}
                for crm, values in sorted(self.pending.items())
            },
        }

    def _handoff_dict(self) -> dict[str, Any] | None:
        handoff = self.handoff
        if handoff is None:
            return None
        return {
            "status": handoff.status,
            "crm": handoff.crm,
            "record_object": handoff.record_object,
            "record_id": handoff.record_id,
            "owner": handoff.owner,
            "owner_name": self.owner_name(handoff.owner),
            "rule": handoff.rule or None,
            "problem": handoff.problem or None,
            "handed_off_at": json_value(handoff.handed_off_at),
            "summary": self.handoff_line(),
        }

    def handoff_line(self) -> str:
        handoff = self.handoff
        if handoff is None:
            return "none"
        if handoff.status in (BLOCKED, FAILED):
            return f"{handoff.status}: {handoff.problem}"
        if handoff.status == PENDING:
            owner = self.owner_shown(handoff.owner) if handoff.owner else "by the CRM"
            return f"pending to {handoff.crm} (owner {owner}: {handoff.rule})"
        at = f"{handoff.handed_off_at:{_AT}}" if handoff.handed_off_at else "-"
        if handoff.status == DELETED:
            return (
                f"handed off to {handoff.crm} {handoff.record_id} at {at}, which sales "
                "deleted: handed off again once it is due"
            )
        if handoff.status == MATCHED:
            return (
                f"matched {handoff.crm} {handoff.record_object} {handoff.record_id} at {at}: "
                "it held the person already"
            )
        owner = self.owner_shown(handoff.owner) if handoff.owner else "assigned by the CRM"
        return (
            f"created {handoff.crm} {handoff.record_id} at {at}, owner {owner}, "
            f"picked by {handoff.rule}"
        )


def explain(
    store: Store,
    field_map: FieldMap,
    key: str,
    *,
    rules: SlaRules | None = None,
    now: datetime | None = None,
    moves_back: MovesBack | None = None,
) -> list[Explanation]:
    """The leads `key` names: an email, or any CRM record id linked to a lead. `rules` are
    the definition's service levels, for the breach flag a sync would write; `moves_back`
    says which stage writes would move a CRM's stage back (a sync keeps a person's)."""
    leads = store.find_leads(email=key) if "@" in key else store.find_leads(crm_id=key)
    moment = now or datetime.now(UTC)
    return [_explain(store, field_map, lead, rules, moment, moves_back) for lead in leads]


def _explain(
    store: Store,
    field_map: FieldMap,
    lead: Lead,
    rules: SlaRules | None,
    now: datetime,
    moves_back: MovesBack | None,
) -> Explanation:
    records = store.records_of([lead.lead_id]).get(lead.lead_id, [])
    writes: list[LoggedWrite] = []
    for record in records:
        writes.extend(store.audit_log.entries(crm=record.crm, record_id=record.record_id))
    writes.sort(key=lambda write: write.at)
    # What leadsync last wrote is what each CRM holds, as far as the store knows, until the
    # next pull brings the echo back.
    written = {
        (record.crm, record.record_id): store.audit_log.expected(
            record.crm, [record.record_id]
        ).get(record.record_id, {})
        for record in records
    }
    believed = [
        replace(record, raw={**record.raw, **written[(record.crm, record.record_id)]})
        for record in records
    ]
    chosen = one_per_crm(believed)
    own = {crm: frozenset(written[(crm, record.record_id)]) for crm, record in chosen.items()}
    clocks = store.sla.clocks(lead_ids=[lead.lead_id])
    running = [clock for clock in clocks if clock.status.running]
    breaches = rules.breaches_at(running, now) if rules is not None else ()
    try:
        updates = plan_updates(
            field_map,
            lead,
            chosen,
            sla_breaches=breaches,
            own=own,
            written={crm: written[(crm, record.record_id)] for crm, record in chosen.items()},
            moves_back=moves_back if moves_back is not None else never_back,
        )
        pending = {crm: dict(u.values) for crm, u in updates.items() if u is not None}
    except TransformError as unwritable:
        pending = {"(cannot plan)": {"reason": str(unwritable)}}
    handoff = store.handoffs.of([lead.lead_id]).get(lead.lead_id)
    owners = {clock.owner for clock in clocks} | {handoff.owner if handoff else None}
    names = store.handoffs.names()
    return Explanation(
        lead,
        records,
        store.transitions.history(lead.lead_id),
        writes[-RECENT_WRITES:],
        pending,
        clocks,
        now,
        handoff,
        {owner: names[owner] for owner in owners if owner and owner in names},
    )


# Every time `explain` shows is UTC, and says so.
_AT = "%Y-%m-%d %H:%M UTC"


def json_value(value: Any) -> Any:
    """A value as JSON holds it: a time or a date in ISO 8601 (a time with its offset)."""
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    return value


def shown_value(value: Any, *, quoted: bool = True) -> str:
    """A value as a person writes it: text in quotes, a time with its zone, a number plain,
    nothing as "blank" (never a Python repr such as datetime.datetime(...)). The console
    shows values with it too, text unquoted (`quoted=False`): a table cell marks its ends."""
    if value is None:
        return "blank"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if value.tzinfo else str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False) if quoted else value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def format_explanation(explanation: Explanation) -> str:
    lead = explanation.lead
    lines = [
        f"lead {lead.lead_id}: stage {lead.stage or '-'}, score {lead.score} "
        f"(fit {lead.fit}, engagement {lead.engagement}), grade {lead.grade or '-'}, "
        f"model {lead.model_version or '-'}"
    ]
    lines.append("records:")
    for record in sorted(explanation.records, key=lambda r: (r.crm, r.record_id)):
        state = " (deleted)" if record.deleted else ""
        lines.append(
            f"  {record.crm} {record.record_id}{state}, changed {record.modified_at:{_AT}}"
        )
    lines.append("merged values (rule: why):")
    for name in sorted(lead.values):
        choice = lead.choices.get(name)
        why = f"  [{choice.reason}]" if choice is not None else ""
        lines.append(f"  {name} = {shown_value(lead.values[name])}{why}")
    lines.append("score reasons:")
    lines.extend(f"  {reason}" for reason in lead.reasons)
    lines.append("stage history:")
    for transition in explanation.history:
        lines.append(
            f"  {transition.at:{_AT}} {transition.from_stage or '-'} -> "
            f"{transition.to_stage} ({transition.kind}): {transition.reason}"
        )
    lines.append("handoff:")
    lines.append(f"  {explanation.handoff_line()}")
    lines.append("SLA clocks:")
    if not explanation.clocks:
        lines.append("  none")
    for clock in explanation.clocks:
        stopped = f", stopped {clock.stopped_at:{_AT}}" if clock.stopped_at else ""
        why = f": {clock.stop_reason}" if clock.stop_reason else ""
        owner = f", owner {explanation.owner_shown(clock.owner)}" if clock.owner else ""
        lines.append(
            f"  {clock.rule}: started {clock.started_at:{_AT}}, due "
            f"{clock.due_at:{_AT}}, {clock.status_at(explanation.now)}{owner}{stopped}{why}"
        )
    lines.append(f"writes (last {RECENT_WRITES}):")
    for write in explanation.writes:
        lines.append(
            f"  {write.at:{_AT}} {write.crm} {write.record_id} {write.field}: "
            f"{shown_value(write.old)} -> {shown_value(write.new)} [{write.status}]"
        )
    lines.append("pending writes:")
    if not explanation.pending:
        lines.append("  none: both CRMs hold what they should")
    for crm, values in sorted(explanation.pending.items()):
        for name, value in sorted(values.items()):
            lines.append(f"  {crm} {name} <- {shown_value(value)}")
    return "\n".join(lines)
