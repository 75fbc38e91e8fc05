"""The console's Exceptions page: the review queue and the quarantine, each resolvable, on
the functions behind `leadsync review` and `leadsync quarantine`.

A retry calls the CRMs and writes, like a sync: it runs under the `sync` lease, so it never
interleaves with a sync or backfill of another replica, and says so when one holds it.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from starlette.responses import RedirectResponse, Response

from leadsync.console.web import Visit
from leadsync.errors import LeadsyncError
from leadsync.sync.leases import SYNC_LEASE
from leadsync.sync.quarantine import (
    quarantine_causes,
    quarantine_item,
    quarantine_items,
    retry_quarantined,
)
from leadsync.sync.review import ACTIONS, resolve_review, review_item, review_items

__all__ = ["exceptions", "resolve_review_item", "retry_quarantined_record"]

LEASE_WAIT = timedelta(seconds=10)


def exceptions(visit: Visit, *, problem: str = "", status_code: int = 200) -> Response:
    runtime = visit.runtime()
    held = quarantine_items(runtime.store, runtime.field_map)
    return visit.render(
        "exceptions.html",
        status_code=status_code,
        page="exceptions",
        reviews=review_items(runtime.store),
        field_map=runtime.field_map,
        identity=runtime.field_map.identity_field,
        quarantine=held,
        causes=quarantine_causes(held),
        problem=problem,
        notice=visit.request.query_params.get("done", ""),
    )


def resolve_review_item(visit: Visit) -> Response:
    crm, record_id = visit.request.path_params["crm"], visit.request.path_params["record_id"]
    action, lead_id = visit.field("action"), visit.field("lead") or None
    runtime = visit.runtime()
    if action not in ACTIONS:
        return exceptions(visit, problem=f"resolve with {', '.join(ACTIONS)}", status_code=400)
    try:
        view = review_item(runtime.store, record_id, crm=crm)
        decided = resolve_review(runtime.store, view, action, lead_id=lead_id)
    except LeadsyncError as refused:
        return exceptions(visit, problem=str(refused), status_code=400)
    visit.audit("review.resolve", f"{crm}/{record_id}", {"action": action, "lead": lead_id or ""})
    return _done(visit, f"{crm} record {record_id}: {decided}; the next sync applies it")


def retry_quarantined_record(visit: Visit) -> Response:
    crm, record_id = visit.request.path_params["crm"], visit.request.path_params["record_id"]
    runtime = visit.runtime()
    try:
        item = quarantine_item(runtime.store, runtime.field_map, record_id, crm=crm)
    except LeadsyncError as unknown:
        return exceptions(visit, problem=str(unknown), status_code=404)
    if crm not in runtime.connectors:
        return exceptions(
            visit,
            problem=f"this console has no connection to {crm}: retry from the CLI",
            status_code=409,
        )
    ttl = timedelta(seconds=runtime.config.model.service.lease_seconds)
    with runtime.leases("console").hold(SYNC_LEASE, ttl=ttl, wait=LEASE_WAIT) as lease:
        if lease is None:
            return exceptions(
                visit,
                problem="a sync or backfill is running: try again in a minute",
                status_code=409,
            )
        if lease.took_over_from is not None:  # a killed sync's: its run is abandoned
            runtime.take_over("console retry", lease.took_over_from)
        summary = retry_quarantined(runtime.engine(role="console"), [item])
    still = any(
        other.record_id == item.record_id
        for other in quarantine_items(runtime.store, runtime.field_map, crm=crm)
    )
    visit.audit(
        "quarantine.resolve",
        f"{crm}/{record_id}",
        {"action": "retry", "run": summary.run_id, "still_quarantined": still},
    )
    outcome = "still in quarantine" if still else "out of quarantine"
    return _done(visit, f"{crm} record {record_id} retried: {outcome}")


def _done(visit: Visit, message: str) -> Response:
    """Back to the page, saying what was done (post, redirect, get)."""
    return RedirectResponse(f"{visit.path('exceptions')}?{urlencode({'done': message})}", 303)
