"""What a run's counts say: each means what its name says."""

from __future__ import annotations

import sys
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from leadsync.sync.ids import is_new_id
from leadsync.sync.model import FieldChoice, Lead
from leadsync.sync.run_summary import RunSummary

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


def _today_id(n: int) -> str:
    return f"{(n * 0x9E3779B97F4A7C15) % 2**80:020x}"  # spelt as `ids.new_id` spells one


def _earlier_id(n: int) -> str:
    return str(uuid.UUID(int=n))  # an earlier release's UUID


@pytest.mark.parametrize(
    ("id_of", "id_bytes"),
    [
        (_today_id, sys.getsizeof(-(2**80))),
        (_earlier_id, sys.getsizeof(uuid.UUID(int=2**127).int)),
    ],
    ids=["today's ids", "an earlier release's uuids"],
)
def test_a_run_holds_little_more_than_its_lead_ids_to_count_each_lead_once(
    id_of: Callable[[int], str], id_bytes: int
) -> None:
    # A first sync merges every lead: what the counts keep per lead lasts the whole run.
    count = 20_000
    summary = RunSummary("run-1", wrote=True, started_at=NOW)
    assert is_new_id(_today_id(count - 1))
    assert len({id_of(n) for n in range(count)}) == count

    def merged() -> Iterator[Lead]:
        for n in range(count):
            # Each its own id and stage strings, as leads read from the store have.
            yield Lead(id_of(n), {}, stage="".join(("m", "q", "l")))

    tracemalloc.start()
    try:
        for one in merged():
            summary.count_merged(one, None)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # The ids as numbers, and a dict entry each (~35 bytes): no set beside it, no stage
    # string a lead, no id string (69 bytes today's, 88 a UUID's: either breaks the bound).
    assert id_bytes < sys.getsizeof(id_of(0))
    assert held < count * (id_bytes + 45)
    assert (summary.leads_changed, dict(summary.stages)) == (count, {"mql": count})
