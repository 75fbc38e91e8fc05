"""Everything a run needs, built from the config: the store, the connectors, the mapping and
the lead definition. Commands and the service open one, use it, and close it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from leadsync.config import Config
from leadsync.connectors.hubspot import HubSpotConnector
from leadsync.connectors.salesforce import SalesforceConnector
from leadsync.mapping.definition import LeadDefinition, load_definition
from leadsync.mapping.fields import FieldMap, load_mapping
from leadsync.sync.engine import SyncEngine
from leadsync.sync.sla.monitor import SlaMonitor, monitor_for
from leadsync.sync.sla.webhook import WebhookSender
from leadsync.sync.store import Store


@dataclass
class Runtime:
    config: Config
    store: Store
    field_map: FieldMap
    definition: LeadDefinition
    connectors: dict[str, HubSpotConnector | SalesforceConnector] = field(default_factory=dict)
    _closing: list[Callable[[], None]] = field(default_factory=list)

    def sla_monitor(self) -> SlaMonitor | None:
        """The SLA check of this definition, posting to the webhook the config names."""
        webhook = self.config.sla_webhook()
        settings = self.config.model.sla
        sender = None
        if webhook is not None:
            url, secret = webhook
            sender = WebhookSender(url, secret, timeout_seconds=settings.webhook_timeout_seconds)
            self._closing.append(sender.close)
        return monitor_for(
            self.store,
            self.definition,
            webhook=sender,
            max_attempts=settings.webhook_max_attempts,
        )

    def engine(self, *, clock: Callable[[], datetime] | None = None) -> SyncEngine:
        """A sync engine over this runtime's store, connectors, mapping and definition."""
        timing = {} if clock is None else {"clock": clock}
        return SyncEngine(
            self.store,
            self.connectors,
            self.field_map,
            self.definition,
            sla_monitor=self.sla_monitor(),
            **timing,
        )

    def close(self) -> None:
        for close in self._closing:
            close()
        for connector in self.connectors.values():
            connector.close()
        self.store.close()


@contextmanager
def open_runtime(config: Config, *, connect: bool = True) -> Iterator[Runtime]:
    """Load the mapping and definition (ConfigError on mistakes), open the store, and connect
    to each enabled CRM unless `connect` is False (for commands that only read the store)."""
    field_map = load_mapping(config.mapping_path)
    definition = load_definition(config.definition_path, fields=field_map.canonical_types())
    runtime = Runtime(config, Store(config.database_url), field_map, definition)
    try:
        if connect:
            if config.model.hubspot.enabled:
                runtime.connectors["hubspot"] = HubSpotConnector(config.hubspot_connection())
            if config.model.salesforce.enabled:
                runtime.connectors["salesforce"] = SalesforceConnector(
                    config.salesforce_connection()
                )
        yield runtime
    finally:
        runtime.close()
