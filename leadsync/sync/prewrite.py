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
- The updates that take a check are written together, so that each read (`fetch`) is of a
  whole batch of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from leadsync.connectors.base import Connector, CrmRecord, RecordUpdate
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
    """The checks of one CRM's writes in one slice."""

    def __init__(
        self,
        connector: Connector,
        planned: Sequence[RecordUpdate],
        fields: Callable[[str | None], Sequence[str]],
    ) -> None:
        self._connector = connector
        self._fields = fields

    def check(
        self, object_name: str | None, ids: Sequence[str], held: Mapping[str, datetime]
    ) -> Checked:
        """Which of `ids` (records of `object_name`) are still at their `held` stamp."""
        if not ids:
            return Checked(frozenset(), {})
        fields = self._fields(object_name)
        now = self._connector.fetch(ids, fields=fields, object_name=object_name)
        same = frozenset(i for i in ids if i in now and now[i].modified_at == held.get(i))
        return Checked(same, {i: r for i, r in now.items() if i not in same})
