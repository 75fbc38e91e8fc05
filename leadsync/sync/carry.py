"""Write batches filled across settle slices.

A settle writes a slice at a time (`leadsync.sync.slices`); cut at each slice's end, every
slice would end with part-full batches: at 100,000 leads per CRM in slices of 20,000, a
HubSpot write call or two a slice above the fewest the run's writes take, and more the
smaller the slices. So a slice writes only whole batches, and what is left over waits for the
next slice's updates (the last slice writes it all).

Nothing is lost or written twice on a kill: a lead with an update waiting keeps its records
pending in the store until the update is written, so a run killed meanwhile leaves them
pending, and the next run merges and plans them again, as it does the records of a batch a
kill cut off.

Updates wait by kind (`Kind`), as the engine orders a slice's writes: a batch of one kind
costs what the fewest calls cost (a HubSpot batch of backward stage moves takes one clear
call for all of them; a batch that takes a check is read back whole).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from leadsync.connectors.base import RecordUpdate

# (takes a clear first, takes a check): the order a slice's writes go out in.
Kind = tuple[bool, bool]


@dataclass(frozen=True, slots=True)
class Queued:
    """An update to write, of lead `lead_id`; `pulled_at` the stamp of the record as pulled
    (the check before the write compares it). `link`: the handoff's write of the id it created
    to this record, carried in `update` with the plan's values (one call for both); `planned`:
    the update is the plan's (False: the link write alone)."""

    update: RecordUpdate
    lead_id: str
    kind: Kind
    pulled_at: datetime | None = None
    link: RecordUpdate | None = None
    planned: bool = True


@dataclass
class WriteCarry:
    """Each CRM's updates waiting for a whole batch, and the pending records their leads keep
    pending until they are written."""

    _waiting: dict[str, dict[Kind, list[Queued]]] = field(default_factory=dict)
    _queued: dict[str, int] = field(default_factory=dict)  # lead -> its updates waiting
    _held: dict[str, dict[str, set[str]]] = field(default_factory=dict)  # lead -> crm -> ids

    def __bool__(self) -> bool:
        return bool(self._queued)

    def batches(
        self, crm: str, new: Iterable[Queued], size: int, *, last: bool
    ) -> Iterator[list[Queued]]:
        """The batches of `crm` to write now: with `new`, the whole batches of each kind (those
        waiting longest first), the rest left to wait; when `last`, everything, kind after
        kind. Once written, a batch's updates wait no more (`written`)."""
        kinds = self._waiting.setdefault(crm, {})
        for item in new:
            kinds.setdefault(item.kind, []).append(item)
            self._queued[item.lead_id] = self._queued.get(item.lead_id, 0) + 1
        if last:
            rest = [item for kind in sorted(kinds) for item in kinds[kind]]
            kinds.clear()
            for start in range(0, len(rest), size):
                yield rest[start : start + size]
            return
        for kind in sorted(kinds):
            items = kinds[kind]
            whole = len(items) - len(items) % size
            kinds[kind] = items[whole:]
            for start in range(0, whole, size):
                yield items[start : start + size]

    def written(self, items: Sequence[Queued]) -> None:
        for item in items:
            self._queued[item.lead_id] -= 1
            if not self._queued[item.lead_id]:
                del self._queued[item.lead_id]

    def waits(self, lead_id: str) -> bool:
        """Whether an update of the lead waits for a later batch."""
        return lead_id in self._queued

    def hold(self, lead_id: str, crm: str, record_ids: Iterable[str]) -> None:
        """Keep these pending records of a lead with an update waiting pending until it is
        written (`released`)."""
        self._held.setdefault(lead_id, {}).setdefault(crm, set()).update(record_ids)

    def released(self) -> dict[str, list[str]]:
        """The records held for leads with no update waiting any more, by CRM; let go."""
        free: dict[str, list[str]] = {}
        for lead_id in [lead for lead in self._held if lead not in self._queued]:
            for crm, record_ids in self._held.pop(lead_id).items():
                free.setdefault(crm, []).extend(sorted(record_ids))
        return free

    def clear(self) -> None:
        """Forget what waits (a run stopped: its records are pending, the next run plans them)."""
        self._waiting.clear()
        self._queued.clear()
        self._held.clear()
