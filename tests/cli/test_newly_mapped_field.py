"""A field newly mapped is unknown in the records read before the edit, not blank: no sync
writes over what a CRM holds there until it has read it. Met by a user following the README
(RevOps add a field to the mapping); the rep's value was written over and `revert` would
have put back a blank."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from leadsync.cli import main
from leadsync.config import Config, load_config
from leadsync.sandbox import Sandbox
from leadsync.sync.store import Store

EXAMPLES = Path(__file__).resolve().parents[2] / "leadsync" / "examples"

ZIP_FIELD = """
[fields.zip]
type = "string"
direction = "both"
rule = "prefer_salesforce_unless_blank"

[fields.zip.hubspot]
field = "zip"
transforms = ["trim"]

[fields.zip.salesforce]
field = "PostalCode"
transforms = ["trim"]
"""


def _sync(config: Config) -> None:
    assert main(["sync", "--once", "--config", str(config.path)]) == 0


def _inspect(sandbox: Sandbox, path: str, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        sandbox.url + path, data=data, method=method, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request) as answer:
        return json.loads(answer.read() or b"null")


def _one_person_in_both_crms(config: Config, sandbox: Sandbox) -> tuple[str, dict[str, Any]]:
    """An open Salesforce lead and the HubSpot contact leadsync linked to the same lead."""
    contacts = _inspect(sandbox, "/_sandbox/hubspot/contacts")["results"]
    with Store(config.database_url) as store:
        by_lead = store.lead_ids_for("hubspot", [c["id"] for c in contacts])
        contact_of = {by_lead[c["id"]]: c for c in contacts if c["id"] in by_lead}
        for lead in sandbox.salesforce.snapshot("Lead"):
            if lead["IsConverted"] or not lead.get("Email"):
                continue
            lead_id = store.lead_ids_for("salesforce", [lead["Id"]]).get(lead["Id"])
            if lead_id in contact_of:
                return str(lead["Id"]), contact_of[lead_id]
    pytest.fail("nobody in both CRMs")


def test_a_field_newly_mapped_never_overwrites_the_value_a_crm_holds_but_was_not_pulled(
    sandbox: Sandbox, config: Config, tmp_path: Path
) -> None:
    # RevOps add `zip` (Salesforce wins unless blank). The Salesforce lead was pulled before
    # the edit, so its stored record has no PostalCode; leadsync takes that for blank and
    # writes HubSpot's zip over the postal code Salesforce holds (and logs "blank -> ...").
    assert config.path is not None
    source = config.path.read_text()
    for crm in ("[hubspot]\n", "[salesforce]\n"):
        assert crm in source
        # No look-back: the Salesforce lead is not pulled again by chance.
        source = source.replace(crm, crm + "lookback_minutes = 0\n", 1)
    config.path.write_text(source)
    config = load_config(config.path)

    _sync(config)
    record_id, contact = _one_person_in_both_crms(config, sandbox)
    _inspect(
        sandbox,
        f"/_sandbox/salesforce/leads/{record_id}",
        "PATCH",
        {"fields": {"PostalCode": "SF-1"}},
    )
    _inspect(
        sandbox,
        f"/_sandbox/hubspot/contacts/{contact['id']}",
        "PATCH",
        {"properties": {"zip": "HS-2"}},
    )
    _inspect(sandbox, "/_sandbox/hubspot/settle-search", "POST", {})
    _sync(config)  # both records pulled under the mapping without zip
    _sync(config)  # the echo of what that wrote
    # Salesforce keeps stamps to the second: a later edit elsewhere moves the cursor past it.
    time.sleep(1.1)
    other = next(
        r["Id"]
        for r in sandbox.salesforce.snapshot("Lead")
        if r["Id"] != record_id and not r["IsConverted"]
    )
    _inspect(sandbox, f"/_sandbox/salesforce/leads/{other}", "PATCH", {"fields": {"Title": "CTO"}})
    _sync(config)
    _inspect(sandbox, "/_sandbox/hubspot/settle-search", "POST", {})

    mapping = tmp_path / "mapping.toml"
    shipped = EXAMPLES / "mapping.toml"
    mapping.write_text(shipped.read_text() + ZIP_FIELD)
    assert config.path is not None
    source = config.path.read_text()
    assert str(shipped) in source
    config.path.write_text(source.replace(str(shipped), str(mapping)))
    config = load_config(config.path)

    # A marketing event on the HubSpot contact: the next sync reconciles the person.
    _inspect(
        sandbox,
        f"/_sandbox/hubspot/contacts/{contact['id']}",
        "PATCH",
        {"properties": {"hs_analytics_num_page_views": "77"}},
    )
    _inspect(sandbox, "/_sandbox/hubspot/settle-search", "POST", {})
    _sync(config)

    (lead,) = [r for r in sandbox.salesforce.snapshot("Lead") if r["Id"] == record_id]
    assert lead["PostalCode"] == "SF-1"
