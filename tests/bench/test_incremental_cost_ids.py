"""The incremental-cost benchmark's synthetic leads are spelt as a sync names its own: their
ids take the bytes, and fill the index pages, that a real store's do."""

from __future__ import annotations

from incremental_cost import Cloner, Template

from leadsync.sync import packed
from leadsync.sync.ids import is_new_id


def test_the_benchmarks_cloned_leads_have_ids_spelt_as_a_sync_makes_them() -> None:
    lead = {"lead_id": "template", "packed": packed.pack_text(b'[{"email":"a@b.example"},{},[]]')}
    cloner = Cloner([Template(lead, ())])
    made = [cloner.clone(number)[0]["lead_id"] for number in range(200)]
    assert all(is_new_id(lead_id) for lead_id in made)
    assert len(set(made)) == len(made)
    # Seeded: two runs of the benchmark clone the same store.
    again = Cloner([Template(lead, ())])
    assert [again.clone(number)[0]["lead_id"] for number in range(200)] == made
