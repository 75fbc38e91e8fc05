"""The `/_sandbox/` inspection and control API: no part of either CRM.

Tests, benchmarks and people use it to see what the CRMs hold and what was asked of them, and to
change the world around leadsync: reseed, inject faults, expire sessions, tighten limits, and
make the edits that only the CRMs themselves make (engagement, lead conversion), and the ones
sales make (an opportunity moved through its stages).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from leadsync.sandbox.faults import FaultSpec, FaultSpecError, RequestFault
from leadsync.sandbox.http import Request, Response, Router, route

if TYPE_CHECKING:
    from leadsync.sandbox.server import Sandbox

ControlHandler = Callable[["Sandbox", Request, re.Match[str]], Response]


def handle_control(router: Router, request: Request) -> tuple[str, Response]:
    found = router.find(request.method, request.path)
    if found is None or isinstance(found, str):
        message = f"no sandbox endpoint {request.method} {request.path}"
        return "sandbox.unknown", Response.json(404, {"message": message})
    try:
        return found.route.endpoint, found.route.handler(request, found.groups)
    except _BadRequestError as problem:
        return found.route.endpoint, Response.json(400, {"message": str(problem)})


class _BadRequestError(Exception):
    pass


def _body(request: Request) -> Mapping[str, Any]:
    if not request.body:
        return {}
    try:
        body = request.json()
    except ValueError:
        raise _BadRequestError("body must be JSON") from None
    if not isinstance(body, Mapping):
        raise _BadRequestError("body must be a JSON object")
    return body


def _index(sandbox: Sandbox, request: Request, _: re.Match[str]) -> Response:
    counts = {
        "hubspot_contacts": len(sandbox.hubspot.snapshot()),
        "salesforce_leads": len(sandbox.salesforce.snapshot("Lead")),
        "salesforce_contacts": len(sandbox.salesforce.snapshot("Contact")),
        "salesforce_opportunities": len(sandbox.salesforce.snapshot("Opportunity")),
    }
    return Response.json(
        200,
        {
            "url": sandbox.url,
            "seed": sandbox.settings.seed,
            "leads_per_crm": sandbox.settings.leads,
            "overlap": sandbox.settings.overlap,
            "records": counts,
            "faults": sandbox.faults.spec.as_dict(),
            "credentials": sandbox.credentials(),
            "inspection_api": list(ENDPOINTS),
        },
    )


def _stats(sandbox: Sandbox, request: Request, _: re.Match[str]) -> Response:
    body = sandbox.stats.as_dict()
    body["quota"] = {
        "hubspot": {
            "ten_second_remaining": sandbox.hubspot.ten_second_window.remaining(),
            "daily_remaining": sandbox.hubspot.daily.remaining(),
        },
        "salesforce": {
            "daily_used": sandbox.salesforce.daily.used,
            "daily_remaining": sandbox.salesforce.daily.remaining(),
            "logins": sandbox.salesforce.sessions.logins,
        },
    }
    return Response.json(200, body)


def _hubspot_contacts(sandbox: Sandbox, request: Request, _: re.Match[str]) -> Response:
    archived = request.param("archived") == "true"
    return Response.json(200, {"results": sandbox.hubspot.snapshot(include_archived=archived)})


def _hubspot_activity(sandbox: Sandbox, request: Request, match: re.Match[str]) -> Response:
    properties = _body(request).get("properties")
    if not isinstance(properties, Mapping):
        raise _BadRequestError('body needs "properties": {name: value}')
    try:
        contact = sandbox.hubspot.set_activity(
            int(match["id"]), {str(k): None if v is None else str(v) for k, v in properties.items()}
        )
    except KeyError as missing:
        return Response.json(404, {"message": f"no such contact or property: {missing}"})
    return Response.json(200, {"id": str(contact.id), "properties": dict(contact.properties)})


def _hubspot_settle_search(sandbox: Sandbox, request: Request, _: re.Match[str]) -> Response:
    backlog = sandbox.hubspot.search_backlog
    sandbox.hubspot.settle_search()
    return Response.json(200, {"caught_up": backlog})


def _salesforce_records(object_name: str) -> ControlHandler:
    def handler(sandbox: Sandbox, request: Request, _: re.Match[str]) -> Response:
        deleted = request.param("deleted") == "true"
        records = sandbox.salesforce.snapshot(object_name, include_deleted=deleted)
        return Response.json(200, {"records": records})

    return handler


def _salesforce_system_update(sandbox: Sandbox, request: Request, match: re.Match[str]) -> Response:
    fields = _body(request).get("fields")
    if not isinstance(fields, Mapping):
        raise _BadRequestError('body needs "fields": {name: value}')
    try:
        sandbox.salesforce.system_update("Lead", match["id"], fields)
    except KeyError as missing:
        return Response.json(404, {"message": f"no such lead or field: {missing}"})
    return Response.json(200, sandbox.salesforce.record("Lead", match["id"]))


def _salesforce_convert(sandbox: Sandbox, request: Request, match: re.Match[str]) -> Response:
    body = _body(request)
    stage = body.get("opportunity_stage")
    amount = body.get("amount")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int | float)):
        raise _BadRequestError('"amount" must be a number')
    try:
        lead = sandbox.salesforce.convert_lead(
            match["id"],
            opportunity_stage=str(stage) if stage else None,
            amount=None if amount is None else float(amount),
        )
    except KeyError:
        return Response.json(404, {"message": f"no such lead: {match['id']}"})
    except ValueError as refused:
        raise _BadRequestError(str(refused)) from None
    return Response.json(200, lead)


def _salesforce_move_opportunity(
    sandbox: Sandbox, request: Request, match: re.Match[str]
) -> Response:
    """A rep's edit of an opportunity (stage, amount, close date): validated as the REST API
    validates it; Salesforce then derives IsClosed, IsWon, probability and forecast."""
    fields = _body(request).get("fields")
    if not isinstance(fields, Mapping):
        raise _BadRequestError('body needs "fields": {name: value}, e.g. {"StageName": "..."}')
    emulator = sandbox.salesforce
    with emulator.lock:
        outcome = emulator.update_record("Opportunity", match["id"], fields)
    if outcome.errors:
        status = 404 if outcome.errors[0].status_code == "NOT_FOUND" else 400
        return Response.json(status, [error.as_rest() for error in outcome.errors])
    return Response.json(200, emulator.record("Opportunity", str(outcome.record_id)))


def _salesforce_bulk_fail_next(sandbox: Sandbox, request: Request, _: re.Match[str]) -> Response:
    message = _body(request).get("message") or "InternalServerError : the job failed"
    sandbox.salesforce.bulk.fail_next(str(message))
    return Response.json(200, {"fails_next": str(message)})


def _expire_sessions(sandbox: Sandbox, request: Request, _: re.Match[str]) -> Response:
    return Response.json(200, {"expired": sandbox.salesforce.sessions.expire_all()})


def _reset(sandbox: Sandbox, request: Request, _: re.Match[str]) -> Response:
    body = _body(request)
    try:
        seed = int(body.get("seed", sandbox.settings.seed))
        leads = int(body.get("leads", sandbox.settings.leads))
        overlap = float(body.get("overlap", sandbox.settings.overlap))
    except (TypeError, ValueError):
        raise _BadRequestError("seed and leads must be integers, overlap a number") from None
    if leads < 0 or not 0 <= overlap <= 1:
        raise _BadRequestError("leads must be >= 0 and overlap between 0 and 1")
    sandbox.reseed(seed=seed, leads=leads, overlap=overlap)
    return _index(sandbox, request, _)


def _faults(sandbox: Sandbox, request: Request, _: re.Match[str]) -> Response:
    if request.method == "POST":
        body = _body(request)
        try:
            spec = FaultSpec.parse(str(body.get("spec", "")))
        except FaultSpecError as problem:
            raise _BadRequestError(str(problem)) from None
        seed = body.get("seed")
        sandbox.faults.configure(spec, seed=int(seed) if seed is not None else None)
    return Response.json(200, sandbox.faults.spec.as_dict())


def _request_faults(sandbox: Sandbox, request: Request, _: re.Match[str]) -> Response:
    if request.method == "DELETE":
        sandbox.faults.clear_request_faults()
    elif request.method == "POST":
        body = _body(request)
        try:
            rule = RequestFault(
                method=str(body["method"]),
                path=str(body["path"]),
                status=int(body.get("status", 503)),
                body_contains=None
                if body.get("body_contains") is None
                else str(body["body_contains"]),
                times=None if body.get("times") is None else int(body["times"]),
            )
        except (KeyError, TypeError, ValueError):
            raise _BadRequestError(
                'body needs "method" and "path"; "status", "body_contains" and "times" optional'
            ) from None
        if not 400 <= rule.status <= 599:
            raise _BadRequestError("status must be an HTTP error status, 400..599")
        sandbox.faults.fail_requests(rule)
    rules = [
        {
            "method": rule.method,
            "path": rule.path,
            "status": rule.status,
            "body_contains": rule.body_contains,
            "times": rule.times,
        }
        for rule in sandbox.faults.request_faults
    ]
    return Response.json(200, {"rules": rules})


def _limits(sandbox: Sandbox, request: Request, _: re.Match[str]) -> Response:
    body = _body(request)
    known = {
        "hubspot_ten_second_limit",
        "hubspot_daily_limit",
        "hubspot_searches_per_second",
        "salesforce_daily_limit",
    }
    unknown = set(body) - known - {"reset_usage"}
    if unknown:
        raise _BadRequestError(f"unknown limits {sorted(unknown)}; known: {sorted(known)}")
    values = {}
    for name, value in body.items():
        if name == "reset_usage":
            continue
        if not isinstance(value, int) or value < 0:
            raise _BadRequestError(f"{name} must be a non-negative integer")
        values[name] = value
    sandbox.hubspot.set_limits(
        ten_second_limit=values.get("hubspot_ten_second_limit"),
        daily_limit=values.get("hubspot_daily_limit"),
        searches_per_second=values.get("hubspot_searches_per_second"),
    )
    if "salesforce_daily_limit" in values:
        sandbox.salesforce.daily.limit = values["salesforce_daily_limit"]
    if body.get("reset_usage", True):
        sandbox.hubspot.reset_limits()
        sandbox.salesforce.reset_limits()
    return Response.json(
        200,
        {
            "hubspot_ten_second_limit": sandbox.hubspot.ten_second_window.limit,
            "hubspot_daily_limit": sandbox.hubspot.daily.limit,
            "hubspot_searches_per_second": sandbox.hubspot.search_window.limit,
            "salesforce_daily_limit": sandbox.salesforce.daily.limit,
        },
    )


_CONTROL_ROUTES: list[tuple[str, str, str, ControlHandler]] = [
    ("GET", "/_sandbox/?", "index", _index),
    ("GET", "/_sandbox/stats", "stats", _stats),
    ("POST", "/_sandbox/reset", "reset", _reset),
    ("GET", "/_sandbox/faults", "faults", _faults),
    ("POST", "/_sandbox/faults", "faults", _faults),
    ("GET", "/_sandbox/faults/requests", "request_faults", _request_faults),
    ("POST", "/_sandbox/faults/requests", "request_faults", _request_faults),
    ("DELETE", "/_sandbox/faults/requests", "request_faults", _request_faults),
    ("POST", "/_sandbox/limits", "limits", _limits),
    ("GET", "/_sandbox/hubspot/contacts", "hubspot_contacts", _hubspot_contacts),
    ("PATCH", r"/_sandbox/hubspot/contacts/(?P<id>\d+)", "hubspot_activity", _hubspot_activity),
    ("POST", "/_sandbox/hubspot/settle-search", "hubspot_settle_search", _hubspot_settle_search),
    ("GET", "/_sandbox/salesforce/leads", "salesforce_leads", _salesforce_records("Lead")),
    ("GET", "/_sandbox/salesforce/contacts", "salesforce_contacts", _salesforce_records("Contact")),
    (
        "GET",
        "/_sandbox/salesforce/opportunities",
        "salesforce_opportunities",
        _salesforce_records("Opportunity"),
    ),
    (
        "PATCH",
        r"/_sandbox/salesforce/opportunities/(?P<id>\w+)",
        "salesforce_move_opportunity",
        _salesforce_move_opportunity,
    ),
    (
        "PATCH",
        r"/_sandbox/salesforce/leads/(?P<id>\w+)",
        "salesforce_system_update",
        _salesforce_system_update,
    ),
    (
        "POST",
        r"/_sandbox/salesforce/leads/(?P<id>\w+)/convert",
        "salesforce_convert",
        _salesforce_convert,
    ),
    ("POST", "/_sandbox/salesforce/expire-sessions", "expire_sessions", _expire_sessions),
    (
        "POST",
        "/_sandbox/salesforce/bulk/fail-next",
        "salesforce_bulk_fail_next",
        _salesforce_bulk_fail_next,
    ),
]

ENDPOINTS = tuple(f"{method} {pattern}" for method, pattern, _, _ in _CONTROL_ROUTES)


def control_router(sandbox: Sandbox) -> Router:
    """The inspection API's routes, bound to one sandbox."""
    return Router(
        route(method, pattern, f"sandbox.{name}", partial(handler, sandbox))
        for method, pattern, name, handler in _CONTROL_ROUTES
    )
