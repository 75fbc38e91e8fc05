"""Each CRM's traits: a connector's carry its connection's batch size, and the defaults that
plans read with no connection are the ones a default connection writes with."""

from __future__ import annotations

from typing import Any

import pytest

from leadsync.connectors.base import CrmTraits
from leadsync.connectors.hubspot import HubSpotConnector
from leadsync.connectors.salesforce import SalesforceConnector
from leadsync.connectors.settings import HubSpotConnection, SalesforceConnection
from leadsync.connectors.traits import HUBSPOT, SALESFORCE, traits_of

# Nothing listens there: building a connector calls no CRM.
NOWHERE = "http://127.0.0.1:9"


def _traits(crm: str, **connection: Any) -> CrmTraits:
    if crm == "hubspot":
        hubspot = HubSpotConnector(HubSpotConnection.for_sandbox(NOWHERE, **connection))
        try:
            return hubspot.traits
        finally:
            hubspot.close()
    salesforce = SalesforceConnector(SalesforceConnection.for_sandbox(NOWHERE, **connection))
    try:
        return salesforce.traits
    finally:
        salesforce.close()


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"])
def test_a_default_connection_writes_in_the_batches_plans_estimate_with(crm: str) -> None:
    assert _traits(crm) == traits_of(crm)


@pytest.mark.parametrize(
    ("crm", "setting"), [("hubspot", "batch_size"), ("salesforce", "collection_size")]
)
def test_a_connectors_traits_carry_its_connections_batch_size(crm: str, setting: str) -> None:
    assert _traits(crm, **{setting: 7}).write_batch == 7


def test_an_unknown_crm_has_no_traits() -> None:
    with pytest.raises(ValueError, match="unknown CRM 'pipedrive'"):
        traits_of("pipedrive")


@pytest.mark.parametrize(
    ("traits", "fields", "writable"),
    [
        (SALESFORCE, {"IsConverted": True}, False),
        (SALESFORCE, {"IsConverted": " TRUE "}, False),  # a Bulk query's CSV
        (SALESFORCE, {"IsConverted": False}, True),
        (SALESFORCE, {"IsConverted": "false"}, True),
        (SALESFORCE, {}, True),
        (HUBSPOT, {"IsConverted": True}, True),  # HubSpot freezes no record
    ],
)
def test_only_a_record_its_crm_freezes_is_unwritable(
    traits: CrmTraits, fields: dict[str, Any], writable: bool
) -> None:
    assert traits.is_writable(fields) is writable


def test_every_pull_asks_for_the_frozen_flag_and_the_related_references() -> None:
    assert SALESFORCE.pull_fields == ("IsConverted", "ConvertedContactId", "ConvertedOpportunityId")
    assert HUBSPOT.pull_fields == ()
