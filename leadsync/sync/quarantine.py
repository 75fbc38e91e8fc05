"""The quarantine as RevOps work it: `leadsync quarantine` and the console's Exceptions page.

Two kinds of record wait there: those the mapping cannot read (no usable email, a value no
transform takes: leadsync's message) and those whose write a CRM refused (the CRM's message).
Each is listed under a cause that names fields and categories, never values, so counts by cause
can be shown anywhere; one record's values are shown to the person who asks for it only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from leadsync.errors import UsageError
from leadsync.mapping.fields import FieldMap
from leadsync.sync.engine import SyncEngine
from leadsync.sync.identity import normalise_email
from leadsync.sync.ingest import FieldProblem, field_problems
from leadsync.sync.quarantine_ledger import REFUSED, Quarantined
from leadsync.sync.run_summary import RunSummary
from leadsync.sync.store import Store

__all__ = [
    "QuarantineItem",
    "UnknownRecordError",
    "quarantine_causes",
    "quarantine_item",
    "quarantine_items",
    "quarantined_for",
    "retry_quarantined",
    "same_record_id",
]

MAPPING = "mapping"  # leadsync's mapping refused the record as pulled
REFUSAL = "refused"  # a CRM refused leadsync's write


class UnknownRecordError(UsageError):
    """No quarantined (or queued) record has the id given."""


@dataclass(frozen=True, slots=True)
class QuarantineItem:
    entry: Quarantined
    kind: str  # MAPPING or REFUSAL
    cause: str  # fields and categories only: safe to count and show anywhere
    problems: tuple[FieldProblem, ...]  # field, value, message: for the person asking

    @property
    def crm(self) -> str:
        return self.entry.crm

    @property
    def record_id(self) -> str:
        return self.entry.record_id

    def as_dict(self, *, values: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "crm": self.crm,
            "record_id": self.record_id,
            "kind": self.kind,
            "cause": self.cause,
            "since": self.entry.at.isoformat(),
            "run_id": self.entry.run_id,
        }
        if values:
            body["problems"] = [
                {"field": p.field, "value": p.value, "message": p.message} for p in self.problems
            ]
        return body


def quarantine_items(
    store: Store, field_map: FieldMap, *, crm: str | None = None, cause: str | None = None
) -> list[QuarantineItem]:
    """The records in quarantine now, oldest first, of `crm` and `cause` if given."""
    items = [_item(entry, field_map) for entry in store.quarantine.entries()]
    return [
        item
        for item in items
        if (crm is None or item.crm == crm) and (cause is None or item.cause == cause)
    ]


def quarantine_causes(items: Sequence[QuarantineItem]) -> list[tuple[str, str, int]]:
    """(crm, cause, how many), the most frequent first."""
    counted = Counter((item.crm, item.cause) for item in items)
    return [(crm, cause, n) for (crm, cause), n in sorted(counted.items(), key=_by_count)]


def _by_count(entry: tuple[tuple[str, str], int]) -> tuple[int, str, str]:
    (crm, cause), n = entry
    return (-n, crm, cause)


def quarantine_item(
    store: Store, field_map: FieldMap, record_id: str, *, crm: str | None = None
) -> QuarantineItem:
    """The quarantined record `record_id` (a Salesforce id of 15 or 18 characters)."""
    found = [
        item
        for item in quarantine_items(store, field_map, crm=crm)
        if same_record_id(item.record_id, record_id)
    ]
    if not found:
        raise UnknownRecordError(f"no record {record_id} in quarantine (see `leadsync quarantine`)")
    if len(found) > 1:
        crms = ", ".join(item.crm for item in found)
        raise UnknownRecordError(f"record {record_id} is in quarantine in {crms}: add --crm")
    return found[0]


def same_record_id(stored: str, given: str) -> bool:
    """Whether `given` names `stored`: equal, or a Salesforce 15-character id of an 18."""
    given = given.strip()
    if stored == given:
        return True
    return len(stored) == 18 and len(given) == 15 and stored[:15] == given


def _item(entry: Quarantined, field_map: FieldMap) -> QuarantineItem:
    if entry.reason.startswith(REFUSED):
        # "write refused by <crm>: <category>: <message>", the values sent in `raw`.
        _, _, rest = entry.reason.partition(": ")
        category, _, message = rest.partition(": ")
        problems = tuple(
            FieldProblem(name, value, message or category) for name, value in entry.raw.items()
        )
        return QuarantineItem(entry, REFUSAL, f"write refused: {category or 'unknown'}", problems)
    problems = tuple(field_problems(entry.crm, entry.raw, field_map))
    if not problems:
        # The mapping reads it now (it changed since): the next pull or a retry takes it.
        return QuarantineItem(entry, MAPPING, "readable now: retry", ())
    fields = ", ".join(dict.fromkeys(_kind(problem) for problem in problems))
    return QuarantineItem(entry, MAPPING, fields, problems)


def _kind(problem: FieldProblem) -> str:
    message = problem.message
    if message.startswith("no "):
        return f"{problem.field} missing"
    if message.startswith("invalid "):
        return f"{problem.field} invalid"
    if "NUL" in message:
        return f"{problem.field} NUL character"
    return f"{problem.field} unreadable"


def quarantined_for(store: Store, field_map: FieldMap, key: str) -> list[QuarantineItem]:
    """The quarantined records `key` names: by record id, or by the email they hold."""
    items = quarantine_items(store, field_map)
    if "@" not in key:
        return [item for item in items if same_record_id(item.record_id, key)]
    email = normalise_email(key)
    found = []
    for item in items:
        binding = field_map.fields[field_map.identity_field].binding(item.crm)
        held = item.entry.raw.get(binding.field) if binding is not None else None
        if isinstance(held, str) and normalise_email(held) == email:
            found.append(item)
    return found


def retry_quarantined(engine: SyncEngine, items: Sequence[QuarantineItem]) -> RunSummary:
    """Read `items` again from their CRMs now, and settle and write them like a sync (a run
    of kind "retry"); those still unusable stay in quarantine with today's reason."""
    wanted: dict[str, list[str]] = {}
    for item in items:
        wanted.setdefault(item.crm, []).append(item.record_id)
    return engine.retry(wanted)
