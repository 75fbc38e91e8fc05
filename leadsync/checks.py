"""`leadsync check`: the config, the field mapping and the lead definition, validated together.

Offline it reads the three files and checks each and the references between them (a scoring
rule naming a field the mapping lacks). `--online` also compares the mapping with each CRM's
live describe: the field exists, the types fit, every mapped value is allowed by the picklist,
every write target is writable. Every problem is listed at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from leadsync.config import Config, load_config
from leadsync.connectors.base import ObjectDescription
from leadsync.connectors.hubspot import HubSpotConnector
from leadsync.connectors.salesforce import SalesforceConnector
from leadsync.console.settings import console_problems
from leadsync.mapping.definition import LeadDefinition, load_definition
from leadsync.mapping.fields import FieldMap, check_against, load_mapping
from leadsync.problems import ConfigError, ConfigProblem, locate_key

T = TypeVar("T")


@dataclass
class CheckReport:
    problems: list[ConfigProblem] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    config: Config | None = None
    mapping: FieldMap | None = None
    definition: LeadDefinition | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def check(config_path: Path | None, *, online: bool = False) -> CheckReport:
    """Validate everything; CRM connection failures during `online` raise ConnectorError."""
    report = CheckReport()
    config = _collect(report, lambda: load_config(config_path))
    if config is None:
        return report
    report.config = config
    report.checked.append(f"config {config_path or '(defaults)'}")
    console = console_problems(config)
    report.problems.extend(console)
    if config.model.console is not None and not console:
        report.checked.append(f"console: {len(config.model.console.users)} user(s) can sign in")
    missing = _missing_files(config)
    if missing:
        report.problems.extend(missing)
        return report
    mapping = _collect(report, lambda: load_mapping(config.mapping_path))
    if mapping is not None:
        report.mapping = mapping
        report.checked.append(f"mapping {config.mapping_path}")
    fields = mapping.canonical_types() if mapping is not None else None
    definition = _collect(report, lambda: load_definition(config.definition_path, fields=fields))
    if definition is not None:
        report.definition = definition
        report.checked.append(
            f"lead definition {config.definition_path} (model {definition.model_version})"
        )
    if online and mapping is not None:
        _check_online(report, config, mapping)
    return report


def _missing_files(config: Config) -> list[ConfigProblem]:
    """A mapping or definition file that is not there is the config's mistake: say which key."""
    text = config.path.read_text(encoding="utf-8") if config.path is not None else ""
    name = str(config.path or "config")
    return [
        ConfigProblem(name, key, f"no such file: {path}", locate_key(text, key))
        for key, path in (
            ("files.mapping", config.mapping_path),
            ("files.definition", config.definition_path),
        )
        if not path.is_file()
    ]


def _collect(report: CheckReport, load: Callable[[], T]) -> T | None:
    try:
        return load()
    except ConfigError as error:
        report.problems.extend(error.problems)
        return None


def _check_online(report: CheckReport, config: Config, mapping: FieldMap) -> None:
    file = str(config.mapping_path)
    for crm, describe in _describers(report, config):
        description = describe()
        report.problems.extend(check_against(mapping, crm, description, file=file))
        report.checked.append(
            f"{crm} {description.object_name} describe ({len(description.fields)} fields)"
        )


def _describers(
    report: CheckReport, config: Config
) -> list[tuple[str, Callable[[], ObjectDescription]]]:
    describers: list[tuple[str, Callable[[], ObjectDescription]]] = []
    if config.model.hubspot.enabled:
        hubspot = _collect(report, config.hubspot_connection)
        if hubspot is not None:
            describers.append(("hubspot", lambda: _describe(HubSpotConnector(hubspot))))
    if config.model.salesforce.enabled:
        salesforce = _collect(report, config.salesforce_connection)
        if salesforce is not None:
            describers.append(("salesforce", lambda: _describe(SalesforceConnector(salesforce))))
            # Bindings with object = "Opportunity" read the converted opportunity's fields.
            opportunity = replace(salesforce, object_name="Opportunity")
            describers.append(("salesforce", lambda: _describe(SalesforceConnector(opportunity))))
    return describers


def _describe(connector: HubSpotConnector | SalesforceConnector) -> ObjectDescription:
    try:
        return connector.describe()
    finally:
        connector.close()
