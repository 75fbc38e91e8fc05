"""The incremental-cost benchmark times the store's methods, and those of the repositories
issue 20 split out of it (the run log, the cursors, the quarantine, the review queue, the
lifecycle history, the audit log), so its store time stays comparable across the split; and
it puts every method back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from incremental_cost import timed_store

from leadsync.sync.run_log import RunLog
from leadsync.sync.store import Store

NOW = datetime(2026, 12, 5, 9, tzinfo=UTC)


def test_the_store_time_counts_the_split_out_repositories_methods(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        with timed_store(store) as spent:
            store.run_log.start("sync", started_at=NOW)
            store.quarantine.size()
            store.reviews.items()
            store.cursors.position("hubspot")
            store.transitions.history("lead")
            store.audit_log.entries()
            store.pending_ids("hubspot")
        assert {
            "RunLog.start",
            "QuarantineLedger.size",
            "ReviewLedger.items",
            "Cursors.position",
            "TransitionLog.history",
            "AuditLog.entries",
            "Store.pending_ids",
        } <= {label for label, seconds in spent.items() if seconds > 0}


def test_after_timing_the_store_and_its_repositories_are_as_they_were(tmp_path: Path) -> None:
    start = RunLog.start
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        with timed_store(store):
            assert RunLog.start is not start
            assert "pending_ids" in vars(store)
        assert RunLog.start is start
        assert "pending_ids" not in vars(store)
        # Still works, untimed, after.
        assert store.run_log.start("sync", started_at=NOW)
