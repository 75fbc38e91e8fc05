"""Write batches filled across settle slices (`leadsync.sync.carry`)."""

from __future__ import annotations

from leadsync.connectors.base import RecordUpdate
from leadsync.sync.carry import Kind, Queued, WriteCarry

PLAIN: Kind = (False, False)
CHECKED: Kind = (False, True)
CLEARED: Kind = (True, False)


def queued(lead: str, kind: Kind = PLAIN) -> Queued:
    return Queued(RecordUpdate(f"r-{lead}", {"score": 1}), lead, kind)


def leads(batches: list[list[Queued]]) -> list[list[str]]:
    return [[item.lead_id for item in batch] for batch in batches]


def test_a_slice_writes_whole_batches_of_each_kind_and_the_rest_waits_for_the_next() -> None:
    carry = WriteCarry()
    first = [queued("a"), queued("b", CHECKED), queued("c"), queued("d"), queued("e", CHECKED)]
    batches = list(carry.batches("hubspot", first, 2, last=False))
    assert leads(batches) == [["a", "c"], ["b", "e"]]
    for batch in batches:
        carry.written(batch)
    assert not carry.waits("a")
    assert carry.waits("d")  # a part-full batch waits
    # The next slice fills it up, those waiting longest first.
    second = [queued("f"), queued("g", CLEARED)]
    batches = list(carry.batches("hubspot", second, 2, last=False))
    assert leads(batches) == [["d", "f"]]
    carry.written(batches[0])
    assert carry.waits("g")
    # The last slice writes the rest, kind after kind.
    batches = list(carry.batches("hubspot", [queued("h", CHECKED)], 2, last=True))
    assert leads(batches) == [["h", "g"]]
    carry.written(batches[0])
    assert not carry


def test_a_leads_records_are_held_until_its_last_waiting_update_is_written() -> None:
    carry = WriteCarry()
    new = [queued("a"), Queued(RecordUpdate("s-a", {"x": 1}), "a", PLAIN)]
    assert list(carry.batches("hubspot", new[:1], 2, last=False)) == []
    assert list(carry.batches("salesforce", new[1:], 2, last=False)) == []
    carry.hold("a", "hubspot", ["r-a"])
    carry.hold("a", "salesforce", ["s-a"])
    assert carry.released() == {}
    hubspot = list(carry.batches("hubspot", [queued("b")], 2, last=False))
    carry.written(hubspot[0])
    assert carry.released() == {}  # its Salesforce update still waits
    salesforce = list(carry.batches("salesforce", [], 2, last=True))
    carry.written(salesforce[0])
    assert carry.released() == {"hubspot": ["r-a"], "salesforce": ["s-a"]}
    assert carry.released() == {}


def test_cleared_a_carry_forgets_what_waited() -> None:
    carry = WriteCarry()
    list(carry.batches("hubspot", [queued("a")], 2, last=False))
    carry.hold("a", "hubspot", ["r-a"])
    assert carry
    carry.clear()
    assert not carry
    assert not carry.waits("a")
    assert carry.released() == {}
    assert list(carry.batches("hubspot", [], 2, last=True)) == []
