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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from leadsync.connectors.base import Connector, CrmRecord, RecordUpdate, StampReader
from leadsync.mapping.fields import WritebackTargets


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
    check, in the order they will be written: a stamp read takes the next ones after the
    batch asked about, as many as one call holds."""

    def __init__(
        self,
        connector: Connector,
        planned: Sequence[RecordUpdate],
        fields: Callable[[str | None], Sequence[str]],
    ) -> None:
        self._connector = connector
        self._fields = fields
        self._reader = connector if isinstance(connector, StampReader) else None
        self._ahead: dict[str | None, list[str]] = {}
        for update in planned:
            self._ahead.setdefault(update.object_name, []).append(update.record_id)
        # (object, id) -> its stamp as read; None: read, and the CRM has no such record now.
        self._stamps: dict[tuple[str | None, str], datetime | None] = {}

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
        stamps = {i: self._stamps[(object_name, i)] for i in ids}
        live = {i: stamp for i, stamp in stamps.items() if stamp is not None}
        same = frozenset(i for i, stamp in live.items() if stamp == held.get(i))
        moved = [i for i in live if i not in same]
        now = self._connector.fetch(moved, fields=fields, object_name=object_name) if moved else {}
        return Checked(same, dict(now))

    def _read_stamps(
        self, reader: StampReader, object_name: str | None, ids: Sequence[str]
    ) -> None:
        missing = [i for i in ids if (object_name, i) not in self._stamps]
        if not missing:
            return
        ahead = self._ahead.setdefault(object_name, [])
        if ahead[: len(missing)] != missing:
            # Asked out of the planned order: these first, the rest after them.
            first = set(missing)
            ahead[:] = missing + [i for i in ahead if i not in first]
        while any((object_name, i) not in self._stamps for i in missing):
            answer = reader.stamps(ahead, object_name=object_name)
            if answer.read < 1:
                raise RuntimeError("the connector read no stamp of the ids it was given")
            for record_id in ahead[: answer.read]:
                self._stamps[(object_name, record_id)] = answer.modified_at.get(record_id)
            del ahead[: answer.read]
