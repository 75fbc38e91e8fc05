"""Owners by name wherever leadsync shows one (`leadsync sla`, the report, `explain`, the
console): the CRM is asked the names of the owners the store cannot name yet, those leadsync
handed leads to (`HandoffStep`) and those of the SLA clocks (after a writing sync's settle),
in as few calls as its connector makes of them (200 ids a query).

An owner the CRM cannot name (a user deleted since) is remembered as asked, without a name,
and asked again a week later, never at every run: a run with nothing new asks nothing. A CRM
that does not answer fails no run: its owners are asked again at the next.

Which CRM names the clocks' owners is the mapping's business: the one whose records hold the
SLA `owner_field` and whose connector is an `OwnerDirectory` (the handoff's target first).
Names are personal data: never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from leadsync.connectors.base import OwnerDirectory
from leadsync.errors import ConnectorError
from leadsync.mapping.fields import FieldMap
from leadsync.sync.handoff_ledger import HandoffLedger

log = logging.getLogger("leadsync.sync.owner_names")

# An owner the CRM could not name is asked again after this long (a user restored, say).
ASK_AGAIN_AFTER = timedelta(days=7)


def known_owners(ledger: HandoffLedger, crm: str, *, now: datetime) -> set[str]:
    """The owners of `crm` not to ask about at `now`: named, or asked lately in vain."""
    return ledger.known(crm, asked_since=now - ASK_AGAIN_AFTER)


def unknown_owners(
    ledger: HandoffLedger, crm: str, owners: Iterable[str], *, now: datetime
) -> list[str]:
    """Those of `owners` to ask `crm` the names of at `now`: neither named nor asked lately."""
    return sorted({owner for owner in owners if owner} - known_owners(ledger, crm, now=now))


def learn_names(
    ledger: HandoffLedger, directory: OwnerDirectory, owners: Iterable[str], *, now: datetime
) -> None:
    """Ask `directory` the names of those of `owners` the store cannot name (see the
    module's docstring), and keep them; a CRM that does not answer is logged, not raised."""
    crm = directory.crm
    unknown = unknown_owners(ledger, crm, owners, now=now)
    if not unknown:
        return
    try:
        names = directory.owner_names(unknown)
    except ConnectorError as problem:
        log.warning(
            "%s owner names not read for %d owner(s) (%s): asked again at the next run",
            crm,
            len(unknown),
            type(problem).__name__,
        )
        return
    ledger.save_names(crm, names, at=now, asked=unknown)


def owner_directory(
    connectors: Mapping[str, object],
    field_map: FieldMap,
    owner_field: str | None,
    *,
    first: str | None = None,
) -> OwnerDirectory | None:
    """The connector that names the owners `owner_field` holds: an `OwnerDirectory` whose
    records the mapping reads the field from (`first`, the handoff's target, if it is one);
    None when no CRM can (no owner field, or no connector that names owners)."""
    mapping = field_map.fields.get(owner_field) if owner_field else None
    if mapping is None:
        return None
    for crm in sorted(connectors, key=lambda name: name != first):
        connector = connectors[crm]
        if isinstance(connector, OwnerDirectory) and mapping.binding(crm) is not None:
            return connector
    return None
