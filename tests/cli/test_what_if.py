"""`leadsync plan --what-if`: an edit's effect over every stored lead, from the store alone,
checked against the sweep that then applies it."""

from __future__ import annotations

import gc
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from leadsync.cli import main
from leadsync.config import Config
from leadsync.sandbox import Sandbox
from leadsync.sync.store import Store
from tests.cli.conftest import EXAMPLES, MQL_SCORE, with_definition


def _stages(config: Config) -> dict[str, str | None]:
    with Store(config.database_url) as store:
        ids = store.lead_ids_after(None, limit=1_000_000)
        return {lead_id: lead.stage for lead_id, lead in store.leads(ids).items()}


def _what_if(config: Config, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["plan", "--what-if", "--json", "--config", str(config.path)]) == 0
    body: dict[str, Any] = json.loads(capsys.readouterr().out)
    return body


def _total_requests(sandbox: Sandbox) -> int:
    return sum(sandbox.stats.as_dict()["endpoints"].values())


def test_a_lowered_mql_threshold_shows_the_moves_the_sweep_then_makes(
    sandbox: Sandbox, config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sync", "--once", "--config", str(config.path)]) == 0
    unchanged = _what_if(config, capsys)
    assert unchanged["stage_moves"] == []
    shipped = (EXAMPLES / "lead_definition.toml").read_text()
    assert MQL_SCORE in shipped
    edited = with_definition(
        config, shipped.replace(MQL_SCORE, MQL_SCORE.replace("gte = 60", "gte = 30")), tmp_path
    )
    before = _stages(edited)
    sandbox.stats.clear()
    found = _what_if(edited, capsys)
    assert _total_requests(sandbox) == 0  # the store alone
    predicted = Counter({(m["from"], m["to"]): m["leads"] for m in found["stage_moves"]})
    assert predicted[("lead", "mql")] > 0  # a lower threshold qualifies some leads
    assert found["leads"] == len(before)
    assert found["writes_by_field"]  # the new stages are written back
    example = found["examples"][next(iter(found["examples"]))][0]
    assert example["reasons"]
    # The sweep applies the edit: the same leads move, the same way.
    assert main(["backfill", "--sweep", "--config", str(edited.path)]) == 0
    after = _stages(edited)
    made = Counter(
        (before[lead_id] or "(none)", after[lead_id] or "(none)")
        for lead_id in before
        if before[lead_id] != after.get(lead_id)
    )
    assert made == predicted
    assert _what_if(edited, capsys)["stage_moves"] == []


def test_the_text_names_stages_moves_writes_and_examples(
    config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sync", "--once", "--config", str(config.path)]) == 0
    capsys.readouterr()
    assert main(["plan", "--what-if", "--config", str(config.path)]) == 0
    assert "no change: every lead stays as it is" in capsys.readouterr().out
    shipped = (EXAMPLES / "lead_definition.toml").read_text()
    edited = with_definition(
        config, shipped.replace(MQL_SCORE, MQL_SCORE.replace("gte = 60", "gte = 30")), tmp_path
    )
    assert main(["plan", "--what-if", "--config", str(edited.path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("what-if over ")
    assert "stage moves:" in text
    assert "-> mql: " in text
    assert "writes by field, and the write calls they take:" in text
    assert "    stage " in text  # an example's heading


def test_the_objects_held_out_of_collection_during_a_what_if_are_given_back(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    # The what-if freezes the objects older than it (gc.freeze) so that its collections do
    # not walk them again and again; a process that runs one (the console) must get them back.
    assert main(["sync", "--once", "--config", str(config.path)]) == 0
    frozen = gc.get_freeze_count()
    assert _what_if(config, capsys)["leads"] > 0
    assert gc.get_freeze_count() == frozen
