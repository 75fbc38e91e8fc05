"""Everything a run needs, built from the config: the store, the connectors, the mapping and
the lead definition. Commands and the service open one, use it, and close it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from leadsync.config import Config
from leadsync.connectors.hubspot import HubSpotConnector
from leadsync.connectors.salesforce import SalesforceConnector
from leadsync.mapping.definition import LeadDefinition, load_definition
from leadsync.mapping.fields import FieldMap, load_mapping
from leadsync.sync.store import Store


@dataclass
class Runtime:
    config: Config
    store: Store
    field_map: FieldMap
    definition: LeadDefinition
    connectors: dict[str, HubSpotConnector | SalesforceConnector] = field(default_factory=dict)

    def close(self) -> None:
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
