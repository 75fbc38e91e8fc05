"""What an edit of the mapping or the lead definition would change, over every stored lead.

`leadsync plan --what-if` (and the console's Edits page): every lead the store holds is merged
again under the files as they are now, from the store alone (no CRM is called), and compared
with the lead as stored: leads per stage before -> after, score-band and grade moves, the writes
per field and the API calls they would take, and a few example leads per change with the
reasons. A field the mapping newly pulls, which no stored record holds, is named with the
number of leads a backfill would fill it for.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from leadsync.mapping.fields import FieldMap
from leadsync.mapping.types import CRMS
from leadsync.sync.engine import Reevaluated, SyncEngine
from leadsync.sync.ingest import fields_to_pull
from leadsync.sync.plan import PlanSummary, PlanTally
from leadsync.sync.store import Store

__all__ = ["Example", "WhatIf", "what_if"]

PAGE = 2_000  # leads re-evaluated at a time: memory follows the page, not the store
EXAMPLES = 3  # example leads kept per change
BAND = 20  # score bands of 20 points, as the calibration report has them


@dataclass(frozen=True, slots=True)
class Example:
    lead_id: str
    email: str | None
    before: str
    after: str
    reasons: tuple[str, ...]


@dataclass
class WhatIf:
    leads: int = 0
    stages_before: Counter[str] = field(default_factory=Counter)
    stages_after: Counter[str] = field(default_factory=Counter)
    stage_moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    grade_moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    band_moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: dict[str, list[Example]] = field(default_factory=dict)
    plan: PlanSummary | None = None
    # (crm, CRM field) -> leads with a record of that CRM: no stored record holds the field
    needs_backfill: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(
            self.stage_moves
            or self.grade_moves
            or self.band_moves
            or (self.plan is not None and self.plan.change_count)
            or self.needs_backfill
        )

    def as_dict(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "leads": self.leads,
            "stages": {
                stage: {"before": self.stages_before[stage], "after": self.stages_after[stage]}
                for stage in sorted(set(self.stages_before) | set(self.stages_after))
            },
            "stage_moves": _moves(self.stage_moves),
            "grade_moves": _moves(self.grade_moves),
            "score_band_moves": _moves(self.band_moves),
            "writes_by_field": [
                {"crm": crm, "field": name, "records": n}
                for (crm, name), n in sorted((plan.field_counts if plan else {}).items())
            ],
            "api_calls": {
                crm: {"calls": calls.calls, "records": calls.records}
                for crm, calls in sorted((plan.calls if plan else {}).items())
            },
            "examples": {
                change: [
                    {
                        "lead_id": e.lead_id,
                        "email": e.email,
                        "before": e.before,
                        "after": e.after,
                        "reasons": list(e.reasons),
                    }
                    for e in found
                ]
                for change, found in sorted(self.examples.items())
            },
            "needs_backfill": [
                {"crm": crm, "field": name, "leads": n}
                for (crm, name), n in sorted(self.needs_backfill.items())
            ],
        }


def _moves(counted: Counter[tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {"from": before, "to": after, "leads": n}
        for (before, after), n in sorted(counted.items(), key=lambda item: (-item[1], item[0]))
    ]


def what_if(
    engine: SyncEngine,
    store: Store,
    field_map: FieldMap,
    *,
    page: int = PAGE,
    progress: Callable[[int], None] | None = None,
) -> WhatIf:
    """Every stored lead re-evaluated by `engine` (built on the files to try), compared with
    the lead as stored. Reads the store only."""
    result = WhatIf()
    tally = PlanTally(keep_changes=False)
    identity = field_map.identity_field
    # The pulled fields no stored record holds yet: most are found in the first records.
    unheld: dict[str, set[str]] = {crm: set(fields_to_pull(field_map, crm)) for crm in CRMS}
    with_records: Counter[str] = Counter()
    after: str | None = None
    with _old_objects_left_alone():
        while True:
            lead_ids = store.lead_ids_after(after, limit=page)
            if not lead_ids:
                break
            after = lead_ids[-1]
            for found in engine.reevaluate(lead_ids):
                _count(result, found, identity)
                tally.add(found.updates)
                for crm in {record.crm for record in found.records if not record.deleted}:
                    with_records[crm] += 1
                for record in found.records:
                    if unheld.get(record.crm):
                        unheld[record.crm].difference_update(record.raw)
            if progress is not None:
                progress(result.leads)
    result.plan = tally.summary()
    result.needs_backfill = {
        (crm, name): with_records[crm]
        for crm, names in unheld.items()
        for name in sorted(names)
        if with_records[crm]
    }
    return result


@contextmanager
def _old_objects_left_alone() -> Iterator[None]:
    """The objects made before the what-if (modules, the mapping, the definition, the
    store's engine) kept out of the garbage collector's full collections until it ends. A
    what-if makes millions of short-lived objects, and each full collection they set off
    would walk every object in the process again: an eighth of its CPU time otherwise.
    A process that froze objects itself keeps them frozen: nothing is done then."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _count(result: WhatIf, found: Reevaluated, identity: str) -> None:
    before, now = found.before, found.after
    result.leads += 1
    stage_before = (before.stage if before else None) or "(none)"
    stage_after = now.stage or "(none)"
    result.stages_before[stage_before] += 1
    result.stages_after[stage_after] += 1
    email = now.values.get(identity)
    shown = str(email) if email is not None else None
    transitions = tuple(t.reason for t in found.transitions) or now.reasons
    # (what moved, its counter, before, after, as the example shows them, the reasons)
    kinds = (
        ("stage", result.stage_moves, stage_before, stage_after, None, transitions),
        (
            "grade",
            result.grade_moves,
            (before.grade if before else None) or "(none)",
            now.grade or "(none)",
            None,
            now.reasons,
        ),
        (
            "score",
            result.band_moves,
            _band(before.score if before else None),
            _band(now.score),
            (str(before.score if before else None), str(now.score)),
            now.reasons,
        ),
    )
    for kind, moves, was, becomes, shown_as, reasons in kinds:
        if was == becomes:
            continue
        moves[(was, becomes)] += 1
        old, new = shown_as or (was, becomes)
        example = Example(now.lead_id, shown, old, new, reasons)
        found_examples = result.examples.setdefault(f"{kind} {was} -> {becomes}", [])
        if len(found_examples) < EXAMPLES:
            found_examples.append(example)


def _band(score: int | None) -> str:
    if score is None:
        return "(none)"
    low = min(max(score, 0) // BAND * BAND, 100 - BAND)
    return f"{low}-{low + BAND - 1 if low + BAND < 100 else 100}"
