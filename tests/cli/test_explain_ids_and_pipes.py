"""What a user types and pipes: a Salesforce id in its 15-character form finds its lead, and a
command whose output's reader went away (`| head`) is no internal error. Both met by a user
following the README against the sandbox."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from leadsync.cli import main
from leadsync.config import Config
from leadsync.sandbox import Sandbox
from leadsync.sync.store import Store


def _sync(config: Config) -> None:
    assert main(["sync", "--once", "--config", str(config.path)]) == 0


def _a_linked_salesforce_lead(config: Config, sandbox: Sandbox) -> str:
    with Store(config.database_url) as store:
        for lead in sandbox.salesforce.snapshot("Lead"):
            if lead["IsConverted"] or not lead.get("Email"):
                continue
            if store.lead_ids_for("salesforce", [lead["Id"]]).get(lead["Id"]) is not None:
                return str(lead["Id"])
    pytest.fail("no linked Salesforce lead")


def test_explain_finds_a_lead_by_the_15_character_form_of_its_salesforce_id(
    sandbox: Sandbox, config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    # README: "Record ids are accepted as the CRMs show them, Salesforce's in 15 or 18
    # characters". `explain` takes 15 for a record in review or quarantine, not for a lead.
    _sync(config)
    record_id = _a_linked_salesforce_lead(config, sandbox)
    capsys.readouterr()  # the sync's own output
    assert main(["explain", record_id, "--config", str(config.path)]) == 0
    by_18 = capsys.readouterr().out
    assert main(["explain", record_id[:15], "--config", str(config.path)]) == 0
    assert capsys.readouterr().out == by_18


def test_a_command_whose_reader_went_away_is_no_internal_error(
    sandbox: Sandbox, config: Config
) -> None:
    # `leadsync runs | head -1`, `leadsync explain X | head`: the reader closes the pipe, and
    # the command must not call that "internal error ... a bug in leadsync".
    _sync(config)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (head) is gone before the command prints
    try:
        finished = subprocess.run(
            [sys.executable, "-m", "leadsync.cli", "runs", "--config", str(config.path)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert "internal error" not in finished.stderr, finished.stderr
    assert "Traceback" not in finished.stderr
