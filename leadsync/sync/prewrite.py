"""The check just before a write: which of the records about to be written changed since
leadsync read them.

A plan made from an older version of a record would overwrite a person's newer edit, so the
engine holds such a record back (see `SyncEngine._write`). Asking costs calls, and this module
keeps them few:

- An update that writes only leadsync's results (`WritebackTargets.results_only`: scores,
  grade, reasons, model version, SLA breach flags) is not checked at all. Those fields are
  computed, never merged: a person's edit of one is overwritten on every run anyway, and a
  person's edit of any other field is not touched by the write; the next pull brings it,
  with leadsync's own write recognised as an echo, and the next merge takes it in.
- A connector that reads modification stamps alone (`StampReader`) is asked for the stamps of
  several write batches' records in one call, read ahead in write order; only the records
  whose stamp moved are read whole. Any other connector reads each batch's records whole
  (`fetch`), as many a call as it takes.

A check cannot close the gap between its read and the write (neither CRM writes on a
condition): an edit made in it is overwritten, and pulled afterwards (`Store.known_stamps`).
A stamp read ahead widens the gap by the batches written before its own, so a stamp is used
only while younger than `STAMP_MAX_AGE`: older, it is read again with the ones after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from leadsync.connectors.base import Connector, CrmRecord, RecordUpdate, StampReader
from leadsync.mapping.fields import WritebackTargets

# How long a stamp read ahead stands for the record before its write: about the span of the
# write calls one read covers when the CRM answers promptly (ten collection updates of 200 for
# Salesforce's 2,000 ids a read), so a slow CRM costs reads, never a wider gap.
STAMP_MAX_AGE = 15.0


def needs_check(targets: WritebackTargets | None, update: RecordUpdate) -> bool:
    """Whether writing `update` could overwrite a person's edit made since the pull."""
    return targets is None or not targets.results_only(update.values, update.object_name)


@dataclass(frozen=True, slots=True)
class Checked:
    """What the check found of some records: the ids still at the stamp leadsync holds, and
    the records that changed, as they are now. An id in neither is gone (deleted, unknown)."""

    unchanged: frozenset[str]
    changed: dict[str, CrmRecord]


class PreWriteCheck:
    """The checks of one CRM's writes in one slice. `planned` are the updates that take a
    check, in the order they will be written: a stamp read takes the ids of the batch asked
    about, then the next ones not yet read (or read longer than `max_age` seconds ago on
    `clock`), as many as one call holds."""

    def __init__(
        self,
        connector: Connector,
        planned: Sequence[RecordUpdate],
        fields: Callable[[str | None], Sequence[str]],
        *,
        max_age: float = STAMP_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connector = connector
        self._fields = fields
        self._reader = connector if isinstance(connector, StampReader) else None
        self._max_age = max_age
        self._clock = clock
        # The ids planned and not checked yet, by object, in write order (a dict: an ordered
        # set whose members leave in O(1)).
        self._ahead: dict[str | None, dict[str, None]] = {}
        for update in planned:
            self._ahead.setdefault(update.object_name, {})[update.record_id] = None
        # (object, id) -> its stamp as read (None: read, and the CRM has no such record now)
        # and when, on the clock.
        self._stamps: dict[tuple[str | None, str], tuple[datetime | None, float]] = {}

    def check(
        self, object_name: str | None, ids: Sequence[str], held: Mapping[str, datetime]
    ) -> Checked:
        """Which of `ids` (records of `object_name`) are still at their `held` stamp."""
        if not ids:
            return Checked(frozenset(), {})
        fields = self._fields(object_name)
        if self._reader is None:
            now = self._connector.fetch(ids, fields=fields, object_name=object_name)
            same = frozenset(i for i in ids if i in now and now[i].modified_at == held.get(i))
            return Checked(same, {i: r for i, r in now.items() if i not in same})
        self._read_stamps(self._reader, object_name, ids)
        stamps = {i: self._stamps[(object_name, i)][0] for i in ids}
        ahead = self._ahead.get(object_name, {})
        for record_id in ids:
            ahead.pop(record_id, None)
        live = {i: stamp for i, stamp in stamps.items() if stamp is not None}
        same = frozenset(i for i, stamp in live.items() if stamp == held.get(i))
        moved = [i for i in live if i not in same]
        now = self._connector.fetch(moved, fields=fields, object_name=object_name) if moved else {}
        return Checked(same, dict(now))

    def _fresh(self, object_name: str | None, record_id: str, now: float) -> bool:
        read = self._stamps.get((object_name, record_id))
        return read is not None and now - read[1] <= self._max_age

    def _read_stamps(
        self, reader: StampReader, object_name: str | None, ids: Sequence[str]
    ) -> None:
        now = self._clock()
        missing = [i for i in dict.fromkeys(ids) if not self._fresh(object_name, i, now)]
        while missing:
            # The batch asked about first, then the planned ids after it not read yet.
            first = set(missing)
            later = self._ahead.get(object_name, {})
            wanted = missing + [
                i for i in later if i not in first and not self._fresh(object_name, i, now)
            ]
            # Aged from the request, not the answer: the CRM read them somewhere in between.
            asked = self._clock()
            answer = reader.stamps(wanted, object_name=object_name)
            if answer.read < 1:
                raise RuntimeError("the connector read no stamp of the ids it was given")
            for record_id in wanted[: answer.read]:
                self._stamps[(object_name, record_id)] = (answer.modified_at.get(record_id), asked)
            missing = missing[answer.read :]
            now = self._clock()
