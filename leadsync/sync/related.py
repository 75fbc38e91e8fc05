"""Related records: the Contact and the Opportunity a converted Salesforce lead became.

A converted lead is frozen (Salesforce refuses every update, CANNOT_UPDATE_CONVERTED_LEAD), and
the person lives on in the Contact and Opportunity the conversion made, which the lead names
(ConvertedContactId, ConvertedOpportunityId). Their connector pulls them as streams of their
own; the store keeps each record with the lead record that names it (`parent_id`), and its
values are laid over that lead's snapshot, prefixed with the object:

    "Opportunity.StageName": "Closed Won"      what bindings with object = "Opportunity" read
    "Contact.Id": "003...", "Contact.Leadsync_Score__c": 71
                                               where the plan writes the person's results

So a won opportunity or an edited contact changes the lead's snapshot, which makes the lead
pending, merged on the next settle: its stage moves there and then, and the Contact is
compared with what it should hold like any record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from leadsync.connectors.base import CrmRecord
from leadsync.connectors.traits import traits_of
from leadsync.mapping.fields import CONTACT, FieldMap
from leadsync.mapping.transforms import TransformError, is_blank
from leadsync.sync import tables as t
from leadsync.sync.database import retry_transient
from leadsync.sync.identity import eighteen_character_id, normalise_email
from leadsync.sync.model import Snapshot
from leadsync.sync.sql import chunks, upsert

__all__ = [
    "OPPORTUNITY",
    "Related",
    "RelatedRecords",
    "contact_of",
    "embedded",
    "fields_of",
    "references",
    "save_related",
    "stream_key",
    "with_related",
]

log = logging.getLogger("leadsync.sync")

OPPORTUNITY = "Opportunity"
# Pulled whatever the mapping says: what the plan and the reports need of each object.
_ALWAYS: Mapping[str, tuple[str, ...]] = {
    CONTACT: ("Email",),
    OPPORTUNITY: ("StageName", "Amount", "CloseDate", "IsWon", "IsClosed", "CreatedDate"),
}
_ID = "Id"
_DELETED = "IsDeleted"
_CONTACT_ID = f"{CONTACT}.{_ID}"  # the Contact's id, as laid over a lead's raw (`embedded`)


@dataclass(frozen=True, slots=True)
class Related:
    """One record of a related object, as last pulled, and the lead record that names it."""

    crm: str
    object_name: str
    record_id: str
    modified_at: datetime
    fields: Mapping[str, Any]
    deleted: bool = False
    parent_id: str | None = None
    # Normalised; only for a record that is a person of its own (a Contact): see `people`.
    email: str | None = None

    @classmethod
    def of(
        cls,
        record: CrmRecord,
        object_name: str,
        parent_id: str | None = None,
        *,
        email_field: str | None = None,
    ) -> Related:
        """`record` of `object_name`; `email_field` names where a person's email is, for an
        object whose records are people (the connector's `people`)."""
        email = normalise_email(record.fields.get(email_field)) if email_field else None
        row = cls(
            record.crm,
            object_name,
            record.id,
            record.modified_at,
            dict(record.fields),
            record.deleted,
            parent_id,
            email,
        )
        return replace(row, email=_usable_email(row))


def stream_key(object_name: str) -> str:
    """The store's cursor stream of a related object's incremental pull."""
    return f"related:{object_name}"


def fields_of(field_map: FieldMap, crm: str, object_name: str) -> tuple[str, ...]:
    """What a pull of `object_name` asks for: what leadsync always needs of it, what the
    mapping reads from it, and where it writes to it."""
    names = [*_ALWAYS.get(object_name, ()), *field_map.crm_fields(crm, object=object_name)]
    return tuple(dict.fromkeys(names))


def references(snapshot: Snapshot) -> dict[str, str]:
    """Related object -> the id of its record that a live lead record names."""
    if snapshot.deleted:
        return {}
    found = {}
    for object_name, name in traits_of(snapshot.crm).related_references.items():
        value = snapshot.raw.get(name)
        if not is_blank(value):
            found[object_name] = eighteen_character_id(str(value).strip())
    return found


def embedded(raw: Mapping[str, Any], object_name: str) -> dict[str, Any]:
    """The values of `object_name`'s record laid over a lead's `raw` (unprefixed)."""
    prefix = f"{object_name}."
    return {key[len(prefix) :]: value for key, value in raw.items() if key.startswith(prefix)}


def contact_of(snapshot: Snapshot) -> tuple[str, dict[str, Any]] | None:
    """(Contact id, its values) for a lead record whose live Contact leadsync has seen."""
    # Its id first: most lead records name no Contact (asked per record a sync merges),
    # and gathering the Contact's values walks every field of the record.
    contact_id = snapshot.raw.get(_CONTACT_ID)
    if not contact_id:
        return None
    values = embedded(snapshot.raw, CONTACT)
    if values.get(_DELETED):
        return None
    return str(contact_id), values


def with_related(snapshot: Snapshot, rows: Mapping[str, Related], field_map: FieldMap) -> Snapshot:
    """`snapshot` with the values of the related records it names (object -> record) laid
    over it, and the canonical fields bound to those objects read from them. A deleted
    related record lays blanks: what it held is no longer anybody's."""
    raw = {key: value for key, value in snapshot.raw.items() if not _prefixed(key, rows)}
    canonical = dict(snapshot.canonical)
    for object_name, row in rows.items():
        values = {name: None if row.deleted else value for name, value in row.fields.items()}
        raw.update({f"{object_name}.{name}": value for name, value in values.items()})
        raw[f"{object_name}.{_ID}"] = row.record_id
        raw[f"{object_name}.{_DELETED}"] = row.deleted
        for mapping in field_map.fields.values():
            binding = mapping.binding(snapshot.crm)
            if binding is None or binding.object != object_name:
                continue
            try:
                canonical[mapping.name] = mapping.read(snapshot.crm, values.get(binding.field))
            except TransformError as unreadable:
                # The field and why: never the value (logs carry no record contents).
                log.warning(
                    "%s %s: %s: %s",
                    object_name,
                    row.record_id,
                    unreadable.field,
                    unreadable.reason,
                )
    return replace(snapshot, raw=raw, canonical=canonical)


def _prefixed(key: str, objects: Iterable[str]) -> bool:
    return any(key.startswith(f"{name}.") for name in objects)


# ------------------------------------------------------------------------------------ store


def save_related(
    connection: Connection, rows: Sequence[Related], *, run_id: str, now: datetime
) -> None:
    """Upsert `rows` inside the caller's transaction. A row without a parent keeps the one
    the store holds: a related record's own pull does not know which lead names it."""
    if not rows:
        return
    held = _parents(connection, rows[0].crm, [row.record_id for row in rows])
    upsert(
        connection,
        t.related,
        [
            {
                "crm": row.crm,
                "record_id": row.record_id,
                "object_name": row.object_name,
                "modified_at": row.modified_at,
                "raw": dict(row.fields),
                "deleted": row.deleted,
                "parent_id": row.parent_id or held.get(row.record_id),
                "run_id": run_id,
                "saved_at": now,
                "email": _usable_email(row),
            }
            for row in {row.record_id: row for row in rows}.values()
        ],
    )


def _usable_email(row: Related) -> str | None:
    """The row's email, or None for one that is no address and that PostgreSQL would refuse
    (in the column, its index or a lookup), failing the page with it: longer than an address
    can be (RFC 5321; the index's row limit), or holding a NUL. The record is kept, nobody's
    person. Read as pulled (`Related.of`), and again as saved, the store's last guard."""
    if row.email is None:
        return None
    reasons = [f"its {reason}" for reason in t.unstorable({"email": row.email})]
    if len(row.email) > t.MAX_EMAIL_LENGTH:
        reasons.append(f"its email is longer than an address can be ({t.MAX_EMAIL_LENGTH})")
    if reasons:
        where = f"{row.crm} {row.object_name} {row.record_id}"
        log.warning("%s: %s; kept without it", where, "; ".join(reasons))
        return None
    return row.email


def _parents(connection: Connection, crm: str, record_ids: Sequence[str]) -> dict[str, str]:
    found = {}
    for chunk in chunks(record_ids):
        query = sa.select(t.related.c.record_id, t.related.c.parent_id).where(
            t.related.c.crm == crm, t.related.c.record_id.in_(chunk)
        )
        for record_id, parent_id in connection.execute(query):
            if parent_id is not None:
                found[record_id] = parent_id
    return found


class RelatedRecords:
    """The related records the store holds: read side (`save_related` writes them, inside
    the transaction that saves a page)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @retry_transient
    def get(self, crm: str, record_ids: Sequence[str]) -> dict[str, Related]:
        found: dict[str, Related] = {}
        with self._engine.connect() as connection:
            for chunk in chunks(record_ids):
                query = sa.select(t.related).where(
                    t.related.c.crm == crm, t.related.c.record_id.in_(chunk)
                )
                for row in connection.execute(query).mappings():
                    found[row["record_id"]] = _related(row)
        return found

    @retry_transient
    def known_stamps(self, crm: str, record_ids: Sequence[str]) -> dict[str, datetime]:
        """The stamp held for each of `record_ids` (a connector's KnownStamps)."""
        return {record_id: row.modified_at for record_id, row in self.get(crm, record_ids).items()}

    @retry_transient
    def people(
        self, crm: str, *, record_ids: Sequence[str] = (), emails: Sequence[str] = ()
    ) -> dict[str, Related]:
        """The live records of `crm` that are people of their own and no lead record names
        (no `parent_id`): those among `record_ids` (a Contact with no email too: another
        record may name it) and those holding one of `emails` (normalised), by record id."""
        found: dict[str, Related] = {}
        live = sa.and_(
            t.related.c.crm == crm,
            t.related.c.parent_id.is_(None),
            t.related.c.deleted.is_(False),
        )
        with self._engine.connect() as connection:
            for chunk in chunks(sorted(set(record_ids))):
                query = sa.select(t.related).where(live, t.related.c.record_id.in_(chunk))
                for row in connection.execute(query).mappings():
                    found[row["record_id"]] = _related(row)
            for chunk in chunks(sorted(set(emails))):
                # By email alone, the rest sorted out here: with the other conditions in the
                # query, SQLite searched by CRM or by parent_id, reading every record of the
                # CRM for each chunk; an email is on a record or two.
                query = (
                    sa.select(t.related)
                    .where(t.related.c.email.in_(chunk))
                    .order_by(t.related.c.crm, t.related.c.record_id)
                )
                for row in connection.execute(query).mappings():
                    if row["crm"] == crm and row["parent_id"] is None and not row["deleted"]:
                        found[row["record_id"]] = _related(row)
        return found

    @retry_transient
    def children(self, crm: str, object_name: str, parent_ids: Sequence[str]) -> list[Related]:
        """The records of `object_name` whose `parent_id` is one of `parent_ids` (the contact
        roles of some Contacts: `sync.deals`), deleted ones too."""
        found: list[Related] = []
        with self._engine.connect() as connection:
            for chunk in chunks(sorted(set(parent_ids))):
                query = sa.select(t.related).where(
                    t.related.c.crm == crm,
                    t.related.c.object_name == object_name,
                    t.related.c.parent_id.in_(chunk),
                )
                found += [_related(row) for row in connection.execute(query).mappings()]
        return found

    @retry_transient
    def of_object(self, crm: str, object_name: str) -> list[Related]:
        """Every record of `object_name` the store holds (for the reports)."""
        query = sa.select(t.related).where(
            t.related.c.crm == crm, t.related.c.object_name == object_name
        )
        with self._engine.connect() as connection:
            return [_related(row) for row in connection.execute(query).mappings()]


def _related(row: RowMapping) -> Related:
    return Related(
        row["crm"],
        row["object_name"],
        row["record_id"],
        row["modified_at"],
        row["raw"],
        row["deleted"],
        row["parent_id"],
        row["email"],
    )
