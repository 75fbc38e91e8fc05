"""Slices in email order, attacked: groups without email, unicode emails (a lone surrogate
too), records holding two emails, two leads joined in one group. Random groupings checked
against a plain union-find."""

from __future__ import annotations

import random
from collections.abc import Hashable

import pytest

from leadsync.sync.slices import PersonGroups

EMAILS = [
    "a@x.com",
    "b@x.com",
    "z@x.com",
    "é@x.com",
    "ß@x.com",
    "ÿ@x.com",
    "Ω@x.com",
    "\ud800@x.com",
    "\uffff@x.com",
    "😀@x.com",
]


@pytest.mark.parametrize("seed", range(40))
def test_slices_keep_groups_whole_in_smallest_email_order_with_emailless_groups_last(
    seed: int,
) -> None:
    rnd = random.Random(seed)
    records: list[list[Hashable]] = []
    for _ in range(rnd.randint(1, 40)):
        keys: list[Hashable] = []
        for chance, candidate in (
            (0.8, ("email", rnd.choice(EMAILS))),
            (0.3, ("ref", rnd.randint(0, 5))),
            (0.2, ("email", rnd.choice(EMAILS))),
            (0.1, ("lead", f"L{rnd.randint(0, 3)}")),
        ):
            if rnd.random() < chance:
                keys.append(candidate)
        records.append(keys)
    groups = PersonGroups()
    for index, keys in enumerate(records):
        groups.add_record(("hubspot", str(index)), keys)
    size = rnd.randint(1, 6)
    slices = list(groups.slices(size))

    parent = list(range(len(records)))

    def find(node: int) -> int:
        while parent[node] != node:
            node = parent[node]
        return node

    first_of: dict[Hashable, int] = {}
    for index, keys in enumerate(records):
        for key in keys:
            if key in first_of:
                parent[find(index)] = find(first_of[key])
            else:
                first_of[key] = index
    slice_of = {
        int(record_id): n
        for n, part in enumerate(slices)
        for record_id in part.records.get("hubspot", [])
    }
    order = [int(r) for part in slices for r in part.records.get("hubspot", [])]
    assert sorted(order) == list(range(len(records)))
    members: dict[int, list[int]] = {}
    for index in range(len(records)):
        members.setdefault(find(index), []).append(index)
    for group in members.values():
        assert len({slice_of[i] for i in group}) == 1  # never split
    for part in slices[:-1]:
        assert sum(len(ids) for ids in part.records.values()) >= size

    def smallest(group: list[int]) -> str | None:
        found = [
            k[1] for i in group for k in records[i] if isinstance(k, tuple) and k[0] == "email"
        ]
        return min(found) if found else None

    seen: list[int] = []
    for index in order:
        if find(index) not in seen:
            seen.append(find(index))
    firsts = [smallest(members[root]) for root in seen]
    with_email = [e for e in firsts if e is not None]
    assert with_email == sorted(with_email)
    assert firsts[: len(with_email)] == with_email  # those with none come last
