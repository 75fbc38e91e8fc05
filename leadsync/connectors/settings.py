"""How to reach each CRM and how hard to push it: typed, with secrets as `Secret`.

The config loader builds these from `config.toml` and the environment; tests and the demo build
them directly (`for_sandbox`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from leadsync.connectors.retry import RetryPolicy
from leadsync.connectors.traits import HUBSPOT, SALESFORCE
from leadsync.secrets import Secret


@dataclass(frozen=True, slots=True)
class HubSpotConnection:
    access_token: Secret
    base_url: str = "https://api.hubapi.com"
    timeout_seconds: float = 30.0
    # Paced a little under HubSpot's own limits (190 per 10 s on Professional and Enterprise, 5
    # searches a second): the window is rolling on both sides, and clocks and latency differ.
    requests_per_ten_seconds: int = 180
    searches_per_second: int = 4
    daily_reserve: int = 0
    lookback: timedelta = timedelta(minutes=5)
    search_page_size: int = 200
    list_page_size: int = 100
    batch_size: int = HUBSPOT.write_batch
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def for_sandbox(cls, url: str, **overrides: object) -> HubSpotConnection:
        defaults: dict[str, object] = {"access_token": Secret("sandbox-token"), "base_url": url}
        return cls(**{**defaults, **overrides})  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class SalesforceConnection:
    """One of three logins: username + password + security token (SOAP); username + consumer
    key + private key file (OAuth JWT bearer); or a session id with the instance URL."""

    username: str | None = None
    password: Secret | None = None
    security_token: Secret | None = None
    consumer_key: str | None = None
    private_key_file: Path | None = None
    session_id: Secret | None = None
    # Where the org lives. With a username login it is found by logging in at `domain`; an
    # http:// URL (the sandbox) also receives the login itself.
    instance_url: str | None = None
    domain: str = "login"
    api_version: str = "59.0"
    object_name: str = "Lead"
    # Followed with the leads, each by its own cursor: the Contact a converted lead becomes
    # (written to instead of the frozen lead) and its Opportunity (its stage, amount, outcome),
    # and the contact roles that tie opportunities to Contacts no lead names.
    related_objects: tuple[str, ...] = ("Contact", "Opportunity", "OpportunityContactRole")
    timeout_seconds: float = 30.0
    max_concurrent_requests: int = 10
    daily_reserve: int = 0
    lookback: timedelta = timedelta(minutes=5)
    query_batch_size: int = 2000
    # Above these sizes, pulls and writes go through Bulk API 2.0 instead of REST.
    bulk_query_threshold: int = 50_000
    bulk_write_threshold: int = 10_000
    collection_size: int = SALESFORCE.write_batch
    bulk_poll_seconds: float = 1.0
    bulk_page_size: int = 50_000  # rows per page of a Bulk query's results
    bulk_job_timeout: timedelta = timedelta(hours=1)
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def auth_method(self) -> str:
        if self.session_id is not None:
            return "session"
        if self.consumer_key and self.private_key_file:
            return "jwt"
        return "password"

    @classmethod
    def for_sandbox(cls, url: str, **overrides: object) -> SalesforceConnection:
        defaults: dict[str, object] = {
            "username": "sandbox@leadsync.test",
            "password": Secret("sandbox"),
            "security_token": Secret("sandbox"),
            "instance_url": url,
        }
        return cls(**{**defaults, **overrides})  # type: ignore[arg-type]
