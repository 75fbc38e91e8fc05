"""leadsync: one lead definition for HubSpot and Salesforce."""

__version__ = "0.1.0"
