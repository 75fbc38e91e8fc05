"""Revision 0020: a backfill keeps the checkpoint its counts reach beside them, in a column of
its own; its progress stays what the release before reads, and a backfill that release
counted (no checkpoint kept) resumes from its cursor stream, as it did."""

# ruff: noqa: F811

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from leadsync.sandbox import Sandbox
from leadsync.sync.backfill import BackfillSpec, Status
from leadsync.sync.database import downgrade_database, upgrade_database
from tests.support import crm_state
from tests.sync.test_backfill import (  # noqa: F401 (reference: a fixture)
    BOTH,
    SETTINGS,
    config_for,
    reference,
    run,
    set_hubspot_daily_limit,
)

# Each CRM's figures in `backfills.progress` as the release before 0020 reads them (as the
# arguments of its CrmProgress): one more would fail it.
FIGURES_BEFORE_0020 = {"pulled", "kept", "written", "failed", "total", "done"}


def _rows(url: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT * FROM backfills")).mappings()
            return [_decoded(dict(row)) for row in rows]
    finally:
        engine.dispose()


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    """A row as read without the table's types: its JSON columns decoded."""
    for name in ("progress", "checkpoints"):
        if isinstance(row.get(name), str):
            row[name] = json.loads(row[name])
    return row


def test_a_paused_backfill_keeps_its_checkpoints_beside_progress_the_release_before_reads(
    reference: tuple[dict[str, Any], int],
    tmp_path: Path,
) -> None:
    expected, _ = reference
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path, "daily_reserve = 1000\n")
        # Room for HubSpot's first chunk only, then the reserve is reached: paused amid the pull.
        set_hubspot_daily_limit(sandbox, 1003)
        paused = run(config, BackfillSpec(BOTH))
        assert paused.status == Status.PAUSED
        (row,) = _rows(config.database_url)
        assert 0 < row["progress"]["hubspot"]["pulled"] < row["progress"]["hubspot"]["total"]
        assert row["checkpoints"]["hubspot"]
        assert all(set(figures) == FIGURES_BEFORE_0020 for figures in row["progress"].values())
        # Taken down to 0019 and up again, as a rollback and a redeploy would: the counts stay,
        # the checkpoints go (the release before keeps none), and the backfill resumes from its
        # cursor stream, each record counted once still.
        downgrade_database(config.database_url, "0019")
        assert "checkpoints" not in _rows(config.database_url)[0]
        upgrade_database(config.database_url)
        (carried,) = _rows(config.database_url)
        assert carried["checkpoints"] is None
        assert carried["progress"] == row["progress"]
        set_hubspot_daily_limit(sandbox, 1_000_000)
        done = run(config, BackfillSpec(BOTH))
        assert (done.backfill_id, done.status) == (paused.backfill_id, Status.SUCCEEDED)
        assert crm_state(sandbox) == expected
        for progress in done.progress.values():
            assert progress.pulled == progress.total
            assert progress.done
