"""Related objects as they reach the leads: the records of the objects a CRM relates to its
leads (a converted Salesforce lead's Contact and Opportunity, the contact roles that tie deals
to people: `sync.related`, `sync.deals`, `sync.people`).

    ingest         a pulled page of them saved, laid over the lead records that name them;
                   the leads whose records they change (a person's, a deal's) made pending
    with_related   a pulled page of lead records with the related records they name laid
                   over them (those the store lacks read from the CRM)
    deals          the values each lead's person record's opportunity gives it

The engine pulls their streams and merges the leads; how a related record reaches a lead is
read here, in one place. `sync.related` keeps their rows and their table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from leadsync.connectors.base import Connector, ContactRoles, Page, Position
from leadsync.connectors.traits import traits_of
from leadsync.mapping.fields import FieldMap
from leadsync.sync.deals import chosen_opportunities, deal_choices, person_of_role
from leadsync.sync.identity import people_named
from leadsync.sync.model import FieldChoice, Snapshot
from leadsync.sync.related import (
    OPPORTUNITY,
    Related,
    fields_of,
    references,
    stream_key,
    with_related,
)
from leadsync.sync.run_summary import CrmCounts, RunSummary
from leadsync.sync.store import Store


class RelatedObjects:
    """The related records of the CRMs of `connectors` (a CRM without one here is read from
    `store` alone: a what-if), in `store`, through `field_map`."""

    def __init__(
        self, store: Store, *, connectors: Mapping[str, Connector], field_map: FieldMap
    ) -> None:
        self._store = store
        self._connectors = connectors
        self._map = field_map

    def ingest(
        self,
        crm: str,
        object_name: str,
        page: Page,
        summary: RunSummary,
        *,
        position: Position | None = None,
    ) -> dict[str, list[str]]:
        """A page of a related object's records into the store, laid over the lead records
        that name them (which become pending when that changes what they hold), with the
        stream's cursor past the page. The records of the leads a changed person record no
        lead names may belong to become pending too (`sync.people`): they are matched again.
        Returns the records made pending, by CRM."""
        ids = [record.id for record in page.records]
        held = self._store.related.get(crm, ids)
        email_field = self._person_email_field(crm, object_name)
        roles = self._contact_roles(crm)
        rows = [
            Related.of(
                r,
                object_name,
                # A contact role belongs to the person record it names (`sync.deals`).
                person_of_role(r.fields, roles)
                if roles is not None and object_name == roles.object_name
                else held[r.id].parent_id
                if r.id in held
                else None,
                email_field=email_field,
            )
            for r in page.records
        ]
        by_parent = {row.parent_id: row for row in rows if row.parent_id is not None}
        refreshed = []
        for parent_id, snapshot in self._store.snapshots(crm, sorted(by_parent)).items():
            row = by_parent[parent_id]
            # A lead whose reference moved on (a merge of contacts, say) is no longer its.
            if references(snapshot).get(object_name) == row.record_id:
                refreshed.append(with_related(snapshot, {object_name: row}, self._map))
        self._store.save_page(
            crm,
            refreshed,
            position=position,
            stream=stream_key(object_name),
            related=rows,
            run_id=summary.run_id,
        )
        counts = summary.crms.setdefault(crm, CrmCounts())
        counts.related_pulled += sum(_changed_related(held.get(r.record_id), r) for r in rows)
        changed = [
            row
            for row in rows
            if row.parent_id is None
            and (row.email is not None or row.record_id in held)
            and _changed_related(held.get(row.record_id), row)
        ]
        pending = self._records_of_people(crm, changed)
        for record_crm, record_ids in self._records_of_deals(crm, object_name, rows, held).items():
            pending.setdefault(record_crm, []).extend(record_ids)
        for record_crm, record_ids in pending.items():
            self._store.mark_pending(record_crm, record_ids)
        pending.setdefault(crm, []).extend(snapshot.record_id for snapshot in refreshed)
        return pending

    def _records_of_people(self, crm: str, rows: Sequence[Related]) -> dict[str, list[str]]:
        """The records, by CRM, of the leads `rows` (person records no lead names) are linked
        to, whose records name them (a HubSpot contact's salesforcecontactid: the store may
        meet the Contact after its person was merged), or whose email they hold."""
        if not rows:
            return {}
        ids = [r.record_id for r in rows]
        leads = {lead for lead, _ in self._store.links_for(crm, ids).values()}
        leads.update(self._store.leads_naming(ids))
        by_email = self._store.leads_by_email(sorted({r.email for r in rows if r.email}))
        leads.update(lead for found in by_email.values() for lead in found)
        return dict(record_ids_by_crm(self._store.records_of(sorted(leads))))

    def _records_of_deals(
        self, crm: str, object_name: str, rows: Sequence[Related], held: Mapping[str, Related]
    ) -> dict[str, list[str]]:
        """The records, by CRM, of the leads whose person records (`sync.deals`) changed
        contact roles in `rows` name (now or before), or whose roles name an opportunity in
        `rows` that changed since the store held it and that no converted lead names (its
        roles read, 200 a query)."""
        roles = self._contact_roles(crm)
        connector = self._connectors.get(crm)
        if roles is None or connector is None:
            return {}
        changed = [row for row in rows if _changed_related(held.get(row.record_id), row)]
        people: set[str] = set()
        if object_name == roles.object_name:
            for row in changed:
                before = held.get(row.record_id)
                people.update(p for p in (row.parent_id, before.parent_id if before else None) if p)
        elif object_name == OPPORTUNITY:
            # A new opportunity is tied to nobody yet but by new roles, which their own pull
            # brings: only one the store held may have roles that did not change with it.
            orphans = [
                row.record_id for row in changed if row.parent_id is None and row.record_id in held
            ]
            if orphans:
                found = connector.related_where(
                    roles.object_name, roles.opportunity_field, orphans, fields=roles.fields
                )
                people.update(p for r in found if (p := person_of_role(r.fields, roles)))
        if not people:
            return {}
        leads = {lead for lead, _ in self._store.links_for(crm, sorted(people)).values()}
        # A converted lead names its Contact: that Contact's deals are its person's too.
        leads.update(self._store.leads_naming(sorted(people)))
        return dict(record_ids_by_crm(self._store.records_of(sorted(leads))))

    def _contact_roles(self, crm: str) -> ContactRoles | None:
        """How `crm` ties opportunities to people: as its connector follows them, by the
        CRM's traits when none is here (a what-if reads the roles the store holds)."""
        connector = self._connectors.get(crm)
        return connector.contact_roles if connector is not None else traits_of(crm).contact_roles

    def deals(self, persons: Mapping[str, tuple[str, str]]) -> dict[str, dict[str, FieldChoice]]:
        """Lead id -> the values its person record's opportunity gives it (`sync.deals`), for
        the leads `persons` gives a person record ((crm, record id): `deal_persons`), read
        from the store (an opportunity it lacks is read from the CRM when connected, 200 a
        query)."""
        by_crm: dict[str, dict[str, str]] = {}
        for lead_id, (person_crm, person_id) in persons.items():
            by_crm.setdefault(person_crm, {})[person_id] = lead_id
        found: dict[str, dict[str, FieldChoice]] = {}
        for crm, leads in by_crm.items():
            roles = self._contact_roles(crm)
            connector = self._connectors.get(crm)
            if roles is None:
                continue
            stored = self._store.related.children(crm, roles.object_name, sorted(leads))
            chosen = chosen_opportunities(stored, roles)
            wanted = sorted(set(chosen.values()))
            deals = self._store.related.get(crm, wanted)
            missing = [i for i in wanted if i not in deals]
            if missing and connector is not None:
                fields = fields_of(self._map, crm, OPPORTUNITY)
                read = connector.fetch(missing, fields=fields, object_name=OPPORTUNITY)
                deals.update({i: Related.of(r, OPPORTUNITY) for i, r in read.items()})
            for person_id, opportunity_id in chosen.items():
                deal = deals.get(opportunity_id)
                if deal is not None and not deal.deleted:
                    found[leads[person_id]] = deal_choices(self._map, roles, deal)
        return found

    def _person_email_field(self, crm: str, object_name: str) -> str | None:
        """Where `object_name`'s records hold their person's email, when they are people of
        their own (the connector's `people`)."""
        connector = self._connectors.get(crm)
        return connector.people.get(object_name) if connector is not None else None

    def with_related(
        self, crm: str, connector: Connector, snapshots: list[Snapshot]
    ) -> tuple[list[Snapshot], list[Related]]:
        """The lead records with the related records they name laid over them (see
        `sync.related`), and those related records, now owned by these leads. What the store
        lacks (a record the related pulls have not brought yet) is read, 200 ids a query."""
        named = {s.record_id: refs for s in snapshots if (refs := references(s))}
        followed = set(connector.streams[1:])
        wanted: dict[str, set[str]] = {}
        for refs in named.values():
            for object_name, record_id in refs.items():
                if object_name in followed:
                    wanted.setdefault(object_name, set()).add(record_id)
        if not wanted:
            return snapshots, []
        found = self._store.related.get(crm, sorted(set().union(*wanted.values())))
        for object_name, record_ids in wanted.items():
            missing = sorted(record_ids - set(found))
            if missing:
                read = connector.fetch(
                    missing, fields=fields_of(self._map, crm, object_name), object_name=object_name
                )
                email_field = self._person_email_field(crm, object_name)
                found.update(
                    {
                        i: Related.of(r, object_name, email_field=email_field)
                        for i, r in read.items()
                    }
                )
        owned: list[Related] = []
        enriched = []
        for snapshot in snapshots:
            rows = {
                object_name: replace(found[record_id], parent_id=snapshot.record_id)
                for object_name, record_id in named.get(snapshot.record_id, {}).items()
                if object_name in followed and record_id in found
            }
            owned.extend(rows.values())
            enriched.append(with_related(snapshot, rows, self._map) if rows else snapshot)
        return enriched, owned


def record_ids_by_crm(
    records: Mapping[str, Sequence[Snapshot]],
) -> list[tuple[str, list[str]]]:
    """The ids of the records of leads (lead id -> its records), by CRM."""
    by_crm: dict[str, list[str]] = {}
    for snapshots in records.values():
        for snapshot in snapshots:
            by_crm.setdefault(snapshot.crm, []).append(snapshot.record_id)
    return sorted(by_crm.items())


def _changed_related(held: Related | None, row: Related) -> bool:
    """Whether `row` says anything the store's `held` version of it did not."""
    return held is None or held.deleted != row.deleted or dict(held.fields) != dict(row.fields)


def deal_persons(
    records: Mapping[str, Sequence[Snapshot]],
    lead_ids: Sequence[str],
    attached: Mapping[str, Related],
) -> dict[str, tuple[str, str]]:
    """Lead id -> (crm, id) of the person record whose deals count for it (`sync.deals`): the
    one identity attached to it, else the one its live records name (a converted lead's
    Contact): a deal sales open for that Contact after the conversion is the person's too."""
    persons = {lead_id: (p.crm, p.record_id) for lead_id, p in attached.items()}
    for lead_id in lead_ids:
        if lead_id in persons:
            continue
        named = sorted(
            person
            for snapshot in records.get(lead_id, ())
            if not snapshot.deleted
            for person in people_named(snapshot)
        )
        if named:
            persons[lead_id] = named[0]
    return persons
