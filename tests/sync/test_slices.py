"""Pending records grouped into slices that never split a person."""

from __future__ import annotations

import itertools
import random

import pytest

from leadsync.sync.slices import PersonGroups, Slice


def members(part: Slice) -> set[tuple[str, str]]:
    return {(crm, record_id) for crm, ids in part.records.items() for record_id in ids}


def test_records_sharing_a_key_directly_or_through_others_land_in_one_slice() -> None:
    groups = PersonGroups()
    groups.add_record(("hubspot", "1"), [("email", "a@x.com")])
    groups.add_record(("salesforce", "00Q1"), [("email", "a@x.com"), ("ref", "00Q1")])
    # Joined to the first two only through the Salesforce lead it names.
    groups.add_record(("hubspot", "2"), [("email", "b@x.com"), ("ref", "00Q1")])
    groups.add_record(("hubspot", "3"), [("email", "c@x.com")])
    groups.add_record(("salesforce", "00Q9"), [("email", "d@x.com")])

    slices = list(groups.slices(1))

    assert [members(part) for part in slices] == [
        {("hubspot", "1"), ("salesforce", "00Q1"), ("hubspot", "2")},
        {("hubspot", "3")},
        {("salesforce", "00Q9")},
    ]


def test_a_lead_merged_for_its_clock_goes_with_the_records_linked_to_it() -> None:
    groups = PersonGroups()
    groups.add_record(("hubspot", "1"), [("lead", "L1")])
    groups.add_record(("hubspot", "2"), [("lead", "L2")])
    groups.add_lead("L2")
    groups.add_lead("L3")  # overdue, with no pending record

    slices = list(groups.slices(1))

    assert [(members(part), part.leads) for part in slices] == [
        ({("hubspot", "1")}, []),
        ({("hubspot", "2")}, ["L2"]),
        (set(), ["L3"]),
    ]


def test_groups_are_packed_into_slices_of_at_least_the_size_and_each_record_is_in_one() -> None:
    groups = PersonGroups()
    records = [("hubspot", str(n)) for n in range(25)]
    for n, record in enumerate(records):
        # People of two records each (0 and 1, 2 and 3, ...), and one alone at the end.
        groups.add_record(record, [("email", f"{n // 2:02}@x.com")])

    slices = list(groups.slices(4))

    assert [len(part) for part in slices] == [4] * 6 + [1]
    seen = [record for part in slices for record in sorted(members(part))]
    assert sorted(seen) == sorted(records)
    for part in slices:  # nobody split: each record's partner is in its slice
        for _, record_id in members(part):
            partner = int(record_id) ^ 1
            if partner < len(records):
                assert ("hubspot", str(partner)) in members(part)


def test_a_group_bigger_than_the_slice_is_a_slice_of_its_own() -> None:
    groups = PersonGroups()
    for n in range(5):
        groups.add_record(("hubspot", str(n)), [("email", "shared@x.com")])
    groups.add_record(("hubspot", "9"), [("email", "solo@x.com")])

    assert [len(part) for part in groups.slices(2)] == [5, 1]


def test_a_slice_lists_each_crms_records_group_by_group_in_the_order_groups_were_met() -> None:
    groups = PersonGroups()
    groups.add_record(("hubspot", "1"), [("email", "a@x.com")])
    groups.add_record(("hubspot", "2"), [("email", "b@x.com")])
    groups.add_record(("salesforce", "00Q2"), [("email", "b@x.com")])
    groups.add_record(("salesforce", "00Q1"), [("email", "a@x.com")])

    (part,) = groups.slices(10)

    # The Salesforce records follow their people's groups, not the order they were added.
    assert part.records == {"hubspot": ["1", "2"], "salesforce": ["00Q1", "00Q2"]}


def test_groups_come_in_the_order_of_their_smallest_email_whatever_order_they_were_added() -> None:
    # The handoff routes a slice's leads by email, round-robin: groups sliced in email order
    # route every lead in email order, wherever the slices' bounds fall. A rerun after a cut
    # (its earlier slices settled, cut-off leads merged again with their records) then routes
    # what is left in the order the uninterrupted run did.
    groups = PersonGroups()
    groups.add_record(("hubspot", "1"), [("email", "m@x.com")])
    groups.add_record(("hubspot", "2"), [("email", "c@x.com")])
    # One person, joined by the Salesforce lead it names: its smallest email orders it.
    groups.add_record(("hubspot", "3"), [("email", "z@x.com"), ("ref", "00Q1")])
    groups.add_record(("salesforce", "00Q1"), [("email", "a@x.com"), ("ref", "00Q1")])
    groups.add_record(("salesforce", "00Q2"), [("email", "k@x.com")])
    # A stored lead's other records hold an email smaller than its pending record's.
    groups.add_record(("salesforce", "00Q3"), [("email", "t@x.com"), ("lead", "L1")])
    groups.join([("lead", "L1"), ("email", "b@x.com")])
    groups.add_record(("hubspot", "4"), [])  # no email: after those with one
    groups.add_lead("L2")  # overdue, with no pending record: the same

    slices = list(groups.slices(1))

    assert [(members(part), part.leads) for part in slices] == [
        ({("hubspot", "3"), ("salesforce", "00Q1")}, []),
        ({("salesforce", "00Q3")}, []),
        ({("hubspot", "2")}, []),
        ({("salesforce", "00Q2")}, []),
        ({("hubspot", "1")}, []),
        ({("hubspot", "4")}, []),
        (set(), ["L2"]),
    ]


def test_emails_order_groups_by_their_characters_a_lone_surrogate_too() -> None:
    groups = PersonGroups()
    for record_id, email in [("1", "\ue000@x"), ("2", "\ud800@x"), ("3", "\u00e9@x"), ("4", "z@x")]:
        groups.add_record(("hubspot", record_id), [("email", email)])

    assert [part.records["hubspot"] for part in groups.slices(1)] == [["4"], ["3"], ["2"], ["1"]]


def test_a_rerun_settles_the_groups_left_in_the_order_of_the_run_it_follows() -> None:
    def sliced(people: list[str], overdue: list[str], size: int) -> list[list[str]]:
        groups = PersonGroups()
        for person in people:
            # A rerun's records are linked to their stored leads (named as the person here).
            stored = [("lead", person)] if overdue else []
            groups.add_record(("hubspot", person), [("email", f"{person}@x.com"), *stored])
        for person in overdue:  # merged again with its record: one member more
            groups.add_lead(person)
        return [
            [record_id for ids in part.records.values() for record_id in ids]
            for part in groups.slices(size)
        ]

    people = ["p07", "p03", "p11", "p01", "p09", "p05", "p02", "p10", "p04", "p08", "p06"]
    first = sliced(people, [], 3)
    # Cut once the first slice's handoffs were recorded: its records are settled, and its
    # pending leads are merged again; the pull found the others in another order.
    left = [p for p in reversed(people) if p not in first[0]]
    rerun = sliced(left, ["p04", "p05"], 3)
    flat = [p for part in first[1:] for p in part]
    assert [p for part in rerun for p in part] == flat == sorted(flat)


def test_slices_are_handed_out_once_and_a_second_call_says_so() -> None:
    # The union-find is let go as the first slice is handed out: a second call (a retry that
    # kept the groups) would find nothing to group by. It is refused, plainly, at once, as
    # is a record added after.
    groups = PersonGroups()
    groups.add_record(("hubspot", "1"), [("email", "a@x.com")])
    groups.add_lead("lead-1")
    first = groups.slices(1)
    with pytest.raises(RuntimeError, match=r"slices\(\) once"):
        groups.slices(1)
    assert [members(part) for part in first] == [{("hubspot", "1")}, set()]
    with pytest.raises(RuntimeError, match=r"slices\(\) once"):
        list(groups.slices(1))
    with pytest.raises(RuntimeError, match="after its slices"):
        groups.add_record(("hubspot", "2"), [("email", "b@x.com")])


def test_the_groups_are_those_of_a_plain_union_find_over_every_key() -> None:
    # Records, stored leads' joined keys and overdue leads at random: each slice holds whole
    # groups of a reference union-find over the keys themselves, groups in the order of their
    # smallest emails (those with none last), alike as first met.
    rng = random.Random(20)
    groups = PersonGroups()
    parent: dict[object, object] = {}

    def find(node: object) -> object:
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    def union(nodes: list[object]) -> None:
        for other in nodes[1:]:
            parent[find(other)] = find(nodes[0])

    added: list[tuple[str, object]] = []
    for n in range(400):
        roll = rng.random()
        if roll < 0.8:
            record = (rng.choice(["hubspot", "salesforce"]), str(n))
            keys = [("email", f"{rng.randrange(300):03}@x") for _ in range(rng.randrange(3))]
            keys += [("lead", f"L{rng.randrange(60)}")] if rng.random() < 0.2 else []
            groups.add_record(record, keys)
            union([("record", record), *keys])
            added.append(("record", record))
        elif roll < 0.9:
            keys = [("lead", f"L{rng.randrange(60)}"), ("email", f"{rng.randrange(300):03}@x")]
            groups.join(keys)
            union(list(keys))
        else:
            lead = f"L{rng.randrange(60)}"
            groups.add_lead(lead)
            union([("lead", lead)])
            added.append(("lead", lead))
    # Groups are numbered as met among the records, then among the leads.
    added.sort(key=lambda member: member[0] == "lead")
    numbers: dict[object, int] = {}
    group_of = [numbers.setdefault(find(node), len(numbers)) for node in added]

    slices = list(groups.slices(7))

    seen = [
        [("record", (crm, rid)) for crm, ids in part.records.items() for rid in ids]
        + [("lead", lead) for lead in part.leads]
        for part in slices
    ]
    assert sorted(m for part in seen for m in part) == sorted(added)
    slice_of = {member: number for number, part in enumerate(seen) for member in part}
    for member, group in zip(added, group_of, strict=True):
        together = [m for m, g in zip(added, group_of, strict=True) if g == group]
        assert {slice_of[m] for m in together} == {slice_of[member]}
    # A later slice never holds a group that comes earlier.
    smallest: dict[object, str] = {}
    for node in list(parent):
        if isinstance(node, tuple) and node[0] == "email":
            root = find(node)
            smallest[root] = min(smallest.get(root, node[1]), node[1])
    order = {
        group: (root not in smallest, smallest.get(root, ""), group)
        for root, group in numbers.items()
    }
    ranks = [sorted(order[group_of[added.index(m)]] for m in part) for part in seen if part]
    assert all(left[-1] < right[0] for left, right in itertools.pairwise(ranks))
    assert any(not first for first, _, _ in order.values())  # some with an email...
    assert any(first for first, _, _ in order.values())  # ...and some with none
    assert all(len(part) >= 7 for part in slices[:-1])
