"""The handoff ledger's response times, owner names (those asked in vain too) and withdrawn
handoffs, on every backend."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from leadsync.sync.handoff_ledger import CREATED, PENDING, Handoff, OwnerLoad
from leadsync.sync.store import Store

T0 = datetime(2026, 6, 2, 13, tzinfo=UTC)


def _handoff(lead_id: str) -> Handoff:
    return Handoff(
        lead_id, "salesforce", CREATED, T0, "r1", record_id=f"00Q{lead_id}", handed_off_at=T0
    )


def test_the_first_response_stays_through_later_marks_and_stale_saves(store: Store) -> None:
    ledger = store.handoffs
    stale = _handoff("a")
    ledger.save([stale, _handoff("b")])
    ledger.mark_responded({"a": T0 + timedelta(hours=1)})
    ledger.mark_responded({"a": T0 + timedelta(hours=3), "b": T0 + timedelta(hours=2)})
    # Read before the marks and saved after them (its link written): the times stay.
    ledger.save([replace(stale, linked_at=T0 + timedelta(hours=4))])
    found = ledger.of(["a", "b"])
    assert found["a"].responded_at == T0 + timedelta(hours=1)
    assert found["a"].linked_at == T0 + timedelta(hours=4)
    assert found["b"].responded_at == T0 + timedelta(hours=2)


def test_owner_names_are_kept_per_crm_and_replaced_by_newer_ones(store: Store) -> None:
    ledger = store.handoffs
    ledger.save_names("salesforce", {"005A": "Ann Old", "005B": "Bo"}, at=T0)
    ledger.save_names("salesforce", {"005A": "Ann New"}, at=T0 + timedelta(days=1))
    ledger.save_names("other", {"9": "Nine"}, at=T0)
    assert ledger.names("salesforce") == {"005A": "Ann New", "005B": "Bo"}
    assert ledger.names() == {"005A": "Ann New", "005B": "Bo", "9": "Nine"}


def test_owners_asked_and_not_named_are_known_for_a_while_and_never_shown(store: Store) -> None:
    ledger = store.handoffs
    ledger.save_names("salesforce", {"005A": "Ann"}, at=T0, asked=["005A", "005GONE"])
    ledger.save_names("salesforce", {}, at=T0 + timedelta(days=3), asked=["005LATER"])
    assert ledger.names() == {"005A": "Ann"}
    assert ledger.known("salesforce", asked_since=T0) == {"005A", "005GONE", "005LATER"}
    # A week on, the owner asked at T0 in vain is not known any more; a named one stays.
    later = T0 + timedelta(days=1)
    assert ledger.known("salesforce", asked_since=later) == {"005A", "005LATER"}
    assert ledger.known("other", asked_since=T0) == set()
    # Named at last: shown, and known for good.
    ledger.save_names("salesforce", {"005GONE": "Gone Back"}, at=later, asked=["005GONE"])
    assert ledger.names("salesforce") == {"005A": "Ann", "005GONE": "Gone Back"}
    far = T0 + timedelta(days=30)
    assert ledger.known("salesforce", asked_since=far) == {"005A", "005GONE"}


def test_a_withdrawn_pending_handoff_goes_with_its_owners_load_a_created_one_stays(
    store: Store,
) -> None:
    ledger = store.handoffs
    pending = Handoff("a", "salesforce", PENDING, T0, "r1", owner="005A")
    created = replace(_handoff("b"), owner="005A")
    ledger.save([pending, created])
    assert ledger.loads(["005A"], open_stage="mql") == {"005A": OwnerLoad(2, 0)}
    # "b" is named too: a handoff past pending is not withdrawn (a later one came after).
    ledger.save([], withdrawn=["a", "b"])
    assert set(ledger.of(["a", "b"])) == {"b"}
    assert ledger.unfinished() == ["b"]  # its link back is not written; "a" is not there
    assert ledger.loads(["005A"], open_stage="mql") == {"005A": OwnerLoad(1, 0)}
