"""Finding leads by email, name or CRM id: on every backend (JSON values read in SQL)."""

from __future__ import annotations

import pytest

from leadsync.sync.model import Lead
from leadsync.sync.search import search_leads
from leadsync.sync.store import Store

LEADS = [
    Lead("L1", {"email": "ada.lovelace@example.com", "first_name": "Ada", "last_name": "Lovelace"}),
    Lead("L2", {"email": "grace@example.com", "first_name": "Grace", "last_name": "Hopper"}),
    Lead("L3", {"email": "x_y@example.com", "first_name": "Zoë", "last_name": None}),
    Lead("L4", {"email": None, "first_name": "Adam", "last_name": "Smith"}),
    Lead("L5", {"email": "100%@example.com", "first_name": None, "last_name": "Percent"}),
]


@pytest.fixture
def filled(store: Store) -> Store:
    store.save_leads(LEADS)
    store.link([("hubspot", "101", "L2", "email"), ("salesforce", "00Q1", "L1", "email")])
    return store


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("ada", ["L1", "L4"]),  # first names, and an email's start
        ("ada love", ["L1"]),  # every word must be found
        ("LOVELACE", ["L1"]),  # case aside
        ("  grace   hopper ", ["L2"]),
        ("opp", ["L2"]),  # anywhere in a name
        ("ada.lovelace@", ["L1"]),  # an email from its start
        ("Grace@Example.com", ["L2"]),
        ("lovelace@", []),  # an email only from its start
        ("101", ["L2"]),  # a HubSpot id
        ("00Q1", ["L1"]),  # a Salesforce id
        ("00Q", []),  # an id only whole
        ("x_", ["L3"]),
        ("x%", []),  # the text's own % and _ are not wildcards
        ("100%@", ["L5"]),
        ("%", []),  # in no name, and no email starts with it
        ("", []),
        ("nobody", []),
    ],
)
def test_search_finds_leads_by_email_name_or_crm_id(
    filled: Store, text: str, found: list[str]
) -> None:
    assert [lead.lead_id for lead in search_leads(filled, text)] == found


def test_search_returns_whole_leads_and_at_most_the_limit(filled: Store) -> None:
    (ada,) = search_leads(filled, "lovelace")
    assert ada == LEADS[0]
    assert [lead.lead_id for lead in search_leads(filled, "example", limit=2)] == []
    assert [lead.lead_id for lead in search_leads(filled, "a", limit=2)] == ["L1", "L2"]
