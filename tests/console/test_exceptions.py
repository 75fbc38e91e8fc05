"""The Exceptions page over HTTP: the review queue and the quarantine from the functions
behind `leadsync review` and `leadsync quarantine`, resolvable by an editor only, with the
session's form token from the console's own origin, each change in the audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadsync.config import Config
from leadsync.runtime import open_runtime
from leadsync.sandbox import HubSpotSettings, Sandbox, SandboxSettings
from leadsync.sync.leases import SYNC_LEASE, Leases
from leadsync.sync.quarantine_ledger import Quarantined
from tests.console.conftest import ADA_TOKEN, Served, console_config, csrf_of, serve, sign_in
from tests.console.test_pages import audit, both_crms_lead, text_of
from tests.support import set_up_sandbox_config

PAGE = "/console/exceptions"


@pytest.fixture
def waiting(served: Served) -> tuple[str, str]:
    """A duplicate Salesforce record in review against a lead with a record in each CRM,
    and that lead's id."""
    store = served.runtime.store
    lead, records = both_crms_lead(served)
    run_id = store.run_log.latest(1)[0].run_id
    store.reviews.add(
        "salesforce", records["salesforce"], [lead.lead_id], "a duplicate (test)", run_id=run_id
    )
    return records["salesforce"], lead.lead_id


@pytest.fixture
def quarantined(served: Served) -> str:
    """A HubSpot record refused by the mapping for its annual revenue."""
    store = served.runtime.store
    entry = Quarantined(
        "hubspot",
        "990001",
        "annual_revenue (annualrevenue): cannot read (value 'about 12k')",
        {"email": "odd@example.com", "annualrevenue": "about 12k"},
        store.run_log.latest(1)[0].run_id,
        store.run_log.latest(1)[0].started_at,
    )
    store.save_page("hubspot", [], quarantined=[entry], position=None, run_id=entry.run_id)
    return entry.record_id


def test_the_page_shows_review_items_beside_their_leads_and_the_quarantine_by_cause(
    grace: Served, waiting: tuple[str, str], quarantined: str
) -> None:
    record_id, lead_id = waiting
    page = grace.page(PAGE)
    text = text_of(page)
    assert f"salesforce record {record_id}" in text
    assert "a duplicate (test)" in text
    assert f"lead {lead_id[:8]}" in text
    assert "hubspot annualrevenue unreadable 1" in text
    assert "annualrevenue about 12k cannot read annual_revenue" in text
    # A viewer sees, and is offered no change.
    assert "Keep apart" not in page
    assert "Retry now" not in page
    assert 'href="/console/exceptions" class="here"' in page


def test_an_editor_resolves_a_review_item_and_it_is_audited(
    ada: Served, waiting: tuple[str, str]
) -> None:
    record_id, lead_id = waiting
    page = ada.page(PAGE)
    assert "Keep apart" in page
    answer = ada.client.post(
        f"{PAGE}/review/salesforce/{record_id}",
        data={"csrf": csrf_of(page), "action": "link", "lead": lead_id},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    shown = ada.client.get(answer.headers["location"]).text
    assert f"linked to {lead_id}; the next sync applies it" in text_of(shown)
    assert ada.runtime.store.reviews.items() == []
    assert ada.runtime.store.lead_ids_for("salesforce", [record_id]) == {record_id: lead_id}
    assert audit(ada) == [
        ("ada", "review.resolve", f"salesforce/{record_id}", {"action": "link", "lead": lead_id})
    ]


def test_a_resolution_that_makes_no_sense_is_refused_with_the_reason(
    ada: Served, waiting: tuple[str, str]
) -> None:
    record_id, _ = waiting
    page = ada.page(PAGE)
    for data, said in (
        ({"action": "merge"}, "resolve with link, apart, ignore"),
        ({"action": "link", "lead": "no-such-lead"}, "no lead no-such-lead"),
    ):
        refused = ada.client.post(
            f"{PAGE}/review/salesforce/{record_id}", data={"csrf": csrf_of(page), **data}
        )
        assert refused.status_code == 400
        assert said in text_of(refused.text)
    assert len(ada.runtime.store.reviews.items()) == 1
    assert audit(ada) == []


def test_a_viewer_cannot_resolve_or_retry(
    grace: Served, waiting: tuple[str, str], quarantined: str
) -> None:
    record_id, _ = waiting
    csrf = csrf_of(grace.page(PAGE))
    for path, data in (
        (f"{PAGE}/review/salesforce/{record_id}", {"action": "ignore"}),
        (f"{PAGE}/quarantine/hubspot/{quarantined}/retry", {}),
    ):
        refused = grace.client.post(path, data={"csrf": csrf, **data})
        assert refused.status_code == 403
        assert "grace is a viewer: only editors change things." in refused.text
    assert len(grace.runtime.store.reviews.items()) == 1
    assert audit(grace) == []


@pytest.mark.parametrize(("csrf", "origin"), [(None, None), ("right", "http://evil.example")])
def test_a_resolution_without_this_sessions_token_from_this_console_is_refused(
    ada: Served, waiting: tuple[str, str], csrf: str | None, origin: str | None
) -> None:
    record_id, _ = waiting
    page = ada.page(PAGE)
    data = {"action": "ignore"} | ({"csrf": csrf_of(page)} if csrf else {})
    headers = {"origin": origin} if origin else {}
    refused = ada.client.post(f"{PAGE}/review/salesforce/{record_id}", data=data, headers=headers)
    assert refused.status_code == 403
    assert len(ada.runtime.store.reviews.items()) == 1


def test_a_retry_needs_a_connection_to_the_crm_and_says_so(ada: Served, quarantined: str) -> None:
    # This console reads the store only (as the CLI's `connect=False`): no CRM to ask again.
    page = ada.page(PAGE)
    assert "Retry now" in page
    refused = ada.client.post(
        f"{PAGE}/quarantine/hubspot/{quarantined}/retry", data={"csrf": csrf_of(page)}
    )
    assert refused.status_code == 409
    assert "this console has no connection to hubspot" in text_of(refused.text)
    missing = ada.client.post(
        f"{PAGE}/quarantine/hubspot/404404/retry", data={"csrf": csrf_of(page)}
    )
    assert missing.status_code == 404
    assert audit(ada) == []


QUARANTINING = SandboxSettings(
    port=0, seed=5, leads=40, hubspot=HubSpotSettings(ten_second_limit=100_000)
)


def _synced_with_one_quarantined(sandbox: Sandbox, tmp_path: Path) -> tuple[Config, str]:
    """A config for `sandbox` after a sync that quarantined one contact (an annual revenue
    no transform reads), and that contact's id."""
    config: Config = set_up_sandbox_config(sandbox, tmp_path / "first")
    contact = next(c for c in sandbox.hubspot.snapshot() if c["properties"].get("email"))
    record_id = str(contact["id"])
    sandbox.hubspot.set_activity(int(record_id), {"annualrevenue": "about 12k"})
    with open_runtime(config) as runtime:
        runtime.engine().run()
    return config, record_id


def test_an_editor_retries_a_record_fixed_in_the_crm_and_it_is_audited(
    tmp_path: Path,
) -> None:
    with Sandbox(QUARANTINING) as sandbox:
        config, record_id = _synced_with_one_quarantined(sandbox, tmp_path)
        assert config.path is not None
        served_config = console_config((config.path, config.database_url), tmp_path)
        assert served_config.model.console is not None
        sandbox.hubspot.set_activity(int(record_id), {"annualrevenue": "12000"})
        with serve(served_config, connect=True) as ada:
            client = ada.client
            assert sign_in(client, "ada", ADA_TOKEN).status_code == 303
            page = ada.page(PAGE)
            answer = client.post(
                f"{PAGE}/quarantine/hubspot/{record_id}/retry",
                data={"csrf": csrf_of(page)},
                follow_redirects=False,
            )
            assert answer.status_code == 303
            shown = text_of(client.get(answer.headers["location"]).text)
            assert f"hubspot record {record_id} retried: out of quarantine" in shown
            (entry,) = audit(ada)
        assert sandbox.hubspot.contact(int(record_id)).properties.get("leadsync_score")
    actor, action, target, details = entry
    assert (actor, action, target) == ("ada", "quarantine.resolve", f"hubspot/{record_id}")
    assert details["still_quarantined"] is False


def test_a_retry_that_takes_the_expired_lease_of_a_killed_sync_marks_its_run_abandoned(
    tmp_path: Path,
) -> None:
    with Sandbox(QUARANTINING) as sandbox:
        config, record_id = _synced_with_one_quarantined(sandbox, tmp_path)
        with open_runtime(config) as runtime:
            # A `sync --once` killed an hour ago: its run says running, its lease ran out.
            dead, an_hour_ago = "deadhost:99:fedcba", datetime.now(UTC) - timedelta(hours=1)
            left_running = runtime.store.run_log.start("sync", started_at=an_hour_ago, holder=dead)
            leases = Leases(runtime.store.engine, f"{dead}/sync", clock=lambda: an_hour_ago)
            assert leases.acquire(SYNC_LEASE, timedelta(minutes=1))
        assert config.path is not None
        served_config = console_config((config.path, config.database_url), tmp_path)
        with serve(served_config, connect=True) as ada:
            assert sign_in(ada.client, "ada", ADA_TOKEN).status_code == 303
            answer = ada.client.post(
                f"{PAGE}/quarantine/hubspot/{record_id}/retry",
                data={"csrf": csrf_of(ada.page(PAGE))},
                follow_redirects=False,
            )
            assert answer.status_code == 303
            runs = ada.runtime.store.run_log.latest()
    statuses = {run.run_id: run.status for run in runs}
    assert statuses.pop(left_running) == "abandoned"  # not "running" for ever
    assert set(statuses.values()) == {"succeeded"}
    # Its own run is the console's role's, whose lease it held: not the replica's every role.
    (retried,) = [run for run in runs if run.kind == "retry"]
    assert retried.summary["holder"] == f"{ada.runtime.holder}/console"
