"""The HubSpot CRM v3 emulator: contacts and their properties.

What it reproduces, because connectors must survive it (CRM_FACTS.md): every property value is
a string; `lastmodifieddate` moves on every write; `lifecyclestage` only moves forward and a
backward write is silently ignored unless the stage was cleared first; unknown and read-only
properties and invalid enumeration options are rejected; batch calls take at most 100 inputs and
answer 207 when some inputs fail; a batch create with an existing email fails whole with 409;
search takes at most 200 results a page and refuses to page past 10,000; the ten-secondly and
daily limits, the 5-searches-a-second limit, and their headers and 429 bodies.
"""

from __future__ import annotations

import bisect
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote

from leadsync.sandbox.http import Request, Response, Route, Router, route
from leadsync.sandbox.hubspot_index import SearchIndex
from leadsync.sandbox.hubspot_search import (
    SearchError,
    compile_filter_groups,
    parse_sorts,
    sort_key,
    unreadable_search,
)
from leadsync.sandbox.hubspot_values import (
    DERIVED,
    ValueProblem,
    json_token,
    normalise,
    problems_message,
    unreadable_properties,
    validate_properties,
)
from leadsync.sandbox.limits import Clock, DailyAllowance, RollingWindow
from leadsync.sandbox.schema import (
    HUBSPOT_CONTACT_PROPERTIES,
    HUBSPOT_DEFAULT_PROPERTIES,
    LIFECYCLE_STAGES,
    HubSpotProperty,
)
from leadsync.sandbox.timestamps import hubspot_iso, parse_ms

BATCH_LIMIT = 100
LIST_PAGE_LIMIT = 100
SEARCH_PAGE_LIMIT = 200
SEARCH_RESULT_CAP = 10_000
SEARCH_BODY_LIMIT = 3_000
FIRST_CONTACT_ID = 1001

_STAGE_RANK = {stage: rank for rank, stage in enumerate(LIFECYCLE_STAGES)}


@dataclass(frozen=True, slots=True)
class HubSpotSettings:
    token: str = "sandbox-token"  # noqa: S105 - the sandbox's documented fake credential
    ten_second_limit: int = 190
    daily_limit: int = 1_000_000
    searches_per_second: int = 5
    # The longest an edit takes to reach search (each takes between half of it and all of
    # it): "several seconds" in real HubSpot (hubspot_index.py). 0 makes search consistent,
    # which no real portal is.
    search_lag_ms: int = 4_000


@dataclass(slots=True)
class Contact:
    id: int
    properties: dict[str, str]
    created_ms: int
    updated_ms: int
    archived_ms: int | None = None

    def value(self, name: str) -> str | None:
        if name == "hs_object_id":
            return str(self.id)
        if name == "createdate":
            return hubspot_iso(self.created_ms)
        if name == "lastmodifieddate":
            return hubspot_iso(self.updated_ms)
        return self.properties.get(name)

    def search_value(self, name: str) -> str | int | None:
        # Search compares datetimes as epoch ms: handing those over skips an ISO round trip.
        if name == "createdate":
            return self.created_ms
        if name == "lastmodifieddate":
            return self.updated_ms
        return self.value(name)

    def frozen(self) -> Contact:
        """A copy that later writes to this contact leave alone (the search index's)."""
        return Contact(
            self.id, dict(self.properties), self.created_ms, self.updated_ms, self.archived_ms
        )


@dataclass
class _RecordFailure:
    status: int
    category: str
    message: str
    context: dict[str, list[str]] = field(default_factory=dict)


def normalise_email(email: str) -> str:
    return email.strip().lower()


class HubSpotEmulator:
    """State and routes of one HubSpot portal. Thread-safe: every handler runs under one lock."""

    def __init__(self, settings: HubSpotSettings, clock: Clock, now_ms: Callable[[], int]) -> None:
        self.settings = settings
        self._clock = clock
        self._now_ms = now_ms
        self.lock = threading.RLock()
        self._properties: dict[str, HubSpotProperty] = {}
        self._property_times: dict[str, int] = {}
        self._contacts: dict[int, Contact] = {}
        self._live_ids: list[int] = []  # sorted ids of contacts not archived
        self._by_email: dict[str, int] = {}
        self._next_id = FIRST_CONTACT_ID
        self._last_write_ms = 0
        self._index: SearchIndex[Contact] = SearchIndex(settings.search_lag_ms)
        self._search_cache: tuple[str, int, list[Contact]] | None = None
        self.ten_second_window = RollingWindow(settings.ten_second_limit, 10.0, clock)
        self.search_window = RollingWindow(settings.searches_per_second, 1.0, clock)
        self.daily = DailyAllowance(settings.daily_limit, clock)
        self.router = Router(self._routes())
        self.load([])

    # ---------------------------------------------------------------- state

    def load(self, contacts: Iterable[tuple[int, Mapping[str, str]]]) -> None:
        """Replace every contact with `(id, properties)` pairs; createdate/lastmodifieddate are
        read from the properties (ISO texts), the rest stored as given, even if dirty."""
        with self.lock:
            self._properties = {prop.name: prop for prop in HUBSPOT_CONTACT_PROPERTIES}
            start = self._now_ms()
            self._property_times = dict.fromkeys(self._properties, start)
            self._contacts = {}
            self._by_email = {}
            for contact_id, properties in contacts:
                props = dict(properties)
                created = parse_ms(props.pop("createdate")) if "createdate" in props else start
                updated = (
                    parse_ms(props.pop("lastmodifieddate"))
                    if "lastmodifieddate" in props
                    else created
                )
                props.pop("hs_object_id", None)
                self._contacts[contact_id] = Contact(contact_id, props, created, updated)
                if props.get("email"):
                    self._by_email.setdefault(normalise_email(props["email"]), contact_id)
            self._live_ids = sorted(self._contacts)
            self._next_id = max(self._contacts, default=FIRST_CONTACT_ID - 1) + 1
            # A seeded portal's history is old enough to be searchable already.
            self._index.reset(self._contacts.values())
            self._search_cache = None

    def snapshot(self, *, include_archived: bool = False) -> list[dict[str, Any]]:
        """Every contact with all its properties, for the inspection API."""
        with self.lock:
            return [
                self._render(contact, None)
                for contact in self._contacts.values()
                if include_archived or contact.archived_ms is None
            ]

    def contact(self, contact_id: int) -> Contact | None:
        with self.lock:
            return self._contacts.get(contact_id)

    def set_activity(self, contact_id: int, properties: Mapping[str, str | None]) -> Contact:
        """Change any property as HubSpot itself would (page views, form submissions), skipping
        the rules for API writers: used by the inspection API to simulate engagement."""
        with self.lock:
            contact = self._contacts[contact_id]
            unknown = [name for name in properties if name not in self._properties]
            if unknown:
                raise KeyError(unknown[0])
            # Stored in the form HubSpot keeps (a datetime as ISO UTC with milliseconds);
            # a value no API writer could set is kept as given, to feed leadsync dirty data.
            stored: dict[str, str | None] = {}
            for name, raw in properties.items():
                value, problem = (
                    (raw, None) if raw is None else normalise(self._properties[name], raw)
                )
                stored[name] = raw if problem is not None else value
            self._apply(contact, stored)
            return contact

    def settle_search(self) -> None:
        """Let search catch up with every write now, as if the lag had passed: for tests and
        demos whose subject is not the lag itself."""
        with self.lock:
            self._index.settle()

    @property
    def search_backlog(self) -> int:
        """How many writes search has not caught up with yet."""
        with self.lock:
            return self._index.pending

    def reset_limits(self) -> None:
        with self.lock:
            self.ten_second_window.clear()
            self.search_window.clear()
            self.daily.clear()

    def set_limits(
        self,
        *,
        ten_second_limit: int | None = None,
        daily_limit: int | None = None,
        searches_per_second: int | None = None,
    ) -> None:
        with self.lock:
            if ten_second_limit is not None:
                self.ten_second_window.limit = ten_second_limit
            if daily_limit is not None:
                self.daily.limit = daily_limit
            if searches_per_second is not None:
                self.search_window.limit = searches_per_second

    # ---------------------------------------------------------------- dispatch

    def handle(self, request: Request) -> tuple[str, Response]:
        """Answer one request; returns the endpoint label (for statistics) and the response."""
        found = self.router.find(request.method, request.path)
        if found is None or isinstance(found, str):
            status = 405 if found == "method" else 404
            return "hubspot.unknown", _error(status, "OBJECT_NOT_FOUND", "resource not found")
        endpoint = found.route.endpoint
        if request.header("authorization") != f"Bearer {self.settings.token}":
            return endpoint, _error(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
            )
        is_search = endpoint.endswith(".search")
        with self.lock:
            throttled = self._throttle(is_search)
            if throttled is not None:
                return endpoint, throttled
            response = found.route.handler(request, found.groups)
            if not is_search:
                # HubSpot's search endpoints do not report the rate-limit headers.
                response.headers.update(self.rate_limit_headers())
        return endpoint, response

    def _throttle(self, is_search: bool) -> Response | None:
        if self.daily.remaining() <= 0:
            return _rate_limited("You have reached your daily limit.", "DAILY")
        if is_search and not self.search_window.try_acquire():
            # Real search 429s carry a different body and no Retry-After (CRM_FACTS.md).
            return _error(429, "RATE_LIMITS", "You have reached your secondly limit.")
        if not self.ten_second_window.try_acquire():
            return _rate_limited(
                "You have reached your ten_secondly_rolling limit.", "TEN_SECONDLY_ROLLING"
            )
        self.daily.try_acquire()
        return None

    def rate_limit_headers(self) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Daily": str(self.daily.limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(self.daily.remaining()),
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": str(self.ten_second_window.limit),
            "X-HubSpot-RateLimit-Remaining": str(self.ten_second_window.remaining()),
        }

    def fault_response(self, status: int) -> Response:
        if status == 429:
            response = _rate_limited(
                "You have reached your ten_secondly_rolling limit.", "TEN_SECONDLY_ROLLING"
            )
            response.headers["Retry-After"] = "1"
            return response
        return _error(status, "INTERNAL_ERROR", "internal error")

    def _routes(self) -> list[Route]:
        base = "/crm/v3/objects/contacts"
        props = "/crm/v3/properties/contacts"
        return [
            route("GET", base, "hubspot.contacts.list", self._list),
            route("POST", base, "hubspot.contacts.create", self._create),
            route("POST", f"{base}/search", "hubspot.contacts.search", self._search),
            route("POST", f"{base}/batch/read", "hubspot.contacts.batch_read", self._batch_read),
            route(
                "POST", f"{base}/batch/create", "hubspot.contacts.batch_create", self._batch_create
            ),
            route(
                "POST", f"{base}/batch/update", "hubspot.contacts.batch_update", self._batch_update
            ),
            route(
                "POST", f"{base}/batch/upsert", "hubspot.contacts.batch_upsert", self._batch_upsert
            ),
            route(
                "POST",
                f"{base}/batch/archive",
                "hubspot.contacts.batch_archive",
                self._batch_archive,
            ),
            route("GET", f"{base}/(?P<id>[^/]+)", "hubspot.contacts.get", self._get),
            route("PATCH", f"{base}/(?P<id>[^/]+)", "hubspot.contacts.update", self._update),
            route("DELETE", f"{base}/(?P<id>[^/]+)", "hubspot.contacts.archive", self._archive),
            route("GET", props, "hubspot.properties.list", self._properties_list),
            route("POST", props, "hubspot.properties.create", self._properties_create),
            route("GET", f"{props}/(?P<name>[^/]+)", "hubspot.properties.get", self._property_get),
            route(
                "PATCH",
                f"{props}/(?P<name>[^/]+)",
                "hubspot.properties.update",
                self._property_update,
            ),
            route(
                "DELETE",
                f"{props}/(?P<name>[^/]+)",
                "hubspot.properties.archive",
                self._property_archive,
            ),
        ]

    # ---------------------------------------------------------------- rendering

    def _render(self, contact: Contact, wanted: list[str] | None) -> dict[str, Any]:
        if wanted is None:
            names: Iterable[str] = (*DERIVED, *contact.properties)
        else:
            names = dict.fromkeys((*wanted, *DERIVED))
        properties = {
            name: contact.value(name)
            for name in names
            if name in self._properties or name in DERIVED
        }
        rendered: dict[str, Any] = {
            "id": str(contact.id),
            "properties": properties,
            "createdAt": hubspot_iso(contact.created_ms),
            "updatedAt": hubspot_iso(contact.updated_ms),
            "archived": contact.archived_ms is not None,
        }
        if contact.archived_ms is not None:
            rendered["archivedAt"] = hubspot_iso(contact.archived_ms)
        return rendered

    def _requested_properties(self, request: Request) -> list[str]:
        # The client repeats the parameter; people also pass a comma-separated list.
        names = [part for value in request.params("properties") for part in value.split(",")]
        return [name.strip() for name in names if name.strip()] or list(HUBSPOT_DEFAULT_PROPERTIES)

    # ---------------------------------------------------------------- writes

    def _touch(self, contact: Contact) -> None:
        # Every write moves lastmodifieddate, strictly forward so that no two writes are
        # indistinguishable to a (timestamp, id) cursor on the same contact.
        now = max(self._now_ms(), contact.updated_ms + 1)
        contact.updated_ms = now
        self._last_write_ms = now
        self._index.written(contact, self._now_ms())

    def _assign(self, contact: Contact, name: str, value: str | None) -> None:
        if name in DERIVED:
            return
        old_email = contact.properties.get("email")
        # A cleared property reads back as "", unlike one never set (hubspot_values.py).
        contact.properties[name] = value or ""
        if name == "email":
            if old_email and self._by_email.get(normalise_email(old_email)) == contact.id:
                del self._by_email[normalise_email(old_email)]
            if value:
                self._by_email[normalise_email(value)] = contact.id

    def _validate(
        self, properties: Any, contact: Contact | None
    ) -> tuple[dict[str, str | None], list[ValueProblem]]:
        """Check an input's properties (hubspot_values); returns the values to store and the
        problems. A backward lifecycle stage is kept as the current one, as HubSpot does."""
        values, problems = validate_properties(properties, self._properties)
        if "lifecyclestage" in values and contact is not None:
            values["lifecyclestage"] = _forward_only_stage(
                contact.properties.get("lifecyclestage"), values["lifecyclestage"]
            )
        return values, problems

    def _apply(self, contact: Contact, values: Mapping[str, str | None]) -> None:
        self._index.before_write(contact)
        for name, value in values.items():
            self._assign(contact, name, value)
        self._touch(contact)

    def _new_contact(self, values: Mapping[str, str | None]) -> Contact:
        now = max(self._now_ms(), self._last_write_ms)
        contact = Contact(self._next_id, {}, now, now)
        self._next_id += 1
        self._contacts[contact.id] = contact
        self._live_ids.append(contact.id)
        for name, value in values.items():
            self._assign(contact, name, value)
        self._last_write_ms = now
        self._index.written(contact, self._now_ms())
        return contact

    def _email_owner(self, values: Mapping[str, str | None]) -> int | None:
        email = values.get("email")
        if not email:
            return None
        return self._by_email.get(normalise_email(email))

    def _lookup(
        self, raw_id: Any, id_property: str | None, *, archived: bool = False
    ) -> Contact | None:
        if id_property in (None, "", "hs_object_id"):
            try:
                contact = self._contacts.get(int(str(raw_id)))
            except ValueError:
                return None
        elif id_property == "email" and not archived:
            found = self._by_email.get(normalise_email(str(raw_id)))
            contact = self._contacts.get(found) if found is not None else None
        elif id_property == "email":
            # An archived contact's email no longer names it in the live index.
            wanted = normalise_email(str(raw_id))
            contact = next(
                (
                    c
                    for c in self._contacts.values()
                    if c.archived_ms is not None
                    and normalise_email(c.properties.get("email") or "") == wanted
                ),
                None,
            )
        else:
            contact = next(
                (c for c in self._contacts.values() if c.properties.get(id_property) == raw_id),
                None,
            )
        if contact is None or (contact.archived_ms is not None) != archived:
            return None
        return contact

    def _archive_contact(self, contact: Contact) -> None:
        self._index.before_write(contact)
        contact.archived_ms = max(self._now_ms(), contact.updated_ms)
        index = bisect.bisect_left(self._live_ids, contact.id)
        if index < len(self._live_ids) and self._live_ids[index] == contact.id:
            del self._live_ids[index]
        email = contact.properties.get("email")
        if email and self._by_email.get(normalise_email(email)) == contact.id:
            del self._by_email[normalise_email(email)]
        self._index.written(contact, self._now_ms())

    # ---------------------------------------------------------------- handlers: single records

    def _list(self, request: Request, _: re.Match[str]) -> Response:
        limit = _int_param(request, "limit", 10)
        if limit is None or not 1 <= limit <= LIST_PAGE_LIMIT:
            return _validation_error(f"limit must be between 1 and {LIST_PAGE_LIMIT}")
        after = _int_param(request, "after", 0)
        if after is None:
            return _validation_error("after must be an integer")
        wanted = self._requested_properties(request)
        if _archived_only(request):
            ids = sorted(c.id for c in self._contacts.values() if c.archived_ms is not None)
        else:
            ids = self._live_ids
        start = bisect.bisect_left(ids, after)
        page = ids[start : start + limit]
        body: dict[str, Any] = {"results": [self._render(self._contacts[i], wanted) for i in page]}
        if start + limit < len(ids):
            next_after = str(ids[start + limit])
            body["paging"] = {
                "next": {
                    "after": next_after,
                    "link": f"https://api.hubapi.com{request.path}?after={next_after}",
                }
            }
        return Response.json(200, body)

    def _get(self, request: Request, match: re.Match[str]) -> Response:
        contact = self._lookup(
            _path_id(match), request.param("idProperty"), archived=_archived_only(request)
        )
        if contact is None:
            return _error(404, "OBJECT_NOT_FOUND", "resource not found")
        return Response.json(200, self._render(contact, self._requested_properties(request)))

    def _create(self, request: Request, _: re.Match[str]) -> Response:
        body = _json_body(request)
        if not isinstance(body, Mapping):
            return _invalid_json(_not_an_object(body))
        if body.get("properties") is None:
            return _invalid_json(_unset("SimplePublicObjectInputForCreate", ["properties"]))
        unreadable = unreadable_properties(body.get("properties"))
        if unreadable is not None:
            return _invalid_json(unreadable)
        values, errors = self._validate(body["properties"], None)
        if errors:
            return _property_errors(errors)
        existing = self._email_owner(values)
        if existing is not None:
            return _error(409, "CONFLICT", f"Contact already exists. Existing ID: {existing}")
        contact = self._new_contact(values)
        return Response.json(201, self._render(contact, None))

    def _update(self, request: Request, match: re.Match[str]) -> Response:
        body = _json_body(request)
        if not isinstance(body, Mapping):
            return _invalid_json(_not_an_object(body))
        if body.get("properties") is None:
            return _invalid_json(_unset("SimplePublicObjectInput", ["properties"]))
        unreadable = unreadable_properties(body.get("properties"))
        if unreadable is not None:
            return _invalid_json(unreadable)
        contact = self._lookup(_path_id(match), request.param("idProperty"))
        if contact is None:
            return _error(404, "OBJECT_NOT_FOUND", "resource not found")
        values, errors = self._validate(body.get("properties", {}), contact)
        if errors:
            return _property_errors(errors)
        owner = self._email_owner(values)
        if owner is not None and owner != contact.id:
            return _error(409, "CONFLICT", f"Contact already exists. Existing ID: {owner}")
        self._apply(contact, values)
        return Response.json(200, self._render(contact, None))

    def _archive(self, request: Request, match: re.Match[str]) -> Response:
        contact = self._lookup(_path_id(match), None)
        if contact is not None:
            self._archive_contact(contact)
        # HubSpot answers 204 whether or not the contact existed.
        return Response.empty(204)

    # ---------------------------------------------------------------- handlers: batches

    def _batch_inputs(
        self, request: Request, model: str, required: tuple[str, ...]
    ) -> tuple[Mapping[str, Any], list[Any]] | Response:
        """The body and inputs of a batch request, or HubSpot's refusal of its shape: each
        input is read into `model`, which needs its `required` attributes (HubSpot's OpenAPI
        spec), before anything is looked up or validated, so one unreadable input fails the
        batch (`Cannot build Filter, some of required attributes are not set [propertyName,
        operator]`, HubSpot/hubspot-api-nodejs#226, is the form)."""
        body = _json_body(request)
        if not isinstance(body, Mapping):
            return _invalid_json(_not_an_object(body))
        inputs = body.get("inputs")
        if inputs is None:
            return _invalid_json(_unset(f"BatchInput{model}", ["inputs"]))
        if not isinstance(inputs, list):
            return _invalid_json(
                f"Cannot deserialize value of type `java.util.ArrayList<{model}>` from "
                + json_token(inputs)
            )
        if len(inputs) > BATCH_LIMIT:
            return _validation_error(
                f"Batch input size {len(inputs)} exceeds the limit of {BATCH_LIMIT}"
            )
        for item in inputs:
            if not isinstance(item, Mapping):
                return _invalid_json(
                    f"Cannot construct instance of `{model}` from {json_token(item)}"
                )
            missing = [name for name in required if item.get(name) is None]
            if missing:
                return _invalid_json(_unset(model, missing))
            unreadable = unreadable_properties(item.get("properties"))
            if unreadable is not None:
                return _invalid_json(unreadable)
        return body, inputs

    def _batch_result(
        self, status: int, results: list[dict[str, Any]], failures: list[_RecordFailure]
    ) -> Response:
        now = hubspot_iso(self._now_ms())
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": now,
            "completedAt": now,
        }
        if failures:
            body["numErrors"] = len(failures)
            body["errors"] = [
                {
                    # StandardError of HubSpot's OpenAPI spec: all six keys are required.
                    "status": "error",
                    "category": failure.category,
                    "message": failure.message,
                    "context": failure.context,
                    "errors": [],
                    "links": {},
                }
                for failure in failures
            ]
            return Response.json(207, body)
        return Response.json(status, body)

    def _batch_read(self, request: Request, _: re.Match[str]) -> Response:
        parsed = self._batch_inputs(request, "SimplePublicObjectId", ("id",))
        if isinstance(parsed, Response):
            return parsed
        body, inputs = parsed
        wanted = body.get("properties") or list(HUBSPOT_DEFAULT_PROPERTIES)
        id_property = body.get("idProperty")
        archived = _archived_only(request)
        results, missing = [], []
        for item in inputs:
            contact = self._lookup(item.get("id"), id_property, archived=archived)
            if contact is None:
                missing.append(str(item.get("id")))
            else:
                results.append(self._render(contact, list(wanted)))
        failures = []
        if missing:
            failures.append(
                _RecordFailure(
                    404,
                    "OBJECT_NOT_FOUND",
                    "Could not get some CONTACT objects, they may be deleted or not exist. "
                    "Check that ids are valid.",
                    {"ids": missing},
                )
            )
        return self._batch_result(200, results, failures)

    def _batch_create(self, request: Request, _: re.Match[str]) -> Response:
        parsed = self._batch_inputs(request, "SimplePublicObjectInputForCreate", ("properties",))
        if isinstance(parsed, Response):
            return parsed
        inputs = parsed[1]
        checked = []
        seen_emails: dict[str, int] = {}
        for index, item in enumerate(inputs):
            values, errors = self._validate(item.get("properties", {}), None)
            if errors:
                # A batch create is all or nothing: one bad input fails the request.
                return _property_errors(errors, index=index)
            existing = self._email_owner(values)
            if existing is not None:
                return _error(409, "CONFLICT", f"Contact already exists. Existing ID: {existing}")
            email = values.get("email")
            if email:
                if normalise_email(email) in seen_emails:
                    return _validation_error(f"Duplicate email in batch input: {email}")
                seen_emails[normalise_email(email)] = index
            checked.append(values)
        results = [self._render(self._new_contact(values), None) for values in checked]
        return self._batch_result(201, results, [])

    def _batch_update(self, request: Request, _: re.Match[str]) -> Response:
        parsed = self._batch_inputs(request, "SimplePublicObjectBatchInput", ("id", "properties"))
        if isinstance(parsed, Response):
            return parsed
        body, inputs = parsed
        ids = [str(item.get("id")) for item in inputs]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            return _validation_error(
                f"Duplicate IDs found in batch input: {json.dumps(duplicates)}"
            )
        id_property = body.get("idProperty")
        found: list[tuple[Contact, dict[str, str | None]]] = []
        problems: list[ValueProblem] = []
        missing: list[str] = []
        for item in inputs:
            # The client puts idProperty on each input (SimplePublicObjectBatchInput).
            contact = self._lookup(item.get("id"), item.get("idProperty") or id_property)
            values, invalid = self._validate(item.get("properties", {}), contact)
            problems.extend(invalid)
            if contact is None:
                missing.append(str(item.get("id")))
            else:
                found.append((contact, values))
        if problems:
            # One invalid value refuses the whole batch: nothing is written, and the message
            # lists every bad value but not which input held it, so a client must split the
            # batch to find it (issue 15, from the vendors' docs and a fidelity audit).
            return _property_errors(problems)
        conflict = self._email_conflict(found)
        if conflict is not None:
            return conflict
        results = []
        for contact, values in found:
            self._apply(contact, values)
            results.append(self._render(contact, None))
        # Only records that were not found are per-record errors: the rest is written (207).
        failures = [
            _RecordFailure(
                404, "OBJECT_NOT_FOUND", f"Object not found.  objectId: {i}", {"ids": [i]}
            )
            for i in missing
        ]
        return self._batch_result(200, results, failures)

    def _email_conflict(
        self, found: list[tuple[Contact, dict[str, str | None]]]
    ) -> Response | None:
        """409 for a batch that would give a contact another contact's email: whole-batch, as
        a batch create's is (CRM_FACTS.md); for updates *unconfirmed*, the stricter choice."""
        for contact, values in found:
            owner = self._email_owner(values)
            if owner is not None and owner != contact.id:
                return _error(409, "CONFLICT", f"Contact already exists. Existing ID: {owner}")
        return None

    def _batch_upsert(self, request: Request, _: re.Match[str]) -> Response:
        parsed = self._batch_inputs(
            request, "SimplePublicObjectBatchInputUpsert", ("id", "properties")
        )
        if isinstance(parsed, Response):
            return parsed
        inputs = parsed[1]
        if any(item.get("idProperty") != "email" for item in inputs):
            return _validation_error(
                "Upsert needs idProperty 'email' (or a unique custom property) on every input."
            )
        checked: list[tuple[Any, Contact | None, dict[str, str | None]]] = []
        problems: list[ValueProblem] = []
        for item in inputs:
            contact = self._lookup(item.get("id"), "email")
            values, invalid = self._validate(item.get("properties", {}), contact)
            problems.extend(invalid)
            checked.append((item.get("id"), contact, values))
        if problems:
            # As a batch update: one bad value refuses the batch (*unconfirmed* for upsert,
            # the stricter choice).
            return _property_errors(problems)
        results: list[dict[str, Any]] = []
        for email, contact, values in checked:
            if contact is None:
                values.setdefault("email", str(email))
                contact = self._new_contact(values)
                created = True
            else:
                self._apply(contact, values)
                created = False
            results.append({**self._render(contact, None), "new": created})
        return self._batch_result(200, results, [])

    def _batch_archive(self, request: Request, _: re.Match[str]) -> Response:
        parsed = self._batch_inputs(request, "SimplePublicObjectId", ("id",))
        if isinstance(parsed, Response):
            return parsed
        inputs = parsed[1]
        for item in inputs:
            contact = self._lookup(item.get("id"), None)
            if contact is not None:
                self._archive_contact(contact)
        return Response.empty(204)

    # ---------------------------------------------------------------- handlers: search

    def _search(self, request: Request, _: re.Match[str]) -> Response:
        if len(request.body) > SEARCH_BODY_LIMIT:
            return _validation_error(f"Search request body exceeds {SEARCH_BODY_LIMIT} characters")
        body = _json_body(request)
        if not isinstance(body, Mapping):
            return _invalid_json(_not_an_object(body))
        unreadable = unreadable_search(body)
        if unreadable is not None:
            return _invalid_json(unreadable)
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or not 1 <= limit <= SEARCH_PAGE_LIMIT:
            return _validation_error(f"limit must be between 1 and {SEARCH_PAGE_LIMIT}")
        try:
            after = int(body.get("after") or 0)
        except (TypeError, ValueError):
            return _validation_error("after must be an integer offset")
        if after < 0:
            return _validation_error(f"after must not be negative: {after}")
        if after + limit > SEARCH_RESULT_CAP:
            # The trap of CRM_FACTS.md: one search yields at most 10,000 results, and a page
            # that would reach past them is refused, not cut short (the stricter reading of
            # "paging past it returns 400").
            return _validation_error(
                f"Search results are limited to {SEARCH_RESULT_CAP}: after ({after}) + limit "
                f"({limit}) goes past it; narrow the filters to page further."
            )
        try:
            ordered = self._search_matches(body)
        except SearchError as problem:
            return _validation_error(str(problem))
        wanted = body.get("properties") or list(HUBSPOT_DEFAULT_PROPERTIES)
        page = ordered[after : after + limit]
        result: dict[str, Any] = {
            "total": len(ordered),
            "results": [self._render(contact, list(wanted)) for contact in page],
        }
        if after + limit < len(ordered):
            result["paging"] = {"next": {"after": str(after + limit)}}
        return Response.json(200, result)

    def _search_matches(self, body: Mapping[str, Any]) -> list[Contact]:
        """The contacts a search body selects, in order, as the search index holds them (old
        versions of those it has not caught up with: hubspot_index.py); cached while the index
        stays as it is, because a client pages through one query with many requests."""
        key = repr((body.get("filterGroups"), body.get("sorts"), body.get("query")))
        self._index.catch_up(self._now_ms())
        cached = self._search_cache
        if cached is not None and cached[:2] == (key, self._index.version):
            return cached[2]
        predicate = compile_filter_groups(body.get("filterGroups") or [], self._properties)
        sorts = parse_sorts(body.get("sorts"), self._properties)
        text = str(body.get("query") or "").strip().lower()
        matched = [
            contact
            for contact in self._index.searchable()
            if (predicate is None or predicate(contact.search_value))
            and (not text or _matches_text(contact, text))
        ]
        if sorts:  # HubSpot takes one sort at most; parse_sorts enforced it
            (sort,) = sorts
            value_key = sort_key(sort, self._properties)
            matched.sort(
                key=lambda contact: value_key(contact.search_value(sort.property_name)),
                reverse=sort.descending,
            )
        self._search_cache = (key, self._index.version, matched)
        return matched

    # ---------------------------------------------------------------- handlers: properties

    def _render_property(self, prop: HubSpotProperty) -> dict[str, Any]:
        stamp = hubspot_iso(self._property_times.get(prop.name, 0))
        return {
            "name": prop.name,
            "label": prop.label,
            "type": prop.type,
            "fieldType": prop.field_type,
            "description": "",
            "groupName": prop.group,
            "options": [
                {"label": option, "value": option, "displayOrder": order, "hidden": False}
                for order, option in enumerate(prop.options)
            ],
            "displayOrder": -1,
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": False,
            "hidden": False,
            "hubspotDefined": prop.hubspot_defined,
            "modificationMetadata": {
                "archivable": not prop.hubspot_defined,
                "readOnlyDefinition": prop.hubspot_defined,
                "readOnlyValue": prop.read_only,
            },
            "formField": not prop.read_only,
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
        }

    def _properties_list(self, request: Request, _: re.Match[str]) -> Response:
        return Response.json(
            200, {"results": [self._render_property(p) for p in self._properties.values()]}
        )

    def _property_get(self, request: Request, match: re.Match[str]) -> Response:
        prop = self._properties.get(match["name"])
        if prop is None:
            return _no_property(match["name"])
        return Response.json(200, self._render_property(prop))

    def _properties_create(self, request: Request, _: re.Match[str]) -> Response:
        body = _json_body(request)
        if not isinstance(body, Mapping):
            return _invalid_json(_not_an_object(body))
        missing = [
            k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)
        ]
        if missing:
            return _validation_error(f"Missing required fields: {', '.join(missing)}")
        name = str(body["name"])
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            return _validation_error(
                f"Property name {json.dumps(name)} must start with a letter and hold only "
                "lower-case letters, digits and underscores"
            )
        if name in self._properties:
            return _error(409, "CONFLICT", f"Property named {name} already exists")
        kind = str(body["type"])
        if kind not in ("string", "number", "enumeration", "datetime", "date", "bool"):
            return _validation_error(f"Unknown property type {json.dumps(kind)}")
        options = tuple(
            str(option.get("value"))
            for option in body.get("options") or []
            if isinstance(option, Mapping)
        )
        if kind == "enumeration" and not options:
            return _validation_error("An enumeration property needs options")
        prop = HubSpotProperty(
            name,
            str(body["label"]),
            kind,
            str(body["fieldType"]),
            options if kind == "enumeration" else ("true", "false") if kind == "bool" else (),
            group=str(body["groupName"]),
            hubspot_defined=False,
        )
        self._properties[name] = prop
        self._property_times[name] = self._now_ms()
        return Response.json(201, self._render_property(prop))

    # An admin changing the portal's setup, through the properties API as the settings
    # screens do: options added or removed, a property archived. HubSpot's own properties
    # cannot be archived.

    def _property_update(self, request: Request, match: re.Match[str]) -> Response:
        prop = self._properties.get(match["name"])
        if prop is None:
            return _no_property(match["name"])
        body = _json_body(request)
        if not isinstance(body, Mapping):
            return _invalid_json(_not_an_object(body))
        changed = prop
        if "label" in body:
            changed = replace(changed, label=str(body["label"]))
        if "options" in body:
            if prop.type != "enumeration":
                return _validation_error(f"Property {prop.name} is not an enumeration")
            options = tuple(
                str(option.get("value"))
                for option in body.get("options") or []
                if isinstance(option, Mapping)
            )
            if not options:
                return _validation_error("An enumeration property needs options")
            changed = replace(changed, options=options)
        self._properties[prop.name] = changed
        self._property_times[prop.name] = self._now_ms()
        return Response.json(200, self._render_property(changed))

    def _property_archive(self, request: Request, match: re.Match[str]) -> Response:
        prop = self._properties.get(match["name"])
        if prop is None:
            return _no_property(match["name"])
        if prop.hubspot_defined:
            return _validation_error(f"{prop.name} is HubSpot-defined: it cannot be archived")
        del self._properties[prop.name]
        self._property_times.pop(prop.name, None)
        return Response.empty(204)


# -------------------------------------------------------------------- helpers


def _forward_only_stage(current: str | None, wanted: str | None) -> str | None:
    """The lifecycle stage HubSpot keeps: a backward move is ignored unless cleared first."""
    if not wanted or not current:
        return wanted
    if _STAGE_RANK.get(wanted, 0) < _STAGE_RANK.get(current, 0):
        return current
    return wanted


def _no_property(name: str) -> Response:
    return _error(404, "OBJECT_NOT_FOUND", f"Unable to find property with name {name}")


def _matches_text(contact: Contact, text: str) -> bool:
    return any(
        text in (contact.properties.get(name) or "").lower()
        for name in ("email", "firstname", "lastname", "company", "phone")
    )


def _path_id(match: re.Match[str]) -> str:
    # The client percent-encodes path parameters: an email id arrives as `a%40x.com`.
    return unquote(match["id"])


def _archived_only(request: Request) -> bool:
    """`archived=true` reads archived contacts, and only them ("Whether to return only results
    that have been archived", HubSpot's OpenAPI spec: list, read and batch read alike). The
    official client sends booleans as Python spells them: `archived=True`."""
    return (request.param("archived") or "false").lower() == "true"


def _int_param(request: Request, name: str, default: int) -> int | None:
    raw = request.param(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        return None


def _json_body(request: Request) -> Any:
    try:
        return request.json()
    except ValueError:
        return None


def _correlation_id() -> str:
    return str(uuid.uuid4())


def _error(status: int, category: str, message: str, **extra: Any) -> Response:
    return Response.json(
        status,
        {
            "status": "error",
            "message": message,
            "correlationId": _correlation_id(),
            "category": category,
            **extra,
        },
    )


def _rate_limited(message: str, policy: str) -> Response:
    return Response.json(
        429,
        {
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": _correlation_id(),
            "policyName": policy,
        },
    )


def _invalid_json(detail: str) -> Response:
    """HubSpot's answer to a body its models cannot read: 400 with the parser's message and
    no category (hubspot-api-python#71 and #307: `{"status":"error","message":"Invalid input
    JSON on line 1, column 18: Cannot deserialize ...","correlationId":...}`). The sandbox
    names no line and column."""
    return Response.json(
        400,
        {
            "status": "error",
            "message": f"Invalid input JSON: {detail}",
            "correlationId": _correlation_id(),
        },
    )


def _not_an_object(body: Any) -> str:
    if body is None:
        return "the body is empty or not JSON"
    return f"Cannot deserialize the request body from {json_token(body)}"


def _unset(model: str, missing: list[str]) -> str:
    return f"Cannot build {model}, some of required attributes are not set [{', '.join(missing)}]"


def _validation_error(message: str) -> Response:
    return _error(400, "VALIDATION_ERROR", message)


def _property_errors(problems: list[ValueProblem], index: int | None = None) -> Response:
    prefix = f"Input {index}: " if index is not None else ""
    return _error(
        400,
        "VALIDATION_ERROR",
        prefix + problems_message(problems),
        errors=[problem.detail() for problem in problems],
    )
