"""The Salesforce REST emulator (API v59.0): Lead, Contact and Opportunity records.

What it reproduces, because connectors must survive it (CRM_FACTS.md): logins (SOAP, OAuth
password and JWT bearer) and sessions that can be expired on demand; SOQL `query`/`queryAll`
with snapshot cursors paged by `nextRecordsUrl` and `Sforce-Query-Options: batchSize`; sObject
get/create/update/delete; describe with picklists; `composite/sobjects` with at most 200
records and per-record results, and its read by ids (2,000 a POST, null for no live record);
`/limits` and `Sforce-Limit-Info` on every answer; the daily request limit; restricted
picklists; CANNOT_UPDATE_CONVERTED_LEAD; `SystemModstamp` moved on every write, shared by every
record of one request (ties are common in real orgs); deleted records kept for `queryAll`.
Error bodies are JSON arrays of `{message, errorCode, fields?}`.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from leadsync.sandbox import soql
from leadsync.sandbox.http import NonStandardNumberError, Request, Response, Route, Router, route
from leadsync.sandbox.ids import eighteen_character_id, salesforce_id
from leadsync.sandbox.limits import Clock, DailyAllowance
from leadsync.sandbox.salesforce_assignment import (
    DEFAULT_ASSIGNMENT_RULE,
    AssignmentHeaderError,
    AssignmentRule,
    rule_for_header,
)
from leadsync.sandbox.salesforce_auth import (
    SalesforceCredentials,
    SessionTable,
    oauth_token,
    soap_login,
    unauthorized,
)
from leadsync.sandbox.salesforce_bulk import BulkJobs
from leadsync.sandbox.salesforce_conversion import (
    CONVERTED_STATUS,
    contact_role_values,
    contact_values,
)
from leadsync.sandbox.schema import (
    API_USER_ID,
    SALESFORCE_OBJECTS,
    STAGE_PROBABILITY,
    SalesforceField,
    SalesforceObject,
    forecast_category,
    org_setup_records,
    salesforce_object,
    salesforce_objects,
)
from leadsync.sandbox.timestamps import parse_ms, salesforce_date, salesforce_datetime

API_VERSION = "59.0"
COLLECTION_LIMIT = 200
# Ids one sObject Collections read may name in a POST body ("The request retrieves up to
# 2,000 records of the same object type", REST API Developer Guide, "Get Records With a
# Request Body Using sObject Collections"). The error past it is *unconfirmed*: the
# collection writes' EXCEEDED_ID_LIMIT, for the whole request.
RETRIEVE_LIMIT = 2000
# Runs of one object type a collection may hold (see `_chunks`).
MAX_TYPE_CHUNKS = 10
DEFAULT_BATCH_SIZE = 2000
MIN_BATCH_SIZE = 200
# A user may hold 10 open query cursors; opening another closes the oldest; one unused for
# 15 minutes expires ("The queryLocator value expires automatically after 15 minutes of
# inactivity. A user can have up to ten query cursors open at a time", SOAP API guide,
# QueryLocator). Since API 56.0 Salesforce keeps cursors for two days without a count limit
# (limits cheat sheet, "API Query Cursor Limits"): the older rules are the stricter, kept.
OPEN_CURSOR_LIMIT = 10
CURSOR_IDLE_SECONDS = 15 * 60
# An org's session timeout: two hours unless an admin sets it between 15 minutes and 24 hours
# (Salesforce Help, "Set Session Security Settings"; the default is *unconfirmed* here).
DEFAULT_SESSION_TIMEOUT_SECONDS = 2 * 3600
# Deleted records stay in the Recycle Bin this long, then are deleted for good (Apex Developer
# Guide, "Restoring Deleted Records"), and "after these records are permanently removed from
# the recycle bin, you can no longer query them" (REST API Developer Guide, QueryAll). A full
# bin lets them go sooner; the 15 days are the most an org keeps.
RECYCLE_BIN_MS = 15 * 86_400_000
_VERSION = r"v(?P<version>\d+\.\d)"
_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class SalesforceSettings:
    credentials: SalesforceCredentials = field(default_factory=SalesforceCredentials)
    daily_limit: int = 100_000
    # False: an org where no admin has created leadsync's write-back fields yet.
    custom_fields: bool = True
    # Sessions expire this long after their login (the org's session timeout); None never,
    # 0 at once, which makes every login useless, as a broken org would.
    session_timeout_seconds: float | None = DEFAULT_SESSION_TIMEOUT_SECONDS
    # The active lead assignment rule; None: the org has none active.
    assignment_rule: AssignmentRule | None = DEFAULT_ASSIGNMENT_RULE


@dataclass(slots=True)
class FieldError:
    status_code: str
    message: str
    fields: list[str]

    def as_rest(self) -> dict[str, Any]:
        return {"message": self.message, "errorCode": self.status_code, "fields": self.fields}

    def as_collection(self) -> dict[str, Any]:
        return {"statusCode": self.status_code, "message": self.message, "fields": self.fields}


@dataclass(slots=True)
class WriteOutcome:
    record_id: str | None
    created: bool = False
    # Set for upserts only: their results say whether the record was created.
    upserted: bool = False
    errors: list[FieldError] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.errors


@dataclass(slots=True)
class _Cursor:
    """An open query: each matching row's Id and selected values, taken when the query ran."""

    object_name: str
    fields: tuple[str, ...]
    rows: list[tuple[Any, ...]]  # (Id, *selected values)
    position: int
    batch_size: int
    version: str
    endpoint: str
    used_at: float  # when a page of it was last read (the sandbox clock's seconds)

    @property
    def total(self) -> int:
        return len(self.rows)


class SalesforceEmulator:
    """State and routes of one Salesforce org. Thread-safe: handlers run under one lock."""

    def __init__(
        self,
        settings: SalesforceSettings,
        clock: Clock,
        now_ms: Callable[[], int],
        record_lock_share: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._now_ms = now_ms
        self._record_lock_share = record_lock_share
        self._lock_random = random.Random(0)
        self.lock = threading.RLock()
        self.sessions = SessionTable(clock, settings.session_timeout_seconds)
        self.objects = salesforce_objects(custom_fields=settings.custom_fields)
        self.daily = DailyAllowance(settings.daily_limit, clock)
        self._records: dict[str, dict[str, dict[str, Any]]] = {}
        self._next_number: dict[str, int] = {}
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._cursor_number = 0
        self._last_stamp = 0
        # While an all-or-none request runs: each touched row's state before it, None if new.
        self._undo: dict[tuple[str, str], dict[str, Any] | None] | None = None
        self.bulk = BulkJobs(self)
        self.router = Router(self._routes())
        self.load({})

    # ---------------------------------------------------------------- state

    def load(self, records: Mapping[str, Iterable[Mapping[str, Any]]]) -> None:
        """Replace all records; `records` maps an object name to its records (with Ids)."""
        with self.lock:
            self._records = {name: {} for name in SALESFORCE_OBJECTS}
            self._next_number = dict.fromkeys(SALESFORCE_OBJECTS, 1)
            given = {name.lower() for name in records}
            setup = {k: v for k, v in org_setup_records().items() if k.lower() not in given}
            for name, rows in {**setup, **records}.items():
                table = self._records[name.lower()]
                for row in rows:
                    table[row["Id"]] = dict(row)
                self._next_number[name.lower()] = len(table) + 1
            self._cursors.clear()
            self.bulk.clear()

    def snapshot(
        self, object_name: str = "Lead", *, include_deleted: bool = False
    ) -> list[dict[str, Any]]:
        with self.lock:
            obj = self.require_object(object_name)
            return [
                self._full_record(obj, row)
                for row in self._records[obj.name.lower()].values()
                if include_deleted or not row.get("IsDeleted")
            ]

    def record(self, object_name: str, record_id: str) -> dict[str, Any] | None:
        with self.lock:
            row = self._records[object_name.lower()].get(record_id)
            return dict(row) if row is not None else None

    def system_update(self, object_name: str, record_id: str, values: Mapping[str, Any]) -> None:
        """Change fields as the platform or an automation would, bypassing validation (used by
        the inspection API, e.g. to convert a lead). SystemModstamp still moves."""
        with self.lock:
            obj = self.require_object(object_name)
            row = self._records[obj.name.lower()][record_id]
            for name, value in values.items():
                spec = obj.field_named(name)
                if spec is None:
                    raise KeyError(name)
                row[spec.name] = value
            stamp = self._stamp()
            row["LastModifiedDate"] = stamp
            row["SystemModstamp"] = stamp

    def convert_lead(
        self,
        lead_id: str,
        *,
        opportunity_stage: str | None = None,
        amount: float | None = None,
    ) -> dict[str, Any]:
        """Convert a lead as Salesforce's conversion does: a Contact with the lead's values
        (salesforce_conversion), optionally an Opportunity, and the lead frozen. Raises
        KeyError for an unknown lead, ValueError for one converted already or whose values
        the Contact or Opportunity refuse."""
        with self.lock:
            row = self._find(self.require_object("Lead"), lead_id)
            if row is None:
                raise KeyError(lead_id)
            if row.get("IsConverted"):
                raise ValueError(f"lead {lead_id} is converted already")
            stamp = self._stamp()
            today = salesforce_date(self._now_ms())
            account_id = salesforce_id("001", self._take_number("account"))
            contact = self.create_record("Contact", contact_values(row, account_id), stamp=stamp)
            if contact.errors:
                raise ValueError(f"the Contact refused the lead's values: {contact.errors}")
            values: dict[str, Any] = {
                "IsConverted": True,
                "Status": CONVERTED_STATUS,
                "ConvertedDate": today,
                "ConvertedAccountId": account_id,
                "ConvertedContactId": contact.record_id,
            }
            if opportunity_stage is not None:
                opportunity = self.create_record(
                    "Opportunity",
                    {
                        "Name": f"{row.get('Company') or 'New'} - New Business",
                        "StageName": opportunity_stage,
                        "CloseDate": today,
                        "Amount": amount,
                        "LeadSource": row.get("LeadSource"),
                        "OwnerId": row.get("OwnerId"),
                    },
                    stamp=stamp,
                )
                if opportunity.errors:
                    raise ValueError(f"the Opportunity refused: {opportunity.errors}")
                values["ConvertedOpportunityId"] = opportunity.record_id
                assert opportunity.record_id is not None
                assert contact.record_id is not None
                role = self.create_record(
                    "OpportunityContactRole",
                    contact_role_values(opportunity.record_id, contact.record_id),
                    stamp=stamp,
                )
                if role.errors:
                    raise ValueError(f"the contact role refused: {role.errors}")
            self.system_update("Lead", row["Id"], values)
            return dict(row)

    def _take_number(self, object_key: str) -> int:
        number = self._next_number.get(object_key, 1)
        self._next_number[object_key] = number + 1
        return number

    def object_named(self, name: str) -> SalesforceObject | None:
        """The sObject called `name` as this org defines it (case-insensitively)."""
        return salesforce_object(name, self.objects)

    def require_object(self, name: str) -> SalesforceObject:
        obj = self.object_named(name)
        if obj is None:
            raise KeyError(name)
        return obj

    def reset_limits(self) -> None:
        with self.lock:
            self.daily.clear()

    # ---------------------------------------------------------------- record operations

    def _stamp(self) -> str:
        # One request's writes share a stamp; a later request never gets an earlier one, but
        # may get the same: stamps keep whole seconds (salesforce_datetime).
        now = max(self._now_ms(), self._last_stamp)
        self._last_stamp = now
        return salesforce_datetime(now)

    def create_record(
        self,
        object_name: str,
        values: Mapping[str, Any],
        *,
        stamp: str | None = None,
        assign: AssignmentRule | None = None,
    ) -> WriteOutcome:
        """Create a record; `assign` is the assignment rule the request applies (Leads)."""
        obj = self.require_object(object_name)
        clean, errors = _validated(obj, values, creating=True)
        if not errors:
            if obj.field_named("OwnerId") is not None and not clean.get("OwnerId"):
                # Records created without an owner belong to the user the API runs as.
                clean["OwnerId"] = API_USER_ID
            if assign is not None and obj.name == "Lead":
                clean["OwnerId"] = assign.owner_for(clean)
            errors = self._reference_problems(obj, clean, None)
        if errors:
            return WriteOutcome(None, errors=errors)
        record_id = salesforce_id(obj.key_prefix, self._take_number(obj.name.lower()))
        stamp = stamp or self._stamp()
        row: dict[str, Any] = {
            "Id": record_id,
            "IsDeleted": False,
            "CreatedDate": stamp,
            "LastModifiedDate": stamp,
            "SystemModstamp": stamp,
        }
        for spec in obj.fields:
            if spec.default_picklist_value and spec.name not in clean:
                row[spec.name] = spec.default_picklist_value
            if spec.type == "boolean" and spec.name not in row:
                row[spec.name] = False
        row.update(clean)
        if obj.name == "Opportunity":
            _settle_opportunity(row, clean)
        self._remember(obj, record_id, None)
        self._records[obj.name.lower()][record_id] = row
        if obj.name == "OpportunityContactRole" and row.get("IsPrimary"):
            self._only_primary(row, stamp)
        if obj.name == "Task":
            self._log_activity(row, stamp)
        return WriteOutcome(record_id, created=True)

    def update_record(
        self,
        object_name: str,
        record_id: str,
        values: Mapping[str, Any],
        *,
        stamp: str | None = None,
        assign: AssignmentRule | None = None,
    ) -> WriteOutcome:
        obj = self.require_object(object_name)
        row = self._find(obj, record_id)
        if row is None:
            return WriteOutcome(
                record_id,
                errors=[
                    FieldError(
                        "ENTITY_IS_DELETED" if self._is_deleted(obj, record_id) else "NOT_FOUND",
                        "entity is deleted"
                        if self._is_deleted(obj, record_id)
                        else "The requested resource does not exist",
                        [],
                    )
                ],
            )
        if obj.name == "Lead" and row.get("IsConverted"):
            return WriteOutcome(
                row["Id"],
                errors=[
                    FieldError(
                        "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", []
                    )
                ],
            )
        clean, errors = _validated(obj, values, creating=False)
        if not errors:
            if assign is not None and obj.name == "Lead":
                clean["OwnerId"] = assign.owner_for({**row, **clean})
            errors = self._reference_problems(obj, clean, row["Id"])
        if errors:
            return WriteOutcome(row["Id"], errors=errors)
        if self._record_lock_share() and self._lock_random.random() < self._record_lock_share():
            return WriteOutcome(
                row["Id"],
                errors=[
                    FieldError(
                        "UNABLE_TO_LOCK_ROW",
                        "unable to obtain exclusive access to this record or 1 records: "
                        + row["Id"],
                        [],
                    )
                ],
            )
        self._remember(obj, row["Id"], row)
        row.update(clean)
        if obj.name == "Opportunity":
            _settle_opportunity(row, clean)
        stamp = stamp or self._stamp()
        row["LastModifiedDate"] = stamp
        row["SystemModstamp"] = stamp
        if obj.name == "OpportunityContactRole" and clean.get("IsPrimary"):
            self._only_primary(row, stamp)
        return WriteOutcome(row["Id"])

    def _only_primary(self, role: Mapping[str, Any], stamp: str) -> None:
        """An opportunity has one primary contact role: making `role` primary clears the
        flag of the others (which changes them: their stamps move)."""
        table = self._records["opportunitycontactrole"]
        for other in table.values():
            if (
                other["Id"] != role["Id"]
                and other.get("OpportunityId") == role.get("OpportunityId")
                and other.get("IsPrimary")
                and not other.get("IsDeleted")
            ):
                self._remember(self.require_object("OpportunityContactRole"), other["Id"], other)
                other["IsPrimary"] = False
                other["LastModifiedDate"] = stamp
                other["SystemModstamp"] = stamp

    def delete_record(
        self, object_name: str, record_id: str, *, stamp: str | None = None
    ) -> WriteOutcome:
        obj = self.require_object(object_name)
        row = self._find(obj, record_id)
        if row is None:
            code = "ENTITY_IS_DELETED" if self._is_deleted(obj, record_id) else "NOT_FOUND"
            message = (
                "entity is deleted"
                if code == "ENTITY_IS_DELETED"
                else "The requested resource does not exist"
            )
            return WriteOutcome(record_id, errors=[FieldError(code, message, [])])
        stamp = stamp or self._stamp()
        self._remember(obj, row["Id"], row)
        row["IsDeleted"] = True
        row["SystemModstamp"] = stamp
        self._delete_contact_roles(obj.name, row["Id"], stamp)
        return WriteOutcome(row["Id"])

    def _delete_contact_roles(self, object_name: str, record_id: str, stamp: str) -> None:
        """Salesforce deletes the contact roles of an opportunity or a contact it deletes:
        a role names both, and lives no longer than either."""
        named_by = {"Opportunity": "OpportunityId", "Contact": "ContactId"}.get(object_name)
        if named_by is None:
            return
        roles = self.require_object("OpportunityContactRole")
        for role in self._records["opportunitycontactrole"].values():
            if role.get(named_by) == record_id and not role.get("IsDeleted"):
                self._remember(roles, role["Id"], role)
                role["IsDeleted"] = True
                role["SystemModstamp"] = stamp

    def _remember(
        self, obj: SalesforceObject, record_id: str, row: Mapping[str, Any] | None
    ) -> None:
        """Keep a row's state before its first change in an all-or-none request."""
        if self._undo is not None:
            self._undo.setdefault((obj.name.lower(), record_id), None if row is None else dict(row))

    def _roll_back(self, undo: Mapping[tuple[str, str], dict[str, Any] | None]) -> None:
        for (table, record_id), before in undo.items():
            if before is None:
                del self._records[table][record_id]
            else:
                self._records[table][record_id] = before

    def _find(self, obj: SalesforceObject, record_id: str) -> dict[str, Any] | None:
        row = self._records[obj.name.lower()].get(eighteen_character_id(record_id))
        if row is None or row.get("IsDeleted"):
            return None
        return row

    def _is_deleted(self, obj: SalesforceObject, record_id: str) -> bool:
        row = self._records[obj.name.lower()].get(eighteen_character_id(record_id))
        return bool(row and row.get("IsDeleted"))

    def _reference_problems(
        self, obj: SalesforceObject, clean: Mapping[str, Any], record_id: str | None
    ) -> list[FieldError]:
        """What a write refers to that the org refuses: an owner who is no active user (or,
        for leads, no queue), a unique field's value another record holds."""
        errors = self._missing_parents(obj, clean)
        owner = clean.get("OwnerId")
        if owner:
            problem = self._owner_problem(obj, str(owner))
            if problem is not None:
                errors.append(problem)
        for spec in obj.fields:
            value = clean.get(spec.name)
            if not spec.unique or value in (None, ""):
                continue
            holder = self._holder_of(obj, spec.name, str(value), but=record_id)
            if holder is not None:
                errors.append(
                    FieldError(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {spec.name} duplicates value on record with "
                        f"id: {holder}",
                        [spec.name],
                    )
                )
        return errors

    def _missing_parents(self, obj: SalesforceObject, clean: Mapping[str, Any]) -> list[FieldError]:
        """A contact role names a live Opportunity and Contact, or the save fails whole
        (INVALID_CROSS_REFERENCE_KEY). Only there: the emulator keeps no Accounts, which a
        Contact's AccountId would name."""
        if obj.name != "OpportunityContactRole":
            return []
        errors = []
        for name, parent in (("OpportunityId", "Opportunity"), ("ContactId", "Contact")):
            value = clean.get(name)
            if value in (None, ""):
                continue
            if self._find(self.require_object(parent), str(value)) is None:
                errors.append(
                    FieldError(
                        "INVALID_CROSS_REFERENCE_KEY",
                        f"invalid cross reference id: {value}",
                        [name],
                    )
                )
        return errors

    def _owner_problem(self, obj: SalesforceObject, owner: str) -> FieldError | None:
        owner = eighteen_character_id(owner)
        user = self._records["user"].get(owner)
        if user is not None:
            if user.get("IsActive"):
                return None
            return FieldError(
                "INACTIVE_OWNER_OR_USER",
                f"operation performed with inactive user [{owner}] as owner of {obj.name.lower()}",
                [],
            )
        group = self._records["group"].get(owner)
        # Queues own leads (and the objects an admin adds to them); the sandbox's own leads.
        if group is not None and group.get("Type") == "Queue" and obj.name == "Lead":
            return None
        return FieldError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["OwnerId"])

    def _holder_of(
        self, obj: SalesforceObject, field_name: str, value: str, *, but: str | None = None
    ) -> str | None:
        """The live record whose `field_name` holds `value` (case-insensitively), if any."""
        wanted = value.casefold()
        for row in self._records[obj.name.lower()].values():
            if row.get("IsDeleted") or row["Id"] == but:
                continue
            held = row.get(field_name)
            if held is not None and str(held).casefold() == wanted:
                return str(row["Id"])
        return None

    def _log_activity(self, task: Mapping[str, Any], stamp: str) -> None:
        """A task on a lead is activity on it: Salesforce sets the lead's LastActivityDate
        (the task's date, or today)."""
        who = task.get("WhoId")
        lead = self._records["lead"].get(str(who)) if who else None
        if lead is None or lead.get("IsDeleted"):
            return
        self._remember(self.require_object("Lead"), lead["Id"], lead)
        lead["LastActivityDate"] = task.get("ActivityDate") or salesforce_date(self._now_ms())
        lead["SystemModstamp"] = stamp

    def run_query(self, text: str, *, include_deleted: bool) -> tuple[soql.SoqlQuery, list[Any]]:
        """Parse and run a SOQL query over the current records (raises soql.SoqlError)."""
        query = soql.parse(text, objects=self.objects)
        table = self._records[query.sobject.name.lower()].values()
        if include_deleted:
            rows = (r for r in table if not self._purged(r))
        else:
            rows = (r for r in table if not r.get("IsDeleted"))
        return query, soql.run(query, rows)

    def _purged(self, row: Mapping[str, Any]) -> bool:
        """Whether a deleted row has left the Recycle Bin: no query finds it any more."""
        if not row.get("IsDeleted"):
            return False
        return self._now_ms() - parse_ms(row["SystemModstamp"]) > RECYCLE_BIN_MS

    # ---------------------------------------------------------------- dispatch

    def handle(self, request: Request) -> tuple[str, Response]:
        found = self.router.find(request.method, request.path)
        if found is None or isinstance(found, str):
            return "salesforce.unknown", _errors(
                404, "NOT_FOUND", "The requested resource does not exist"
            )
        endpoint = found.route.endpoint
        is_login = endpoint.startswith("salesforce.auth")
        with self.lock:
            if not is_login:
                if not self.sessions.valid(request.header("authorization")):
                    return endpoint, unauthorized()
                if not self.daily.try_acquire():
                    response = _errors(
                        403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."
                    )
                    response.headers.update(self.limit_headers())
                    return endpoint, response
            response = found.route.handler(request, found.groups)
            if not is_login:
                response.headers.update(self.limit_headers())
        return endpoint, response

    def limit_headers(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.daily.used}/{self.daily.limit}"}

    def fault_response(self, status: int) -> Response:
        if status == 429:
            # Salesforce has no 429: an org over its concurrent long-request limit answers 403
            # REQUEST_LIMIT_EXCEEDED, told apart from the daily limit only by the message.
            return _errors(403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.")
        return _errors(
            status, "SERVER_UNAVAILABLE", "Server temporarily unavailable. Please try again."
        )

    def _routes(self) -> list[Route]:
        data = f"/services/data/{_VERSION}"
        sobject = f"{data}/sobjects/(?P<object>\\w+)"
        return [
            route(
                "POST", r"/services/Soap/u/(?P<version>[\d.]+)", "salesforce.auth.soap", self._soap
            ),
            route("POST", "/services/oauth2/token", "salesforce.auth.oauth", self._oauth),
            route("GET", "/services/data/?", "salesforce.versions", self._versions),
            route("GET", f"{data}/?", "salesforce.resources", self._resources),
            route("GET", f"{data}/limits/?", "salesforce.limits", self._limits),
            route("GET", f"{data}/query/?", "salesforce.query", self._query),
            route("GET", f"{data}/queryAll/?", "salesforce.query_all", self._query_all),
            route(
                "GET",
                f"{data}/(?P<kind>query|queryAll)/(?P<locator>[\\w-]+)",
                "salesforce.query_more",
                self._query_more,
            ),
            route("GET", f"{data}/sobjects/?", "salesforce.describe_global", self._describe_global),
            route("GET", f"{sobject}/describe/?", "salesforce.describe", self._describe),
            route("GET", f"{sobject}/deleted/?", "salesforce.deleted", self._deleted),
            route("GET", f"{sobject}/?", "salesforce.sobject_info", self._sobject_info),
            route("POST", f"{sobject}/?", "salesforce.create", self._create),
            route(
                "PATCH",
                f"{sobject}/(?P<field>\\w+)/(?P<value>[^/]+)",
                "salesforce.upsert",
                self._upsert,
            ),
            route("GET", f"{sobject}/(?P<id>\\w+)", "salesforce.get", self._get),
            route("PATCH", f"{sobject}/(?P<id>\\w+)", "salesforce.update", self._update),
            route("DELETE", f"{sobject}/(?P<id>\\w+)", "salesforce.delete", self._delete),
            route(
                "POST",
                f"{data}/composite/sobjects/?",
                "salesforce.collection_create",
                self._collection_create,
            ),
            route(
                "POST",
                f"{data}/composite/sobjects/(?P<object>\\w+)/?",
                "salesforce.collection_retrieve",
                self._collection_retrieve,
            ),
            route(
                "PATCH",
                f"{data}/composite/sobjects/?",
                "salesforce.collection_update",
                self._collection_update,
            ),
            route(
                "PATCH",
                f"{data}/composite/sobjects/(?P<object>\\w+)/(?P<field>\\w+)/?",
                "salesforce.collection_upsert",
                self._collection_upsert,
            ),
            route(
                "DELETE",
                f"{data}/composite/sobjects/?",
                "salesforce.collection_delete",
                self._collection_delete,
            ),
            *self.bulk.routes(data),
        ]

    # ---------------------------------------------------------------- handlers: auth, meta

    def _soap(self, request: Request, _: re.Match[str]) -> Response:
        return soap_login(request, self.settings.credentials, self.sessions)

    def _oauth(self, request: Request, _: re.Match[str]) -> Response:
        return oauth_token(request, self.settings.credentials, self.sessions)

    def _versions(self, request: Request, _: re.Match[str]) -> Response:
        versions = [f"{major}.0" for major in range(55, 60)]
        return Response.json(
            200,
            [
                {"label": f"Release {v}", "url": f"/services/data/v{v}", "version": v}
                for v in versions
            ],
        )

    def _resources(self, request: Request, match: re.Match[str]) -> Response:
        base = f"/services/data/v{match['version']}"
        names = ("sobjects", "query", "queryAll", "limits", "composite", "jobs")
        return Response.json(200, {name: f"{base}/{name}" for name in names})

    def _limits(self, request: Request, _: re.Match[str]) -> Response:
        daily = self.daily
        return Response.json(
            200,
            {
                "DailyApiRequests": {"Max": daily.limit, "Remaining": daily.remaining()},
                "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
                "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
                "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
                "DataStorageMB": {"Max": 5, "Remaining": 5},
            },
        )

    def _describe_global(self, request: Request, match: re.Match[str]) -> Response:
        return Response.json(
            200,
            {
                "encoding": "UTF-8",
                "maxBatchSize": COLLECTION_LIMIT,
                "sobjects": [
                    _object_summary(obj, match["version"]) for obj in self.objects.values()
                ],
            },
        )

    def _sobject_info(self, request: Request, match: re.Match[str]) -> Response:
        obj = self.object_named(match["object"])
        if obj is None:
            return _not_found_object(match["object"])
        return Response.json(
            200, {"objectDescribe": _object_summary(obj, match["version"]), "recentItems": []}
        )

    def _describe(self, request: Request, match: re.Match[str]) -> Response:
        obj = self.object_named(match["object"])
        if obj is None:
            return _not_found_object(match["object"])
        return Response.json(200, describe(obj, match["version"]))

    def _deleted(self, request: Request, match: re.Match[str]) -> Response:
        obj = self.object_named(match["object"])
        if obj is None:
            return _not_found_object(match["object"])
        try:
            start = parse_ms(request.param("start") or "")
            end = parse_ms(request.param("end") or "")
        except ValueError:
            return _errors(400, "INVALID_DATE_FORMAT", "start and end must be ISO-8601 datetimes")
        deleted = []
        for row in self._records[obj.name.lower()].values():
            if row.get("IsDeleted") and not self._purged(row):
                stamp = parse_ms(row["SystemModstamp"])
                if start <= stamp <= end:
                    deleted.append({"id": row["Id"], "deletedDate": row["SystemModstamp"]})
        return Response.json(
            200,
            {
                "deletedRecords": deleted,
                "earliestDateAvailable": salesforce_datetime(start),
                "latestDateCovered": salesforce_datetime(end),
            },
        )

    # ---------------------------------------------------------------- handlers: query

    def _query(self, request: Request, match: re.Match[str]) -> Response:
        return self._start_query(request, match, include_deleted=False)

    def _query_all(self, request: Request, match: re.Match[str]) -> Response:
        return self._start_query(request, match, include_deleted=True)

    def _start_query(
        self, request: Request, match: re.Match[str], *, include_deleted: bool
    ) -> Response:
        text = request.param("q")
        if not text:
            return _errors(400, "MALFORMED_QUERY", "A query string must be provided.")
        batch_size = _batch_size(request.header("sforce-query-options"))
        try:
            query, rows = self.run_query(text, include_deleted=include_deleted)
        except soql.SoqlError as problem:
            return _errors(400, problem.error_code, problem.message)
        if query.count_only:
            return Response.json(200, {"totalSize": len(rows), "done": True, "records": []})
        version = match["version"]
        fields = query.fields
        kind = "queryAll" if include_deleted else "query"
        cursor = _Cursor(
            query.sobject.name,
            fields,
            # A cursor is a snapshot: later edits do not change the pages still to be read.
            # Tuples of the selected values keep an open cursor small.
            [(row["Id"], *(row.get(name) for name in fields)) for row in rows],
            0,
            batch_size,
            version,
            f"/services/data/v{version}/{kind}",
            self._clock(),
        )
        return self._page(self._open_cursor(cursor), cursor)

    def _query_more(self, request: Request, match: re.Match[str]) -> Response:
        locator, _, offset = match["locator"].rpartition("-")
        cursor = self._cursors.get(locator)
        # Any batch of a live cursor can be fetched again, e.g. by a client retrying a page
        # whose answer it lost; a locator past the end or closed is invalid.
        if cursor is not None and self._clock() - cursor.used_at > CURSOR_IDLE_SECONDS:
            del self._cursors[locator]
            cursor = None
        if cursor is None or not offset.isdigit() or int(offset) > cursor.total:
            return _errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        cursor.used_at = self._clock()
        cursor.position = int(offset)
        self._cursors.move_to_end(locator)
        return self._page(locator, cursor)

    def _open_cursor(self, cursor: _Cursor) -> str:
        self._cursor_number += 1
        locator = salesforce_id("01g", self._cursor_number)
        self._cursors[locator] = cursor
        # Salesforce keeps a bounded number of open cursors per user; the oldest goes first.
        while len(self._cursors) > OPEN_CURSOR_LIMIT:
            self._cursors.popitem(last=False)
        return locator

    def _page(self, locator: str, cursor: _Cursor) -> Response:
        start = cursor.position
        end = min(start + cursor.batch_size, cursor.total)
        cursor.position = end
        body: dict[str, Any] = {"totalSize": cursor.total, "done": end >= cursor.total}
        if end < cursor.total:
            body["nextRecordsUrl"] = f"{cursor.endpoint}/{locator}-{end}"
        else:
            self._cursors.pop(locator, None)
        name, fields = cursor.object_name, cursor.fields
        sobjects = f"/services/data/v{cursor.version}/sobjects/{name}"
        body["records"] = [
            {"attributes": {"type": name, "url": f"{sobjects}/{record_id}"}}
            | dict(zip(fields, values, strict=True))
            for record_id, *values in cursor.rows[start:end]
        ]
        return Response.json(200, body)

    # ---------------------------------------------------------------- handlers: sObjects

    def _full_record(
        self, obj: SalesforceObject, row: Mapping[str, Any], version: str = API_VERSION
    ) -> dict[str, Any]:
        return {
            "attributes": {
                "type": obj.name,
                "url": f"/services/data/v{version}/sobjects/{obj.name}/{row['Id']}",
            },
            **{spec.name: row.get(spec.name) for spec in obj.fields},
        }

    def _get(self, request: Request, match: re.Match[str]) -> Response:
        obj = self.object_named(match["object"])
        if obj is None:
            return _not_found_object(match["object"])
        row = self._find(obj, match["id"])
        if row is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        record = self._full_record(obj, row, match["version"])
        wanted = request.param("fields")
        if wanted:
            names = [part.strip() for part in wanted.split(",") if part.strip()]
            unknown = [n for n in names if obj.field_named(n) is None]
            if unknown:
                return _errors(400, "INVALID_FIELD", _no_such_column(unknown[0], obj.name))
            keep = {obj.field_named(n).name for n in names} | {"attributes", "Id"}  # type: ignore[union-attr]
            record = {k: v for k, v in record.items() if k in keep}
        return Response.json(200, record)

    def _create(self, request: Request, match: re.Match[str]) -> Response:
        obj = self.object_named(match["object"])
        if obj is None:
            return _not_found_object(match["object"])
        body = _json_object(request)
        if body is None:
            return _json_parse_error(request)
        unparseable = _unparseable(obj, body)
        if unparseable is not None:
            return _errors(400, "JSON_PARSER_ERROR", unparseable)
        assign = _assignment(request, self.settings.assignment_rule)
        if isinstance(assign, Response):
            return assign
        outcome = self.create_record(obj.name, body, assign=assign)
        if outcome.errors:
            return Response.json(400, [e.as_rest() for e in outcome.errors])
        return Response.json(201, {"id": outcome.record_id, "success": True, "errors": []})

    def _update(self, request: Request, match: re.Match[str]) -> Response:
        obj = self.object_named(match["object"])
        if obj is None:
            return _not_found_object(match["object"])
        body = _json_object(request)
        if body is None:
            return _json_parse_error(request)
        unparseable = _unparseable(obj, body)
        if unparseable is not None:
            return _errors(400, "JSON_PARSER_ERROR", unparseable)
        assign = _assignment(request, self.settings.assignment_rule)
        if isinstance(assign, Response):
            return assign
        outcome = self.update_record(obj.name, match["id"], body, assign=assign)
        if outcome.errors:
            status = 404 if outcome.errors[0].status_code == "NOT_FOUND" else 400
            return Response.json(status, [e.as_rest() for e in outcome.errors])
        return Response.empty(204)

    def _delete(self, request: Request, match: re.Match[str]) -> Response:
        obj = self.object_named(match["object"])
        if obj is None:
            return _not_found_object(match["object"])
        outcome = self.delete_record(obj.name, match["id"])
        if outcome.errors:
            status = 404 if outcome.errors[0].status_code == "NOT_FOUND" else 400
            return Response.json(status, [e.as_rest() for e in outcome.errors])
        return Response.empty(204)

    # ---------------------------------------------------------------- handlers: collections

    def _collection_body(self, request: Request) -> tuple[bool, list[Any]] | Response:
        body = _json_object(request)
        if body is None:
            return _json_parse_error(request)
        if not isinstance(body.get("records"), list):
            return _errors(400, "JSON_PARSER_ERROR", "records: a list of sObjects is required")
        records = body["records"]
        if len(records) > COLLECTION_LIMIT:
            return _too_many_records()
        for record in records:
            if not isinstance(record, Mapping):
                continue
            attributes = record.get("attributes")
            kind = attributes.get("type") if isinstance(attributes, Mapping) else None
            obj = self.object_named(str(kind)) if kind else None
            unparseable = None if obj is None else _unparseable(obj, record)
            if unparseable is not None:
                # One value the parser cannot read fails the request, every record of it.
                return _errors(400, "JSON_PARSER_ERROR", unparseable)
        return bool(body.get("allOrNone", False)), records

    def _collection_create(self, request: Request, _: re.Match[str]) -> Response:
        return self._collection_write(request, updating=False)

    def _collection_update(self, request: Request, _: re.Match[str]) -> Response:
        return self._collection_write(request, updating=True)

    def _collection_write(self, request: Request, *, updating: bool) -> Response:
        parsed = self._collection_body(request)
        if isinstance(parsed, Response):
            return parsed
        all_or_none, records = parsed
        if _chunks(records) > MAX_TYPE_CHUNKS:
            return _errors(
                400,
                "INVALID_BATCH_REQUEST",
                f"Cannot have more than {MAX_TYPE_CHUNKS} chunks in a single operation. Please "
                "rearrange the data to reduce chunking.",
            )
        if updating:
            repeated = _repeated_id(records)
            if repeated is not None:
                return _errors(400, "DUPLICATE_VALUE", f"Duplicate id in list: {repeated}")
        assign = _assignment(request, self.settings.assignment_rule)
        if isinstance(assign, Response):
            return assign
        return self._all_or_none(
            all_or_none,
            lambda stamp: [
                self._collection_one(record, updating=updating, stamp=stamp, assign=assign)
                for record in records
            ],
        )

    def _all_or_none(
        self, all_or_none: bool, write: Callable[[str], list[WriteOutcome]]
    ) -> Response:
        """Run one collection's writes under one stamp; with `all_or_none`, a failure of any
        record rolls every other back and says so on each."""
        stamp = self._stamp()
        # All-or-none keeps an undo log of the rows it touches, so a failure leaves no trace.
        self._undo = {} if all_or_none else None
        saved_numbers = dict(self._next_number)
        try:
            outcomes = write(stamp)
            undo = self._undo
        finally:
            self._undo = None
        if undo is not None and any(not o.success for o in outcomes):
            self._roll_back(undo)
            self._next_number = saved_numbers
            rolled_back = FieldError(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "Record rolled back because not all records were valid and the request was "
                "using AllOrNone header",
                [],
            )
            outcomes = [
                o
                if not o.success
                else WriteOutcome(None, upserted=o.upserted, errors=[rolled_back])
                for o in outcomes
            ]
        return Response.json(200, [_collection_result(o) for o in outcomes])

    def _collection_one(
        self, record: Any, *, updating: bool, stamp: str, assign: AssignmentRule | None
    ) -> WriteOutcome:
        if not isinstance(record, Mapping):
            return WriteOutcome(
                None, errors=[FieldError("JSON_PARSER_ERROR", "a record must be an object", [])]
            )
        attributes = record.get("attributes")
        object_name = attributes.get("type") if isinstance(attributes, Mapping) else None
        obj = self.object_named(str(object_name)) if object_name else None
        if obj is None:
            return WriteOutcome(
                None,
                errors=[FieldError("INVALID_TYPE", "Must send a concrete entity type.", [])],
            )
        values = {k: v for k, v in record.items() if k not in ("attributes", "id", "Id")}
        if not updating:
            return self.create_record(obj.name, values, stamp=stamp, assign=assign)
        record_id = record.get("id") or record.get("Id")
        if not record_id:
            return WriteOutcome(
                None,
                errors=[FieldError("MISSING_ARGUMENT", "Id not specified in an update call", [])],
            )
        return self.update_record(obj.name, str(record_id), values, stamp=stamp, assign=assign)

    # ---------------------------------------------------------------- handlers: upserts

    def upsert_record(
        self,
        obj: SalesforceObject,
        key: SalesforceField,
        value: Any,
        values: Mapping[str, Any],
        *,
        stamp: str | None = None,
        assign: AssignmentRule | None = None,
        holders_of: Mapping[str, list[str]] | None = None,
    ) -> WriteOutcome:
        """Create the record whose external id `key` holds `value`, or update it if one does
        (the upsert of `sobjects/{obj}/{key}/{value}` and of collections). `holders_of`: the
        live records by their case-folded `key` value, when the caller has them already."""
        if value is None or str(value).strip() == "":
            return WriteOutcome(
                None,
                upserted=True,
                errors=[FieldError("MISSING_ARGUMENT", f"{key.name} not specified", [])],
            )
        wanted = str(value).casefold()
        # A record in the Recycle Bin is no holder: the upsert creates a new one (DML does
        # not see deleted rows; for an upsert by external id *unconfirmed*). The handoff of
        # a lead whose record sales deleted relies on it.
        if holders_of is None:
            holders_of = self._holders_by_key(obj, key, {wanted})
        holders = holders_of.get(wanted, [])
        fields = {k: v for k, v in values.items() if k.lower() != key.name.lower()}
        if len(holders) > 1:
            return WriteOutcome(
                None,
                upserted=True,
                errors=[
                    FieldError(
                        "DUPLICATE_EXTERNAL_ID",
                        f"{key.name}: more than one record found for external id field: {holders}",
                        [key.name],
                    )
                ],
            )
        if holders:
            outcome = self.update_record(obj.name, holders[0], fields, stamp=stamp, assign=assign)
        else:
            outcome = self.create_record(
                obj.name, {**fields, key.name: value}, stamp=stamp, assign=assign
            )
        outcome.upserted = True
        return outcome

    def _holders_by_key(
        self, obj: SalesforceObject, key: SalesforceField, wanted: set[str]
    ) -> dict[str, list[str]]:
        """The ids of the live records of `obj` whose `key` value, case-folded, is one of
        `wanted`: one pass over the records, however many values a collection names."""
        found: dict[str, list[str]] = {}
        for row in self._records[obj.name.lower()].values():
            if row.get("IsDeleted"):
                continue
            held = str(row.get(key.name) or "").casefold()
            if held in wanted:
                found.setdefault(held, []).append(row["Id"])
        return found

    def _external_key(self, obj: SalesforceObject, name: str) -> SalesforceField | Response:
        spec = obj.field_named(name)
        if spec is None:
            # The recorded real answer (tests/fixtures/salesforce/sobject_upsert_error_response).
            return _errors(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {name}",
            )
        if not spec.external_id:
            # Salesforce also upserts by a few idLookup standard fields; refusing every field
            # not marked External ID is the stricter choice, kept (*unconfirmed*).
            return _errors(
                400,
                "INVALID_FIELD",
                f"Field {spec.name} is not an External ID or indexed field for {obj.name}",
            )
        return spec

    def _upsert(self, request: Request, match: re.Match[str]) -> Response:
        obj = self.object_named(match["object"])
        if obj is None:
            return _not_found_object(match["object"])
        key = self._external_key(obj, match["field"])
        if isinstance(key, Response):
            return key
        body = _json_object(request)
        if body is None:
            return _json_parse_error(request)
        values = {k: v for k, v in body.items() if k != "attributes"}
        unparseable = _unparseable(obj, values)
        if unparseable is not None:
            return _errors(400, "JSON_PARSER_ERROR", unparseable)
        assign = _assignment(request, self.settings.assignment_rule)
        if isinstance(assign, Response):
            return assign
        # simple-salesforce sends the value as given: it is decoded once, as a path segment.
        outcome = self.upsert_record(obj, key, unquote(match["value"]), values, assign=assign)
        if outcome.errors:
            return Response.json(400, [e.as_rest() for e in outcome.errors])
        # Since API 46.0 an upsert that updates answers 200 with a body too (201 if created).
        return Response.json(
            201 if outcome.created else 200,
            {"id": outcome.record_id, "success": True, "errors": [], "created": outcome.created},
        )

    def _collection_upsert(self, request: Request, match: re.Match[str]) -> Response:
        obj = self.object_named(match["object"])
        if obj is None:
            return _not_found_object(match["object"])
        key = self._external_key(obj, match["field"])
        if isinstance(key, Response):
            return key
        parsed = self._collection_body(request)
        if isinstance(parsed, Response):
            return parsed
        all_or_none, records = parsed
        repeated = _repeated_value(records, key.name)
        if repeated is not None:
            # How Salesforce answers one external id twice in a request is *unconfirmed*;
            # refusing the whole request, as for a repeated record id, is the stricter choice.
            return _errors(400, "DUPLICATE_VALUE", f"Duplicate external id in list: {repeated}")
        assign = _assignment(request, self.settings.assignment_rule)
        if isinstance(assign, Response):
            return assign

        def one(record: Any, stamp: str) -> WriteOutcome:
            if not isinstance(record, Mapping):
                problem = FieldError("JSON_PARSER_ERROR", "a record must be an object", [])
                return WriteOutcome(None, upserted=True, errors=[problem])
            attributes = record.get("attributes")
            kind = attributes.get("type") if isinstance(attributes, Mapping) else None
            if not kind or str(kind).lower() != obj.name.lower():
                problem = FieldError("INVALID_TYPE", "Must send a concrete entity type.", [])
                return WriteOutcome(None, upserted=True, errors=[problem])
            if record.get("id") or record.get("Id"):
                # "Don't set the id field for any object" (REST API guide, upsert collections).
                problem = FieldError(
                    "INVALID_FIELD", "Id not allowed in an upsert by an external id", ["Id"]
                )
                return WriteOutcome(None, upserted=True, errors=[problem])
            values = {k: v for k, v in record.items() if k != "attributes"}
            value = next((v for k, v in values.items() if k.lower() == key.name.lower()), None)
            return self.upsert_record(
                obj, key, value, values, stamp=stamp, assign=assign, holders_of=holders_of
            )

        # The request's values are distinct (refused above otherwise): one record's upsert
        # never makes another's holder, so the holders are looked up once, before any.
        named = {
            str(value).casefold()
            for record in records
            if isinstance(record, Mapping)
            for k, value in record.items()
            if k.lower() == key.name.lower() and value is not None
        }
        holders_of = self._holders_by_key(obj, key, named)
        return self._all_or_none(
            all_or_none, lambda stamp: [one(record, stamp) for record in records]
        )

    def _collection_retrieve(self, request: Request, match: re.Match[str]) -> Response:
        """`{"ids", "fields"}` -> one entry per id, in order: the record with those fields, or
        null where the id is no live record of this object (deleted, unknown, malformed, of
        another object), as the REST API answers."""
        obj = self.object_named(match["object"])
        if obj is None:
            return _not_found_object(match["object"])
        body = _json_object(request)
        if body is None:
            return _json_parse_error(request)
        ids, names = _strings(body.get("ids")), _strings(body.get("fields"))
        if not ids or not names:
            # The error of a missing or empty list is *unconfirmed*.
            return _errors(400, "JSON_PARSER_ERROR", "ids and fields: lists of strings required")
        if len(ids) > RETRIEVE_LIMIT:
            return _errors(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {RETRIEVE_LIMIT} records "
                "into this call",
            )
        specs = [obj.field_named(name) for name in names]
        for name, spec in zip(names, specs, strict=True):
            if spec is None:
                return _errors(400, "INVALID_FIELD", _no_such_column(name, obj.name))
        version = match["version"]
        answer: list[dict[str, Any] | None] = []
        for record_id in ids:
            row = self._find(obj, record_id) if _ID.match(record_id) else None
            if row is None:
                answer.append(None)
                continue
            url = f"/services/data/v{version}/sobjects/{obj.name}/{row['Id']}"
            answer.append(
                {
                    "attributes": {"type": obj.name, "url": url},
                    **{spec.name: row.get(spec.name) for spec in specs if spec is not None},
                }
            )
        return Response.json(200, answer)

    def _collection_delete(self, request: Request, _: re.Match[str]) -> Response:
        ids = [i for i in (request.param("ids") or "").split(",") if i]
        if not ids:
            return _errors(400, "MISSING_ARGUMENT", "ids: a comma-separated list is required")
        if len(ids) > COLLECTION_LIMIT:
            return _too_many_records()
        stamp = self._stamp()
        outcomes = []
        for record_id in ids:
            obj = _object_for_id(record_id)
            if obj is None:
                outcomes.append(
                    WriteOutcome(
                        record_id,
                        errors=[FieldError("MALFORMED_ID", f"malformed id {record_id}", [])],
                    )
                )
                continue
            outcomes.append(self.delete_record(obj.name, record_id, stamp=stamp))
        return Response.json(200, [_collection_result(o) for o in outcomes])


# -------------------------------------------------------------------- describe


def _object_summary(obj: SalesforceObject, version: str) -> dict[str, Any]:
    base = f"/services/data/v{version}/sobjects/{obj.name}"
    return {
        "name": obj.name,
        "label": obj.label,
        "labelPlural": obj.label_plural,
        "keyPrefix": obj.key_prefix,
        "custom": False,
        "createable": True,
        "updateable": True,
        "deletable": True,
        "queryable": True,
        "retrieveable": True,
        "searchable": True,
        "urls": {
            "sobject": base,
            "describe": f"{base}/describe",
            "rowTemplate": f"{base}/{{ID}}",
        },
    }


_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "int": "xsd:int",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}


def _describe_field(spec: SalesforceField) -> dict[str, Any]:
    text_like = spec.type in (
        "string",
        "email",
        "phone",
        "url",
        "picklist",
        "textarea",
        "id",
        "reference",
    )
    return {
        "name": spec.name,
        "label": spec.label,
        "type": spec.type,
        "length": spec.length if text_like else 0,
        "byteLength": spec.length * 3 if text_like else 0,
        "precision": spec.precision,
        "scale": spec.scale,
        "digits": spec.precision if spec.type == "int" else 0,
        "nillable": spec.nillable,
        "createable": spec.createable,
        "updateable": spec.updateable,
        "custom": spec.custom,
        "calculated": False,
        "autoNumber": False,
        "unique": spec.unique,
        "externalId": spec.external_id,
        "idLookup": spec.name in ("Id", "Email") or spec.external_id,
        "filterable": True,
        "sortable": spec.type != "textarea",
        "groupable": spec.type not in ("textarea", "double", "currency", "percent", "datetime"),
        "defaultedOnCreate": spec.system
        or spec.type == "boolean"
        or bool(spec.default_picklist_value),
        "defaultValue": spec.default_picklist_value,
        "defaultValueFormula": None,
        "calculatedFormula": None,
        "controllerName": None,
        "dependentPicklist": False,
        "restrictedPicklist": spec.restricted_picklist,
        "picklistValues": [
            {
                "active": True,
                "defaultValue": value == spec.default_picklist_value,
                "label": value,
                "validFor": None,
                "value": value,
            }
            for value in spec.picklist
        ],
        "referenceTo": list(spec.reference_to),
        "relationshipName": spec.name[:-2]
        if spec.type == "reference" and spec.name.endswith("Id")
        else None,
        "soapType": _SOAP_TYPES.get(spec.type, "xsd:string"),
        "htmlFormatted": False,
        "nameField": spec.name == "Name",
        "inlineHelpText": None,
        "deprecatedAndHidden": False,
        "caseSensitive": False,
        "writeRequiresMasterRead": False,
        "namePointing": False,
        "relationshipOrder": None,
    }


def describe(obj: SalesforceObject, version: str = API_VERSION) -> dict[str, Any]:
    """The `sobjects/{Object}/describe` body, in the shape of the recorded real one."""
    return {
        **_object_summary(obj, version),
        "activateable": False,
        "customSetting": False,
        "deprecatedAndHidden": False,
        "feedEnabled": False,
        "layoutable": True,
        # Keys of the recorded real describe, null there too.
        "listviewable": None,
        "lookupLayoutable": None,
        "searchLayoutable": None,
        "mergeable": obj.name == "Lead",
        "replicateable": True,
        "triggerable": True,
        "undeletable": True,
        "childRelationships": [],
        "recordTypeInfos": [],
        "fields": [_describe_field(spec) for spec in obj.fields],
    }


# -------------------------------------------------------------------- validation


def _validated(
    obj: SalesforceObject, values: Mapping[str, Any], *, creating: bool
) -> tuple[dict[str, Any], list[FieldError]]:
    clean: dict[str, Any] = {}
    errors: list[FieldError] = []
    for name, raw in values.items():
        spec = obj.field_named(name)
        if spec is None:
            errors.append(
                FieldError(
                    "INVALID_FIELD",
                    f"No such column '{name}' on sobject of type {obj.name}",
                    [name],
                )
            )
            continue
        allowed = spec.createable if creating else spec.updateable
        if not allowed:
            errors.append(
                FieldError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {spec.name}. Please check the security "
                    "settings of this field and verify that it is read/write for your profile "
                    "or permission set.",
                    [spec.name],
                )
            )
            continue
        value, problem = _coerce(spec, raw)
        if problem is not None:
            errors.append(problem)
            continue
        clean[spec.name] = value
    if creating:
        missing = [
            spec.name
            for spec in obj.fields
            if not spec.nillable
            and spec.createable
            and not spec.default_picklist_value
            and spec.type != "boolean"
            and spec.name != "OwnerId"
            and clean.get(spec.name) in (None, "")
        ]
        if missing:
            errors.append(
                FieldError(
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{', '.join(missing)}]",
                    missing,
                )
            )
    else:
        blanked = [
            spec.name
            for spec in obj.fields
            if spec.name in clean and not spec.nillable and clean[spec.name] in (None, "")
        ]
        if blanked:
            errors.append(
                FieldError(
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{', '.join(blanked)}]",
                    blanked,
                )
            )
    return clean, errors


def _coerce(spec: SalesforceField, raw: Any) -> tuple[Any, FieldError | None]:
    """The stored value for `raw` written to `spec`, or the error Salesforce would give. A
    value whose JSON does not fit the field's type is a JSON_PARSER_ERROR (`_parse_error`),
    which the REST endpoints answer for the whole request (`_unparseable`)."""
    if raw is None or raw == "":
        if spec.restricted_picklist and not spec.nillable:
            return None, _bad_picklist(spec, raw)
        return None, None
    kind = spec.type
    if isinstance(raw, Mapping | list):
        return None, _parse_error(spec, raw)
    if kind == "boolean":
        if isinstance(raw, bool):
            return raw, None
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            return raw.lower() == "true", None
        return None, _parse_error(spec, raw)
    if kind == "int":
        number = _number(raw)
        if number is None or number != int(number):
            return None, _parse_error(spec, raw)
        return _within_digits(spec, int(number), raw)
    if kind in ("double", "currency", "percent"):
        number = _number(raw)
        if number is None:
            return None, _parse_error(spec, raw)
        return _within_digits(spec, number, raw)
    text = _as_text(raw)
    if kind == "datetime":
        try:
            return salesforce_datetime(parse_ms(text)), None
        except ValueError:
            return None, _parse_error(spec, raw)
    if kind == "date":
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return None, _parse_error(spec, raw)
        return text, None
    if kind == "picklist" and spec.restricted_picklist and text not in spec.picklist:
        return None, _bad_picklist(spec, text)
    if kind == "email" and not _EMAIL.match(text):
        return None, FieldError(
            "INVALID_EMAIL_ADDRESS", f"{spec.label}: invalid email address: {text}", [spec.name]
        )
    if kind == "reference":
        if not re.fullmatch(r"[0-9A-Za-z]{15}|[0-9A-Za-z]{18}", text):
            return None, FieldError(
                "MALFORMED_ID", f"{spec.label}: id value of incorrect type: {text}", [spec.name]
            )
        return eighteen_character_id(text), None
    if spec.length and len(text) > spec.length:
        return None, FieldError(
            "STRING_TOO_LONG",
            f"{spec.label}: data value too large: {text[:40]} (max length={spec.length})",
            [spec.name],
        )
    return text, None


def _within_digits(
    spec: SalesforceField, number: float, raw: Any
) -> tuple[float | None, FieldError | None]:
    """`number`, unless it has more digits before the point than the field's precision less
    its scale ("Employees: value outside of valid range on numeric field: 1431655766" for an
    int(8)). Decimals past the scale are kept as sent: the API does not round them (Salesforce
    Help 000387302, "Number Field Stores More Decimal Places Than Defined")."""
    whole_digits = spec.precision - spec.scale
    if spec.precision and abs(number) >= 10**whole_digits:
        return None, FieldError(
            "NUMBER_OUTSIDE_VALID_RANGE",
            f"{spec.label}: value outside of valid range on numeric field: {raw}",
            [spec.name],
        )
    return number, None


def _bad_picklist(spec: SalesforceField, value: Any) -> FieldError:
    return FieldError(
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        f"{spec.label}: bad value for restricted picklist field: {value}",
        [spec.name],
    )


# A number in JSON text: what a Java parse takes (no "NaN", "Infinity" or "1_000", which
# Python's float() reads; exponents and surrounding blanks are fine).
_NUMBER_TEXT = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*", re.ASCII)


def _number(raw: Any) -> float | None:
    """`raw` as a number, if its JSON is one a number field parses (finite: no NaN)."""
    readable = isinstance(raw, int | float) or (
        isinstance(raw, str) and _NUMBER_TEXT.fullmatch(raw) is not None
    )
    if isinstance(raw, bool) or not readable:
        return None
    number = float(raw)
    return number if math.isfinite(number) else None


def _as_text(raw: Any) -> str:
    """A JSON scalar as a string field takes it (`true`, not Python's `True`)."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)


# The parser's names for the types and for the JSON tokens it met (Jackson's).
_PARSED_AS = {
    "boolean": "boolean",
    "int": "int",
    "double": "double",
    "currency": "double",
    "percent": "double",
    "date": "date",
    "datetime": "datetime",
}


def _token(raw: Any) -> tuple[str, str]:
    """The JSON token `raw` was sent as, and its text as the parser quotes it."""
    if isinstance(raw, Mapping):
        return "START_OBJECT", "{"
    if isinstance(raw, list):
        return "START_ARRAY", "["
    if isinstance(raw, bool):
        return ("VALUE_TRUE", "true") if raw else ("VALUE_FALSE", "false")
    if isinstance(raw, int):
        return "VALUE_NUMBER_INT", str(raw)
    if isinstance(raw, float):
        return "VALUE_NUMBER_FLOAT", json.dumps(raw)
    return "VALUE_STRING", str(raw)


def _parse_error(spec: SalesforceField, raw: Any) -> FieldError:
    token, text = _token(raw)
    kind = _PARSED_AS.get(spec.type, "string")
    return FieldError(
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {kind} from {token} value {text} or request may be "
        "missing a required field",
        [spec.name],
    )


def _unparseable(obj: SalesforceObject, values: Mapping[str, Any]) -> str | None:
    """Why Salesforce cannot parse a record's values, if it cannot: a value whose JSON does
    not fit its field's type. Parsing comes before any record is saved, so this fails the
    whole request with 400, a collection's other records included ("Cannot deserialize
    instance of datetime from VALUE_STRING value 2017-10-17 00:00:00 or request may be
    missing a required field at [line:1, column:129]", regican/Salesforce#2). That a
    collection fails whole for it is *unconfirmed*, the stricter reading of "if the request
    isn't well formed, the API returns a 400" (REST API guide, sObject Collections)."""
    for name, raw in values.items():
        spec = obj.field_named(name)
        if spec is None:
            continue
        _, problem = _coerce(spec, raw)
        if problem is not None and problem.status_code == "JSON_PARSER_ERROR":
            return problem.message
    return None


def _settle_opportunity(row: dict[str, Any], written: Mapping[str, Any]) -> None:
    """What Salesforce derives from an opportunity's stage: closed and won flags, the stage's
    default probability (unless the write set one), forecast category, expected revenue."""
    stage = str(row.get("StageName"))
    row["IsClosed"] = stage in ("Closed Won", "Closed Lost")
    row["IsWon"] = stage == "Closed Won"
    if "StageName" in written and "Probability" not in written:
        row["Probability"] = float(STAGE_PROBABILITY.get(stage, 0))
    row["ForecastCategoryName"] = forecast_category(stage)
    amount, probability = row.get("Amount"), row.get("Probability")
    row["ExpectedRevenue"] = (
        None if amount is None or probability is None else round(amount * probability / 100, 2)
    )


def _chunks(records: list[Any]) -> int:
    """How many runs of one object type the records make ({lead, lead, contact, lead}: 3).

    A collection of several types is saved a run at a time, at most MAX_TYPE_CHUNKS runs a
    request (REST API Developer Guide, "Update Records Using sObject Collections"); Apex says
    "Cannot have more than 10 chunks in a single operation". The error code the REST API
    answers it with is *unconfirmed*: the whole request is refused, the stricter choice."""
    types = [
        str(record.get("attributes", {}).get("type", "")).lower()
        for record in records
        if isinstance(record, Mapping) and isinstance(record.get("attributes"), Mapping)
    ]
    return sum(1 for index, name in enumerate(types) if index == 0 or name != types[index - 1])


def _object_for_id(record_id: str) -> SalesforceObject | None:
    for obj in SALESFORCE_OBJECTS.values():
        if record_id.startswith(obj.key_prefix):
            return obj
    return None


def _repeated_id(records: list[Any]) -> str | None:
    """The first record id an update names twice (15- and 18-character forms alike).

    Salesforce saves a list through one DML call, which does not take a record twice as two
    plain updates: Apex refuses such a list ("System.ListException: Duplicate id in list"), and
    a save checks each batch for repeated ids, failing the repeats past a few with
    DUPLICATE_VALUE "Maximum number of duplicate updates in one batch ... Attempt to update Id
    more than once" (Apex Developer Guide, "Things You Should Know about Data in Apex"). How
    sObject Collections answer a repeated id is *unconfirmed*: refusing the whole request is the
    stricter choice, kept.
    """
    seen: set[str] = set()
    for record in records:
        if not isinstance(record, Mapping):
            continue
        raw = record.get("id") or record.get("Id")
        if not raw:
            continue
        record_id = eighteen_character_id(str(raw))
        if record_id in seen:
            return record_id
        seen.add(record_id)
    return None


def _repeated_value(records: list[Any], field_name: str) -> str | None:
    """The first external id value an upsert collection names twice (case-insensitively)."""
    seen: set[str] = set()
    for record in records:
        if not isinstance(record, Mapping):
            continue
        value = next((v for k, v in record.items() if k.lower() == field_name.lower()), None)
        if value is None or str(value) == "":
            continue
        if str(value).casefold() in seen:
            return str(value)
        seen.add(str(value).casefold())
    return None


def _assignment(
    request: Request, active: AssignmentRule | None
) -> AssignmentRule | Response | None:
    try:
        return rule_for_header(request.header("sforce-auto-assign"), active)
    except AssignmentHeaderError as bad:
        return _errors(400, bad.code, bad.message)


def _collection_result(outcome: WriteOutcome) -> dict[str, Any]:
    result: dict[str, Any] = {
        "success": outcome.success,
        "errors": [e.as_collection() for e in outcome.errors],
    }
    if outcome.record_id is not None:
        result = {"id": outcome.record_id, **result}
    if outcome.upserted:
        # UpsertResult: whether the record was created (false for an update, or a failure).
        result["created"] = outcome.created and outcome.success
    return result


def _batch_size(options: str | None) -> int:
    if not options:
        return DEFAULT_BATCH_SIZE
    found = re.search(r"batchSize\s*=\s*(\d+)", options)
    if found is None:
        return DEFAULT_BATCH_SIZE
    # Salesforce treats the size as a hint within 200..2000.
    return max(MIN_BATCH_SIZE, min(DEFAULT_BATCH_SIZE, int(found.group(1))))


def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        body = request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _json_parse_error(request: Request) -> Response:
    message = "The request body is not a JSON object"
    try:
        request.json()
    except NonStandardNumberError as refused:
        message = str(refused)  # NaN or Infinity, which the parser does not take
    except ValueError:
        pass
    return _errors(400, "JSON_PARSER_ERROR", message)


def _errors(status: int, code: str, message: str) -> Response:
    return Response.json(status, [{"message": message, "errorCode": code}])


def _strings(value: Any) -> list[str]:
    """`value` if it is a list of strings, else an empty list."""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return []


def _too_many_records() -> Response:
    return _errors(
        400,
        "EXCEEDED_ID_LIMIT",
        f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into this call",
    )


def _not_found_object(name: str) -> Response:
    return _errors(
        404,
        "NOT_FOUND",
        f"The requested resource does not exist: sObject type '{name}' is not supported.",
    )


def _no_such_column(name: str, object_name: str) -> str:
    return (
        f"No such column '{name}' on entity '{object_name}'. If you are attempting to use a "
        "custom field, be sure to append the '__c' after the custom field name. Please reference "
        "your WSDL or the describe call for the appropriate names."
    )
