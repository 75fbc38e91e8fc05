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

import itertools
from array import array
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

RecordKey = tuple[str, str]  # (crm, record_id)
K = TypeVar("K")


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
    or through others, are one group. Of single use: filled, then sliced once (`slices`)."""

    def __init__(self) -> None:
        self._parent: dict[Hashable, Hashable] = {}
        self._records: list[RecordKey] = []
        self._leads: list[str] = []
        self._sliced = False

    def add_record(self, record: RecordKey, keys: Iterable[Hashable]) -> None:
        self._still_open()
        node = ("record", *record)
        self._parent.setdefault(node, node)
        self._records.append(record)
        for key in keys:
            self._union(node, ("key", key))

    def join(self, keys: Iterable[Hashable]) -> None:
        """Make `keys` one group's: a stored lead's key with its records' emails and references."""
        self._still_open()
        first, *others = [("key", key) for key in keys]
        self._parent.setdefault(first, first)
        for other in others:
            self._union(first, other)

    def add_lead(self, lead_id: str) -> None:
        """A lead to merge whatever its records do; with the records linked to it, if any."""
        self._still_open()
        node = ("key", ("lead", lead_id))
        self._parent.setdefault(node, node)
        self._leads.append(lead_id)

    def slices(self, size: int) -> Iterator[Slice]:
        """Whole groups in slices of at least `size` members (the last may be smaller), in the
        order the records were added. Called once: the union-find is let go before the first
        slice is handed out, and only each slice's own ids are built, as its turn comes (a
        Slice per group held for the whole settle cost ~0.5 KB a record). A second call
        raises RuntimeError at once: nothing is left to group by (a settle that needs the
        slices again builds its groups again)."""
        if self._sliced:
            raise RuntimeError(
                "PersonGroups hands out its slices() once: its groups are let go as they go"
            )
        self._sliced = True
        return self._slices(size)

    def _still_open(self) -> None:
        if self._sliced:
            raise RuntimeError("PersonGroups takes no record, key or lead after its slices")

    def _slices(self, size: int) -> Iterator[Slice]:
        # Each record's and lead's group, numbered in the order groups are first met.
        numbers: dict[Hashable, int] = {}
        record_groups = array("l", (self._number(numbers, ("record", *r)) for r in self._records))
        lead_groups = array("l", (self._number(numbers, ("key", ("lead", i))) for i in self._leads))
        self._parent.clear()
        members = array("l", bytes(len(numbers) * array("l").itemsize))
        for group in itertools.chain(record_groups, lead_groups):
            members[group] += 1
        # Whole groups, in order, packed into slices of at least `size`.
        slice_of = array("l", members)
        filled, number = 0, 0
        for group, count in enumerate(members):
            slice_of[group] = number
            filled += count
            if filled >= size:
                filled, number = 0, number + 1
        del members, numbers
        records = _by_slice(self._records, record_groups, slice_of)
        leads = _by_slice(self._leads, lead_groups, slice_of)
        for _ in range(number + (1 if filled else 0)):
            part = Slice()
            for crm, record_id in next(records, ()):
                part.records.setdefault(crm, []).append(record_id)
            part.leads = list(next(leads, ()))
            yield part

    def _number(self, numbers: dict[Hashable, int], node: Hashable) -> int:
        return numbers.setdefault(self._find(node), len(numbers))

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


def _by_slice(items: list[K], groups: array[int], slice_of: array[int]) -> Iterator[list[K]]:
    """`items` (each in the group `groups` gives) by slice, slice 0 first; within a slice group
    by group (groups in the order first met), each group's in the order given: the order the
    settle has always merged and written in. A slice none of them is in gives an empty list."""
    order = sorted(range(len(items)), key=lambda i: (slice_of[groups[i]], groups[i]))
    current = 0
    found: list[K] = []
    for index in order:
        number = slice_of[groups[index]]
        while number > current:
            yield found
            current, found = current + 1, []
        found.append(items[index])
    yield found
