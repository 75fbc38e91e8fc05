"""`leadsync demo`: the sandbox in-process, read through the official clients.

Until the sync engine lands, the demo shows what the sandbox serves and that hubspot-api-client
and simple-salesforce work against it unchanged: it pages through every HubSpot contact and
every Salesforce lead and summarises the two sides of the lead-quality argument.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from hubspot import HubSpot
from simple_salesforce.api import Salesforce
from urllib3.util.retry import Retry

from leadsync.connectors.salesforce_routing import RoutingSession
from leadsync.sandbox import Sandbox, SandboxSettings


def _hubspot_contacts(client: Any) -> Iterator[dict[str, Any]]:
    after = None
    properties = ["email", "lifecyclestage", "hs_analytics_num_page_views", "salesforceleadid"]
    while True:
        page = client.crm.contacts.basic_api.get_page(
            limit=100, after=after, properties=properties, _request_timeout=10
        )
        for contact in page.results:
            yield contact.properties
        if page.paging is None or page.paging.next is None:
            return
        after = page.paging.next.after


def _normal_email(value: Any) -> str:
    return str(value or "").strip().lower()


def run_demo(*, seed: int, leads: int) -> int:
    settings = SandboxSettings(port=0, seed=seed, leads=leads)
    print(f"Starting the sandbox with {leads} seeded leads per CRM (seed {seed})...")
    with Sandbox(settings) as sandbox:
        creds = sandbox.credentials()
        hubspot = HubSpot(
            access_token=creds["hubspot"]["access_token"], host=sandbox.url, retry=Retry(0)
        )
        sf_creds = creds["salesforce"]
        salesforce = Salesforce(
            username=sf_creds["username"],
            password=sf_creds["password"],
            security_token=sf_creds["security_token"],
            session=RoutingSession(sandbox.url),
        )
        contacts = list(_hubspot_contacts(hubspot))
        sf_leads = list(
            salesforce.query_all_iter(
                "SELECT Id, Email, Status, IsConverted FROM Lead ORDER BY SystemModstamp, Id"
            )
        )
        stages = Counter(c.get("lifecyclestage") or "(none)" for c in contacts)
        statuses = Counter(lead["Status"] for lead in sf_leads)
        hub_emails = {_normal_email(c.get("email")) for c in contacts} - {""}
        sf_emails = {_normal_email(lead["Email"]) for lead in sf_leads} - {""}
        linked = sum(1 for c in contacts if c.get("salesforceleadid"))
        print(f"\nSandbox at {sandbox.url}, read with hubspot-api-client and simple-salesforce:")
        print(f"  HubSpot contacts       {len(contacts):>6}")
        print(f"  Salesforce leads       {len(sf_leads):>6}")
        print(f"  same email in both     {len(hub_emails & sf_emails):>6}")
        print(f"  linked by HubSpot's SF integration (salesforceleadid) {linked}")
        print("\nHubSpot lifecycle stages:")
        for stage, count in stages.most_common():
            print(f"  {stage:<24} {count:>6}")
        print("\nSalesforce lead statuses:")
        for status, count in statuses.most_common():
            print(f"  {status:<24} {count:>6}")
        stats = sandbox.stats.as_dict()["requests"]
        print(f"\nAPI requests served: {stats}")
        print(
            "\nRun `leadsync sandbox` to keep it serving on http://127.0.0.1:8765 "
            "for your own clients."
        )
    return 0
