"""`leadsync runs`, `runs show` and `revert --dry-run` against the sandbox."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest

from leadsync.cli import main
from leadsync.config import Config
from leadsync.sandbox import Sandbox
from leadsync.sync import tables
from leadsync.sync.explain import shown_value
from leadsync.sync.revert import RevertReport
from leadsync.sync.runs import find_run
from leadsync.sync.store import Store
from tests.cli.conftest import on_a_terminal
from tests.support import write_calls


def _sync(config: Config, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["sync", "--once", "--json", "--config", str(config.path)]) == 0
    body: dict[str, object] = json.loads(capsys.readouterr().out)
    return body


def test_runs_lists_kind_outcome_counts_and_short_ids_as_table_and_json(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    synced = _sync(config, capsys)
    run_id = str(synced["run_id"])
    assert main(["runs", "--json", "--config", str(config.path)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [run["run_id"] for run in listed] == [run_id]
    (run,) = listed
    assert run["short_id"] == run_id[:8]
    assert (run["kind"], run["outcome"]) == ("sync", "succeeded")
    crms = synced["crms"]
    assert isinstance(crms, dict)
    assert run["pulled"] == sum(c["pulled"] for c in crms.values()) > 0
    assert run["written"] == sum(c["written"] for c in crms.values()) > 0
    # --config after the subcommand's own options, and before them, both work.
    assert main(["runs", "--config", str(config.path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["run", "kind", "outcome"]
    assert table[1].split()[:3] == [run_id[:8], "sync", "succeeded"]


def test_runs_show_lists_a_runs_writes_by_short_id_as_table_json_and_csv(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = str(_sync(config, capsys)["run_id"])
    with Store(config.database_url) as store:
        writes = store.audit_log.entries(run_id=run_id)
    assert writes
    short = run_id[:8]
    assert main(["runs", "show", short, "--json", "--config", str(config.path)]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["run_id"] == run_id
    assert len(body["writes"]) == len(writes)
    assert {(w["crm"], w["record_id"], w["field"]) for w in body["writes"]} == {
        (w.crm, w.record_id, w.field) for w in writes
    }
    assert main(["runs", "--config", str(config.path), "show", short, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == len(writes)
    assert rows[0]["new"] == str(writes[0].new)
    assert {row["status"] for row in rows} <= {"written", "failed", "deferred"}
    assert main(["runs", "show", short, "--config", str(config.path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"run {run_id} ({short}): sync, succeeded")
    assert f"{len(writes)} write(s):" in text


def test_a_short_id_must_name_one_run(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = str(_sync(config, capsys)["run_id"])
    with Store(config.database_url) as store:
        assert find_run(store, run_id[:5].upper()).run_id == run_id
        started = datetime.now(UTC)
        with store.engine.begin() as connection:
            for twin in ("abcd0000-0000-4000-8000-000000000001", "abcd0000-1111-4000-8000-0"):
                connection.execute(
                    tables.runs.insert(),
                    {
                        "run_id": twin,
                        "kind": "plan",
                        "status": "succeeded",
                        "started_at": started,
                        "finished_at": started,
                        "summary": {},
                    },
                )
    assert main(["runs", "show", "abcd0000", "--config", str(config.path)]) == 2
    assert "'abcd0000' names more than one run" in capsys.readouterr().err
    assert main(["runs", "show", "abcd0000-1", "--json", "--config", str(config.path)]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == "abcd0000-1111-4000-8000-0"
    assert main(["runs", "show", "zz-not-hex", "--config", str(config.path)]) == 2
    assert "no run zz-not-hex" in capsys.readouterr().err
    # Three characters name no run, however many start with them: say so, not "no run".
    assert main(["runs", "show", "abc", "--config", str(config.path)]) == 2
    err = capsys.readouterr().err
    assert "a run id is at least 4 characters" in err
    assert "no run" not in err


def test_revert_of_a_too_short_run_id_says_how_long_an_id_must_be(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    _sync(config, capsys)
    assert main(["revert", "2", "--dry-run", "--config", str(config.path)]) == 2
    err = capsys.readouterr().err
    assert "leadsync: '2' is too short: a run id is at least 4 characters" in err, err
    assert "`leadsync runs`" in err


def test_revert_dry_run_says_what_it_would_put_back_and_writes_nothing(
    sandbox: Sandbox, config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = str(_sync(config, capsys)["run_id"])
    with Store(config.database_url) as store:
        written = [w for w in store.audit_log.entries(run_id=run_id) if w.status == "written"]
        created = {h.record_id: h.lead_id for h in store.handoffs.all() if h.record_id}
    before = len(Store(config.database_url).run_log.latest())
    sandbox.stats.clear()
    assert main(["revert", run_id[:8], "--dry-run", "--config", str(config.path)]) == 0
    out = capsys.readouterr().out
    assert write_calls(sandbox) == 0
    assert f"revert of run {run_id[:8]}, dry run (nothing written):" in out
    # Each field to put back with the value the run's audit log holds, shown as `runs show`
    # and `explain` show it: text in quotes (a model version too), numbers as the CRM holds
    # them (33, not 33.0).
    for write in (w for w in written if w.record_id not in created):
        line = f"  {write.crm} {write.record_id} {write.field}: {shown_value(write.old)}"
        assert line in out
    assert "'***'" not in out
    assert '"***"' not in out
    # A record the run's handoff created is put back whole: one line, not one per field.
    record_id, lead_id = next(iter(created.items()))
    assert f"  salesforce {record_id} *: created by the run's handoff of lead {lead_id}" in out
    # No run recorded for a preview.
    with Store(config.database_url) as store:
        assert len(store.run_log.latest()) == before


def test_revert_shows_numbers_as_the_crm_holds_them_and_text_plainly() -> None:
    # Salesforce hands numbers back as floats; the audit log keeps them so.
    preview = RevertReport(
        "",
        dry_run=True,
        reverted=[
            ("salesforce", "00Q1", "Leadsync_Score__c", 33.0),
            ("salesforce", "00Q1", "Leadsync_Model_Version__c", "7c9ff0a1"),
            ("hubspot", "1001", "leadsync_score", None),
        ],
        kept=[("hubspot", "1002", "leadsync_grade", 'now "***", not "B"')],
    )
    text = preview.text("abcd1234")
    assert "  salesforce 00Q1 Leadsync_Score__c: 33\n" in text
    assert '  salesforce 00Q1 Leadsync_Model_Version__c: "7c9ff0a1"\n' in text
    assert "  hubspot 1001 leadsync_score: blank\n" in text
    assert [row["old"] for row in preview.as_dict()["reverted"]] == [33.0, "7c9ff0a1", None]


def test_revert_on_a_terminal_asks_first_and_no_writes_nothing(
    sandbox: Sandbox, config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = str(_sync(config, capsys)["run_id"])
    sandbox.stats.clear()
    done = on_a_terminal(config, "revert", run_id[:8], answer="n")  # the person says no
    assert done.returncode == 1, done.stderr
    # The question follows what the revert is about to do, not a dry run's heading.
    assert "dry run" not in done.stdout
    assert f"revert of run {run_id[:8]}, asking first (nothing written yet):" in done.stdout
    assert "[y/N]" in done.stdout
    assert "revert not confirmed: nothing written" in done.stderr
    assert write_calls(sandbox) == 0
    # --yes goes ahead, terminal or not.
    assert main(["revert", run_id[:8], "--yes", "--config", str(config.path)]) == 0
    assert write_calls(sandbox) > 0
