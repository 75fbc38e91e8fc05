"""How the engine lays a batch's snapshots and links over the stored records of each lead."""

from __future__ import annotations

from datetime import UTC, datetime

from leadsync.sync.engine import _records_by_lead
from leadsync.sync.model import Match, MatchKind, Snapshot

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def snap(crm: str, record_id: str, title: str) -> Snapshot:
    return Snapshot(crm, record_id, NOW, {"title": title}, {"title": title})


def test_a_fresher_snapshot_replaces_the_stored_one_and_a_moved_record_leaves_its_old_lead() -> (
    None
):
    stored = {
        "lead-a": [snap("hubspot", "1", "old"), snap("salesforce", "00Q1", "kept")],
        "lead-b": [snap("hubspot", "2", "b")],
    }
    batch = [snap("hubspot", "1", "new"), snap("hubspot", "3", "fresh")]
    linked = {
        ("hubspot", "1"): Match(MatchKind.LINKED, "lead-b"),
        ("hubspot", "3"): Match(MatchKind.NEW, "lead-c"),
    }
    records = _records_by_lead(stored, batch, linked)
    by_lead = {
        lead: sorted((s.record_id, s.raw["title"]) for s in snaps)
        for lead, snaps in records.items()
    }
    assert by_lead == {
        "lead-a": [("00Q1", "kept")],
        "lead-b": [("1", "new"), ("2", "b")],
        "lead-c": [("3", "fresh")],
    }
