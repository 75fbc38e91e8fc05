"""Settling a big pull a slice at a time, each person's records in one slice.

A first sync or a backfill leaves hundreds of thousands of records pending; merging them all
at once holds every lead, its records and its plan in memory (gigabytes at 100,000 leads per
CRM). The engine settles them in slices instead: merge, write, mark reconciled, next.

A slice must never split a person. Two records of one person merged in different slices would
make two leads, or write one lead twice (the first time wrongly). So the pending records are
grouped first by what identity matching can join them on (see `leadsync.sync.identity`):

    an email            two records with one normalised email
    a cross-reference   two records naming one Salesforce record
    a stored lead       records linked to one lead, or holding its email, or naming its
                        Salesforce lead; records sharing an email or a cross-reference with
                        one of its stored records (matching sees those once the lead is
                        fetched); and a lead merged again because its SLA clock is due

and whole groups are packed into slices of about `size` records. Only the keys are kept for
the grouping; each slice's snapshots are read again when its turn comes.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field

RecordKey = tuple[str, str]  # (crm, record_id)


@dataclass
class Slice:
    """Records to merge together (crm -> record ids), and the leads merged with them that no
    pending record names (a lead whose SLA clock is past due)."""

    records: dict[str, list[str]] = field(default_factory=dict)
    leads: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(len(ids) for ids in self.records.values()) + len(self.leads)


class PersonGroups:
    """A union-find over records and the keys they share: records that share a key, directly
    or through others, are one group."""

    def __init__(self) -> None:
        self._parent: dict[Hashable, Hashable] = {}
        self._records: list[RecordKey] = []
        self._leads: list[str] = []

    def add_record(self, record: RecordKey, keys: Iterable[Hashable]) -> None:
        node = ("record", *record)
        self._parent.setdefault(node, node)
        self._records.append(record)
        for key in keys:
            self._union(node, ("key", key))

    def join(self, keys: Iterable[Hashable]) -> None:
        """Make `keys` one group's: a stored lead's key with its records' emails and references."""
        first, *others = [("key", key) for key in keys]
        self._parent.setdefault(first, first)
        for other in others:
            self._union(first, other)

    def add_lead(self, lead_id: str) -> None:
        """A lead to merge whatever its records do; with the records linked to it, if any."""
        node = ("key", ("lead", lead_id))
        self._parent.setdefault(node, node)
        self._leads.append(lead_id)

    def slices(self, size: int) -> Iterator[Slice]:
        """Whole groups in slices of at least `size` members (the last may be smaller), in the
        order the records were added."""
        groups: dict[Hashable, Slice] = {}
        for crm, record_id in self._records:
            group = groups.setdefault(self._find(("record", crm, record_id)), Slice())
            group.records.setdefault(crm, []).append(record_id)
        for lead_id in self._leads:
            groups.setdefault(self._find(("key", ("lead", lead_id))), Slice()).leads.append(lead_id)
        current = Slice()
        for group in groups.values():
            for crm, ids in group.records.items():
                current.records.setdefault(crm, []).extend(ids)
            current.leads.extend(group.leads)
            if len(current) >= size:
                yield current
                current = Slice()
        if len(current):
            yield current

    def _find(self, node: Hashable) -> Hashable:
        root = node
        while (parent := self._parent[root]) != root:
            root = parent
        while node != root:  # path compression: the next find is one step
            self._parent[node], node = root, self._parent[node]
        return root

    def _union(self, node: Hashable, key: Hashable) -> None:
        self._parent.setdefault(key, key)
        left, right = self._find(node), self._find(key)
        if left != right:
            self._parent[right] = left
