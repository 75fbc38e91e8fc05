"""What a run's counts say: each means what its name says."""

from __future__ import annotations

import sys
import tracemalloc
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

from leadsync.sync.engine import RunSummary
from leadsync.sync.model import FieldChoice, Lead

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def lead(title: str, *, won_by: str, score: int = 40) -> Lead:
    choice = FieldChoice(title, won_by, "most_recent", f"{won_by}: most recent")
    return Lead("lead-1", {"title": title}, {"title": choice}, score=score, stage="mql")


def test_a_lead_whose_values_only_won_for_another_reason_is_not_changed() -> None:
    # leadsync's own write comes back from the other CRM: the value is the same, only why it
    # won moved ("both hold it"). No lead changed.
    summary = RunSummary("run-1", wrote=True, started_at=NOW)
    summary.count_merged(lead("CTO", won_by="salesforce"), lead("CTO", won_by="hubspot"))
    assert summary.leads_changed == 0
    assert summary.stages == {"mql": 1}


def test_a_lead_whose_value_score_or_first_sight_changed_is_counted_once() -> None:
    summary = RunSummary("run-1", wrote=True, started_at=NOW)
    summary.count_merged(lead("CTO", won_by="hubspot"), lead("CEO", won_by="hubspot"))
    summary.count_merged(lead("CTO", won_by="hubspot", score=50), lead("CTO", won_by="hubspot"))
    assert summary.leads_changed == 1  # one lead, merged twice
    other = RunSummary("run-2", wrote=True, started_at=NOW)
    other.count_merged(lead("CTO", won_by="hubspot", score=50), lead("CTO", won_by="hubspot"))
    other.count_merged(replace(lead("CTO", won_by="hubspot"), lead_id="lead-2"), None)
    assert other.leads_changed == 2


def test_a_value_that_is_leadsyncs_own_echo_is_no_change_and_another_value_is() -> None:
    # The stage leadsync wrote to HubSpot's lifecycle stage, read back into a field it only
    # pulls: the run that wrote it counted the change.
    before = replace(lead("CTO", won_by="hubspot"), values={"title": "CTO", "lifecycle": "lead"})
    echoed = replace(before, values={"title": "CTO", "lifecycle": "marketingqualifiedlead"})
    summary = RunSummary("run-1", wrote=True, started_at=NOW)
    summary.count_merged(echoed, before, echoed=frozenset({"lifecycle"}))
    assert summary.leads_changed == 0
    edited = replace(echoed, values={**echoed.values, "title": "CEO"})
    summary.count_merged(edited, before, echoed=frozenset({"lifecycle"}))
    assert summary.leads_changed == 1


def test_a_run_holds_little_more_than_its_lead_ids_to_count_each_lead_once() -> None:
    # A first sync merges every lead: what the counts keep per lead lasts the whole run.
    count = 20_000
    summary = RunSummary("run-1", wrote=True, started_at=NOW)

    def merged() -> Iterator[Lead]:
        for n in range(count):
            # Each its own id and stage strings, as leads read from the store have.
            yield Lead(str(uuid.UUID(int=n)), {}, stage="".join(("m", "q", "l")))

    tracemalloc.start()
    try:
        for one in merged():
            summary.count_merged(one, None)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    id_bytes = sys.getsizeof(uuid.UUID(int=2**127).int)
    # The ids as numbers, and a dict entry each (~40 bytes): no set beside it, no stage
    # string a lead, no id string (88 bytes: the bound held it too, at 20 % more).
    assert id_bytes < sys.getsizeof(str(uuid.UUID(int=0)))
    assert held < count * (id_bytes + 60)
    assert (summary.leads_changed, dict(summary.stages)) == (count, {"mql": count})
