"""A local HubSpot + Salesforce that the official clients use unchanged.

    from leadsync.sandbox import Sandbox, SandboxSettings

    with Sandbox(SandboxSettings(port=0, leads=100)) as sandbox:
        sandbox.url  # http://127.0.0.1:PORT, serving both CRMs and /_sandbox/

The package imports nothing of the rest of leadsync, so it can serve any client.
"""

from leadsync.sandbox.faults import FaultSpec, FaultSpecError, RequestFault
from leadsync.sandbox.hubspot import HubSpotSettings
from leadsync.sandbox.salesforce import SalesforceSettings
from leadsync.sandbox.salesforce_auth import SalesforceCredentials
from leadsync.sandbox.server import Sandbox, SandboxSettings

__all__ = [
    "FaultSpec",
    "FaultSpecError",
    "HubSpotSettings",
    "RequestFault",
    "SalesforceCredentials",
    "SalesforceSettings",
    "Sandbox",
    "SandboxSettings",
]
