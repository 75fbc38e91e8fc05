"""What an edit of the mapping or the lead definition would change, over every stored lead.

`leadsync plan --what-if` (and the console's Edits page): every lead the store holds is merged
again under the files as they are now, from the store alone (no CRM is called), and compared
with the lead as stored: leads per stage before -> after, score-band and grade moves, the writes
per field and the API calls they would take, and a few example leads per change with the
reasons. A field the mapping newly pulls, which no stored record holds, is named with the
number of leads a backfill would fill it for.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import os
import pickle
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from leadsync.mapping.fields import FieldMap
from leadsync.mapping.types import CRMS
from leadsync.sync.collector import old_objects_left_alone
from leadsync.sync.engine import Reevaluated, SyncEngine
from leadsync.sync.ingest import fields_to_pull
from leadsync.sync.plan import PlanSummary, PlanTally
from leadsync.sync.store import Store

__all__ = ["Example", "WhatIf", "what_if"]

PAGE = 2_000  # leads re-evaluated at a time: memory follows the page, not the store
EXAMPLES = 3  # example leads kept per change
BAND = 20  # score bands of 20 points, as the calibration report has them
MOST_PROCESSES = 4  # each holds a page of leads and the definition: ~300 MB at most


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
    processes: int = 1,
) -> WhatIf:
    """Every stored lead re-evaluated by `engine` (built on the files to try), compared with
    the lead as stored. Reads the store only.

    With `processes` above 1 the leads are split into that many runs of consecutive ids, each
    re-evaluated by a forked copy of this process (the parent takes the first), and the
    tallies added up in id order: the same result, the examples included, in a fraction of
    the time. Forking copies only the calling thread, so only a single-threaded caller (the
    command line) may ask for more than one; the console's what-if runs in one. At most
    `MOST_PROCESSES`, and none for less than a page of leads each."""
    # A what-if makes millions of short-lived objects: an eighth of its CPU time went to
    # collections that walked the process's older objects again.
    with old_objects_left_alone():
        lead_ids = _all_lead_ids(store, page)
        # A copy of the process for less than a page of leads costs more than it saves.
        parts = _split(lead_ids, max(1, min(processes, MOST_PROCESSES, len(lead_ids) // page)))
        children = [_Child.start(engine, store, field_map, part, page) for part in parts[1:]]
        total = _Tally(field_map)
        try:
            total.add_leads(engine, parts[0] if parts else [], page)
            for child in children:
                total.merge(child.result())
        finally:
            for child in children:
                child.stop()
    return total.result()


def _all_lead_ids(store: Store, page: int) -> list[str]:
    lead_ids: list[str] = []
    while found := store.lead_ids_after(lead_ids[-1] if lead_ids else None, limit=page * 10):
        lead_ids.extend(found)
    return lead_ids


def _split(lead_ids: list[str], parts: int) -> list[list[str]]:
    size = -(-len(lead_ids) // parts) or 1
    return [lead_ids[start : start + size] for start in range(0, len(lead_ids), size)]


class _Tally:
    """A what-if's counts over some of the leads; the tallies of consecutive runs of leads
    add up, in order, to the tally of all of them."""

    def __init__(self, field_map: FieldMap) -> None:
        self.found = WhatIf()
        self.plan = PlanTally(keep_changes=False)
        self.identity = field_map.identity_field
        # The pulled fields no stored record holds yet: most are found in the first records.
        self.unheld: dict[str, set[str]] = {
            crm: set(fields_to_pull(field_map, crm)) for crm in CRMS
        }
        self.with_records: Counter[str] = Counter()

    def add_leads(
        self,
        engine: SyncEngine,
        lead_ids: list[str],
        page: int,
        *,
        before_page: Callable[[], None] | None = None,
    ) -> None:
        for start in range(0, len(lead_ids), page):
            if before_page is not None:
                before_page()
            for found in engine.reevaluate(lead_ids[start : start + page]):
                _count(self.found, found, self.identity)
                self.plan.add(found.updates)
                for crm in {record.crm for record in found.records if not record.deleted}:
                    self.with_records[crm] += 1
                for record in found.records:
                    if self.unheld.get(record.crm):
                        self.unheld[record.crm].difference_update(record.raw)

    def merge(self, later: _Tally) -> None:
        """Add the tally of the leads after these."""
        found, other = self.found, later.found
        found.leads += other.leads
        found.stages_before.update(other.stages_before)
        found.stages_after.update(other.stages_after)
        found.stage_moves.update(other.stage_moves)
        found.grade_moves.update(other.grade_moves)
        found.band_moves.update(other.band_moves)
        for change, examples in other.examples.items():
            kept = found.examples.setdefault(change, [])
            kept.extend(examples[: EXAMPLES - len(kept)])
        self.plan.merge(later.plan)
        for crm, names in self.unheld.items():
            names.intersection_update(later.unheld.get(crm, set()))
        self.with_records.update(later.with_records)

    def result(self) -> WhatIf:
        found = self.found
        found.plan = self.plan.summary()
        found.needs_backfill = {
            (crm, name): self.with_records[crm]
            for crm, names in self.unheld.items()
            for name in sorted(names)
            if self.with_records[crm]
        }
        return found


@dataclass
class _Child:
    """A forked copy of this process that re-evaluates a run of leads and sends its tally
    back through a pipe (or the error that stopped it)."""

    process: multiprocessing.process.BaseProcess
    receive: Connection

    @classmethod
    def start(
        cls,
        engine: SyncEngine,
        store: Store,
        field_map: FieldMap,
        lead_ids: list[str],
        page: int,
    ) -> _Child:
        context = multiprocessing.get_context("fork")
        receive, send = context.Pipe(duplex=False)
        process = context.Process(
            target=_child_main,
            args=(engine, store, field_map, lead_ids, page, send, os.getpid()),
            name="leadsync-what-if",
            daemon=True,
        )
        process.start()
        send.close()
        return cls(process, receive)

    def result(self) -> _Tally:
        try:
            outcome, value, told = self.receive.recv()
        except EOFError:
            self.process.join()
            raise RuntimeError(
                f"a what-if process ended without a result (exit code {self.process.exitcode})"
            ) from None
        if outcome == "error":
            raise _unpickled(value) or RuntimeError(told)
        tally: _Tally = value
        return tally

    def stop(self) -> None:
        self.receive.close()
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()


def _unpickled(pickled: bytes | None) -> Exception | None:
    if pickled is None:
        return None
    try:
        error: Exception = pickle.loads(pickled)  # noqa: S301 - from our own forked copy
    except Exception:  # noqa: BLE001 - an error that does not unpickle is told by its message
        return None
    return error


def _child_main(
    engine: SyncEngine,
    store: Store,
    field_map: FieldMap,
    lead_ids: list[str],
    page: int,
    send: Connection,
    parent: int,
) -> None:
    # Ctrl-C interrupts the whole group: the parent stops its copies, each quietly, rather
    # than every copy printing a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent's pooled connections are the parent's: this copy opens its own.
    store.engine.dispose(close=False)

    def parent_alive() -> None:
        # A parent ended at once (SIGTERM, SIGHUP, SIGKILL) cannot stop its copies: each
        # stops itself, at its next page, rather than work on for nobody.
        if os.getppid() != parent:
            raise _OrphanedError

    try:
        tally = _Tally(field_map)
        tally.add_leads(engine, lead_ids, page, before_page=parent_alive)
        send.send(("ok", tally, ""))
    except _OrphanedError:
        return
    except Exception as error:  # noqa: BLE001 - the parent raises it, this copy only reports
        send.send(("error", _pickled(error), f"{type(error).__name__}: {error}"))
    finally:
        send.close()


class _OrphanedError(Exception):
    """The what-if's parent process is gone: its copy stops."""


def _pickled(error: Exception) -> bytes | None:
    try:
        return pickle.dumps(error)
    except Exception:  # noqa: BLE001 - an error that does not pickle is told by its message
        return None


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
