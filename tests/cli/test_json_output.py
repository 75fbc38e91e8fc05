"""`--json` of the commands that print data: the shape a script reads."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from leadsync.cli import main
from leadsync.config import Config
from leadsync.sync.store import Store


def _json(argv: list[str], capsys: pytest.CaptureFixture[str], code: int = 0) -> Any:
    capsys.readouterr()
    assert main(argv) == code
    return json.loads(capsys.readouterr().out)


def _synced(config: Config, capsys: pytest.CaptureFixture[str]) -> str:
    body = _json(["sync", "--once", "--json", "--config", str(config.path)], capsys)
    return str(body["run_id"])


def _zoned(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    assert at.tzinfo is not None, f"{text} has no zone"
    return at


def test_explain_json_has_the_records_values_with_rules_history_and_writes(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = _synced(config, capsys)
    with Store(config.database_url) as store:
        created = {h.record_id for h in store.handoffs.all()}
        # A record the run pulled and wrote (not one its handoff created: see the next test).
        write = next(
            w
            for w in store.audit_log.entries(run_id=run_id)
            if w.crm == "salesforce" and w.record_id not in created
        )
    body = _json(["explain", write.record_id, "--json", "--config", str(config.path)], capsys)
    assert (body["quarantined"], body["in_review"]) == ([], [])
    (lead,) = body["leads"]
    assert ["salesforce", write.record_id] in [[r["crm"], r["record_id"]] for r in lead["records"]]
    for record in lead["records"]:
        _zoned(record["modified_at"])
    assert lead["stage"] == lead["stage_history"][-1]["to"]
    first = lead["stage_history"][0]
    assert (first["from"], first["kind"]) in ((None, "enter"), (None, "adopt"))
    _zoned(first["at"])
    assert isinstance(lead["score"], int)
    assert lead["score_reasons"]
    assert lead["values"]
    assert all(set(value) == {"value", "rule"} for value in lead["values"].values())
    assert any(value["rule"] for value in lead["values"].values())
    assert write.field in {w["field"] for w in lead["writes"]}
    assert all(w["status"] for w in lead["writes"])
    assert lead["pending_writes"] == {}


def test_explain_finds_the_lead_of_a_record_the_handoff_just_created(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    # Sales asks about the new Salesforce lead before the next pull has linked it.
    _synced(config, capsys)
    with Store(config.database_url) as store:
        handoff = next(h for h in store.handoffs.all() if h.record_id)
        assert store.lead_ids_for("salesforce", [handoff.record_id]) == {}
    assert handoff.record_id is not None
    body = _json(["explain", handoff.record_id, "--json", "--config", str(config.path)], capsys)
    assert [lead["lead_id"] for lead in body["leads"]] == [handoff.lead_id]


def test_check_json_lists_what_it_checked_and_each_problem_located(
    config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = _json(["check", "--json", "--config", str(config.path)], capsys)
    assert body["ok"] is True
    assert body["problems"] == []
    assert any(item.startswith("mapping ") for item in body["checked"])
    assert any(item.startswith("lead definition ") for item in body["checked"])
    broken = tmp_path / "broken.toml"
    broken.write_text("[hubspot]\nrequests_per_ten_seconds = 'lots'\n")
    body = _json(["check", "--json", "--config", str(broken)], capsys, code=2)
    assert body["ok"] is False
    (problem,) = [p for p in body["problems"] if p["key"] == "hubspot.requests_per_ten_seconds"]
    assert (problem["file"], problem["line"]) == (str(broken), 2)
    assert problem["message"]


def test_setup_json_says_what_it_created_and_what_is_missing(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    # The fixture's config has run setup's HubSpot half already: nothing left to create.
    body = _json(["setup", "--json", "--config", str(config.path)], capsys)
    assert body == {
        "complete": True,
        "hubspot_created": [],
        "salesforce_lead_missing": [],
        "salesforce_contact_missing": [],
    }


def test_revert_dry_run_json_lists_each_field_to_put_back(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = _synced(config, capsys)
    with Store(config.database_url) as store:
        written = {
            (w.crm, w.record_id, w.field)
            for w in store.audit_log.entries(run_id=run_id)
            if w.status == "written"
        }
    argv = ["revert", run_id, "--dry-run", "--json", "--config", str(config.path)]
    body = _json(argv, capsys)
    assert (body["run_id"], body["dry_run"], body["failed"]) == (None, True, [])
    assert body["reverted"]
    assert {(r["crm"], r["record_id"], r["field"]) for r in body["reverted"]} <= written
    assert set(body["reverted"][0]) == {"crm", "record_id", "field", "old"}


def test_report_json_is_the_same_as_format_json(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    _synced(config, capsys)
    by_flag = _json(["report", "--json", "--config", str(config.path)], capsys)
    by_format = _json(["report", "--format", "json", "--config", str(config.path)], capsys)
    assert by_flag.keys() == by_format.keys()
    assert "funnel" in by_flag


def test_backfill_json_of_a_queued_one_and_of_the_status(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["backfill", "--queue", "--crm", "hubspot", "--json", "--config", str(config.path)]
    (queued,) = _json(argv, capsys)
    assert (queued["kind"], queued["crms"], queued["status"]) == ("backfill", ["hubspot"], "queued")
    listed = _json(["backfill", "--status", "--json", "--config", str(config.path)], capsys)
    assert [b["id"] for b in listed] == [queued["id"]]
