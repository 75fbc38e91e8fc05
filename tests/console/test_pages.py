"""Every page of the console over HTTP: what each shows comes from the function the CLI
uses (explain, the backfill queue, the report), and every change needs an editor, the
session's form token and the console's own origin, and lands in the audit log."""

from __future__ import annotations

import html
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from leadsync.console.audit import AuditLog
from leadsync.console.web import NONE
from leadsync.reports.build import report_for
from leadsync.reports.html import REPORT_CSS, render_body
from leadsync.sync import tables
from leadsync.sync.backfill import BackfillSpec, Status
from leadsync.sync.explain import shown_value
from leadsync.sync.leases import Leases, replica_lease
from leadsync.sync.model import Lead
from leadsync.sync.sla.clocks import ClockStatus
from tests.console.conftest import (
    ADA_TOKEN,
    CONSOLE,
    GRACE_PASSWORD,
    HUBSPOT_LINK,
    Served,
    console_config,
    csrf_of,
    serve,
    sign_in,
)
from tests.support import NinetySecondsAhead


def both_crms_lead(served: Served) -> tuple[Lead, dict[str, str]]:
    """A lead with a record in each CRM, and its record ids by CRM."""
    store = served.runtime.store
    leads = store.leads(list(_lead_ids(served)))
    records = store.records_of(list(leads))
    for lead_id, found in sorted(records.items()):
        crms = {record.crm: record.record_id for record in found}
        if set(crms) == {"hubspot", "salesforce"} and leads[lead_id].values.get("last_name"):
            return leads[lead_id], crms
    raise AssertionError("the synced sandbox has no lead in both CRMs")


def _lead_ids(served: Served) -> list[str]:
    with served.runtime.store.engine.connect() as connection:
        return list(
            connection.execute(
                tables.leads.select().with_only_columns(tables.leads.c.lead_id)
            ).scalars()
        )


def audit(served: Served) -> list[tuple[str, str, str, dict[str, Any]]]:
    entries = AuditLog(served.runtime.store.engine, replica="test").entries()
    return [
        (entry.actor, entry.action, entry.target, dict(entry.details))
        for entry in reversed(entries)
        if entry.action != "login"
    ]


def text_of(page: str) -> str:
    """A page's text, tags out and entities decoded, spaces squeezed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


# ------------------------------------------------------------------------------ status


def test_status_shows_health_runs_quota_leases_and_quarantine(ada: Served) -> None:
    store = ada.runtime.store
    (run,) = store.run_log.latest()
    leases = ada.runtime.leases("sync")
    assert leases.acquire("sync", timedelta(minutes=5))
    page = text_of(ada.page("/console/"))
    summary = run.summary
    pulled = sum(counts["pulled"] for counts in summary["crms"].values())
    written = sum(counts["written"] for counts in summary["crms"].values())
    assert re.search(rf"sync succeeded [\d.]+ {pulled:,} {written:,} ", page), page
    quota = summary["api_quota"]["hubspot"]
    assert f"hubspot {quota['daily_remaining']:,} {quota['daily_limit']:,}" in page
    assert "last run" in page
    assert run.finished_at is not None
    assert f"Health ok Last good sync: {run.finished_at:%Y-%m-%d %H:%M} UTC" in page
    assert f"Quarantine {store.quarantine.size():,}" in page
    replica = leases.holder.split("/")[0]
    # A process holding a job's lease with no service heartbeat (a command run by hand).
    assert f"Running now: 1 replica ({replica})" in page
    assert f"{replica} – a command, not a service sync" in page
    assert f"sync {replica} sync" in page
    assert "This page was served by replica-1." in page


def test_status_names_each_running_replica_even_between_its_jobs(ada: Served) -> None:
    engine = ada.runtime.store.engine
    now = datetime.now(UTC)
    idle, busy, killed = "host-b:41:aaaaaa", "host-c:42:bbbbbb", "host-d:43:cccccc"
    minute = timedelta(minutes=1)
    assert Leases(engine, idle, clock=lambda: now).acquire(replica_lease(idle), minute)
    assert Leases(engine, busy, clock=lambda: now).acquire(replica_lease(busy), minute)
    assert Leases(engine, f"{busy}/sla", clock=lambda: now).acquire("sla", minute)
    # Killed an hour ago: its heartbeat ran out and nobody withdrew it.
    started = now - timedelta(hours=1)
    hour_ago = Leases(engine, killed, clock=lambda: started)
    assert hour_ago.acquire(replica_lease(killed), minute)
    page = text_of(ada.page("/console/"))
    assert f"Running now: 2 replicas ({idle}, {busy})" in page
    assert f"{busy} {now:%Y-%m-%d %H:%M} UTC running sla" in page
    assert f"{idle} {now:%Y-%m-%d %H:%M} UTC running –" in page
    assert (
        f"{killed} {started:%Y-%m-%d %H:%M} UTC "
        f"gone: no heartbeat since {started + minute:%Y-%m-%d %H:%M} UTC –"
    ) in page
    # The heartbeats are not jobs: the leases table has the job alone.
    assert f"sla {busy} sla" in page
    assert "replica:" not in page


def test_status_judges_heartbeats_by_the_stores_clock_not_the_consoles_host(
    ada: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A replica beating now, for a minute: running, whatever the console's host clock says.
    replica = "host-b:41:aaaaaa"
    assert Leases(ada.runtime.store.engine, replica).acquire(
        replica_lease(replica), timedelta(minutes=1)
    )
    monkeypatch.setattr("leadsync.console.web.datetime", NinetySecondsAhead)
    page = text_of(ada.page("/console/"))
    assert f"Running now: 1 replica ({replica})" in page


# ------------------------------------------------------------------------------ leads


def test_leads_are_found_by_email_name_and_each_crm_id(grace: Served) -> None:
    lead, records = both_crms_lead(grace)
    email, last_name = lead.values["email"], lead.values["last_name"]
    for query in (
        email,
        email.split("@")[0] + "@",
        last_name,
        records["hubspot"],
        records["salesforce"],
    ):
        page = grace.client.get("/console/leads", params={"q": query}).text
        assert f'href="/console/leads/{lead.lead_id}"' in page, query
        assert email in text_of(page)
    nothing = grace.page("/console/leads?q=nobody-at-all")
    assert "0 leads found" in nothing


def test_a_leads_page_is_explain_with_links_into_the_crms(grace: Served) -> None:
    lead, records = both_crms_lead(grace)
    (explained,) = grace.runtime.explain(records["hubspot"])
    page = grace.page(f"/console/leads/{lead.lead_id}")
    text = text_of(page)
    link = HUBSPOT_LINK.replace("{id}", records["hubspot"])
    assert f'href="{link}"' in page
    assert "set [console] salesforce_record_url to link" in text
    assert f"stage {lead.stage}" in text
    for reason in explained.lead.reasons:
        assert reason in text
    for name, choice in explained.lead.choices.items():
        assert f"{name} " in text
        assert choice.reason in text
    for move in explained.history:
        assert f"{move.to_stage} {move.kind}" in text
    for write in explained.writes:
        assert f"{write.crm} {write.record_id} {write.field}" in text
    for crm, values in explained.pending.items():
        for name in values:
            assert f"{crm} {name}" in text
    if not explained.pending:
        assert "None: both CRMs hold what they should." in text
    assert grace.client.get("/console/leads/no-such-lead").status_code == 404


def test_a_leads_page_shows_values_as_explain_does(grace: Served) -> None:
    lead, records = both_crms_lead(grace)
    (explained,) = grace.runtime.explain(records["hubspot"])
    text = text_of(grace.page(f"/console/leads/{lead.lead_id}"))
    values = explained.lead.values
    shown = [name for name in values if isinstance(values[name], datetime | float)]
    assert shown  # a time (created_at) at least
    for name in shown:
        # The CLI's formatter, text unquoted: a page's cell marks where it begins and ends.
        assert f"{name} {shown_value(values[name])}" in text
        assert str(values[name]) not in text  # no 2026-03-07 02:50:48.778000+00:00, 537000000.0
    for write in explained.writes:
        old = NONE if write.old is None else shown_value(write.old, quoted=False)
        assert f"{write.field} {old} " in text


SALESFORCE_LINK = "https://acme.my.salesforce.com/lightning/r/{id}/view"


def test_a_leads_page_links_each_record_into_its_own_crm(
    synced: tuple[Path, str], tmp_path: Path
) -> None:
    both = CONSOLE.replace(
        "[console]\n", f'[console]\nsalesforce_record_url = "{SALESFORCE_LINK}"\n', 1
    )
    with serve(console_config(synced, tmp_path, both)) as served:
        assert sign_in(served.client, "grace", GRACE_PASSWORD).status_code == 303
        lead, records = both_crms_lead(served)
        page = served.page(f"/console/leads/{lead.lead_id}")
    links = re.findall(r'<a class="crm-link" href="([^"]+)"[^>]*>([^<]+)</a>', page)
    assert links == [
        (HUBSPOT_LINK.replace("{id}", records["hubspot"]), "open in HubSpot"),
        (SALESFORCE_LINK.replace("{id}", records["salesforce"]), "open in Salesforce"),
    ]
    assert "to link" not in page


# ------------------------------------------------------------------------------ backfills


def queue(served: Served, **fields: str) -> Any:
    page = served.page("/console/backfills")
    return served.client.post(
        "/console/backfills", data={"csrf": csrf_of(page), **fields}, follow_redirects=False
    )


def test_an_editor_queues_a_backfill_as_the_cli_would_and_it_is_audited(ada: Served) -> None:
    answer = queue(ada, crm="hubspot", since="2026-01-01", until="2026-03-01", dry_run="on")
    assert answer.status_code == 303
    (queued,) = ada.runtime.backfill_queue().list()
    assert answer.headers["location"] == f"/console/backfills/{queued.backfill_id}"
    since, until = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
    assert queued.spec == BackfillSpec(("hubspot",), since, until, dry_run=True)
    assert queued.status == Status.QUEUED
    assert audit(ada) == [
        (
            "ada",
            "backfill.queue",
            queued.backfill_id,
            {
                "kind": "backfill",
                "crms": ["hubspot"],
                "since": since.isoformat(),
                "until": until.isoformat(),
                "dry_run": True,
            },
        )
    ]
    page = text_of(ada.page(answer.headers["location"]))
    assert "status queued" in page
    progress = ada.client.get(f"/console/backfills/{queued.backfill_id}/progress").json()
    assert progress == queued.as_dict()


def test_a_sweep_is_queued_over_every_crm(ada: Served) -> None:
    assert queue(ada, kind="sweep", crm="all").status_code == 303
    (queued,) = ada.runtime.backfill_queue().list()
    assert queued.spec == BackfillSpec(("hubspot", "salesforce"), kind="sweep")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"since": "2026-05-01", "until": "2026-04-01"}, "until must be after since"),
        ({"since": "yesterday"}, "since: 'yesterday' is not a date (YYYY-MM-DD)"),
        ({"kind": "sweep", "crm": "hubspot"}, "sweep covers every CRM and every record"),
        ({"crm": "pipedrive"}, "pipedrive is not enabled in the config"),
    ],
)
def test_a_backfill_that_makes_no_sense_is_refused_with_the_reason(
    ada: Served, fields: dict[str, str], message: str
) -> None:
    answer = queue(ada, **fields)
    assert answer.status_code == 400
    assert message in text_of(answer.text)
    assert ada.runtime.backfill_queue().list() == []
    assert audit(ada) == []


def test_a_viewer_sees_backfills_but_cannot_queue_stop_or_resume(
    grace: Served,
) -> None:
    waiting = grace.runtime.backfill_queue().create(BackfillSpec(("hubspot",)))
    page = grace.page("/console/backfills")
    assert 'id="queue"' not in page
    assert waiting.backfill_id in page
    detail = grace.page(f"/console/backfills/{waiting.backfill_id}")
    assert 'id="stop"' not in detail
    csrf = csrf_of(page)
    for path in (
        "/console/backfills",
        f"/console/backfills/{waiting.backfill_id}/stop",
        f"/console/backfills/{waiting.backfill_id}/resume",
    ):
        refused = grace.client.post(path, data={"csrf": csrf, "crm": "all"})
        assert refused.status_code == 403
        assert "grace is a viewer: only editors change things." in refused.text
    assert [b.backfill_id for b in grace.runtime.backfill_queue().list()] == [waiting.backfill_id]
    assert grace.runtime.backfill_queue().get(waiting.backfill_id).status == Status.QUEUED
    assert audit(grace) == []


TOKEN_REFUSED = "a change without this session's form token was refused"
ORIGIN_REFUSED = "a change posted from another origin (http://evil.example) was refused"


@pytest.mark.parametrize(
    ("csrf", "origin", "logged"),
    [
        (None, None, TOKEN_REFUSED),  # no token
        ("forged", None, TOKEN_REFUSED),  # a wrong one
        ("other session", None, TOKEN_REFUSED),  # another session's
        # the right one, posted from another site: the log says so, not "no token"
        ("right", "http://evil.example", ORIGIN_REFUSED),
    ],
)
def test_a_change_without_this_sessions_token_from_this_console_is_refused(
    ada: Served,
    csrf: str | None,
    origin: str | None,
    logged: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    page = ada.page("/console/backfills")
    if csrf == "right":
        csrf = csrf_of(page)
    elif csrf == "other session":
        other = sign_in(ada.client, "ada", ADA_TOKEN)  # a second sign-in: a new session
        assert other.status_code == 303
        csrf = csrf_of(page)  # the first session's token, no longer this browser's
    data = {"crm": "all"} | ({"csrf": csrf} if csrf is not None else {})
    headers = {"origin": origin} if origin else {}
    with caplog.at_level(logging.WARNING, logger="leadsync.console"):
        refused = ada.client.post("/console/backfills", data=data, headers=headers)
    assert refused.status_code == 403
    assert "This form has expired or came from another site" in refused.text
    assert ada.runtime.backfill_queue().list() == []
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("leadsync.console")]
    assert warnings == [f"console: {logged}"]


def test_stop_and_resume_from_the_page_change_the_backfill_and_are_audited(
    ada: Served,
) -> None:
    waiting = ada.runtime.backfill_queue().create(BackfillSpec(("hubspot",)))
    path = f"/console/backfills/{waiting.backfill_id}"
    page = ada.page(path)
    assert 'id="stop"' in page
    assert 'id="resume"' not in page
    assert 'src="/console/static/backfill.js"' in page  # it keeps itself current
    stopped = ada.client.post(f"{path}/stop", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert (stopped.status_code, stopped.headers["location"]) == (303, path)
    assert ada.runtime.backfill_queue().get(waiting.backfill_id).status == Status.STOPPED
    page = ada.page(path)
    assert 'id="resume"' in page
    assert 'id="stop"' not in page
    assert "backfill.js" not in page  # nothing moves: no script
    ada.client.post(f"{path}/resume", data={"csrf": csrf_of(page)})
    assert ada.runtime.backfill_queue().get(waiting.backfill_id).status == Status.QUEUED
    # Stopping twice changes nothing the second time, and is written down once.
    ada.client.post(f"{path}/stop", data={"csrf": csrf_of(page)})
    ada.client.post(f"{path}/stop", data={"csrf": csrf_of(page)})
    assert audit(ada) == [
        ("ada", "backfill.stop", waiting.backfill_id, {"from": "queued", "to": "stopped"}),
        ("ada", "backfill.resume", waiting.backfill_id, {"from": "stopped", "to": "queued"}),
        ("ada", "backfill.stop", waiting.backfill_id, {"from": "queued", "to": "stopped"}),
    ]
    assert (
        ada.client.post("/console/backfills/nope/stop", data={"csrf": csrf_of(page)}).status_code
        == 404
    )
    assert ada.client.get("/console/backfills/nope/progress").status_code == 404


def test_a_backfill_whose_runner_died_reads_as_abandoned(ada: Served) -> None:
    queue = ada.runtime.backfill_queue()
    queued = queue.create(BackfillSpec(("hubspot",)))
    assert queue.claim(queued.backfill_id, "dead-host:1", stale_after=timedelta(minutes=1))
    page = ada.page(f"/console/backfills/{queued.backfill_id}")
    assert "abandoned" not in page  # beating a moment ago: running
    # Killed: no heartbeat since, for longer than the lease lives (60 s).
    with ada.runtime.store.engine.begin() as connection:
        connection.execute(
            tables.backfills.update().values(heartbeat_at=datetime.now(UTC) - timedelta(hours=1))
        )
    assert "abandoned" in ada.page("/console/backfills")
    page = ada.page(f"/console/backfills/{queued.backfill_id}")
    assert "abandoned" in page
    assert f"--resume {queued.backfill_id}" in html.unescape(page)


def test_the_script_that_keeps_a_backfill_current_is_served(ada: Served) -> None:
    script = ada.client.get("/console/static/backfill.js")
    assert script.status_code == 200
    assert "data-progress-url" in script.text


# ------------------------------------------------------------------------------ reports


def test_reports_are_the_html_reports_body_with_its_charts(grace: Served) -> None:
    page = grace.page("/console/reports?period=week")
    body = render_body(report_for(grace.runtime, now=datetime.now(UTC), period="week"))
    # The same sections and charts; the times differ by the moments of the two renders.
    strip = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC")
    assert strip.sub("", body) in strip.sub("", page)
    for chart in ("funnel-chart", "calibration-chart"):
        assert f'<svg id="{chart}"' in page
    assert 'href="/console/static-report.css"' in page
    css = grace.client.get("/console/static-report.css")
    assert (css.status_code, css.text) == (200, REPORT_CSS)
    assert css.headers["content-type"].startswith("text/css")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("since=2026-05-01&until=2026-04-01", "until must be after since"),
        ("since=soon", "since: &#39;soon&#39; is not a date"),
        ("period=year", "period: week or month, not &#39;year&#39;"),
    ],
)
def test_a_report_window_that_makes_no_sense_says_so(
    grace: Served, query: str, message: str
) -> None:
    answer = grace.client.get(f"/console/reports?{query}")
    assert answer.status_code == 400
    assert message in answer.text
    assert '<svg id="funnel-chart"' in answer.text


# ------------------------------------------------------------------------------ every page


def test_the_audit_log_page_lists_who_did_what(ada: Served) -> None:
    queue(ada, crm="all")
    (queued,) = ada.runtime.backfill_queue().list()
    page = text_of(ada.page("/console/audit"))
    assert f"ada editor backfill.queue {queued.backfill_id}" in page
    assert "ada editor login" in page


def test_the_audit_logs_details_read_as_words_not_python(ada: Served) -> None:
    queue(ada, crm="hubspot", kind="backfill")
    log = AuditLog(ada.runtime.store.engine, replica="test")
    log.record("ada", "editor", "edit.apply", "310364037b3d", {"digest": "f" * 64})
    raw = ada.page("/console/audit")
    page = text_of(raw)
    assert "crms: hubspot; dry run: no; kind: backfill" in page
    for python in ("None", "False", "True", "['", "dry_run"):
        assert python not in page, python
    # A digest is shortened (the audit log keeps it whole) and the table fits the screen.
    assert f"digest: {'f' * 12}…" in page
    assert "f" * 13 not in page
    assert '<td class="when">' in raw


@pytest.mark.parametrize("path", ["/console/", "/console/login", "/console/backfills"])
def test_pages_forbid_foreign_scripts_framing_and_caching(ada: Served, path: str) -> None:
    headers = ada.client.get(path).headers
    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"


def test_values_from_the_crms_are_escaped(ada: Served) -> None:
    lead, _ = both_crms_lead(ada)
    odd = Lead(lead.lead_id, {**lead.values, "last_name": "<script>alert(1)</script>"})
    ada.runtime.store.save_leads([odd])
    page = ada.page(f"/console/leads/{lead.lead_id}")
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_service_root_leads_to_the_console(served: Served) -> None:
    answer = served.client.get("/", follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (307, "/console/")
    assert served.client.get("/metrics").status_code == 200


def test_a_page_that_fails_answers_500_and_logs_no_row(
    ada: Served, caplog: pytest.LogCaptureFixture
) -> None:
    lead, _ = both_crms_lead(ada)
    with ada.runtime.store.engine.begin() as connection:
        connection.execute(tables.transitions.delete())
        connection.exec_driver_sql("DROP TABLE transitions")
    with caplog.at_level(logging.ERROR, logger="leadsync.service"):
        answer = ada.client.get(f"/console/leads/{lead.lead_id}")
    assert answer.status_code == 500
    (record,) = [r for r in caplog.records if r.name == "leadsync.service"]
    assert record.getMessage() == (
        f"HTTP GET /console/leads/{lead.lead_id} failed: OperationalError (OperationalError)"
    )
    assert lead.values["email"] not in caplog.text


def test_clock_states_use_the_ledger_names(ada: Served) -> None:
    assert {status.value for status in ClockStatus} >= {"open", "breached"}
