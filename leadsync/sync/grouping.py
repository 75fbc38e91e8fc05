"""The keys that group the pending records before a settle slices them (`leadsync.sync.slices`).

Records that identity matching could join must settle in one slice, so each pending record is
grouped by what matching joins on (its email, the Salesforce records it names) and by the
stored leads it touches: the leads matching would fetch for it (`SyncEngine._stored_records`),
whose own records' keys join the group too. The store is read a chunk of records at a time,
their identity fields alone, and only the keys are kept: a first sync of a big org groups
hundreds of thousands of records in little memory.

Apart from the engine, which only asks for the groups, and from `sync.slices`, whose
`PersonGroups` holds and slices them knowing nothing of the store.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence

from leadsync.sync.identity import (
    CROSS_REFERENCED_CRM,
    cross_reference_fields,
    cross_references,
    normalise_email,
)
from leadsync.sync.model import Snapshot
from leadsync.sync.slices import PersonGroups
from leadsync.sync.store import Store

# Pending snapshots read at once to find what groups them (their keys are all that is kept).
KEYS_READ_AT_ONCE = 2_000


class PendingGrouping:
    """Groups pending records, by the keys identity matching joins them on, read from `store`
    (`identity_field`: the canonical field that holds a record's email)."""

    def __init__(self, store: Store, *, identity_field: str) -> None:
        self._store = store
        self._identity_field = identity_field

    def grouped(self, pending: dict[str, list[str]], overdue: Sequence[str]) -> PersonGroups:
        """The `pending` records (emptied: each CRM's ids go to the groups as they are read)
        and the `overdue` leads in groups that keep each person's records together."""
        groups = PersonGroups()
        joined: set[str] = set()  # the stored leads whose records' keys are in `groups`
        for crm in list(pending):
            record_ids = pending.pop(crm)
            for start in range(0, len(record_ids), KEYS_READ_AT_ONCE):
                chunk = record_ids[start : start + KEYS_READ_AT_ONCE]
                keyed = self._store.identity_snapshots(
                    crm,
                    chunk,
                    raw=cross_reference_fields(crm),
                    canonical=[self._identity_field],
                )
                self._group(keyed, groups, joined)
        for lead_id in overdue:
            groups.add_lead(lead_id)
        return groups

    def _group(self, snapshots: Sequence[Snapshot], groups: PersonGroups, joined: set[str]) -> None:
        """Add pending `snapshots` to `groups` with their keys and the stored leads they touch."""
        related: set[str] = set()
        for snapshot, leads in self._stored_leads_of(snapshots):
            keys = self._keys_of(snapshot) | {("lead", lead_id) for lead_id in leads}
            groups.add_record((snapshot.crm, snapshot.record_id), keys)
            related.update(leads)
        # A lead fetched for one record brings all its records into the matching (see
        # SyncEngine._stored_records): whoever shares an email or a reference with one of them
        # may join that lead, so belongs with it.
        fresh = sorted(related - joined)
        for lead_id, records in self._store.records_of(fresh).items():
            groups.join([("lead", lead_id), *(k for r in records for k in self._keys_of(r))])
        joined.update(fresh)

    def _keys_of(self, snapshot: Snapshot) -> set[Hashable]:
        """What identity matching joins records on: the email, the cross-references."""
        keys: set[Hashable] = {("ref", ref) for ref in cross_references(snapshot)}
        email = normalise_email(snapshot.canonical.get(self._identity_field))
        if email is not None:
            keys.add(("email", email))
        return keys

    def _stored_leads_of(
        self, snapshots: Sequence[Snapshot]
    ) -> Iterator[tuple[Snapshot, set[str]]]:
        """Each snapshot with the stored leads `SyncEngine._stored_records` fetches for it: the
        one it is linked to, those holding its email, those linked to the Salesforce lead it
        names."""
        identity_field = self._identity_field
        emails = {s.record_id: normalise_email(s.canonical.get(identity_field)) for s in snapshots}
        holders = self._store.leads_by_email(sorted({e for e in emails.values() if e}))
        refs = {s.record_id: cross_references(s) for s in snapshots}
        named = {ref.record_id for found in refs.values() for ref in found}
        linked = self._store.lead_ids_for(CROSS_REFERENCED_CRM, sorted(named))
        for snapshot in snapshots:
            leads = {
                linked[ref.record_id] for ref in refs[snapshot.record_id] if ref.record_id in linked
            }
            email = emails[snapshot.record_id]
            if email is not None:
                leads.update(holders.get(email, []))
            if snapshot.lead_id is not None:
                leads.add(snapshot.lead_id)
            yield snapshot, leads
