"""Attacks on the store-size changes (issue 20) that found a difference from the release
before them (9439dbe)."""

from __future__ import annotations

import pytest

from leadsync.sync.search import search_leads
from leadsync.sync.store import Store
from tests.sync.test_store import T0
from tests.sync.test_store_size import a_lead


def test_a_search_by_a_field_the_store_keeps_no_names_of_is_refused_not_empty(
    database_url: str,
) -> None:
    # Before revision 0018 `name_fields` could name any canonical field, searched in the
    # lead's values; the store now keeps only NAME_FIELDS apart for the search (`leads.names`),
    # and another field found nothing, silently. It is refused, naming the field.
    lead = a_lead(7)
    with Store(database_url, clock=lambda: T0) as store:
        store.save_leads([lead])
        with pytest.raises(ValueError, match="not company"):
            search_leads(store, str(lead.values["company"]), name_fields=("company",))
        name = str(lead.values["last_name"])
        hits = search_leads(store, name, name_fields=("last_name",))
    assert [hit.lead_id for hit in hits] == [lead.lead_id]
