"""The Salesforce connector: one object's records (leads by default) through simple-salesforce.

We log in ourselves (SOAP username + password + token, OAuth JWT bearer, or a given session id)
and hand simple-salesforce only the session, so it never logs in by itself: its own re-login
loops without limit (simple-salesforce#804). An expired session is logged in again once per
call, then the call replays; a second expiry in a row is an AuthenticationError.

Every call goes: quota check, retries of transient failures (the one policy in retry.py), a
concurrency slot per attempt, and one translation into the exception tree of errors.py. The
translation sits on the HTTP session as a response hook, so it sees every answer (logins, REST
and Bulk alike) with its headers: `Retry-After`, and `Sforce-Limit-Info` for the quota figures,
which simple-salesforce's exceptions and its `api_usage` would partly hide.

Pulls read SOQL through `queryAll` ordered by (SystemModstamp, Id), page by page; above a size
threshold (a COUNT() first) they read a Bulk API 2.0 query job instead, yielding the very same
records. Writes send `composite/sobjects` collections, or a Bulk API 2.0 update job above a
threshold, and retry locked rows.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import Any, TypeVar
from urllib.parse import quote_plus, urlsplit

import jwt
import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.bulk2 import _Bulk2Client
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceOperationError,
)
from simple_salesforce.format import format_soql
from simple_salesforce.login import SalesforceLogin

from leadsync.connectors.base import (
    ContactRoles,
    CrmRecord,
    CrmTraits,
    FieldInfo,
    FieldType,
    KnownStamps,
    NewRecord,
    ObjectDescription,
    Page,
    PersonRecord,
    Position,
    RecordUpdate,
    Stamps,
    UpsertResult,
    WriteResult,
    WriteStatus,
    drop_known,
    merge_by_id,
    utc,
)
from leadsync.connectors.classify import (
    classify,
    connection_failure,
    parse_retry_after,
    record_error_is_retriable,
)
from leadsync.connectors.errors import (
    AuthenticationError,
    ConnectorError,
    QuotaExhaustedError,
    QuotaReserveReachedError,
    RequestRejectedError,
    ServerError,
    SessionExpiredError,
)
from leadsync.connectors.quota import Quota, QuotaTracker
from leadsync.connectors.retry import call_with_retry, retry_records
from leadsync.connectors.salesforce_bulk import (
    BulkJobs,
    RecordOutcome,
    iso_utc,
    typed_value,
)
from leadsync.connectors.salesforce_routing import RoutingSession, TimeoutSession, needs_routing
from leadsync.connectors.settings import SalesforceConnection
from leadsync.connectors.throttle import ConcurrencyLimiter
from leadsync.connectors.traits import SALESFORCE
from leadsync.connectors.writeback import SALESFORCE_WRITEBACK_FIELDS, FieldSpec
from leadsync.secrets import Secret, redact

T = TypeVar("T")

log = logging.getLogger("leadsync.connectors.salesforce")

CRM = "salesforce"
# Every pull selects these, whatever the caller asks for: the cursor and the delete flag.
SYSTEM_FIELDS = ("Id", "SystemModstamp", "IsDeleted")
# A lost cursor restarts the query; this many losses in a row with no record read in between
# mean something is wrong beyond a busy org closing old cursors.
MAX_CURSOR_LOSSES = 3
# Errors that must stop the run rather than defer a write: no later call can succeed.
RUN_STOPPERS = (AuthenticationError, QuotaExhaustedError, QuotaReserveReachedError)
# A request Salesforce could not parse: a value whose JSON does not fit its field's type.
UNPARSEABLE = "JSON_PARSER_ERROR"

_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A record id: 15 characters, or 18 with the case-safe suffix. Salesforce refuses a query whose
# Id filter holds anything else (INVALID_QUERY_FILTER_OPERATOR, "invalid ID field").
_RECORD_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_LOGIN_PATHS = ("/services/Soap/u/", "/services/oauth2/token")
_SOAP_FAULT = re.compile(r"<(?:\w+:)?exceptionCode>(.*?)</", re.DOTALL)
_SOAP_MESSAGE = re.compile(r"<(?:\w+:)?exceptionMessage>(.*?)</", re.DOTALL)
_TYPES: dict[str, FieldType] = {
    "string": FieldType.STRING,
    "email": FieldType.EMAIL,
    "phone": FieldType.PHONE,
    "url": FieldType.URL,
    "picklist": FieldType.ENUMERATION,
    "multipicklist": FieldType.ENUMERATION,
    "int": FieldType.INTEGER,
    "double": FieldType.NUMBER,
    "currency": FieldType.NUMBER,
    "percent": FieldType.NUMBER,
    "boolean": FieldType.BOOLEAN,
    "date": FieldType.DATE,
    "datetime": FieldType.DATETIME,
    "id": FieldType.ID,
    "reference": FieldType.REFERENCE,
}
# Text areas up to this length are ordinary strings (filterable, sortable); longer ones are not.
_LONG_TEXT = 255


# The REST API runs the org's active lead assignment rule on every create and update unless
# told not to ("If the header is not provided in the request, the default value is TRUE"):
# leadsync's writes must never hand a lead to another owner.
KEEP_OWNERS = {"Sforce-Auto-Assign": "FALSE"}

# The related objects whose records are people, with the field holding their email.
_PERSON_EMAIL = {"contact": "Email"}


# Who already holds an email: contacts first, so an open lead holding the same one wins.
_PEOPLE_QUERIES = (
    ("Contact", "SELECT Id, Email FROM Contact WHERE Email IN {}"),
    ("Lead", "SELECT Id, Email FROM Lead WHERE Email IN {} AND IsConverted = false"),
)
# Who may own a record: active users and queues.
_OWNER_QUERIES = (
    "SELECT Id FROM User WHERE IsActive = true",
    "SELECT Id FROM Group WHERE Type = 'Queue'",
)

# The names of owners: users and queues (a queue is a Group), each asked only the ids of its
# key prefix (every Salesforce id opens with its object's): a record's owner is one or the
# other, and the calls are then known before the answers (`owner_name_calls`).
_OWNER_NAME_QUERIES = (
    ("User", "005", "SELECT Id, Name FROM User WHERE Id IN {}"),
    ("Group", "00G", "SELECT Id, Name FROM Group WHERE Id IN {}"),
)

# Ids per SOQL `IN (...)` read: the size of a collection write, so one read per write batch.
COLLECTION_IDS = 200
# A query travels in the URI, and Salesforce refuses a request whose URI and headers pass
# 16,384 bytes (414 or 431, Salesforce Developer Limits, "API Request Limits"). The values of
# one `IN (...)` list take at most this many of them, URL-encoded, leaving room for the rest of
# the query, the path and the headers: 200 emails of 80 characters would not fit.
IN_LIST_URI_BYTES = 12_000
# Ids one read of sObject Collections takes in a POST body: "up to 2,000 records of the same
# object type" (REST API Developer Guide, "Get Records With a Request Body Using sObject
# Collections"), one API call, where a SOQL `IN (...)` list in a GET query's URI holds ~430.
RETRIEVE_IDS = 2000


class SalesforceConnector:
    """The `Connector` for one Salesforce object (`connection.object_name`, Lead by default)
    and the objects related to it that it follows (`connection.related_objects`: the Contacts
    and Opportunities converted leads become)."""

    crm = CRM

    def __init__(
        self,
        connection: SalesforceConnection,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not _FIELD_NAME.match(connection.object_name):
            raise ValueError(f"not a Salesforce object name: {connection.object_name!r}")
        self.connection = connection
        # Salesforce's traits, written in collections of this connection's size.
        self.traits: CrmTraits = replace(SALESFORCE, write_batch=connection.collection_size)
        self._quota = QuotaTracker(CRM, reserve=connection.daily_reserve)
        self._limiter = ConcurrencyLimiter(connection.max_concurrent_requests)
        self._secrets: list[Secret | str | None] = [
            connection.password,
            connection.security_token,
            connection.session_id,
        ]
        self._http = _http_session(connection)
        self._http.hooks["response"].append(self._inspect_answer)
        self._login_lock = threading.Lock()
        self._client: Salesforce | None = None
        self._logins = 0  # which login the current client comes from
        self._description: ObjectDescription | None = None
        self._related_descriptions: dict[str, ObjectDescription] = {}
        self.streams: tuple[str, ...] = (connection.object_name, *connection.related_objects)
        # Contacts created directly (by sales, an import) are people no lead ever named.
        self.people: Mapping[str, str] = {
            name: _PERSON_EMAIL[name.lower()]
            for name in connection.related_objects
            if name.lower() in _PERSON_EMAIL
        }
        # Followed only with the people they tie opportunities to.
        self.contact_roles: ContactRoles | None = None
        roles = SALESFORCE.contact_roles
        followed = {name.lower() for name in connection.related_objects}
        if self.people and roles is not None and roles.object_name.lower() in followed:
            self.contact_roles = roles
        self._bulk = BulkJobs(
            self._bulk_call,
            poll_seconds=connection.bulk_poll_seconds,
            sleep=connection.retry.sleep,
            clock=clock or (lambda: datetime.now(UTC)),
            job_timeout=connection.bulk_job_timeout,
            page_size=connection.bulk_page_size,
        )

    # ---------------------------------------------------------------- the Connector interface

    def pull(
        self,
        position: Position | None,
        *,
        fields: Sequence[str],
        started_at: datetime,
        known: KnownStamps | None = None,
        stream: str | None = None,
    ) -> Iterator[Page]:
        """Pages of the records changed since `position` (deleted ones flagged), in
        (SystemModstamp, Id) order, less those `known` says the store holds at a later stamp
        (a stamp of whole seconds does not tell two saves within one second apart).
        Of the lead object, or of `stream`, one of the related objects (`streams`).

        Records within `connection.lookback` before `position` are read again, for changes
        that Salesforce commits with an earlier stamp than ones already read. Each page's
        position is its last record's, but never past `started_at`.
        """
        cap = Position(utc(started_at), "")
        scan = _Scan(self._stream_object(stream), _select_list(fields), tuple(fields))
        after = None if position is None else _look_back(position, self.connection.lookback)
        self._gate()
        for records in self._read(scan.changes(after), lambda last: scan.changes(last.position)):
            if records:
                fresh = drop_known(records, known, ties_are_versions=True)
                yield Page(tuple(fresh), position=min(records[-1].position, cap))

    def pull_all(self, checkpoint: str | None = None, *, fields: Sequence[str]) -> Iterator[Page]:
        """Pages of every live record in Id order, after the record `checkpoint` names."""
        scan = _Scan(self.connection.object_name, _select_list(fields), tuple(fields))
        self._gate()
        for records in self._read(scan.everything(checkpoint), scan.everything_after):
            if records:
                yield Page(tuple(records), checkpoint=records[-1].id)

    def count_all(self) -> int | None:
        """How many live records the object holds (one COUNT() query), for a backfill's
        progress."""
        scan = _Scan(self.connection.object_name, ("Id",), ("Id",))
        answer = self._call("count records", _query_with(scan.everything(None).count_soql))
        return int(answer["totalSize"])

    def _stream_object(self, stream: str | None) -> str:
        if stream is None:
            return self.connection.object_name
        for name in self.streams:
            if name.lower() == stream.lower():
                return name
        raise ValueError(f"Salesforce follows no object {stream!r}; it follows {self.streams}")

    def describe(self, object_name: str | None = None) -> ObjectDescription:
        """The object's fields: types, picklist values, writability (from `describe`); of
        another object when `object_name` says so (the opportunities leads become)."""
        name = object_name or self.connection.object_name
        if not _FIELD_NAME.match(name):
            raise ValueError(f"not a Salesforce object name: {name!r}")
        body = self._call(f"describe {name}", lambda sf: _rest(sf, f"sobjects/{name}/describe"))
        description = ObjectDescription(
            CRM,
            str(body["name"]),
            {str(spec["name"]): _field_info(spec) for spec in body["fields"]},
            case_insensitive=True,
        )
        if name.lower() == self.connection.object_name.lower():
            self._description = description
        else:
            self._related_descriptions[name.lower()] = description
        return description

    def _description_of(self, object_name: str) -> ObjectDescription:
        """The object's describe, asked for once per connector."""
        if object_name.lower() == self.connection.object_name.lower():
            return self._description or self.describe()
        known = self._related_descriptions.get(object_name.lower())
        return known or self.describe(object_name)

    def moves_back(self, field: str, held: Any, wanted: Any) -> bool:
        """Salesforce enforces no order on a picklist: no write moves a stage "back" there."""
        return False

    @staticmethod
    def default_moves_back(field: str, held: Any, wanted: Any) -> bool:
        """`moves_back` with no org at hand: the same, Salesforce keeps no stage order."""
        return False

    def missing_writeback_fields(
        self,
        fields: Sequence[FieldSpec] = SALESFORCE_WRITEBACK_FIELDS,
        *,
        object_name: str | None = None,
    ) -> list[FieldSpec]:
        """The write-back fields the object (or `object_name`: the Contact converted leads
        become) lacks. Salesforce custom fields cannot be created through the REST API: an
        admin creates these (`FieldSpec.admin_instruction()`)."""
        description = self.describe(object_name)
        return [spec for spec in fields if description.field(spec.name) is None]

    def write(self, updates: Sequence[RecordUpdate]) -> list[WriteResult]:
        """One result per update, in order; updates of one record are sent as one (later
        values win) and share its result. Locked rows are retried within the retry policy's
        bounds, then DEFERRED; refused ones are FAILED with the CRM's error code.

        Updates of a related object (a Contact) go in the same collections as the leads':
        `composite/sobjects` takes records of several types in one request. A Bulk job
        takes one object, so only the lead object's updates go that way."""
        if not updates:
            return []
        self._gate()
        merged = list(merge_by_id(updates).values())
        own = [u for u in merged if self._is_lead_object(u.object_name)]
        results = []
        if len(own) > self.connection.bulk_write_threshold:
            results = self._write_rounds(own, self._bulk.update, "Bulk update")
            merged = [u for u in merged if not self._is_lead_object(u.object_name)]
        # One object's records together: Salesforce saves a collection a run of one type at
        # a time, at most ten runs a request ("Cannot have more than 10 chunks").
        merged.sort(key=lambda u: "" if self._is_lead_object(u.object_name) else str(u.object_name))
        size = self.connection.collection_size
        for start in range(0, len(merged), size):
            chunk = merged[start : start + size]
            results.extend(self._write_rounds(chunk, self._send_collection, "collection update"))
        by_id = {result.record_id: result for result in results}
        return [by_id[update.record_id] for update in updates]

    def _is_lead_object(self, object_name: str | None) -> bool:
        return object_name is None or object_name.lower() == self.connection.object_name.lower()

    def upsert(
        self, records: Sequence[NewRecord], *, key_field: str, assign: bool = False
    ) -> list[UpsertResult]:
        """Create each record, or update the one whose external id field `key_field` holds
        its key: `composite/sobjects/{object}/{key_field}`, one call per 200 records, each
        record on its own (allOrNone false). With `assign`, the org's active assignment rule
        picks the owner (`Sforce-Auto-Assign: TRUE`); without it the records keep the OwnerId
        they carry. One result per record, in order (records sharing a key share one)."""
        if not records:
            return []
        if not _FIELD_NAME.match(key_field):
            raise ValueError(f"not a Salesforce field name: {key_field!r}")
        self._gate()
        merged: dict[str, NewRecord] = {}
        for record in records:
            earlier = merged.get(record.key)
            values = {**earlier.values, **record.values} if earlier else record.values
            owner = record.owner or (earlier.owner if earlier else None)
            merged[record.key] = NewRecord(record.key, values, owner)
        unique = list(merged.values())
        size = self.connection.collection_size
        results: list[UpsertResult] = []
        for start in range(0, len(unique), size):
            chunk = unique[start : start + size]
            results.extend(self._upsert_rounds(chunk, key_field, assign))
        by_key = {result.key: result for result in results}
        return [by_key[record.key] for record in records]

    def find_people(self, emails: Sequence[str]) -> dict[str, PersonRecord]:
        """Lower-cased email -> the open lead, else the contact, that holds it (SOQL compares
        emails case-insensitively), as many emails a query of each object as its URI holds
        (about 290 of 40 characters; capped at 200, a handoff of 1,501 leads took 16 queries
        where 12 do), every page of the answer read."""
        wanted = sorted({email.strip().lower() for email in emails if email and email.strip()})
        found: dict[str, PersonRecord] = {}
        for object_name, query in _PEOPLE_QUERIES:
            for chunk in in_lists(wanted, most=None):
                soql = format_soql(query, chunk)
                answer = self._call(
                    f"find {len(chunk)} {object_name} emails", _query_all_with(soql)
                )
                for row in answer.get("records", []):
                    email = str(row.get("Email") or "").strip().lower()
                    if email:
                        found[email] = PersonRecord(object_name, str(row["Id"]))
        return found

    def assignees(self) -> set[str]:
        """The ids records may be owned by: active users and queues (18-character ids)."""
        ids: set[str] = set()
        for soql in _OWNER_QUERIES:
            answer = self._call("list owners", _query_all_with(soql))
            ids.update(str(row["Id"]) for row in answer.get("records", []))
        return ids

    def handoff_calls(
        self, *, records: int, lookups: int, owners: int, assigned: int = 0
    ) -> dict[str, int]:
        """The calls handing off `records` leads costs, when nothing fails: the emails of
        `lookups` of them looked for among contacts and open leads, the upserts, the owners
        of the `assigned` ones the org's assignment rule picks read back, and the names of
        `owners` owners (users, then queues: at most both)."""
        per_query = math.ceil(lookups / COLLECTION_IDS)
        named = math.ceil(owners / COLLECTION_IDS)
        return {
            "find people": len(_PEOPLE_QUERIES) * per_query,
            "upsert": math.ceil(records / self.connection.collection_size),
            "owners read": math.ceil(assigned / COLLECTION_IDS),
            "owner names": len(_OWNER_NAME_QUERIES) * named,
        }

    def owners_of(self, record_ids: Sequence[str]) -> dict[str, str]:
        """Record id -> its OwnerId now, of the lead records among `record_ids`, 200 ids a
        query: an upsert's answer names no owner, and with `Sforce-Auto-Assign` the org's
        assignment rule picked one leadsync did not send."""
        records = self.fetch(sorted(set(record_ids)), fields=["OwnerId"])
        return {
            record_id: str(record.fields["OwnerId"])
            for record_id, record in records.items()
            if record.fields.get("OwnerId")
        }

    def records_by_key(self, keys: Sequence[str], *, key_field: str) -> dict[str, str]:
        """Key -> the id of the live record whose external id field `key_field` holds it, of
        `keys`, 200 keys a query: which creates a kill cut off before their answer landed
        (`upsert` keys each record so). A deleted record is not one."""
        found = self.related_where(self.connection.object_name, key_field, keys, fields=[key_field])
        return {
            str(record.fields[key_field]): record.id
            for record in found
            if record.fields.get(key_field)
        }

    def owner_names(self, owner_ids: Sequence[str]) -> dict[str, str]:
        """Owner id -> name, of the users and queues among `owner_ids` (200 a query of each,
        each asked the ids of its key prefix). A value that is no user's or queue's id (an
        owner field a mapping reads from text) names nobody and is not sent: one would fail
        the whole query, and a long one its URI."""
        names: dict[str, str] = {}
        for (object_name, query), owners in _owners_by_object(owner_ids):
            for start in range(0, len(owners), COLLECTION_IDS):
                chunk = owners[start : start + COLLECTION_IDS]
                soql = format_soql(query, chunk)
                answer = self._call(f"name {len(chunk)} {object_name} owners", _query_with(soql))
                for row in answer.get("records", []):
                    if row.get("Name"):
                        names[str(row["Id"])] = str(row["Name"])
        return names

    def owner_name_calls(self, owner_ids: Sequence[str]) -> int:
        """The calls `owner_names(owner_ids)` makes: what a plan counts for it."""
        return sum(
            math.ceil(len(owners) / COLLECTION_IDS) for _, owners in _owners_by_object(owner_ids)
        )

    def fetch(
        self, record_ids: Sequence[str], *, fields: Sequence[str], object_name: str | None = None
    ) -> dict[str, CrmRecord]:
        """The records as they are now (absent: deleted or unknown), 200 ids a query: what the
        engine checks just before writing, and what `revert` compares with. `object_name`
        reads another object (the opportunities converted leads became)."""
        name = object_name or self.connection.object_name
        if not _FIELD_NAME.match(name):
            raise ValueError(f"not a Salesforce object name: {name!r}")
        found: dict[str, CrmRecord] = {}
        for start in range(0, len(record_ids), COLLECTION_IDS):
            chunk = record_ids[start : start + COLLECTION_IDS]
            query = _Scan(name, _select_list(fields), tuple(fields)).by_id(chunk)
            answer = self._call(f"read {len(chunk)} records", _query_with(query.soql))
            for row in answer.get("records", []):
                record = query.record(row)
                found[record.id] = record
        return found

    def stamps(self, record_ids: Sequence[str], *, object_name: str | None = None) -> Stamps:
        """The SystemModstamp of the first 2,000 of `record_ids` (RETRIEVE_IDS), one POST of
        sObject Collections: the check before a write reads whole only the records whose
        stamp moved since they were pulled. It reads the records themselves, as a SOQL by Id
        does (no search index that lags behind edits); an id that is no live record (deleted,
        unknown) answers null and is left out, as from a fetch."""
        name = object_name or self.connection.object_name
        if not _FIELD_NAME.match(name):
            raise ValueError(f"not a Salesforce object name: {name!r}")
        chunk = list(record_ids[:RETRIEVE_IDS])
        if not chunk:
            return Stamps(0, {})
        body = {"ids": chunk, "fields": ["Id", "SystemModstamp"]}
        answers = self._call(
            f"read the stamps of {len(chunk)} {name} records",
            lambda sf: _rest(sf, f"composite/sobjects/{name}", method="POST", json=body),
        )
        if not isinstance(answers, list) or len(answers) != len(chunk):
            raise ServerError(
                f"a read of {len(chunk)} records answered {len(answers or [])} entries", crm=CRM
            )
        found: dict[str, datetime] = {}
        for record_id, answer in zip(chunk, answers, strict=True):
            if isinstance(answer, Mapping) and answer.get("SystemModstamp"):
                found[record_id] = _stamp(str(answer["SystemModstamp"]))
        return Stamps(len(chunk), found)

    def related_where(
        self, object_name: str, field: str, values: Sequence[str], *, fields: Sequence[str]
    ) -> list[CrmRecord]:
        """The live records of `object_name` whose `field` holds one of `values` (the contact
        roles of some opportunities, say), 200 values a query."""
        for name in (object_name, field):
            if not _FIELD_NAME.match(name):
                raise ValueError(f"not a Salesforce name: {name!r}")
        scan = _Scan(object_name, _select_list(fields), tuple(fields))
        wanted = sorted(set(values))
        found: list[CrmRecord] = []
        for start in range(0, len(wanted), COLLECTION_IDS):
            chunk = wanted[start : start + COLLECTION_IDS]
            query = scan.where_in(field, chunk)
            answer = self._call(f"read {object_name} of {len(chunk)}", _query_with(query.soql))
            found += [query.record(row) for row in answer.get("records", [])]
        return found

    def quota(self) -> Quota:
        """The daily API figures Salesforce last reported (`Sforce-Limit-Info`)."""
        return self._quota.quota

    def refresh_quota(self) -> Quota:
        """Ask `/limits` for today's figures now."""
        limits = self._call("read limits", lambda sf: _rest(sf, "limits"))
        daily = limits["DailyApiRequests"]
        self._quota.update(daily_limit=int(daily["Max"]), daily_remaining=int(daily["Remaining"]))
        return self._quota.quota

    def close(self) -> None:
        self._http.close()

    # ---------------------------------------------------------------- calls

    def _gate(self) -> None:
        """Before new work: learn today's figures if none are known yet, then keep the
        reserve (QuotaReserveReachedError)."""
        if self._quota.quota.daily_remaining is None:
            self.refresh_quota()
        self._quota.check()

    def _call(self, description: str, operation: Callable[[Salesforce], T]) -> T:
        """One API call with the current session: quota check, retries, one re-login."""
        self._quota.check()
        client, login = self._session()
        try:
            return self._retried(description, operation, client)
        except SessionExpiredError:
            client = self._log_in_again(login)
        try:
            return self._retried(description, operation, client)
        except SessionExpiredError:
            raise AuthenticationError(
                "the Salesforce session expired again right after a new login", crm=CRM
            ) from None

    def _bulk_call(self, description: str, step: Callable[[_Bulk2Client], T]) -> T:
        # A Bulk client is built per call from the current session: simple-salesforce's
        # `sf.bulk2` handlers capture the session id and would outlive a re-login.
        return self._call(description, lambda sf: step(self._bulk_client(sf)))

    def _bulk_client(self, sf: Salesforce) -> _Bulk2Client:
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {sf.session_id}",
            "X-PrettyPrint": "1",
        }
        return _Bulk2Client(self.connection.object_name, sf.bulk2_url, headers, self._http)

    def _retried(
        self, description: str, operation: Callable[[Salesforce], T], client: Salesforce
    ) -> T:
        return call_with_retry(
            self.connection.retry,
            f"Salesforce {description}",
            lambda: self._attempt(description, lambda: operation(client)),
        )

    def _attempt(self, description: str, operation: Callable[[], T]) -> T:
        # The slot is held per attempt, not across the backoff between attempts.
        with self._limiter.slot():
            log.debug("Salesforce %s", description)
            try:
                return operation()
            except ConnectorError:
                raise
            except SalesforceAuthenticationFailed as refused:
                raise AuthenticationError(
                    self._redacted(f"login refused: {refused.code}: {refused.auth_message}"),
                    crm=CRM,
                ) from None
            except SalesforceError as error:
                raise self._classified(error) from None
            except SalesforceOperationError as error:
                raise ConnectorError(
                    self._redacted(str(error)), crm=CRM, category="bulk_error"
                ) from None
            except requests.exceptions.JSONDecodeError:
                raise ServerError("an unreadable answer (not JSON)", crm=CRM) from None
            except requests.RequestException as error:
                raise connection_failure(CRM, error, self._url(), description) from None

    def _url(self) -> str:
        """Where requests go: the instance, else the login domain."""
        return self.connection.instance_url or f"https://{self.connection.domain}.salesforce.com"

    def _classified(self, error: SalesforceError) -> ConnectorError:
        """An answer simple-salesforce raised for without our hook having classified it
        (statuses 300-399)."""
        code, message = _error_details(error.content)
        return classify(CRM, error.status, code=code, message=self._redacted(message))

    def _inspect_answer(self, response: requests.Response, *_: Any, **__: Any) -> Any:
        """The session's response hook: every answer's quota figures, and every error answer
        turned into the exception the classification table names, before the client library
        sees it."""
        self._quota.observe(response.headers)
        if response.status_code < 400:
            return response
        raise self._answer_error(response)

    def _answer_error(self, response: requests.Response) -> ConnectorError:
        status = response.status_code
        code, message, refused_login = _answer_details(response)
        message = self._redacted(message)
        if refused_login and urlsplit(response.url).path.startswith(_LOGIN_PATHS):
            return AuthenticationError(
                f"login refused: {message}", crm=CRM, status=status, code=code
            )
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return classify(CRM, status, code=code, message=message, retry_after=retry_after)

    def _redacted(self, text: str) -> str:
        client = self._client
        session = client.session_id if client is not None else None
        return redact(text, [*self._secrets, session])

    # ---------------------------------------------------------------- authentication

    def _session(self) -> tuple[Salesforce, int]:
        with self._login_lock:
            if self._client is None:
                self._install(self._log_in())
            assert self._client is not None
            return self._client, self._logins

    def _log_in_again(self, failed_login: int) -> Salesforce:
        with self._login_lock:
            if self._logins == failed_login:  # no other call has logged in again meanwhile
                if self.connection.auth_method == "session":
                    raise AuthenticationError(
                        "the Salesforce session expired; with session-id authentication there "
                        "are no credentials to log in again with",
                        crm=CRM,
                    )
                log.warning("Salesforce session expired; logging in again")
                self._install(self._log_in())
            assert self._client is not None
            return self._client

    def _install(self, session: tuple[str, str]) -> None:
        session_id, instance = session
        self._client = Salesforce(
            session_id=session_id,
            instance=instance,
            session=self._http,
            version=self.connection.api_version,
        )
        self._logins += 1

    def _log_in(self) -> tuple[str, str]:
        """(session id, instance host) from the configured credentials."""
        connection = self.connection
        method = connection.auth_method
        if method == "session":
            return _given_session(connection)
        session = call_with_retry(
            connection.retry,
            "Salesforce login",
            lambda: self._attempt(
                "login", self._jwt_login if method == "jwt" else self._soap_login
            ),
        )
        # Not the username: it is a person's email address, and logs carry no personal data.
        log.info("logged in to Salesforce (%s) at %s", method, session[1])
        return session

    def _soap_login(self) -> tuple[str, str]:
        connection = self.connection
        password = connection.password.reveal() if connection.password else None
        token = connection.security_token.reveal() if connection.security_token else None
        session_id, instance = SalesforceLogin(
            username=connection.username,
            password=password,
            security_token=token,
            sf_version=connection.api_version,
            domain=connection.domain,
            session=self._http,
        )
        return str(session_id), str(instance)

    def _jwt_login(self) -> tuple[str, str]:
        connection = self.connection
        key_file = connection.private_key_file
        if key_file is None or not key_file.is_file():
            raise AuthenticationError(f"private key file {key_file} not found", crm=CRM)
        try:
            session_id, instance = SalesforceLogin(
                username=connection.username,
                consumer_key=connection.consumer_key,
                privatekey_file=str(key_file),
                domain=connection.domain,
                session=self._http,
            )
        except (ConnectorError, requests.RequestException):
            raise
        except (ValueError, TypeError, jwt.PyJWTError):
            # Said without the exception: its text could quote the key.
            raise AuthenticationError(
                f"the private key in {key_file} cannot sign a JWT (RS256)", crm=CRM
            ) from None
        return str(session_id), str(instance)

    # ---------------------------------------------------------------- reading

    def _read(
        self, query: _Query, restart: Callable[[CrmRecord], _Query]
    ) -> Iterator[list[CrmRecord]]:
        """The query's records, chunk by chunk: Bulk above the threshold, REST otherwise."""
        count = self._call(
            f"count {query.object_name}",
            lambda sf: sf.query(query.count_soql, include_deleted=query.include_deleted),
        )
        if int(count["totalSize"]) > self.connection.bulk_query_threshold:
            yield from self._read_bulk(query)
        else:
            yield from self._read_rest(query, restart)

    def _read_rest(
        self, query: _Query, restart: Callable[[CrmRecord], _Query]
    ) -> Iterator[list[CrmRecord]]:
        last: CrmRecord | None = None
        losses = 0
        while True:
            try:
                for page in self._rest_pages(query):
                    records = [r for r in map(query.record, page) if query.keep(r)]
                    if records:
                        last, losses = records[-1], 0
                    yield records
                return
            except RequestRejectedError as error:
                losses += 1
                if error.code != "INVALID_QUERY_LOCATOR" or losses > MAX_CURSOR_LOSSES:
                    raise
                log.warning("Salesforce closed the query cursor; querying again from there")
                if last is not None:
                    query = restart(last)

    def _rest_pages(self, query: _Query) -> Iterator[list[Mapping[str, Any]]]:
        headers = {"Sforce-Query-Options": f"batchSize={self.connection.query_batch_size}"}
        answer = self._call(
            f"query {query.object_name}",
            lambda sf: sf.query(query.soql, include_deleted=query.include_deleted, headers=headers),
        )
        seen: set[str] = set()
        while True:
            yield answer["records"]
            following = answer.get("nextRecordsUrl")
            if answer.get("done", True) or not following:
                return
            if following in seen:
                # Following it again would loop for ever.
                raise ServerError(f"Salesforce repeated the page {following}", crm=CRM)
            seen.add(following)
            answer = self._next_page(following, headers)

    def _next_page(self, url: str, headers: Mapping[str, str]) -> Any:
        return self._call(
            f"query page {url}",
            lambda sf: sf.query_more(url, identifier_is_url=True, headers=dict(headers)),
        )

    def _read_bulk(self, query: _Query) -> Iterator[list[CrmRecord]]:
        """A Bulk result page (50,000 rows by default) handed on in chunks of a REST page's
        size, each record built as its row is parsed: the caller stores a chunk, with the
        cursor past it, before the next is built, so one page is never held as records whole.
        The chunks only cut what Salesforce sends: no call more."""
        description = self._description_of(query.object_name)
        for page in self._bulk.query(query.soql, include_deleted=query.include_deleted):
            record = _BulkColumns.of(page.header, query.requested, description).record
            for records in _chunks(map(record, page.rows), self.connection.query_batch_size):
                yield [r for r in records if query.keep(r)]

    # ---------------------------------------------------------------- writing

    def _send_collection(self, updates: Sequence[RecordUpdate]) -> list[RecordOutcome]:
        return _isolating_unparseable(
            updates, self._post_collection, lambda error: RecordOutcome(error.code, error.message)
        )

    def _post_collection(self, updates: Sequence[RecordUpdate]) -> list[RecordOutcome]:
        name = self.connection.object_name
        body = {
            "allOrNone": False,
            "records": [
                {
                    "attributes": {"type": update.object_name or name},
                    **_rest_values(update.values),
                    "id": update.record_id,
                }
                for update in updates
            ],
        }
        answers = self._call(
            f"update {len(updates)} records",
            lambda sf: _rest(
                sf, "composite/sobjects", method="PATCH", json=body, headers=KEEP_OWNERS
            ),
        )
        if not isinstance(answers, list) or len(answers) != len(updates):
            raise ServerError(
                f"composite/sobjects answered {len(answers or [])} results for {len(updates)}",
                crm=CRM,
            )
        return [_collection_outcome(answer) for answer in answers]

    def _send_upserts(
        self, records: Sequence[NewRecord], key_field: str, assign: bool
    ) -> list[tuple[RecordOutcome, str, bool]]:
        return _isolating_unparseable(
            records,
            lambda chunk: self._post_upserts(chunk, key_field, assign),
            lambda error: (RecordOutcome(error.code, error.message), "", False),
        )

    def _post_upserts(
        self, records: Sequence[NewRecord], key_field: str, assign: bool
    ) -> list[tuple[RecordOutcome, str, bool]]:
        name = self.connection.object_name
        body = {
            "allOrNone": False,
            "records": [
                {
                    "attributes": {"type": name},
                    **_rest_values(r.values),
                    **({"OwnerId": r.owner} if r.owner else {}),
                    key_field: r.key,
                }
                for r in records
            ],
        }
        headers = {"Sforce-Auto-Assign": "TRUE"} if assign else KEEP_OWNERS
        answers = self._call(
            f"upsert {len(records)} {name} records",
            lambda sf: _rest(
                sf,
                f"composite/sobjects/{name}/{key_field}",
                method="PATCH",
                json=body,
                headers=headers,
            ),
        )
        if not isinstance(answers, list) or len(answers) != len(records):
            raise ServerError(
                f"an upsert answered {len(answers or [])} results for {len(records)}", crm=CRM
            )
        return [
            (_collection_outcome(a), str(a.get("id") or ""), bool(a.get("created")))
            for a in answers
        ]

    def _upsert_rounds(
        self, records: Sequence[NewRecord], key_field: str, assign: bool
    ) -> list[UpsertResult]:
        """As `_write_rounds`, for upserts: locked rows again, within the retry policy."""
        stop = False

        def attempt(pending: Sequence[NewRecord], round_: int) -> list[UpsertResult]:
            nonlocal stop
            try:
                answers = self._send_upserts(pending, key_field, assign)
            except RUN_STOPPERS:
                raise
            except ConnectorError as error:  # its own retries are spent: no more rounds
                stop = True
                return [
                    UpsertResult(
                        r.key,
                        WriteStatus.DEFERRED,
                        category=error.category,
                        message=error.message,
                        attempts=round_,
                    )
                    for r in pending
                ]
            results = []
            for record, (outcome, record_id, created) in zip(pending, answers, strict=True):
                result = _round_result(record.key, outcome, round_)
                written = result.status is WriteStatus.WRITTEN
                results.append(
                    UpsertResult(
                        record.key,
                        result.status,
                        record_id if written else "",
                        created and written,
                        result.category,
                        result.message,
                        round_,
                        result.fields,
                    )
                )
            return results

        return retry_records(
            self.connection.retry,
            "Salesforce upsert",
            records,
            attempt,
            again=lambda result: not stop and result.status is WriteStatus.DEFERRED,
        )

    def _write_rounds(
        self,
        updates: Sequence[RecordUpdate],
        send: Callable[[Sequence[RecordUpdate]], list[RecordOutcome]],
        what: str,
    ) -> list[WriteResult]:
        """Send `updates`, then again the ones that were locked or not reached: the retry
        policy for records. Whatever stays locked, or meets a request-level failure, is
        DEFERRED; a failure that stops the run (credentials, quota) is raised."""
        retry_ids: set[str] = set()

        def attempt(pending: Sequence[RecordUpdate], round_: int) -> list[WriteResult]:
            try:
                outcomes = send(pending)
            except RUN_STOPPERS:
                raise
            except ConnectorError as error:  # its own retries are spent: no more rounds
                retry_ids.clear()
                return [
                    WriteResult(
                        u.record_id, WriteStatus.DEFERRED, error.category, error.message, round_
                    )
                    for u in pending
                ]
            results = []
            for update, outcome in zip(pending, outcomes, strict=True):
                result = _round_result(update.record_id, outcome, round_)
                if result.status is WriteStatus.DEFERRED:
                    retry_ids.add(update.record_id)
                else:
                    retry_ids.discard(update.record_id)
                results.append(result)
            return results

        return retry_records(
            self.connection.retry,
            f"Salesforce {what}",
            updates,
            attempt,
            again=lambda result: result.record_id in retry_ids,
        )


# ------------------------------------------------------------------------------------ queries


@dataclass(frozen=True, slots=True)
class _Query:
    """One SOQL read, and what trims its rows to exactly the records wanted."""

    object_name: str
    soql: str
    count_soql: str
    include_deleted: bool
    requested: tuple[str, ...]
    # Records at or before this point are not wanted (the SOQL bound is only to the second).
    after: Position | None = None

    def keep(self, record: CrmRecord) -> bool:
        return self.after is None or record.position > self.after

    def record(self, row: Mapping[str, Any]) -> CrmRecord:
        values = {name.lower(): value for name, value in row.items() if name != "attributes"}
        return CrmRecord(
            CRM,
            str(values["id"]),
            _stamp(str(values["systemmodstamp"])),
            {name: values.get(name.lower()) for name in self.requested},
            deleted=bool(values.get("isdeleted")),
        )


@dataclass(frozen=True, slots=True)
class _Scan:
    """The SOQL of one object's reads: changes since a point, or every record after an Id."""

    object_name: str
    select: tuple[str, ...]
    requested: tuple[str, ...]

    def changes(self, point: Position | None) -> _Query:
        # SOQL datetime literals are documented to the second only; the filter in `_Query`
        # trims the extra rows the rounded-down bound lets in.
        where = "" if point is None else f" WHERE SystemModstamp >= {_soql_second(point)}"
        source = f"FROM {self.object_name}{where}"
        return _Query(
            self.object_name,
            f"SELECT {', '.join(self.select)} {source} ORDER BY SystemModstamp, Id",
            f"SELECT COUNT() {source}",
            include_deleted=True,
            requested=self.requested,
            after=point,
        )

    def everything(self, after_id: str | None) -> _Query:
        where = "" if not after_id else format_soql(" WHERE Id > {}", after_id)
        source = f"FROM {self.object_name}{where}"
        return _Query(
            self.object_name,
            f"SELECT {', '.join(self.select)} {source} ORDER BY Id",
            f"SELECT COUNT() {source}",
            include_deleted=False,
            requested=self.requested,
        )

    def everything_after(self, last: CrmRecord) -> _Query:
        return self.everything(last.id)

    def by_id(self, record_ids: Sequence[str]) -> _Query:
        return self.where_in("Id", record_ids)

    def where_in(self, field: str, values: Sequence[str]) -> _Query:
        source = f"FROM {self.object_name}" + format_soql(f" WHERE {field} IN {{}}", list(values))
        return _Query(
            self.object_name,
            f"SELECT {', '.join(self.select)} {source}",
            f"SELECT COUNT() {source}",
            include_deleted=False,
            requested=self.requested,
        )


def _select_list(fields: Sequence[str]) -> tuple[str, ...]:
    """The system fields, then the requested ones not among them (SOQL refuses a field twice,
    in any letter case)."""
    chosen = list(SYSTEM_FIELDS)
    for name in fields:
        if not _FIELD_NAME.match(name):
            raise ValueError(f"not a Salesforce field name: {name!r}")
        if name.lower() not in {c.lower() for c in chosen}:
            chosen.append(name)
    return tuple(chosen)


def _look_back(position: Position, lookback: timedelta) -> Position:
    """Where a pull from `position` starts: `lookback` earlier, to catch late commits, and at
    the start of a second even with no look-back. Salesforce stamps keep whole seconds, so an
    edit made after the last pull, in the second of its last record (or of the run's start,
    where the position was capped), carries that second's stamp and may sort before the
    position: resuming from the position itself would step over it for good. Records read
    again come again (the store tells the unchanged ones by their content)."""
    start = position.modified_at - max(lookback, timedelta(0))
    return Position(start.replace(microsecond=0), "")


def _soql_second(position: Position) -> str:
    return f"{utc(position.modified_at):%Y-%m-%dT%H:%M:%SZ}"


def _stamp(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"Salesforce datetime without a time zone: {text!r}")
    return moment.astimezone(UTC)


# A column of a Bulk result page: its index in each row, and the type of its field.
_Column = tuple[int, FieldType | None]


@dataclass(frozen=True, slots=True)
class _BulkColumns:
    """Where a Bulk result page holds each value a record needs, and its type, worked out
    once from the page's header (its column order is not stable). Builds what `_Query.record`
    builds from the same row as REST returns it, with values typed as REST types them."""

    id: _Column
    stamp: _Column
    deleted: _Column | None
    fields: tuple[tuple[str, _Column | None], ...]

    @classmethod
    def of(
        cls, header: Sequence[str], requested: Sequence[str], description: ObjectDescription
    ) -> _BulkColumns:
        # Read case-blind, as `_Query.record` reads REST's keys.
        where = {name.lower(): index for index, name in enumerate(header)}

        def column(name: str) -> _Column | None:
            index = where.get(name.lower())
            if index is None:
                return None
            info = description.field(header[index])
            return index, info.type if info is not None else None

        def required(name: str) -> _Column:
            found = column(name)
            if found is None:
                raise KeyError(name.lower())
            return found

        return cls(
            required("Id"),
            required("SystemModstamp"),
            column("IsDeleted"),
            tuple((name, column(name)) for name in requested),
        )

    def record(self, row: Sequence[str]) -> CrmRecord:
        return CrmRecord(
            CRM,
            str(_cell(row, self.id)),
            _stamp(str(_cell(row, self.stamp))),
            {name: _cell(row, column) for name, column in self.fields},
            deleted=bool(_cell(row, self.deleted)),
        )


def _cell(row: Sequence[str], column: _Column | None) -> Any:
    if column is None:
        return None
    index, kind = column
    # A short row lacks its last cells, which `csv.DictReader` read as null.
    return typed_value(row[index], kind) if index < len(row) else None


def _chunks(items: Iterator[T], size: int) -> Iterator[list[T]]:
    while chunk := list(islice(items, max(size, 1))):
        yield chunk


# ------------------------------------------------------------------------------------ describe


def _field_info(spec: Mapping[str, Any]) -> FieldInfo:
    kind = str(spec.get("type", "string"))
    length = int(spec.get("length") or 0)
    if kind == "textarea":
        field_type = FieldType.TEXT if length > _LONG_TEXT else FieldType.STRING
    else:
        field_type = _TYPES.get(kind, FieldType.STRING)
    options = tuple(
        str(value["value"]) for value in spec.get("picklistValues") or () if value.get("active")
    )
    return FieldInfo(
        name=str(spec["name"]),
        label=str(spec.get("label") or spec["name"]),
        type=field_type,
        writable=bool(spec.get("updateable")),
        options=options,
        restricted=bool(spec.get("restrictedPicklist")),
        custom=bool(spec.get("custom")),
        required=not spec.get("nillable", True)
        and bool(spec.get("createable"))
        and not spec.get("defaultedOnCreate"),
        max_length=length or None,
    )


# ------------------------------------------------------------------------------------ writes


def in_lists(values: Sequence[str], *, most: int | None = COLLECTION_IDS) -> Iterator[list[str]]:
    """`values` cut into the lists of SOQL `IN (...)` reads: at most `most` values a list
    (None: as many as fit), and no more than IN_LIST_URI_BYTES of them once quoted and
    URL-encoded (as requests sends a query's `q`), so that no query passes Salesforce's URI
    limit."""
    chunk: list[str] = []
    size = 0
    for value in values:
        cost = len(quote_plus(format_soql("{}, ", value)))
        if chunk and (len(chunk) == most or size + cost > IN_LIST_URI_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(value)
        size += cost
    if chunk:
        yield chunk


Item = TypeVar("Item")
Answer = TypeVar("Answer")


def _isolating_unparseable(
    items: Sequence[Item],
    send: Callable[[Sequence[Item]], list[Answer]],
    refused: Callable[[RequestRejectedError], Answer],
) -> list[Answer]:
    """`send(items)`, one answer per item. Salesforce parses a request before it saves any of
    it, so one value whose JSON does not fit its field (a word for a number) fails the whole
    collection: 400 JSON_PARSER_ERROR, no record named. Then the items are halved, and halved
    again, until the one at fault stands alone and fails alone (`refused`); the others are
    sent. A request refused for anything else is raised as it came."""
    try:
        return send(items)
    except RequestRejectedError as error:
        if error.code != UNPARSEABLE or not items:
            raise
        if len(items) == 1:
            return [refused(error)]
        middle = len(items) // 2
        return _isolating_unparseable(items[:middle], send, refused) + _isolating_unparseable(
            items[middle:], send, refused
        )


def _owners_by_object(owner_ids: Sequence[str]) -> list[tuple[tuple[str, str], list[str]]]:
    """(object name, names query) -> the ids among `owner_ids` of that object, by prefix."""
    ids = sorted({owner for owner in owner_ids if _RECORD_ID.match(owner)})
    return [
        ((object_name, query), [owner for owner in ids if owner.startswith(prefix)])
        for object_name, prefix, query in _OWNER_NAME_QUERIES
    ]


def _round_result(record_id: str, outcome: RecordOutcome, round_: int) -> WriteResult:
    """One record's outcome of a write round: written, to try again (locked, not reached:
    DEFERRED) or refused for good (FAILED), with Salesforce's code and message."""
    if outcome.code is None and not outcome.unprocessed:
        return WriteResult(record_id, WriteStatus.WRITTEN, "", "", round_)
    code = (outcome.code or "unprocessed").lower()
    retriable = outcome.unprocessed or record_error_is_retriable(CRM, outcome.code or "")
    status = WriteStatus.DEFERRED if retriable else WriteStatus.FAILED
    return WriteResult(record_id, status, code, outcome.message, round_, outcome.fields)


def _collection_outcome(answer: Mapping[str, Any]) -> RecordOutcome:
    if answer.get("success"):
        return RecordOutcome()
    errors = answer.get("errors") or [{}]
    first = errors[0]
    fields = first.get("fields")
    return RecordOutcome(
        str(first.get("statusCode") or "UNKNOWN_EXCEPTION"),
        str(first.get("message") or ""),
        fields=tuple(str(name) for name in fields) if isinstance(fields, list) else (),
    )


def _rest_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-ready values: dates and datetimes as ISO text (datetimes in UTC), None as null."""
    converted: dict[str, Any] = {}
    for name, value in values.items():
        if name.lower() in ("id", "attributes"):
            continue
        if isinstance(value, datetime):
            converted[name] = iso_utc(value)
        elif isinstance(value, date):
            converted[name] = value.isoformat()
        else:
            converted[name] = value
    return converted


# ------------------------------------------------------------------------------------ answers


def _answer_details(response: requests.Response) -> tuple[str | None, str, bool]:
    """(error code, message, whether it is a login refusal) from an error answer's body:
    a REST error array, an OAuth error object, or a SOAP login fault."""
    try:
        body = response.json()
    except ValueError:
        text = response.text
        fault = _SOAP_FAULT.search(text)
        if fault is None:
            return None, "", False
        found = _SOAP_MESSAGE.search(text)
        return fault.group(1), found.group(1) if found else fault.group(1), True
    if isinstance(body, Mapping) and "error" in body:
        return str(body["error"]), str(body.get("error_description") or body["error"]), True
    code, message = _error_details(body)
    return code, message, False


def _error_details(body: Any) -> tuple[str | None, str]:
    """(errorCode, message) of a Salesforce error body, usually `[{"errorCode", "message"}]`."""
    first = body[0] if isinstance(body, list) and body else body
    if not isinstance(first, Mapping):
        return None, ""
    code = first.get("errorCode")
    return (str(code) if code else None), str(first.get("message") or "")


# ------------------------------------------------------------------------------------ wiring


def _rest(sf: Salesforce, path: str, **request: Any) -> Any:
    """The JSON answer of a REST call that must have one."""
    answer = sf.restful(path, **request)
    if answer is None:
        raise ServerError(f"an empty answer from {path}", crm=CRM)
    return answer


def _query_all_with(soql: str) -> Callable[[Salesforce], Any]:
    def query(sf: Salesforce) -> Any:
        return sf.query_all(soql)

    return query


def _query_with(soql: str) -> Callable[[Salesforce], Any]:
    def query(sf: Salesforce) -> Any:
        return sf.query(soql)

    return query


def _http_session(connection: SalesforceConnection) -> requests.Session:
    """The session every request goes through: a timeout always, routed to a plain-http
    instance (the sandbox) where one is configured."""
    url = connection.instance_url
    if url and needs_routing(url):
        return RoutingSession(url, timeout=connection.timeout_seconds)
    return TimeoutSession(timeout=connection.timeout_seconds)


def _given_session(connection: SalesforceConnection) -> tuple[str, str]:
    if connection.session_id is None or not connection.instance_url:
        raise AuthenticationError(
            "session-id authentication needs both session_id and instance_url", crm=CRM
        )
    parts = urlsplit(connection.instance_url)
    return connection.session_id.reveal(), parts.netloc or parts.path
