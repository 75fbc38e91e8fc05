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

and whole groups are packed into slices of about `size` records, in the order of each group's
smallest email (an ("email", address) key; groups with none last). The handoff routes a
slice's leads by email, round-robin (`leadsync.sync.handoff`): in slices in email order, every
lead is routed in email order wherever the slices' bounds fall. So a run in slices routes as a
run in one does, and a rerun after a cut, whose slices are packed again (the earlier slices'
records settled, the cut-off leads merged again with theirs), routes the leads left in the
order the uninterrupted run did: each gets the owner it would have got. (That holds of a lead
whose email, as mapped, is its group's smallest: a person whose records share one address. A
lead whose records hold others, or one of a group of two leads, may still be routed by where
the bounds fall.) Only the keys (and each record's smallest email) are kept for the grouping;
each slice's snapshots are read again when its turn comes.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field

RecordKey = tuple[str, str]  # (crm, record_id)
EMAIL = "email"  # the kind of key, (EMAIL, a normalised address), that orders the groups


@dataclass
class Slice:
    """Records to merge together (crm -> record ids), and the leads merged with them that no
    pending record names (a lead whose SLA clock is past due)."""

    records: dict[str, list[str]] = field(default_factory=dict)
    leads: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(len(ids) for ids in self.records.values()) + len(self.leads)


class PersonGroups:
    """Records and the keys they share, grouped: records that share a key, directly or through
    others, are one group. Of single use: filled, then sliced once (`slices`).

    Held compactly, for a first sync brings hundreds of thousands of records: each record,
    joined key set and lead is a node number, each (node, key) pair a key's hash and the node
    in two arrays (16 bytes a pair); the union-find runs over arrays of node numbers when the
    slices are asked for. A dict of tuples per record and key cost ~650 bytes a pending record
    (130 MB at 100,000 leads per CRM), and the arenas it freed stayed the process's. Two keys
    whose hashes collide (about once in 10^9 runs of a million keys) join their groups: a
    slice then holds two people where it would hold one, which merges them no differently.
    Each node's smallest email is kept too, to order the groups by: its UTF-8 bytes in one
    buffer and where they end (~40 bytes a record; as a str each, ~90: 18 MB more at
    100,000 leads per CRM). UTF-8 orders as the addresses' characters do."""

    def __init__(self) -> None:
        self._crms: list[str] = []  # each CRM named once; records hold its index
        self._record_crms = array("B")
        self._record_ids: list[str | None] = []
        self._record_nodes = array("q")
        self._leads: list[str | None] = []
        self._lead_nodes = array("q")
        self._key_hashes = array("q")
        self._key_nodes = array("q")
        # Each node's smallest email, if any: its bytes in `_email_bytes`, up to its end.
        self._email_bytes = bytearray()
        self._email_ends = array("q")
        self._nodes = 0
        self._sliced = False

    def add_record(self, record: RecordKey, keys: Iterable[Hashable]) -> None:
        self._still_open()
        crm, record_id = record
        if crm not in self._crms:
            self._crms.append(crm)
        self._record_crms.append(self._crms.index(crm))
        self._record_ids.append(record_id)
        self._record_nodes.append(self._node(keys))

    def join(self, keys: Iterable[Hashable]) -> None:
        """Make `keys` one group's: a stored lead's key with its records' emails and references."""
        self._still_open()
        self._node(keys)

    def add_lead(self, lead_id: str) -> None:
        """A lead to merge whatever its records do; with the records linked to it, if any."""
        self._still_open()
        self._leads.append(lead_id)
        self._lead_nodes.append(self._node([("lead", lead_id)]))

    def slices(self, size: int) -> Iterator[Slice]:
        """Whole groups in slices of at least `size` members (the last may be smaller), in the
        order of their smallest emails (those with none last), groups alike in the order
        their records were added. Called once: the groups are let go before the first
        slice is handed out, each id once its slice is, and only each slice's own lists are
        built, as its turn comes (a Slice per group held for the whole settle cost ~0.5 KB a
        record). A second call raises RuntimeError at once: nothing is left to group by (a
        settle that needs the slices again builds its groups again)."""
        if self._sliced:
            raise RuntimeError(
                "PersonGroups hands out its slices() once: its groups are let go as they go"
            )
        self._sliced = True
        return self._slices(size)

    def _still_open(self) -> None:
        if self._sliced:
            raise RuntimeError("PersonGroups takes no record, key or lead after its slices")

    def _node(self, keys: Iterable[Hashable]) -> int:
        node, self._nodes = self._nodes, self._nodes + 1
        smallest: str | None = None
        for key in keys:
            self._key_hashes.append(hash(key))
            self._key_nodes.append(node)
            email = _email_of(key)
            if email is not None and (smallest is None or email < smallest):
                smallest = email
        if smallest is not None:
            # A CRM's JSON may carry a lone surrogate ("\ud800"): kept, in code point order.
            self._email_bytes += smallest.encode("utf-8", "surrogatepass")
        self._email_ends.append(len(self._email_bytes))
        return node

    def _email(self, node: int) -> bytes:
        """The node's smallest email, as UTF-8 (empty: none)."""
        start = self._email_ends[node - 1] if node else 0
        return bytes(self._email_bytes[start : self._email_ends[node]])

    def _roots(self) -> array[int]:
        """Each node's root: nodes whose keys hash alike are joined, the first node of a key
        being the root of the others' unions."""
        parent = array("q", range(self._nodes))
        # The pairs in key order (each packed into one int, hash above node: sorted, the pairs
        # of one key are neighbours); only their nodes are needed after.
        offset, shift = 1 << 63, self._nodes.bit_length()
        packed = sorted(
            ((h + offset) << shift) | n
            for h, n in zip(self._key_hashes, self._key_nodes, strict=True)
        )
        self._key_hashes, self._key_nodes = array("q"), array("q")
        previous, first = -1, 0
        for value in packed:
            key, node = value >> shift, value & ((1 << shift) - 1)
            if key == previous:
                left, right = _find(parent, first), _find(parent, node)
                if left != right:
                    parent[right] = left
            else:
                previous, first = key, node
        del packed
        for node in range(self._nodes):
            parent[node] = _find(parent, node)
        return parent

    def _slices(self, size: int) -> Iterator[Slice]:
        roots = self._roots()
        least = array("q", range(self._nodes))  # root -> the node of its smallest email
        for node, root in enumerate(roots):
            email = self._email(node)
            if email and (not (best := self._email(least[root])) or email < best):
                least[root] = node
        # Each record's and lead's group, numbered in the order groups are first met.
        numbers = array("q", bytes(8 * self._nodes))  # root -> its group's number + 1
        count = 0
        groups = array("q")
        firsts = array("q")  # group -> the node of its smallest email
        for node in itertools.chain(self._record_nodes, self._lead_nodes):
            root = roots[node]
            if not numbers[root]:
                count += 1
                numbers[root] = count
                firsts.append(least[root])
            groups.append(numbers[root] - 1)
        del roots, numbers, least
        self._record_nodes, self._lead_nodes = array("q"), array("q")
        # Numbered again by their smallest emails (a stable sort: alike, as first met), those
        # with none after, as first met.
        emails = [self._email(node) for node in firsts]
        self._email_bytes, self._email_ends = bytearray(), array("q")
        ordered = sorted((g for g in range(count) if emails[g]), key=emails.__getitem__)
        ordered += (g for g in range(count) if not emails[g])
        del firsts, emails
        rank = array("q", bytes(8 * count))
        for place, group in enumerate(ordered):
            rank[group] = place
        del ordered
        for index, group in enumerate(groups):
            groups[index] = rank[group]
        del rank
        members = array("q", bytes(8 * count))
        for group in groups:
            members[group] += 1
        # Whole groups, in order, packed into slices of at least `size`: a slice is a run of
        # groups, so a slice's members are the members of its groups in order.
        bounds, filled = array("q"), 0  # the first group after each slice
        for group, found in enumerate(members):
            filled += found
            if filled >= size:
                bounds.append(group + 1)
                filled = 0
        if filled:
            bounds.append(count)
        order = _by_group(groups, members)
        del members
        records = len(self._record_ids)
        at = 0
        for bound in bounds:
            part = Slice()
            while at < len(order) and groups[order[at]] < bound:
                index = order[at]
                if index < records:
                    crm, record_id = self._crms[self._record_crms[index]], self._record_ids[index]
                    assert record_id is not None
                    part.records.setdefault(crm, []).append(record_id)
                    self._record_ids[index] = None  # let go: the slice holds it now
                else:
                    lead_id = self._leads[index - records]
                    assert lead_id is not None
                    part.leads.append(lead_id)
                    self._leads[index - records] = None
                at += 1
            yield part


def _email_of(key: Hashable) -> str | None:
    if isinstance(key, tuple) and len(key) == 2 and key[0] == EMAIL and isinstance(key[1], str):
        return key[1]
    return None


def _find(parent: array[int], node: int) -> int:
    root = node
    while (up := parent[root]) != root:
        root = up
    while node != root:  # path compression: the next find is one step
        parent[node], node = root, parent[node]
    return root


def _by_group(groups: array[int], members: array[int]) -> array[int]:
    """The positions 0..len(groups)-1 ordered by their group, each group's in the order given
    (a counting sort: stable, no object a position)."""
    starts = array("q", bytes(8 * len(members)))
    total = 0
    for group, found in enumerate(members):
        starts[group] = total
        total += found
    order = array("q", bytes(8 * len(groups)))
    for position, group in enumerate(groups):
        order[starts[group]] = position
        starts[group] += 1
    return order
