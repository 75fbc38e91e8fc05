"""The console's pages, each on the function the CLI uses for the same thing:

Status      service_status (store.runs, the leases, quota), the service's health
Leads       search_leads; a lead's page is Runtime.explain, as `leadsync explain`
Backfills   BackfillQueue and spec_for, as `leadsync backfill --queue/--status/--stop`
Reports     report_for and the HTML report's body, as `leadsync report --format html`
Exceptions  review_items/resolve_review and quarantine_items/retry_quarantined, as
            `leadsync review` and `leadsync quarantine` (console/exceptions.py)
Audit log   AuditLog.entries

Edits       edit_status/what_if/apply_edit, as `leadsync status`, `plan --what-if` and
            `leadsync apply` (console/edits.py)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from leadsync.console.edits import apply_files, edits
from leadsync.console.exceptions import exceptions, resolve_review_item, retry_quarantined_record
from leadsync.console.status import service_status
from leadsync.console.web import Visit
from leadsync.reports.build import Period, report_for
from leadsync.reports.html import REPORT_CSS, render_body
from leadsync.sync.backfill import Backfill, BackfillSpecError, Status, spec_for
from leadsync.sync.search import NAME_FIELDS, search_leads

__all__ = ["PAGES", "report_css"]

LIVE = (Status.QUEUED, Status.RUNNING, Status.STOPPING)
STOPPABLE = (Status.QUEUED, Status.RUNNING, Status.PAUSED, Status.FAILED, Status.ABANDONED)
RESUMABLE = (Status.STOPPED, Status.PAUSED, Status.FAILED)
AUDIT_SHOWN = 200


class FormError(ValueError):
    """A form's field that makes no sense: said on the page, status 400."""


# ------------------------------------------------------------------------------ status


def status(visit: Visit) -> Response:
    context = visit.console.context
    return visit.render(
        "status.html",
        page="status",
        status=service_status(
            visit.runtime(),
            now=visit.now(),
            leases_now=context.leases_now(visit.runtime().store.engine),
        ),
        health=context.health() if context.health is not None else None,
        files=context.files() if context.files is not None else None,
        replica=context.replica,
    )


# ------------------------------------------------------------------------------ leads


def leads(visit: Visit) -> Response:
    query = visit.request.query_params.get("q", "").strip()
    runtime = visit.runtime()
    names = [name for name in NAME_FIELDS if name in runtime.field_map.fields]
    found = search_leads(runtime.store, query, name_fields=names) if query else []
    records = runtime.store.records_of([lead.lead_id for lead in found])
    return visit.render(
        "leads.html",
        page="leads",
        query=query,
        found=found,
        records=records,
        identity=runtime.field_map.identity_field,
        names=names,
    )


def lead(visit: Visit) -> Response:
    lead_id = visit.request.path_params["lead_id"]
    runtime = visit.runtime()
    stored = runtime.store.leads([lead_id]).get(lead_id)
    if stored is None:
        return _not_found(visit, f"No lead {lead_id}.")
    # `explain` finds leads by a record id (or email), as `leadsync explain KEY` does.
    records = runtime.store.records_of([lead_id]).get(lead_id, [])
    key = records[0].record_id if records else stored.values.get(runtime.field_map.identity_field)
    explained = [
        explanation
        for explanation in (runtime.explain(str(key), now=visit.now()) if key else [])
        if explanation.lead.lead_id == lead_id
    ]
    if not explained:
        return _not_found(visit, f"No lead {lead_id}.")
    settings = visit.console.context.settings
    return visit.render(
        "lead.html",
        page="leads",
        explanation=explained[0],
        identity=runtime.field_map.identity_field,
        record_url=settings.record_url,
    )


# ------------------------------------------------------------------------------ backfills


def backfills(visit: Visit) -> Response:
    return _backfills_page(visit)


def _backfills_page(visit: Visit, *, problem: str = "", status_code: int = 200) -> Response:
    runtime = visit.runtime()
    return visit.render(
        "backfills.html",
        status_code=status_code,
        page="backfills",
        backfills=runtime.backfill_queue().list(),
        crms=runtime.enabled_crms(),
        problem=problem,
        asked={name: visit.field(name) for name in ("crm", "since", "until", "kind", "dry_run")},
    )


def queue_backfill(visit: Visit) -> Response:
    runtime = visit.runtime()
    try:
        spec = spec_for(
            visit.field("crm") or "all",
            runtime.enabled_crms(),
            since=_day(visit.field("since"), "since"),
            until=_day(visit.field("until"), "until"),
            dry_run=visit.field("dry_run") == "on",
            sweep=visit.field("kind") == "sweep",
        )
    except (FormError, BackfillSpecError) as problem:
        return _backfills_page(visit, problem=str(problem), status_code=400)
    queued = runtime.backfill_queue().create(spec)
    visit.audit("backfill.queue", queued.backfill_id, _asked(queued))
    return RedirectResponse(visit.path("backfill", backfill_id=queued.backfill_id), 303)


def backfill(visit: Visit) -> Response:
    found = _backfill(visit)
    if found is None:
        return _not_found(visit, "No such backfill.")
    return visit.render(
        "backfill.html",
        page="backfills",
        backfill=found,
        live=found.status in LIVE,
        stoppable=found.status in STOPPABLE,
        resumable=found.status in RESUMABLE,
    )


def backfill_progress(visit: Visit) -> Response:
    found = _backfill(visit)
    if found is None:
        return JSONResponse({"error": "no such backfill"}, status_code=404)
    return JSONResponse(found.as_dict())


def stop_backfill(visit: Visit) -> Response:
    return _change_backfill(
        visit, "backfill.stop", lambda runtime, backfill_id: runtime.stop_backfill(backfill_id)
    )


def resume_backfill(visit: Visit) -> Response:
    return _change_backfill(
        visit,
        "backfill.resume",
        lambda runtime, backfill_id: runtime.backfill_queue().resume(backfill_id),
    )


def _change_backfill(
    visit: Visit, action: str, change: Callable[[Any, str], Backfill | None]
) -> Response:
    before = _backfill(visit)
    if before is None:
        return _not_found(visit, "No such backfill.")
    after = change(visit.runtime(), before.backfill_id)
    if after is not None and after.status != before.status:
        visit.audit(action, before.backfill_id, {"from": before.status, "to": after.status})
    return RedirectResponse(visit.path("backfill", backfill_id=before.backfill_id), 303)


def _backfill(visit: Visit) -> Backfill | None:
    backfill_id = visit.request.path_params["backfill_id"]
    return visit.runtime().backfill_queue().get(backfill_id)


def _asked(backfill: Backfill) -> dict[str, Any]:
    asked = backfill.as_dict()
    return {key: asked[key] for key in ("kind", "crms", "since", "until", "dry_run")}


def _day(text: str, name: str) -> datetime | None:
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise FormError(f"{name}: {text!r} is not a date (YYYY-MM-DD)") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# ------------------------------------------------------------------------------ reports


def reports(visit: Visit) -> Response:
    params = visit.request.query_params
    asked = params.get("period", "month")
    period: Period = "week" if asked == "week" else "month"
    problem, since, until = "", None, None
    try:
        since = _day(params.get("since", ""), "since")
        until = _day(params.get("until", ""), "until")
        if asked not in ("week", "month"):
            raise FormError(f"period: week or month, not {asked!r}")
        if since and until and until <= since:
            raise FormError("until must be after since")
    except FormError as wrong:
        problem, since, until = str(wrong), None, None
    report = report_for(visit.runtime(), now=visit.now(), since=since, until=until, period=period)
    return visit.render(
        "reports.html",
        status_code=400 if problem else 200,
        page="reports",
        body=render_body(report),
        problem=problem,
        asked={
            "since": params.get("since", ""),
            "until": params.get("until", ""),
            "period": period,
        },
    )


async def report_css(request: Request) -> Response:
    """The HTML report's styles, for the Reports page (the console allows no inline style)."""
    return Response(REPORT_CSS, media_type="text/css")


# ------------------------------------------------------------------------------ audit


def audit(visit: Visit) -> Response:
    return visit.render(
        "audit.html", page="audit", entries=visit.console.audit.entries(limit=AUDIT_SHOWN)
    )


def _not_found(visit: Visit, message: str) -> Response:
    return visit.render("refused.html", status_code=404, message=message)


# path, route name, page, methods: POSTs are changes (CSRF token and an editor required).
PAGES: Sequence[tuple[str, str, Callable[[Visit], Response], tuple[str, ...]]] = (
    ("/", "status", status, ("GET",)),
    ("/leads", "leads", leads, ("GET",)),
    ("/leads/{lead_id}", "lead", lead, ("GET",)),
    ("/backfills", "backfills", backfills, ("GET",)),
    ("/backfills", "queue_backfill", queue_backfill, ("POST",)),
    ("/backfills/{backfill_id}", "backfill", backfill, ("GET",)),
    ("/backfills/{backfill_id}/progress", "backfill_progress", backfill_progress, ("GET",)),
    ("/backfills/{backfill_id}/stop", "stop_backfill", stop_backfill, ("POST",)),
    ("/backfills/{backfill_id}/resume", "resume_backfill", resume_backfill, ("POST",)),
    ("/exceptions", "exceptions", exceptions, ("GET",)),
    (
        "/exceptions/review/{crm}/{record_id}",
        "resolve_review",
        resolve_review_item,
        ("POST",),
    ),
    (
        "/exceptions/quarantine/{crm}/{record_id}/retry",
        "retry_quarantined",
        retry_quarantined_record,
        ("POST",),
    ),
    ("/edits", "edits", edits, ("GET",)),
    ("/edits/apply", "apply_files", apply_files, ("POST",)),
    ("/reports", "reports", reports, ("GET",)),
    ("/audit", "audit", audit, ("GET",)),
)
