"""The small interface every connector implements, and the values that cross it.

    streams                                     -> the objects a pull can take: the lead
                                                   object first, then related ones (Salesforce
                                                   Contacts and Opportunities)
    people                                      -> those related objects whose records are
                                                   people of their own (a Salesforce Contact
                                                   that was never a lead), each with the field
                                                   holding the person's email
    contact_roles                               -> how opportunities are tied to such people
                                                   (Salesforce's OpportunityContactRole), or
                                                   None where the CRM has no such tie
    related_where(object_name, field, values,   -> the records of a related object whose
                  fields=...)                      `field` holds one of `values` (batched)
    pull(position, fields=..., started_at=...,  -> pages of changed records (of the lead
         stream=None)                              object, or of the related object `stream`),
                                                   each with the position to resume from once
                                                   it is committed
    pull_all(checkpoint, fields=...)            -> pages of every record (backfills), each with
                                                   a checkpoint to resume from
    count_all()                                 -> how many records a full pull will bring
    describe(object_name=None)                  -> fields with types, allowed values, writability
                                                   (of the lead object, or a related one)
    moves_back(field, held, wanted)             -> whether writing `wanted` over `held` moves
                                                   a stage the CRM orders back (HubSpot's
                                                   lifecycle stage), which it treats apart
    fetch(ids, fields=...)                      -> records as they are right now (batched)
    write(updates)                              -> one result per record (an update may
                                                   name a related object: a Contact)
    quota()                                     -> what the CRM says is left today
    traits                                      -> what differs between CRMs and needs no
                                                   call (CrmTraits): write batch size and
                                                   write-call estimates, the blank value,
                                                   which records are writable, how stages
                                                   order, what a lead record names. The
                                                   same figures, with no connection at
                                                   hand: `leadsync.connectors.traits`

A connector that leads can be handed off to (`HandoffTarget`, Salesforce) also has:

    upsert(records, key_field=..., assign=...)  -> creates or updates records by an external
                                                   id (leadsync's lead id): a create cut off
                                                   before leadsync recorded it is found again,
                                                   never made twice
    find_people(emails)                         -> the records that already hold these emails
                                                   (leads and contacts), so none is duplicated
    assignees()                                 -> the owner ids records may be routed to
    owners_of(record_ids)                       -> who owns these records now: the owner the
                                                   CRM's own assignment rules picked
    records_by_key(keys, key_field=...)         -> the live records the external id field
                                                   holds these keys in: whether a create cut
                                                   off before its answer landed
    owner_names(owner_ids)                      -> their names, for the reports (those it
                                                   cannot name, a user deleted, left out)
    owner_name_calls(owner_ids)                 -> the calls owner_names(owner_ids) makes
    handoff_calls(records=, lookups=, owners=, assigned=)
                                                -> the calls a handoff would cost, by kind

A connector that reads modification stamps alone, many ids a call (`StampReader`, Salesforce),
also has:

    stamps(ids)                                 -> the stamps of as many of `ids` as one call
                                                   takes: the check before a write reads
                                                   whole only the records whose stamp moved

`owner_names` and `owner_name_calls` alone are an `OwnerDirectory`: the engine names the
owners of SLA clocks by the CRM whose owner field the clocks read (and a plan counts its calls).

Paging, auth, retries and throttling live inside a connector; the engine sees only these.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from leadsync.connectors.quota import Quota

# Given record ids, the modification stamps the store already holds for them: records pulled
# again (a look-back overlap, a re-issued search) at a stamp already held are dropped.
KnownStamps = Callable[[Sequence[str]], Mapping[str, datetime]]


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where an incremental pull stands: the last (modification stamp, record id) taken.

    Ordered as the CRMs order changes: by stamp, then by id among records sharing a stamp.
    """

    modified_at: datetime
    record_id: str = ""

    def __post_init__(self) -> None:
        if self.modified_at.tzinfo is None:
            raise ValueError("a position's timestamp must be timezone-aware")

    def to_json(self) -> dict[str, str]:
        return {"modified_at": self.modified_at.isoformat(), "record_id": self.record_id}

    @classmethod
    def from_json(cls, data: Mapping[str, str]) -> Position:
        return cls(datetime.fromisoformat(data["modified_at"]), data.get("record_id", ""))


@dataclass(frozen=True, slots=True)
class CrmRecord:
    """One record as its CRM holds it: raw field values, untouched by any mapping."""

    crm: str
    id: str
    modified_at: datetime
    fields: Mapping[str, Any]
    deleted: bool = False

    @property
    def position(self) -> Position:
        return Position(self.modified_at, self.id)


@dataclass(frozen=True, slots=True)
class Page:
    records: tuple[CrmRecord, ...]
    # Incremental pulls: resume from here once this page is committed. Never past the moment
    # the pull started, so edits made during a run are pulled again by the next one.
    position: Position | None = None
    # Full pulls: an opaque token to resume after this page.
    checkpoint: str | None = None


class FieldType(StrEnum):
    STRING = "string"
    TEXT = "text"  # long text
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    ENUMERATION = "enumeration"
    ID = "id"
    REFERENCE = "reference"
    EMAIL = "email"
    PHONE = "phone"
    URL = "url"


@dataclass(frozen=True, slots=True)
class FieldInfo:
    name: str
    label: str
    type: FieldType
    writable: bool
    options: tuple[str, ...] = ()
    # True when only `options` may be written (a restricted picklist, a HubSpot enumeration).
    restricted: bool = False
    custom: bool = False
    required: bool = False
    max_length: int | None = None


@dataclass(frozen=True, slots=True)
class ObjectDescription:
    crm: str
    object_name: str
    fields: Mapping[str, FieldInfo]
    # Salesforce field names are case-insensitive, HubSpot property names are not.
    case_insensitive: bool = False

    def field(self, name: str) -> FieldInfo | None:
        found = self.fields.get(name)
        if found is None and self.case_insensitive:
            lowered = name.lower()
            found = next((f for n, f in self.fields.items() if n.lower() == lowered), None)
        return found


@dataclass(frozen=True, slots=True)
class RecordUpdate:
    """New values for one record. `current` holds what the CRM is known to hold for those
    fields, where a connector needs it (HubSpot's lifecycle stage cannot simply move back)."""

    record_id: str
    values: Mapping[str, Any]
    current: Mapping[str, Any] = field(default_factory=dict)
    # A related object's record (one of the connector's `streams`); None: the lead object.
    object_name: str | None = None


class WriteStatus(StrEnum):
    WRITTEN = "written"
    FAILED = "failed"  # for good: this record's data is refused; retrying will not help
    DEFERRED = "deferred"  # transient trouble outlasted the retries; try again next run


@dataclass(frozen=True, slots=True)
class WriteResult:
    record_id: str
    status: WriteStatus
    category: str = ""
    message: str = ""
    attempts: int = 1
    # The fields the CRM named as the cause (HubSpot's propertyName, Salesforce's `fields`).
    fields: tuple[str, ...] = ()
    # The record's modification stamp after this write, on the CRM's clock, where its answer
    # gives one (HubSpot's does): a version pulled later but stamped earlier predates it.
    modified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewRecord:
    """A record to create (or update, when the CRM already holds one under `key`)."""

    key: str  # the external id: leadsync's lead id
    values: Mapping[str, Any]
    # Who the record goes to (a user or a queue); None leaves it to the CRM.
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """What became of one NewRecord: written (created or found and updated), failed for good
    or deferred, as for writes."""

    key: str
    status: WriteStatus
    record_id: str = ""  # the CRM's id of the record, once written
    created: bool = False
    category: str = ""
    message: str = ""
    attempts: int = 1
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ContactRoles:
    """How a CRM ties opportunities to people records beyond a conversion: a related object
    (one of the `streams`) each of whose records names an opportunity and a person record,
    one of an opportunity's roles being its primary one. A person with an opportunity stands
    for what a lead converted with it holds: `converted_flag` true, `converted_reference`
    naming the opportunity (the fields of the lead object that say so)."""

    object_name: str
    opportunity_field: str
    person_field: str
    primary_field: str
    converted_flag: str
    converted_reference: str

    @property
    def fields(self) -> tuple[str, ...]:
        """What a pull of the roles asks for."""
        return (self.opportunity_field, self.person_field, self.primary_field)


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """A record that already holds a person's email: which object, which id."""

    object_name: str
    record_id: str


@dataclass(frozen=True, slots=True)
class WriteCalls:
    """An estimate of the calls some writes cost a CRM, with how they add up."""

    calls: int
    how: str


@dataclass(frozen=True, slots=True)
class CrmTraits:
    """What sets one CRM apart and is known without calling it: a connector's `traits`, and
    for plans and what-ifs that run from the store alone, `leadsync.connectors.traits`."""

    crm: str
    # Records per write call. The engine writes (and records) this many at a time, so a run
    # killed mid-write redoes at most one batch.
    write_batch: int
    # What one write call is called, for estimates ("collection update").
    write_call: str
    # The value that clears a field (HubSpot takes "", Salesforce null).
    blank: Any
    # Whose value wins when two people changed a field at the same moment: the lowest rank.
    tie_rank: int
    # A stage field the CRM orders, and its default order, earliest first: writing an earlier
    # stage over a later one takes a clear first, one `stage_clear` call per batch of them.
    stage_field: str | None = None
    stage_order: tuple[str, ...] = ()
    stage_clear: str = ""
    # A field of the lead object that, true, freezes the record: the CRM refuses any update
    # to it (a converted lead).
    frozen_flag: str | None = None
    # Related object -> the field of a lead record that names its record (the Contact and
    # Opportunity a converted lead became).
    related_references: Mapping[str, str] = field(default_factory=dict)
    # How the CRM ties opportunities to people records beyond a conversion, if it does.
    contact_roles: ContactRoles | None = None
    # Write error categories that say the record itself is gone (deleted, archived, merged
    # away), and those that say it is frozen since it was read (a lead converted): either way
    # the write was planned from a record that is no more, and the next pull tells what became
    # of it. Not a refusal of leadsync's values: nothing to try again.
    gone_errors: frozenset[str] = frozenset()
    frozen_errors: frozenset[str] = frozenset()
    # The field in which the CRM stamps when it created a record (no one can write it): when
    # a person entered the funnel, where a pull brought it (the mapping asks for it).
    created_field: str | None = None

    @property
    def pull_fields(self) -> tuple[str, ...]:
        """Lead-object fields every pull asks for, whatever the mapping says: the frozen flag
        and the references to related records."""
        flag = (self.frozen_flag,) if self.frozen_flag else ()
        return (*flag, *self.related_references.values())

    def is_writable(self, fields: Mapping[str, Any]) -> bool:
        """Whether the CRM takes updates to a lead record holding `fields`."""
        if self.frozen_flag is None:
            return True
        flag = fields.get(self.frozen_flag)
        # JSON gives a boolean; a Bulk query's CSV gives "true".
        frozen = flag is True or (isinstance(flag, str) and flag.strip().lower() == "true")
        return not frozen

    def takes_a_clear(self, update: RecordUpdate) -> bool:
        """Whether `update` moves the ordered stage back (by the default order), so that its
        write takes a clear first. A value the order does not list ranks first."""
        if self.stage_field is None:
            return False
        new = update.values.get(self.stage_field)
        old = update.current.get(self.stage_field)
        if _blank(new) or _blank(old):
            return False
        order = {stage: rank for rank, stage in enumerate(self.stage_order)}
        return order.get(str(new), 0) < order.get(str(old), 0)

    def write_calls(self, records: int, clears: int = 0) -> WriteCalls:
        """The calls writing `records` updates costs when nothing fails, `clears` of them
        moving the stage back (written in batches of their own: see `takes_a_clear`)."""
        batches = math.ceil(records / self.write_batch)
        how = f"{batches} {self.write_call}(s)"
        cleared = math.ceil(clears / self.write_batch) if self.stage_clear else 0
        if cleared:
            how += f", {cleared} {self.stage_clear}(s)"
        return WriteCalls(batches + cleared, how)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@dataclass(frozen=True, slots=True)
class Stamps:
    """One read of modification stamps: it read the first `read` of the ids it was given, and
    `modified_at` holds those of them that exist now (one read and absent: deleted, unknown)."""

    read: int
    modified_at: Mapping[str, datetime]


@runtime_checkable
class StampReader(Protocol):
    """A CRM that reads records' modification stamps alone, for many more ids a call than a
    read of whole records takes (Salesforce: Id and SystemModstamp of 2,000 ids a POST of
    sObject Collections). The read must be of the records themselves, never of a search
    index that lags behind edits (HubSpot's search: a contact edited seconds ago can still
    show its old stamp there, so HubSpot is no StampReader). The check before a write asks it
    which records changed since they were pulled, and reads only those whole."""

    def stamps(self, record_ids: Sequence[str], *, object_name: str | None = None) -> Stamps:
        """One call: the stamps of as many of `record_ids`, from the first, as it takes."""
        ...


@runtime_checkable
class OwnerDirectory(Protocol):
    """A CRM that names its owners (users, queues) by their ids, for the reports, and says
    what naming them costs (a plan counts it)."""

    crm: str

    def owner_names(self, owner_ids: Sequence[str]) -> dict[str, str]: ...

    def owner_name_calls(self, owner_ids: Sequence[str]) -> int: ...


@runtime_checkable
class HandoffTarget(Protocol):
    """What the handoff needs of the CRM sales work in, beside the Connector interface."""

    crm: str

    def upsert(
        self, records: Sequence[NewRecord], *, key_field: str, assign: bool = False
    ) -> list[UpsertResult]: ...

    def find_people(self, emails: Sequence[str]) -> dict[str, PersonRecord]: ...

    def assignees(self) -> set[str]: ...

    def owners_of(self, record_ids: Sequence[str]) -> dict[str, str]: ...

    def records_by_key(self, keys: Sequence[str], *, key_field: str) -> dict[str, str]: ...

    def owner_names(self, owner_ids: Sequence[str]) -> dict[str, str]: ...

    def owner_name_calls(self, owner_ids: Sequence[str]) -> int: ...

    def handoff_calls(
        self, *, records: int, lookups: int, owners: int, assigned: int = 0
    ) -> dict[str, int]: ...


class Connector(Protocol):
    crm: str
    # The objects `pull` takes: the lead object first, then the related ones.
    streams: tuple[str, ...]
    # Related object -> the field holding the email of the person each of its records is:
    # such a record may be a person's record in this CRM without any lead record naming it.
    people: Mapping[str, str]
    # How opportunities are tied to those people, if the CRM ties them.
    contact_roles: ContactRoles | None

    def pull(
        self,
        position: Position | None,
        *,
        fields: Sequence[str],
        started_at: datetime,
        known: KnownStamps | None = None,
        stream: str | None = None,
    ) -> Iterator[Page]: ...

    def pull_all(
        self, checkpoint: str | None = None, *, fields: Sequence[str]
    ) -> Iterator[Page]: ...

    def count_all(self) -> int | None: ...

    def describe(self, object_name: str | None = None) -> ObjectDescription: ...

    def moves_back(self, field: str, held: Any, wanted: Any) -> bool: ...

    def fetch(
        self, record_ids: Sequence[str], *, fields: Sequence[str], object_name: str | None = None
    ) -> dict[str, CrmRecord]: ...

    def related_where(
        self, object_name: str, field: str, values: Sequence[str], *, fields: Sequence[str]
    ) -> list[CrmRecord]: ...

    def write(self, updates: Sequence[RecordUpdate]) -> list[WriteResult]: ...

    def quota(self) -> Quota: ...

    @property
    def traits(self) -> CrmTraits: ...

    def close(self) -> None: ...


def drop_known(
    records: Sequence[CrmRecord], known: KnownStamps | None, *, ties_are_versions: bool = False
) -> list[CrmRecord]:
    """`records` less those the store already holds at the same modification stamp or a
    later one. A later one happens because HubSpot's search lags its records: until it has
    caught up, it serves the version before an edit that a consistent read (a batch read
    before a write, a backfill's list) already brought into the store. Taking that stale
    version would put older values over newer ones.

    With `ties_are_versions` (stamps of whole seconds: Salesforce), a record at the very
    stamp the store holds is kept: a second save within that second, after the pull that
    read the first, carries the same stamp. The store tells a re-read of the same content
    from a new version by its digest."""
    if known is None or not records:
        return list(records)
    held = known([record.id for record in records])
    if ties_are_versions:
        return [
            record
            for record in records
            if (stored := held.get(record.id)) is None or stored <= record.modified_at
        ]
    return [
        record
        for record in records
        if (stored := held.get(record.id)) is None or stored < record.modified_at
    ]


def merge_by_id(updates: Sequence[RecordUpdate]) -> dict[str, RecordUpdate]:
    """One update per record, later values winning: neither CRM takes a record twice in one
    request as two updates (HubSpot refuses such a batch; Salesforce's save treats the second
    apart), and the other records of the request must not pay for it."""
    merged: dict[str, RecordUpdate] = {}
    for update in updates:
        earlier = merged.get(update.record_id)
        if earlier is None:
            merged[update.record_id] = update
        else:
            merged[update.record_id] = RecordUpdate(
                update.record_id,
                {**earlier.values, **update.values},
                {**earlier.current, **update.current},
                update.object_name,
            )
    return merged


def utc(moment: datetime) -> datetime:
    """`moment` in UTC; naive datetimes are refused rather than guessed at."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: pass a timezone-aware one")
    return moment.astimezone(UTC)
