"""Two replicas checking one PostgreSQL ledger at once: every breach is logged exactly once."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadsync.sync.sla.clocks import Clock, ClockChanges
from leadsync.sync.store import Store

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 2, 20, 0, tzinfo=UTC)
BREACHES = 60

REPLICA = f"""
import logging, sys, time
from datetime import datetime, timedelta
from pathlib import Path
from leadsync.mapping.definition import load_definition
from leadsync.sync.sla.monitor import monitor_for
from leadsync.sync.store import Store
from tests.support import REAL_PROCESSES, shipped_canonical_fields

pytestmark = REAL_PROCESSES

logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
store = Store(sys.argv[1], migrate=False)
definition = load_definition(
    Path({str(ROOT / "leadsync" / "examples" / "lead_definition.toml")!r}),
    fields=shipped_canonical_fields(),
)
monitor = monitor_for(store, definition)
now = datetime.fromisoformat(sys.argv[3])
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
for run in range(10):
    monitor.check(now + timedelta(minutes=5 * run))
store.close()
"""


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_replicas_checking_at_once_log_each_breach_once(database_url: str) -> None:
    with Store(database_url) as store:
        store.save_decisions(
            clocks=[
                ClockChanges(
                    opened=tuple(
                        Clock(
                            f"clock-{n:03}",
                            "mql_acceptance",
                            f"lead-{n:03}",
                            NOW - timedelta(days=2),
                            NOW - timedelta(minutes=n),
                            "America/New_York",
                        )
                        for n in range(BREACHES)
                    )
                )
            ],
            run_id="seed",
        )
    start_at = time.time() + 2.0  # once both have imported leadsync and connected
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", REPLICA, database_url, str(start_at), NOW.isoformat()],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [replica.communicate(timeout=120) for replica in replicas]
    for replica, (_, err) in zip(replicas, outputs, strict=True):
        assert replica.returncode == 0, err
    logged = Counter(
        match.group(1)
        for out, _ in outputs
        for match in re.finditer(r"^SLA breach: rule mql_acceptance, lead ([^,\s]+)", out, re.M)
    )
    assert logged == Counter({f"lead-{n:03}": 1 for n in range(BREACHES)})
    with Store(database_url) as store:
        events = store.sla.events()
    assert len(events) == BREACHES
