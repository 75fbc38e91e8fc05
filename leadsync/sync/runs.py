"""The runs leadsync made: `leadsync runs`, `runs show ID`, the console's Status page.

A run is named by its id or any unambiguous start of it (the short id `runs` shows, the
first SHORT_ID characters), as Salesforce records are by their 15- or 18-character ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leadsync.errors import UsageError
from leadsync.sync.audit_log import LoggedWrite
from leadsync.sync.run_log import RunRow
from leadsync.sync.store import Store

__all__ = ["SHORT_ID", "RunDetail", "RunView", "UnknownRunError", "find_run", "list_runs"]

SHORT_ID = 8  # 32 of an id's bits (a UUID's first group): unique in any store a person reads
SHORTEST_PREFIX = 4


class UnknownRunError(UsageError):
    """No run, or more than one, has the id given."""


@dataclass(frozen=True, slots=True)
class RunView:
    """A run with the counts its summary holds, added up over the CRMs."""

    run: RunRow
    pulled: int
    written: int
    failed: int
    quarantined: int
    to_review: int

    @property
    def short_id(self) -> str:
        return self.run.run_id[:SHORT_ID]

    @property
    def seconds(self) -> float | None:
        finished = self.run.finished_at
        return None if finished is None else (finished - self.run.started_at).total_seconds()

    @property
    def dry_run(self) -> bool:
        """A run of a kind that writes, told to write nothing (a backfill's --dry-run)."""
        return self.run.kind != "plan" and self.run.summary.get("wrote") is False

    @property
    def holder(self) -> str:
        return str(self.run.summary.get("holder") or "")

    def as_dict(self) -> dict[str, Any]:
        run = self.run
        return {
            "run_id": run.run_id,
            "short_id": self.short_id,
            "kind": run.kind,
            "dry_run": self.dry_run,
            "outcome": run.status,
            "started_at": run.started_at.isoformat(),
            "finished_at": None if run.finished_at is None else run.finished_at.isoformat(),
            "seconds": self.seconds,
            "pulled": self.pulled,
            "written": self.written,
            "failed": self.failed,
            "quarantined": self.quarantined,
            "to_review": self.to_review,
        }


@dataclass(frozen=True, slots=True)
class RunDetail:
    view: RunView
    writes: list[LoggedWrite]


def run_view(run: RunRow) -> RunView:
    crms: Mapping[str, Mapping[str, Any]] = run.summary.get("crms") or {}

    def total(key: str) -> int:
        return sum(int(counts.get(key) or 0) for counts in crms.values())

    if run.kind == "revert":
        # A revert's summary counts the fields it put back, not CRM records.
        written = int(run.summary.get("reverted") or 0)
        return RunView(run, 0, written, 0, 0, 0)
    return RunView(
        run,
        total("pulled"),
        total("written"),
        total("failed"),
        total("quarantined"),
        total("to_review"),
    )


def list_runs(store: Store, *, limit: int = 20, kind: str | None = None) -> list[RunView]:
    """The latest runs, newest first."""
    return [run_view(run) for run in store.run_log.latest(limit, kind=kind)]


def find_run(store: Store, run_id: str) -> RunRow:
    """The run `run_id` names: its full id or an unambiguous start of it."""
    wanted = run_id.strip().lower()
    exact = store.run_log.get(wanted)
    if exact is not None:
        return exact
    if len(wanted) < SHORTEST_PREFIX:
        # Not "no run": a run may well start so; too short a start names none by design.
        raise UnknownRunError(
            f"{run_id!r} is too short: a run id is at least {SHORTEST_PREFIX} characters, its "
            f"start or the whole id (the {SHORT_ID} of `leadsync runs` will do)"
        )
    found = store.run_log.ids_starting(wanted)
    if not found:
        raise UnknownRunError(f"no run {run_id} (see `leadsync runs`)")
    if len(found) > 1:
        raise UnknownRunError(
            f"{run_id!r} names more than one run ({', '.join(found)}): give more of the id"
        )
    run = store.run_log.get(found[0])
    assert run is not None  # just listed; runs are never deleted
    return run


def run_detail(store: Store, run_id: str) -> RunDetail:
    """A run (by full or short id) and its writes, in the order made."""
    run = find_run(store, run_id)
    return RunDetail(run_view(run), store.audit_log.entries(run_id=run.run_id))
