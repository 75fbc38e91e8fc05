"""`leadsync revert RUN-ID`: put back the values a run overwrote, where the CRM still holds what
the run wrote; list the fields where it does not (someone changed them since), untouched.

A revert is a run of its own (kind "revert"), with its writes in the audit log like any other,
so a revert can itself be reverted. A dry run reads what the CRMs hold now and says what a
revert would put back and keep, writing nothing and recording no run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from leadsync.connectors.base import Connector, RecordUpdate, WriteStatus
from leadsync.secrets import masked
from leadsync.sync.audit_log import LoggedWrite, WriteRow
from leadsync.sync.explain import json_value, shown_value
from leadsync.sync.handoff_ledger import CREATED
from leadsync.sync.runs import UnknownRunError, find_run
from leadsync.sync.store import Store

__all__ = ["RevertReport", "UnknownRunError", "revert_run"]


@dataclass
class RevertReport:
    run_id: str  # the revert's own run; "" for a dry run
    reverted: list[tuple[str, str, str, Any]] = field(default_factory=list)  # crm, id, field, old
    kept: list[tuple[str, str, str, str]] = field(default_factory=list)  # crm, id, field, why
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # crm, id, message
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        """`revert --json`: what `text` says; the values put back as `runs show --json` has
        them."""
        return {
            "run_id": self.run_id or None,
            "dry_run": self.dry_run,
            "reverted": [
                {"crm": crm, "record_id": rid, "field": name, "old": json_value(old)}
                for crm, rid, name, old in self.reverted
            ],
            "kept": [
                {"crm": crm, "record_id": rid, "field": name, "why": why}
                for crm, rid, name, why in self.kept
            ],
            "failed": [
                {"crm": crm, "record_id": rid, "message": masked(message)}
                for crm, rid, message in self.failed
            ],
        }

    def text(self, reverted_run: str, *, asking: bool = False) -> str:
        """What the revert did, or (a dry run) would do; `asking` heads a dry run shown
        before the question whether to go ahead.

        The values put back are the run's audit log's, shown as `runs show` and `explain`
        show them. What a CRM holds now (a kept field) and a CRM's messages are masked as in
        every log line: a rep may have pasted a person's name or address where leadsync
        wrote, and that is in no log of leadsync's."""
        if self.dry_run:
            heading = (
                "asking first (nothing written yet)" if asking else "dry run (nothing written)"
            )
            lines = [
                f"revert of run {reverted_run}, {heading}: "
                f"{len(self.reverted)} field(s) to put back, {len(self.kept)} kept"
            ]
            if self.reverted:
                lines.append("to put back:")
                lines.extend(
                    f"  {crm} {rid} {name}: {shown_value(old)}"
                    for crm, rid, name, old in self.reverted
                )
        else:
            lines = [
                f"revert of run {reverted_run} (as run {self.run_id}): "
                f"{len(self.reverted)} field(s) put back, {len(self.kept)} kept, "
                f"{len(self.failed)} record(s) failed"
            ]
        if self.kept:
            lines.append("kept, because the CRM no longer holds what the run wrote:")
            lines.extend(f"  {crm} {rid} {name}: {why}" for crm, rid, name, why in self.kept)
        if self.failed:
            lines.append("failed:")
            lines.extend(f"  {crm} {rid}: {masked(message)}" for crm, rid, message in self.failed)
        return "\n".join(lines)


def revert_run(
    store: Store,
    connectors: Mapping[str, Connector],
    run_id: str,
    *,
    dry_run: bool = False,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    holder: str | None = None,
) -> RevertReport:
    """Revert run `run_id` (a full or short id); with `dry_run`, only say what it would do.
    The revert's own run is recorded as `holder`'s (the lease holder: `RunLog.start`)."""
    run_id = find_run(store, run_id).run_id
    written: dict[tuple[str, str], dict[str, LoggedWrite]] = {}
    for write in store.audit_log.entries(run_id=run_id):
        if write.status is WriteStatus.WRITTEN:
            # The first write of a field in the run holds the value from before the run.
            written.setdefault((write.crm, write.record_id), {}).setdefault(write.field, write)
    # Records the run's handoff created: nothing was there before to put back. Deleting a
    # lead sales may be working is a person's decision; the revert names them instead.
    created = {
        (h.crm, h.record_id): h.lead_id
        for h in store.handoffs.all()
        if h.run_id == run_id and h.status == CREATED and h.record_id
    }
    set_aside = [
        (crm, record_id, "*", f"created by the run's handoff of lead {lead_id}")
        for (crm, record_id), lead_id in sorted(created.items())
        if written.pop((crm, record_id), None) is not None
    ]
    if dry_run:
        preview = RevertReport("", dry_run=True, kept=list(set_aside))
        for crm, connector in connectors.items():
            records = {rid: fields for (c, rid), fields in written.items() if c == crm}
            if records:
                _revertible(store, crm, connector, records, preview)
        return preview
    report = RevertReport(
        store.run_log.start("revert", started_at=clock(), holder=holder), kept=set_aside
    )
    try:
        for crm, connector in connectors.items():
            records = {rid: fields for (c, rid), fields in written.items() if c == crm}
            if records:
                _revert_crm(store, crm, connector, records, report)
    except BaseException:
        store.run_log.finish(
            report.run_id, status="failed", summary={"holder": holder}, finished_at=clock()
        )
        raise
    store.run_log.finish(
        report.run_id,
        status="succeeded",
        summary={
            "holder": holder,
            "reverted_run": run_id,
            "reverted": len(report.reverted),
            "kept": len(report.kept),
        },
        finished_at=clock(),
    )
    return report


def _revert_crm(
    store: Store,
    crm: str,
    connector: Connector,
    records: Mapping[str, Mapping[str, LoggedWrite]],
    report: RevertReport,
) -> None:
    planned = RevertReport(report.run_id)
    updates = _revertible(store, crm, connector, records, planned)
    report.kept.extend(planned.kept)
    if not updates:
        return
    results = {result.record_id: result for result in connector.write(updates)}
    rows: list[WriteRow] = []
    for update in updates:
        result = results[update.record_id]
        if result.status is WriteStatus.WRITTEN:
            report.reverted.extend(
                (crm, update.record_id, name, value) for name, value in update.values.items()
            )
        else:
            report.failed.append((crm, update.record_id, result.message or result.category))
        rows.extend(
            WriteRow(
                update.record_id,
                name,
                update.current.get(name),
                value,
                result.status,
                result.category,
                result.message,
                # A stage put back is a clear then a set, as a sync's backward move: the
                # version between them, older than this stamp, is leadsync's own too.
                result.modified_at,
            )
            for name, value in sorted(update.values.items())
        )
    store.audit_log.record(report.run_id, crm, rows)


def _revertible(
    store: Store,
    crm: str,
    connector: Connector,
    records: Mapping[str, Mapping[str, LoggedWrite]],
    report: RevertReport,
) -> list[RecordUpdate]:
    """The updates that put back what the run wrote where `crm` still holds it (listed in
    `report.reverted`); the fields it no longer holds go to `report.kept`."""
    # Records of related objects (the Contacts converted people are written to) are read and
    # written as what they are; the store knows which they are.
    objects = {
        record_id: row.object_name
        for record_id, row in store.related.get(crm, sorted(records)).items()
    }
    now = {}
    for object_name in sorted(set(objects.values()) | {""}):
        ids = sorted(i for i in records if objects.get(i, "") == object_name)
        names = sorted({name for i in ids for name in records[i]})
        if ids:
            now.update(connector.fetch(ids, fields=names, object_name=object_name or None))
    updates = []
    for record_id, fields in sorted(records.items()):
        current = now.get(record_id)
        values: dict[str, Any] = {}
        held: dict[str, Any] = {}
        for name, write in sorted(fields.items()):
            if current is None:
                report.kept.append((crm, record_id, name, "the record is gone"))
            elif _same(current.fields.get(name), write.new):
                values[name] = write.old
                held[name] = current.fields.get(name)
            else:
                # What the CRM holds now may be anyone's typing: masked. What the run wrote
                # is in the audit log, shown as `runs show` shows it.
                held_now = masked(shown_value(current.fields.get(name)))
                report.kept.append(
                    (crm, record_id, name, f"now {held_now}, not {shown_value(write.new)}")
                )
        if values:
            updates.append(RecordUpdate(record_id, values, held, objects.get(record_id)))
            report.reverted.extend((crm, record_id, name, old) for name, old in values.items())
    return updates


def _same(held: Any, wrote: Any) -> bool:
    """Whether the CRM still holds what was written, allowing for how each CRM reports values
    (HubSpot text, Salesforce numbers as floats, blank as None or "")."""
    return bool(_normal(held) == _normal(wrote))


def _normal(value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().replace("\r\n", "\n")
    try:
        return float(text)
    except ValueError:
        return text
