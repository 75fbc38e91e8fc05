"""The HubSpot connector: contacts through hubspot-api-client, paced, retried and accounted.

Pulls: incremental ones search on `lastmodifieddate` ascending and re-issue the search from
the last stamp seen after each page: an offset skips contacts edits reorder, and meets the cap
(airbytehq/airbyte#23630); full ones walk the list endpoint. Writes: batch updates of at most
100 inputs, per-record outcomes from 207 answers, and a lifecycle stage that must move back
cleared first in a request of its own, because HubSpot ignores a backward write.

No write leaves a contact worse than it found it: when the set after a clear does not land,
the stage the contact had is written back in the same call to `write`. A batch HubSpot
refuses whole (a 400 for one input's value) is split until the inputs at fault stand alone, so
the others land; inputs carrying a property HubSpot refuses outright (it does not exist, it is
read-only), or a value a dropdown refused that its options (as described) do not list, are
refused together without more calls.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from http import HTTPStatus
from typing import Any, TypeVar, cast

import orjson
import urllib3
from hubspot import HubSpot
from hubspot.crm.contacts.exceptions import ApiException
from hubspot.crm.properties import Option, PropertyCreate
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException
from urllib3.util.retry import Retry

from leadsync.connectors.base import (
    ContactRoles,
    CrmRecord,
    CrmTraits,
    FieldInfo,
    FieldType,
    KnownStamps,
    ObjectDescription,
    Page,
    Position,
    RecordUpdate,
    WriteResult,
    WriteStatus,
    drop_known,
    merge_by_id,
)
from leadsync.connectors.classify import (
    classify,
    connection_failure,
    parse_retry_after,
    record_error_is_retriable,
)
from leadsync.connectors.errors import (
    ConnectionFailedError,
    ConnectorError,
    RequestRejectedError,
    ServerError,
    TransientError,
)
from leadsync.connectors.quota import Quota, QuotaTracker
from leadsync.connectors.retry import call_with_retry, retry_records
from leadsync.connectors.settings import HubSpotConnection
from leadsync.connectors.throttle import WindowLimiter
from leadsync.connectors.traits import HUBSPOT, HUBSPOT_LIFECYCLE, HUBSPOT_LIFECYCLE_ORDER
from leadsync.connectors.writeback import HUBSPOT_WRITEBACK_PROPERTIES, FieldSpec
from leadsync.secrets import redact

T = TypeVar("T")

log = logging.getLogger("leadsync.connectors.hubspot")

CRM = "hubspot"
OBJECT = "contacts"
LIFECYCLE = HUBSPOT_LIFECYCLE
# HubSpot's default lifecycle stages, earliest first; a portal's own order comes from describe.
DEFAULT_LIFECYCLE_ORDER: tuple[str, ...] = HUBSPOT_LIFECYCLE_ORDER
# Validation codes that refuse a property whatever its value: every input carrying it fails.
_REFUSED_PROPERTY_CODES = frozenset({"PROPERTY_DOESNT_EXIST", "READ_ONLY_VALUE"})
# A value a dropdown's options do not list: the inputs holding one are told by the describe.
_INVALID_OPTION = "INVALID_OPTION"
# A search for the contacts changed since a stamp: HubSpot compares datetimes as epoch ms.
MODIFIED = "lastmodifieddate"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def _ms(moment: datetime) -> int:
    # Integer arithmetic on timedeltas: float seconds would round some milliseconds down.
    return (moment - _EPOCH) // _ONE_MS


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    text = str(value)
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


class HubSpotConnector:
    """Contacts of one HubSpot portal. Build one per run and `close()` it afterwards."""

    crm = CRM
    streams: tuple[str, ...] = ("contacts",)
    # HubSpot keeps one object per person: no related object is a person of its own.
    people: Mapping[str, str] = {}
    # HubSpot's deals are not followed: no opportunity is tied to a person here.
    contact_roles: ContactRoles | None = None

    def __init__(
        self,
        connection: HubSpotConnection,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._connection = connection
        # HubSpot's traits, written in batches of this connection's size.
        self.traits: CrmTraits = replace(HUBSPOT, write_batch=connection.batch_size)
        # The client's own retries are off (Retry(total=False)): ours are the only ones, and
        # connection failures surface at once instead of as a stacked MaxRetryError.
        client = HubSpot(
            access_token=connection.access_token.reveal(),
            host=connection.base_url.rstrip("/"),
            retry=Retry(total=False),
        )
        # Each access to `client.crm.contacts.basic_api` builds a new API client with its own
        # connection pool; hold one of each so connections are kept alive.
        self._basic = client.crm.contacts.basic_api
        self._batch = client.crm.contacts.batch_api
        self._search = client.crm.contacts.search_api
        self._properties = client.crm.properties.core_api
        limiter_args: dict[str, Any] = {}
        if clock is not None:
            limiter_args["clock"] = clock
        if sleep is not None:
            limiter_args["sleep"] = sleep
        self._window = WindowLimiter(connection.requests_per_ten_seconds, 10.0, **limiter_args)
        self._searches = WindowLimiter(connection.searches_per_second, 1.0, **limiter_args)
        self._quota = QuotaTracker(CRM, reserve=connection.daily_reserve)
        self._description: ObjectDescription | None = None
        self.calls = 0  # HTTP requests made, retries included

    # ---------------------------------------------------------------- plumbing

    def _call(
        self,
        description: str,
        request: Callable[[], T],
        *,
        search: bool = False,
        reserve: bool = True,
    ) -> T:
        """One API request: quota reserve (unless `reserve` is off), pacing, retry, and errors
        translated. A request made with `_preload_content=False` answers with its JSON body,
        parsed here (see `_call_json`)."""

        def attempt() -> T:
            if reserve:
                self._quota.check()
            if search:
                self._searches.acquire()
            self._window.acquire()
            self.calls += 1
            log.debug("hubspot %s", description)
            try:
                answer = request()
                if isinstance(answer, urllib3.BaseHTTPResponse):
                    self._quota.observe(dict(answer.headers))
                    # Read inside the `try`: a connection dropped mid-body is a connection
                    # failure like any other, retried.
                    body = _read_body(answer)
            except (ApiException, PropertiesApiException) as error:
                raise self._translate(error) from None
            except urllib3.exceptions.HTTPError as error:
                raise connection_failure(
                    CRM, error, self._connection.base_url, description
                ) from None
            if isinstance(answer, urllib3.BaseHTTPResponse):
                return cast(T, _parse_body(body, description))
            if isinstance(answer, tuple) and len(answer) == 3:
                self._quota.observe(dict(answer[2] or {}))
            return answer

        return call_with_retry(self._connection.retry, f"hubspot {description}", attempt)

    def _call_json(
        self,
        description: str,
        method: Callable[..., Any],
        *,
        search: bool = False,
        reserve: bool = True,
        **arguments: Any,
    ) -> dict[str, Any]:
        """`_call` of one of the client's `*_with_http_info` methods, its answer as parsed JSON.

        The hot paths (pages, batch reads and updates) skip the client's model layer: it
        parses every timestamp of every contact with dateutil and deep-copies a Configuration
        per model, most of a pull's CPU (issue 20's profile). Bodies go out as plain dicts in
        the API's own (camelCase) keys; errors still arrive as the client's ApiException,
        translated as before."""
        call = partial(
            method, _preload_content=False, _request_timeout=self._timeout(), **arguments
        )
        return cast(dict[str, Any], self._call(description, call, search=search, reserve=reserve))

    def _translate(self, error: ApiException | PropertiesApiException) -> ConnectorError:
        status = int(error.status or 0)
        headers = dict(error.headers or {})
        if status:
            self._quota.observe(headers)
        body = _json(error.body)
        message = str(body.get("message") or error.reason or "")
        category = body.get("category") or body.get("errorType")
        policy = body.get("policyName")
        if policy:
            message = f"{message} ({policy})"
        retry_after = parse_retry_after(headers.get("Retry-After"))
        if status == 429 and retry_after is None and category == "RATE_LIMITS":
            retry_after = 1.0  # the secondly search limit: the window is one second
        if status == 0:
            return ConnectionFailedError(message or "connection failed", crm=CRM)
        message = redact(message, [self._connection.access_token])
        translated = classify(CRM, status, code=category, message=message, retry_after=retry_after)
        translated.field_errors = _field_errors(body)
        return translated

    def _timeout(self) -> float:
        return self._connection.timeout_seconds

    # ---------------------------------------------------------------- pulls

    def _search_page(
        self, filters: list[dict[str, str]], sort: dict[str, str], fields: Sequence[str]
    ) -> tuple[list[CrmRecord], bool]:
        """The first page of one search, and whether the search holds more."""
        body = {
            "filterGroups": [{"filters": filters}],
            "sorts": [sort],
            "properties": list(dict.fromkeys([*fields, MODIFIED])),
            "limit": self._connection.search_page_size,
        }
        data = self._call_json(
            "search contacts",
            self._search.do_search_with_http_info,
            search=True,
            public_object_search_request=body,
        )
        records = [_record(contact) for contact in data.get("results") or ()]
        return records, _next_after(data) is not None

    def pull(
        self,
        position: Position | None,
        *,
        fields: Sequence[str],
        started_at: datetime,
        known: KnownStamps | None = None,
        stream: str | None = None,
    ) -> Iterator[Page]:
        """Contacts changed since `position` (less the look-back), oldest change first.
        HubSpot's one stream is its contacts: leadsync follows no related object there."""
        if stream not in (None, *self.streams):
            raise ValueError(f"HubSpot has no stream {stream!r}; it has {self.streams}")
        start = (
            position.modified_at - self._connection.lookback
            if position is not None
            else datetime.fromtimestamp(0, UTC)
        )
        cap = Position(started_at.astimezone(UTC), "")
        walk = _ChangeWalk(_ms(start))
        if position is not None:
            # The record at the position itself, unchanged since, was taken by the last pull.
            walk.taken(_ms(position.modified_at), position.record_id)
        while True:
            records, more = self._search_page(
                [_filter(MODIFIED, "GTE", walk.since_ms)],
                {"propertyName": MODIFIED, "direction": "ASCENDING"},
                fields,
            )
            fresh = walk.take(records)
            if records:
                last = records[-1].position
                yield Page(tuple(drop_known(fresh, known)), position=min(last, cap))
            if not more:
                return
            if not walk.advance():
                # A whole page shares one millisecond: page that stamp by id instead.
                yield from self._pull_one_stamp(walk, fields, cap, known)

    def _pull_one_stamp(
        self, walk: _ChangeWalk, fields: Sequence[str], cap: Position, known: KnownStamps | None
    ) -> Iterator[Page]:
        stamp = walk.since_ms
        last_id = 0
        while True:
            records, _ = self._search_page(
                [_filter(MODIFIED, "EQ", stamp), _filter("hs_object_id", "GT", last_id)],
                {"propertyName": "hs_object_id", "direction": "ASCENDING"},
                fields,
            )
            if not records:
                break
            last_id = int(records[-1].id)
            fresh = walk.take(records)
            yield Page(tuple(drop_known(fresh, known)), position=min(records[-1].position, cap))
        walk.step_past(stamp)

    def pull_all(self, checkpoint: str | None = None, *, fields: Sequence[str]) -> Iterator[Page]:
        """Every live contact, in id order, through the list endpoint; resumable."""
        after = checkpoint
        properties = list(dict.fromkeys([*fields, MODIFIED]))
        while True:
            data = self._call_json(
                "list contacts",
                self._basic.get_page_with_http_info,
                limit=self._connection.list_page_size,
                after=after,
                properties=properties,
                archived=False,
            )
            records = tuple(_record(contact) for contact in data.get("results") or ())
            after = _next_after(data)
            yield Page(records, checkpoint=after)
            if after is None:
                return

    def count_all(self) -> int | None:
        """How many live contacts the portal holds (one search), for a backfill's progress."""
        body = {"filterGroups": [], "properties": [MODIFIED], "limit": 1}
        data = self._call_json(
            "count contacts",
            self._search.do_search_with_http_info,
            search=True,
            public_object_search_request=body,
        )
        total = data.get("total")
        return None if total is None else int(total)

    # ---------------------------------------------------------------- describe

    def describe(self, object_name: str | None = None) -> ObjectDescription:
        """The contact properties: types, options, writability. Kept for the run, so the
        lifecycle stages are ordered as this portal orders them."""
        if object_name not in (None, OBJECT):
            raise ValueError(f"the HubSpot connector reads contacts, not {object_name!r}")
        # As JSON, not the client's models: it parses two timestamps of each of a portal's
        # hundreds of properties with dateutil, ~20 ms a run, and most of a small run's CPU.
        data = self._call_json(
            "list contact properties", self._properties.get_all_with_http_info, object_type=OBJECT
        )
        properties = [prop for prop in data.get("results") or [] if isinstance(prop, dict)]
        fields = {str(prop["name"]): _field_info(prop) for prop in properties if prop.get("name")}
        self._description = ObjectDescription(CRM, OBJECT, fields)
        return self._description

    def _stage_order(self) -> dict[str, int]:
        description = self._description or self.describe()
        stage = description.field(LIFECYCLE)
        options = stage.options if stage is not None and stage.options else DEFAULT_LIFECYCLE_ORDER
        return {value: rank for rank, value in enumerate(options)}

    def moves_back(self, field: str, held: Any, wanted: Any) -> bool:
        """Whether writing `wanted` over `held` moves the lifecycle stage back, in the order
        of this portal's stages: HubSpot ignores such a write unless the stage is cleared
        first (`write` does that), and a stage a person set is not leadsync's to undo."""
        if field != LIFECYCLE or not held or not wanted:
            return False
        return _earlier(self._stage_order(), str(wanted), str(held))

    @staticmethod
    def default_moves_back(field: str, held: Any, wanted: Any) -> bool:
        """`moves_back` by HubSpot's default stage order, with no portal at hand."""
        if field != LIFECYCLE or not held or not wanted:
            return False
        order = {value: rank for rank, value in enumerate(DEFAULT_LIFECYCLE_ORDER)}
        return _earlier(order, str(wanted), str(held))

    def ensure_properties(
        self, specs: Sequence[FieldSpec] = HUBSPOT_WRITEBACK_PROPERTIES
    ) -> list[str]:
        """Create the custom properties leadsync writes that the portal lacks; the names made."""
        existing = self.describe().fields
        created = []
        for spec in specs:
            if spec.name in existing:
                continue
            kind, field_type = _HUBSPOT_TYPES[spec.type]
            body = PropertyCreate(
                name=spec.name,
                label=spec.label,
                type=kind,
                field_type=field_type,
                group_name="contactinformation",
                description=spec.description,
                options=[
                    Option(label=o, value=o, display_order=n, hidden=False)
                    for n, o in enumerate(spec.options)
                ],
            )
            self._call(
                f"create property {spec.name}",
                partial(
                    self._properties.create_with_http_info,
                    object_type=OBJECT,
                    property_create=body,
                    _request_timeout=self._timeout(),
                ),
            )
            created.append(spec.name)
            log.info("created HubSpot contact property %s", spec.name)
        if created:
            self.describe()
        return created

    # ---------------------------------------------------------------- writes

    def write(self, updates: Sequence[RecordUpdate]) -> list[WriteResult]:
        """Batch-update contacts; one result per update, in order."""
        merged = merge_by_id(updates)
        outcomes: dict[str, WriteResult] = {}
        cleared: list[str] = []
        backward = self._backward_stage_moves(merged.values())
        if backward:
            clears = [RecordUpdate(record_id, {LIFECYCLE: ""}) for record_id in backward]
            for result in self._write_batches(clears):
                if result.status is WriteStatus.WRITTEN:
                    cleared.append(result.record_id)
                else:
                    # Without the clear, HubSpot would silently ignore the backward stage.
                    outcomes[result.record_id] = result
        pending = [update for key, update in merged.items() if key not in outcomes]
        try:
            for result in self._write_batches(pending):
                outcomes[result.record_id] = result
        finally:
            # Also when the sets stopped the run (a quota, the credentials): put back first.
            unset = [
                record_id
                for record_id in cleared
                if outcomes.get(record_id, _UNSET).status is not WriteStatus.WRITTEN
            ]
            if unset:
                self._put_back(unset, merged, outcomes)
        return [outcomes[update.record_id] for update in updates]

    def _put_back(
        self,
        record_ids: Sequence[str],
        merged: Mapping[str, RecordUpdate],
        outcomes: dict[str, WriteResult],
    ) -> None:
        """The stage was cleared and the set after it did not land: write back the stage each
        contact had (a forward move from blank: one request), so none is left without one."""
        held = {record_id: str(merged[record_id].current[LIFECYCLE]) for record_id in record_ids}
        restores = [RecordUpdate(i, {LIFECYCLE: stage}) for i, stage in held.items()]
        try:
            results = self._write_batches(restores, repair=True)
        except ConnectorError as error:
            results = [_result(r.record_id, WriteStatus.DEFERRED, error, 1) for r in restores]
        for result in results:
            record_id = result.record_id
            before = outcomes.get(record_id, _UNSET)
            if result.status is WriteStatus.WRITTEN:
                note = f"lifecycle stage put back to {held[record_id]}"
            else:
                note = "lifecycle stage left blank: putting it back failed too"
                log.error(
                    "contact %s: its lifecycle stage was cleared, the new one was not set and "
                    "the old one could not be put back (%s); the next run writes it",
                    record_id,
                    result.category,
                )
            message = f"{before.message}; {note}" if before.message else note
            outcomes[record_id] = replace(before, record_id=record_id, message=message)

    def _backward_stage_moves(self, updates: Iterable[RecordUpdate]) -> list[str]:
        wanted = [u for u in updates if u.values.get(LIFECYCLE) and u.current.get(LIFECYCLE)]
        if not wanted:
            return []
        order = self._stage_order()
        return [
            update.record_id
            for update in wanted
            if _earlier(order, str(update.values[LIFECYCLE]), str(update.current[LIFECYCLE]))
        ]

    def _write_batches(
        self, updates: Sequence[RecordUpdate], *, repair: bool = False
    ) -> list[WriteResult]:
        size = self._connection.batch_size
        results: list[WriteResult] = []
        for start in range(0, len(updates), size):
            chunk = updates[start : start + size]
            results.extend(self._write_with_record_retries(chunk, repair=repair))
        return results

    def _write_with_record_retries(
        self, chunk: Sequence[RecordUpdate], *, repair: bool = False
    ) -> list[WriteResult]:
        """One batch, then its retriable failures again: the retry policy for records.
        A `repair` undoes leadsync's own half-done write: the quota reserve does not stop it."""
        return retry_records(
            self._connection.retry,
            f"hubspot batch update of {len(chunk)} contacts",
            chunk,
            lambda pending, attempt: self._write_chunk(pending, attempt, repair=repair),
            again=lambda result: result.status is WriteStatus.DEFERRED,
        )

    def _write_chunk(
        self, chunk: Sequence[RecordUpdate], attempt: int, *, repair: bool = False
    ) -> list[WriteResult]:
        if not chunk:
            return []
        body = {
            "inputs": [
                {
                    "id": update.record_id,
                    "properties": {k: _as_property(v) for k, v in update.values.items()},
                }
                for update in chunk
            ]
        }
        try:
            data = self._call_json(
                f"batch update {len(chunk)} contacts",
                self._batch.update_with_http_info,
                reserve=not repair,
                batch_input_simple_public_object_batch_input=body,
            )
        except TransientError as error:
            return [_result(u.record_id, WriteStatus.DEFERRED, error, attempt) for u in chunk]
        except RequestRejectedError as error:
            return self._refused(chunk, error, attempt, repair=repair)
        return self._batch_outcomes(chunk, data, attempt)

    def _refused(
        self,
        chunk: Sequence[RecordUpdate],
        error: RequestRejectedError,
        attempt: int,
        *,
        repair: bool,
    ) -> list[WriteResult]:
        """HubSpot refused the batch as a whole. For something in it (a 400, or a 409 for an
        email another contact holds): inputs carrying a property it refuses outright, or a
        value a refused dropdown's options do not list, fail together; the rest is halved
        until the inputs at fault stand alone, so one bad value does not block the others.
        For the request itself (a 403 for a missing scope, say): every input, at once;
        splitting would not help."""
        if len(chunk) == 1 or error.status not in (HTTPStatus.BAD_REQUEST, HTTPStatus.CONFLICT):
            return [_refusal(update, error, attempt) for update in chunk]
        refused = {name for name, code in error.field_errors if code in _REFUSED_PROPERTY_CODES}
        doomed = [
            update
            for update in chunk
            if refused & set(update.values) or self._lacks_option(update, error.field_errors)
        ]
        if doomed:
            gone = {update.record_id for update in doomed}
            rest = [update for update in chunk if update.record_id not in gone]
            failed = [_refusal(update, error, attempt) for update in doomed]
            return failed + self._write_chunk(rest, attempt, repair=repair)
        middle = len(chunk) // 2
        return self._write_chunk(chunk[:middle], attempt, repair=repair) + self._write_chunk(
            chunk[middle:], attempt, repair=repair
        )

    def _lacks_option(self, update: RecordUpdate, field_errors: Sequence[tuple[str, str]]) -> bool:
        """Whether `update` holds a value the options of a dropdown HubSpot refused a value of
        do not list, as the run's describe gives them. HubSpot does not say which input held
        the value: halving down to each would cost two calls for every bad input."""
        if self._description is None:
            return False
        for name, code in field_errors:
            if code != _INVALID_OPTION or name not in update.values:
                continue
            info = self._description.field(name)
            value = _as_property(update.values[name])
            if info is not None and info.options and value and value not in info.options:
                return True
        return False

    def _batch_outcomes(
        self, chunk: Sequence[RecordUpdate], data: Mapping[str, Any], attempt: int
    ) -> list[WriteResult]:
        # HubSpot's stamp of each contact as written, as a pull would read it.
        written = {
            str(contact.get("id")): _written_stamp(contact) for contact in data.get("results") or ()
        }
        failures: dict[str, WriteResult] = {}
        unattributed: WriteResult | None = None
        for error in data.get("errors") or ():
            code = str(error.get("category") or "ERROR")
            status = (
                WriteStatus.DEFERRED if record_error_is_retriable(CRM, code) else WriteStatus.FAILED
            )
            context = error.get("context") or {}
            ids = (
                [str(error["id"])]
                if error.get("id")
                else [str(i) for i in context.get("ids") or ()]
            )
            message = str(error.get("message") or "")
            for record_id in ids:
                failures[record_id] = WriteResult(record_id, status, code.lower(), message, attempt)
            if not ids:
                unattributed = WriteResult("", status, code.lower(), message, attempt)
        results = []
        for update in chunk:
            record_id = update.record_id
            if record_id in failures:
                results.append(failures[record_id])
            elif record_id in written:
                results.append(
                    WriteResult(
                        record_id,
                        WriteStatus.WRITTEN,
                        attempts=attempt,
                        modified_at=written[record_id],
                    )
                )
            else:
                fallback = unattributed or WriteResult(
                    "", WriteStatus.DEFERRED, "missing_result", "no result for this record"
                )
                results.append(
                    WriteResult(
                        record_id, fallback.status, fallback.category, fallback.message, attempt
                    )
                )
        return results

    def fetch(
        self, record_ids: Sequence[str], *, fields: Sequence[str], object_name: str | None = None
    ) -> dict[str, CrmRecord]:
        """The contacts as they are now (absent: archived or unknown), 100 a batch read: what
        the engine checks just before writing, and what `revert` compares with."""
        if object_name not in (None, *self.streams):
            raise ValueError(f"HubSpot has no object {object_name!r} leadsync reads")
        found: dict[str, CrmRecord] = {}
        size = self._connection.batch_size
        properties = list(dict.fromkeys([*fields, MODIFIED]))
        for start in range(0, len(record_ids), size):
            batch = record_ids[start : start + size]
            data = self._call_json(
                f"batch read {len(batch)} contacts",
                self._batch.read_with_http_info,
                batch_read_input_simple_public_object_id={
                    "properties": properties,
                    "inputs": [{"id": record_id} for record_id in batch],
                },
            )
            for contact in data.get("results") or ():
                record = _record(contact)
                found[record.id] = record
        return found

    def related_where(
        self, object_name: str, field: str, values: Sequence[str], *, fields: Sequence[str]
    ) -> list[CrmRecord]:
        """HubSpot follows no related object: asking for one is a mistake of the caller."""
        raise ValueError(f"HubSpot has no object {object_name!r} leadsync reads")

    # ---------------------------------------------------------------- quota

    def quota(self) -> Quota:
        return self._quota.quota

    @property
    def waited_seconds(self) -> float:
        """Time spent waiting on the client-side limiters."""
        return self._window.waited + self._searches.waited

    def close(self) -> None:
        for api in (self._basic, self._batch, self._search, self._properties):
            pool = getattr(getattr(api.api_client, "rest_client", None), "pool_manager", None)
            if pool is not None:
                pool.clear()


class _ChangeWalk:
    """Where a search walk through changes stands, across re-issued searches.

    Every page after the first comes from a search re-issued at the last stamp seen, never
    from an offset: HubSpot's `after` is a position in results it works out again for each
    request, and a contact edited meanwhile leaves its place for the end, so the next offset
    would step over a contact that did not change. A re-issued search starts again at the last
    stamp seen (inclusive), so the records of that stamp already taken come back: `_taken`
    remembers the ids taken at each stamp the next search can still return (pruned as the walk
    moves on, so memory stays flat) and `take` drops them.
    """

    def __init__(self, since_ms: int) -> None:
        self.since_ms = since_ms
        self._last: int | None = None  # the stamp of the last record of the last page
        self._taken: dict[int, set[str]] = {}

    def taken(self, stamp: int, record_id: str) -> None:
        self._taken.setdefault(stamp, set()).add(record_id)

    def take(self, records: Sequence[CrmRecord]) -> list[CrmRecord]:
        fresh = []
        for record in records:
            taken = self._taken.setdefault(_ms(record.modified_at), set())
            if record.id not in taken:
                taken.add(record.id)
                fresh.append(record)
        if records:
            self._last = _ms(records[-1].modified_at)  # results come oldest change first
        return fresh

    def advance(self) -> bool:
        """Start the next search at the last stamp seen; False when the page held no later
        stamp than where it started, where re-issuing would go round in circles."""
        if self._last is None or self._last <= self.since_ms:
            return False
        self._start_at(self._last)
        return True

    def step_past(self, stamp: int) -> None:
        self._start_at(stamp + 1)

    def _start_at(self, since_ms: int) -> None:
        self.since_ms, self._last = since_ms, None
        self._taken = {stamp: ids for stamp, ids in self._taken.items() if stamp >= since_ms}


# -------------------------------------------------------------------- helpers


def _read_body(response: urllib3.BaseHTTPResponse) -> bytes:
    try:
        return response.data
    finally:
        response.release_conn()


def _parse_body(body: bytes, description: str) -> dict[str, Any]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            # orjson refuses an escaped lone surrogate ("\ud800"), which HubSpot's Java
            # backend can hold and send; the json module reads it, and the record holding
            # it is quarantined downstream, not the whole page refused.
            parsed = json.loads(body)
        except ValueError:
            # A 2xx whose body is not JSON (a proxy's page, a cut answer): worth another try.
            parsed = None
    if not isinstance(parsed, dict):
        raise ServerError(f"HubSpot answered {description} with a body that is not JSON", crm=CRM)
    return parsed


def _record(contact: Mapping[str, Any]) -> CrmRecord:
    properties = dict(contact.get("properties") or {})
    return CrmRecord(
        crm=CRM,
        id=str(contact["id"]),
        modified_at=_parse_time(_stamp(contact)),
        fields=properties,
        deleted=bool(contact.get("archived")),
    )


def _stamp(contact: Mapping[str, Any]) -> Any:
    return (contact.get("properties") or {}).get(MODIFIED) or contact.get("updatedAt")


def _written_stamp(contact: Mapping[str, Any]) -> datetime | None:
    """A batch update's stamp of a contact it wrote, as `_record` reads one; None when the
    answer carries none that parses (the write landed all the same)."""
    stamp = _stamp(contact)
    try:
        return _parse_time(stamp) if stamp else None
    except ValueError:
        return None


def _next_after(data: Mapping[str, Any]) -> str | None:
    """The `after` cursor of a page's `paging.next`, None on the last page."""
    following = (data.get("paging") or {}).get("next") or {}
    after = following.get("after")
    return None if after is None else str(after)


def _filter(name: str, operator: str, value: int) -> dict[str, str]:
    return {"propertyName": name, "operator": operator, "value": str(value)}


_HUBSPOT_TYPES: dict[FieldType, tuple[str, str]] = {
    FieldType.NUMBER: ("number", "number"),
    FieldType.INTEGER: ("number", "number"),
    FieldType.STRING: ("string", "text"),
    FieldType.TEXT: ("string", "textarea"),
    FieldType.ENUMERATION: ("enumeration", "select"),
    FieldType.BOOLEAN: ("bool", "booleancheckbox"),
    FieldType.DATE: ("date", "date"),
    FieldType.DATETIME: ("datetime", "date"),
}


def _field_info(prop: Mapping[str, Any]) -> FieldInfo:
    """A property as `GET /crm/v3/properties/contacts` describes it (its JSON)."""
    name = str(prop["name"])
    kind, field_type = prop.get("type"), prop.get("fieldType")
    if kind == "number":
        mapped = FieldType.NUMBER
    elif kind == "bool" or field_type == "booleancheckbox":
        mapped = FieldType.BOOLEAN
    elif kind == "enumeration":
        mapped = FieldType.ENUMERATION
    elif kind == "datetime":
        mapped = FieldType.DATETIME
    elif kind == "date":
        mapped = FieldType.DATE
    elif field_type == "textarea":
        mapped = FieldType.TEXT
    elif name == "email":
        mapped = FieldType.EMAIL
    elif field_type == "phonenumber":
        mapped = FieldType.PHONE
    else:
        mapped = FieldType.STRING
    # Read as far as the JSON goes: what is not of the API's shape counts as absent.
    metadata = prop.get("modificationMetadata")
    locked = isinstance(metadata, dict) and bool(metadata.get("readOnlyValue"))
    read_only = locked or bool(prop.get("calculated"))
    choices = prop.get("options")
    options = tuple(
        str(option["value"])
        for option in (choices if isinstance(choices, list) else [])
        if isinstance(option, dict) and option.get("value") is not None
    )
    return FieldInfo(
        name=name,
        label=str(prop.get("label") or name),
        type=mapped,
        writable=not read_only,
        options=options,
        restricted=mapped is FieldType.ENUMERATION,
        custom=not bool(prop.get("hubspotDefined")),
    )


def _as_property(value: Any) -> str:
    # HubSpot takes every value as a string: "" clears; datetimes as epoch ms.
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return str(_ms(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _result(
    record_id: str, status: WriteStatus, error: ConnectorError, attempt: int
) -> WriteResult:
    return WriteResult(record_id, status, error.category, error.message, attempt)


def _refusal(update: RecordUpdate, error: ConnectorError, attempt: int) -> WriteResult:
    """A record HubSpot refused for good: its reason and the properties it named, under the
    code of the first of them (`invalid_option`, `property_doesnt_exist`)."""
    named = [(name, code) for name, code in error.field_errors if name in update.values]
    fields = tuple(dict.fromkeys(name for name, _ in named))
    if named:
        category = named[0][1]
    elif error.status in (HTTPStatus.BAD_REQUEST, HTTPStatus.CONFLICT) and error.code:
        # HubSpot's own category (VALIDATION_ERROR, CONFLICT), as a 207's error would carry it.
        category = error.code
    else:
        # The request itself refused (a 403 for a missing scope): what leadsync calls it.
        category = error.category
    category = category.lower()
    return WriteResult(
        update.record_id, WriteStatus.FAILED, category, error.message, attempt, fields
    )


def _field_errors(body: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """(property, code) of each item of a VALIDATION_ERROR body's `errors`."""
    found = []
    for item in body.get("errors") or ():
        if not isinstance(item, Mapping):
            continue
        code = str(item.get("code") or "INVALID")
        context = item.get("context")
        names = context.get("propertyName") if isinstance(context, Mapping) else None
        for name in names if isinstance(names, list) else ():
            found.append((str(name), code))
    return tuple(found)


def _earlier(order: Mapping[str, int], stage: str, than: str) -> bool:
    # A stage the portal does not list ranks first, as HubSpot's own order has no place for it.
    return order.get(stage, 0) < order.get(than, 0)


_UNSET = WriteResult("", WriteStatus.DEFERRED, "missing_result", "no result for this record")


def _json(body: Any) -> Mapping[str, Any]:
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, Mapping) else {}
