"""`leadsync check`: the config, the field mapping and the lead definition, validated together.

Offline it reads the three files and checks each and the references between them (a scoring
rule naming a field the mapping lacks), and that every secret the enabled CRMs and the SLA
webhook need is set (and a JWT login's key file readable). `--online` also logs in to each CRM
(proving the secrets) and compares the mapping with its live describe: the field exists, the
types fit, every mapped value is allowed by the picklist, every write target is writable.
Every problem is listed at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from leadsync.config import Config, load_config
from leadsync.connectors.base import Connector, HandoffTarget, ObjectDescription
from leadsync.connectors.errors import AuthenticationError
from leadsync.connectors.hubspot import HubSpotConnector
from leadsync.connectors.salesforce import SalesforceConnector
from leadsync.console.settings import console_problems
from leadsync.mapping.definition import LeadDefinition, load_definition
from leadsync.mapping.fields import FieldMap, load_mapping
from leadsync.problems import FILE_ENCODING, ConfigError, ConfigProblem, TomlLines
from leadsync.sync.preflight import describe_for, problems

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
    secrets = config.secret_problems()
    report.problems.extend(secrets)
    if not secrets:
        report.checked.append("secrets: every one the enabled CRMs and the webhook need is set")
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
    if online and mapping is not None and not secrets:
        _check_online(report, config, mapping)
    return report


def _missing_files(config: Config) -> list[ConfigProblem]:
    """A mapping or definition file that is not there is the config's mistake: say which key."""
    text = config.path.read_text(encoding=FILE_ENCODING) if config.path is not None else ""
    name = str(config.path or "config")
    lines = TomlLines(text)
    return [
        ConfigProblem(name, key, f"no such file: {path}", lines.line_of(key))
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
    """The same check every run makes before it writes (`leadsync.sync.preflight`), and the
    rest: picklist values, types, options that cannot be read."""
    file = str(config.mapping_path)
    for crm, connect in _connections(report, config):
        connector = connect()
        try:
            descriptions = describe_for(connector, mapping)
            if isinstance(connector, HandoffTarget) and report.definition is not None:
                _check_owners(report, config, report.definition, connector)
        except AuthenticationError as refused:
            name = str(config.path or "config")
            message = f"the CRM refused the login: {refused}"
            report.problems.append(ConfigProblem(name, crm, message))
            continue
        finally:
            connector.close()
        report.problems.extend(problems(mapping, crm, descriptions, file=file, preflight=False))
        report.checked.extend(_described(crm, description) for description in descriptions)


def _check_owners(
    report: CheckReport, config: Config, definition: LeadDefinition, target: HandoffTarget
) -> None:
    """Every owner the handoff routes to is an active user or a queue of the target CRM."""
    handoff = definition.handoff
    if handoff is None or handoff.assignment != "rules":
        return
    named = [
        (f"handoff.routes[{r}].team[{m}]", owner)
        for r, route in enumerate(handoff.routes)
        for m, owner in enumerate(route.team)
    ]
    if handoff.fallback_owner:
        named.append(("handoff.fallback_owner", handoff.fallback_owner))
    # Salesforce ids compare on their first 15 characters (the 18-character form adds a
    # checksum of the letter case).
    known = {owner[:15] for owner in target.assignees()}
    file = str(config.definition_path)
    lines = TomlLines(config.definition_path.read_text(encoding=FILE_ENCODING))
    for key, owner in named:
        if owner[:15] not in known:
            report.problems.append(
                ConfigProblem(
                    file,
                    key,
                    f"{owner} is no active user or queue in {target.crm}",
                    lines.line_of(key),
                )
            )
    report.checked.append(f"{target.crm}: the {len(named)} owner(s) the handoff routes to exist")


def _described(crm: str, description: ObjectDescription) -> str:
    return f"{crm} {description.object_name} describe ({len(description.fields)} fields)"


def _connections(report: CheckReport, config: Config) -> list[tuple[str, Callable[[], Connector]]]:
    connections: list[tuple[str, Callable[[], Connector]]] = []
    if config.model.hubspot.enabled:
        hubspot = _collect(report, config.hubspot_connection)
        if hubspot is not None:
            connections.append(("hubspot", lambda: HubSpotConnector(hubspot)))
    if config.model.salesforce.enabled:
        salesforce = _collect(report, config.salesforce_connection)
        if salesforce is not None:
            connections.append(("salesforce", lambda: SalesforceConnector(salesforce)))
    return connections
