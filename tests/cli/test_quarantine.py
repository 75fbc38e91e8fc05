"""`leadsync quarantine` (list, show, retry) and `explain` of a quarantined record."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from leadsync.cli import main
from leadsync.config import Config
from leadsync.connectors.base import WriteStatus
from leadsync.mapping.fields import load_mapping
from leadsync.sandbox import Sandbox
from leadsync.sync.audit_log import WriteRow
from leadsync.sync.quarantine import quarantine_causes, quarantine_items
from leadsync.sync.store import Store

EXAMPLES = Path(__file__).resolve().parents[2] / "leadsync" / "examples"
ODD_REVENUE = "about 12k"


@pytest.fixture
def unreadable(sandbox: Sandbox, config: Config) -> str:
    """A HubSpot contact whose annual revenue no transform reads, quarantined by a sync."""
    contact = next(c for c in sandbox.hubspot.snapshot() if c["properties"].get("email"))
    sandbox.hubspot.set_activity(int(contact["id"]), {"annualrevenue": ODD_REVENUE})
    assert main(["sync", "--once", "--config", str(config.path)]) == 0
    return str(contact["id"])


def test_quarantine_lists_records_by_cause_and_crm_without_values(
    config: Config, unreadable: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["quarantine", "--json", "--config", str(config.path)]) == 0
    listed = json.loads(capsys.readouterr().out)
    mine = next(item for item in listed if item["record_id"] == unreadable)
    assert mine["crm"] == "hubspot"
    assert mine["kind"] == "mapping"
    assert mine["cause"] == "annualrevenue unreadable"
    assert ODD_REVENUE not in json.dumps(listed)  # the list names fields, not values
    assert main(["quarantine", "--crm", "hubspot", "--config", str(config.path)]) == 0
    table = capsys.readouterr().out
    assert "record(s) in quarantine, by cause:" in table
    assert any(
        line.split()[:2] == ["hubspot", unreadable] and line.endswith("annualrevenue unreadable")
        for line in table.splitlines()
    )
    args = ["quarantine", "--cause", "annualrevenue unreadable", "--json"]
    assert main([*args, "--config", str(config.path)]) == 0
    assert [item["record_id"] for item in json.loads(capsys.readouterr().out)] == [unreadable]


def test_quarantine_show_gives_field_value_and_message(
    config: Config, unreadable: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["quarantine", "show", unreadable, "--config", str(config.path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"hubspot record {unreadable}: in quarantine since ")
    assert f"annualrevenue = '{ODD_REVENUE}'" in text
    assert "cannot read annual_revenue" in text
    assert main(["quarantine", "show", unreadable, "--json", "--config", str(config.path)]) == 0
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert (problem["field"], problem["value"]) == ("annualrevenue", ODD_REVENUE)
    assert main(["quarantine", "show", "404404", "--config", str(config.path)]) == 2
    assert "no record 404404 in quarantine" in capsys.readouterr().err


def test_explain_says_a_record_is_in_quarantine(
    config: Config, unreadable: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["explain", unreadable, "--config", str(config.path)]) == 0
    out = capsys.readouterr().out
    assert f"hubspot record {unreadable} is in quarantine since" in out
    assert "annualrevenue unreadable" in out


def test_retry_reads_a_fixed_record_again_now_and_logs_no_value(
    sandbox: Sandbox,
    config: Config,
    unreadable: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Still broken: a retry leaves it where it is, saying so.
    caplog.set_level(logging.DEBUG)
    assert main(["quarantine", "retry", unreadable, "--config", str(config.path)]) == 0
    out = capsys.readouterr().out
    assert f"still in quarantine: hubspot {unreadable}: annualrevenue unreadable" in out
    # Fixed in HubSpot: the retry takes it in and writes its scores, with no sync.
    sandbox.hubspot.set_activity(int(unreadable), {"annualrevenue": "12000"})
    assert main(["quarantine", "retry", unreadable, "--config", str(config.path)]) == 0
    out = capsys.readouterr().out
    assert "retried 1 record(s): 1 out of quarantine" in out
    assert sandbox.hubspot.contact(int(unreadable)).properties.get("leadsync_score")
    with Store(config.database_url) as store:
        assert not [q for q in store.quarantine.entries() if q.record_id == unreadable]
        assert store.run_log.latest(1)[0].kind == "retry"
    assert ODD_REVENUE not in caplog.text


def test_a_refused_write_is_listed_with_the_crms_message(tmp_path: Path) -> None:
    field_map = load_mapping(EXAMPLES / "mapping.toml")
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        run_id = store.run_log.start("sync", started_at=datetime.now(UTC))
        refused = WriteRow(
            "9",
            "leadsync_grade",
            None,
            "A",
            WriteStatus.FAILED,
            "invalid_option",
            "A was not one of the allowed options",
        )
        store.audit_log.record(run_id, "hubspot", [refused])
        (item,) = quarantine_items(store, field_map)
    assert (item.crm, item.record_id, item.kind) == ("hubspot", "9", "refused")
    assert item.cause == "write refused: invalid_option"
    (problem,) = item.problems
    assert (problem.field, problem.value) == ("leadsync_grade", "A")
    assert problem.message == "A was not one of the allowed options"
    assert quarantine_causes([item, item]) == [("hubspot", "write refused: invalid_option", 2)]


def test_retry_prints_its_run_with_the_kind_runs_lists_it_under(
    config: Config, unreadable: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["quarantine", "retry", unreadable, "--config", str(config.path)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert main(["runs", "--limit", "1", "--json", "--config", str(config.path)]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["kind"] == "retry"
    assert first == f"run {listed['run_id']}: retry", first
