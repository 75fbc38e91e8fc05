"""`leadsync plan --what-if`: an edit's effect over every stored lead, from the store alone,
checked against the sweep that then applies it."""

from __future__ import annotations

import gc
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from leadsync.cli import main
from leadsync.config import Config
from leadsync.runtime import open_runtime
from leadsync.sandbox import Sandbox
from leadsync.sync.engine import Reevaluated, SyncEngine
from leadsync.sync.store import Store
from leadsync.sync.whatif import what_if
from tests.cli.conftest import (
    EXAMPLES,
    FORK_WARNING,
    MQL_SCORE,
    with_definition,
    with_mql_at_30,
)


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
    edited = with_mql_at_30(config, tmp_path)
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


def _lowered_mql(config: Config, tmp_path: Path) -> Config:
    assert main(["sync", "--once", "--config", str(config.path)]) == 0
    return with_mql_at_30(config, tmp_path)


@pytest.mark.filterwarnings(FORK_WARNING)
def test_a_what_if_split_over_processes_finds_what_one_process_finds(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edited = _lowered_mql(config, tmp_path)
    seen_by = tmp_path / "pids"
    reevaluate = SyncEngine.reevaluate

    def noted(engine: SyncEngine, lead_ids: Sequence[str]) -> list[Reevaluated]:
        with seen_by.open("a") as pids:
            pids.write(f"{os.getpid()}\n")
        return reevaluate(engine, lead_ids)

    monkeypatch.setattr(SyncEngine, "reevaluate", noted)
    with open_runtime(edited, connect=False) as runtime:
        alone = what_if(runtime.engine(), runtime.store, runtime.field_map, page=5)
        seen_by.unlink()
        split = what_if(runtime.engine(), runtime.store, runtime.field_map, page=5, processes=3)
    assert alone.stage_moves  # the edit moves leads: there is something to compare
    assert split.as_dict() == alone.as_dict()  # the examples too: the first found, in id order
    assert len(set(seen_by.read_text().split())) == 3


def _what_if_with_a_copy_that(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: Callable[[], None]
) -> None:
    """A what-if of the lowered threshold in two processes, the forked copy calling `fails`
    where it would re-evaluate its leads."""
    edited = _lowered_mql(config, tmp_path)
    parent = os.getpid()
    reevaluate = SyncEngine.reevaluate

    def failing_in_a_copy(engine: SyncEngine, lead_ids: Sequence[str]) -> list[Reevaluated]:
        if os.getpid() != parent:
            fails()
        return reevaluate(engine, lead_ids)

    monkeypatch.setattr(SyncEngine, "reevaluate", failing_in_a_copy)
    with open_runtime(edited, connect=False) as runtime:
        what_if(runtime.engine(), runtime.store, runtime.field_map, page=5, processes=2)


@pytest.mark.filterwarnings(FORK_WARNING)
def test_an_error_in_a_what_if_process_is_raised_by_the_command(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def store_gone() -> None:
        raise ValueError("the store went away")

    with pytest.raises(ValueError, match="the store went away"):
        _what_if_with_a_copy_that(config, tmp_path, monkeypatch, store_gone)


@pytest.mark.filterwarnings(FORK_WARNING)
def test_a_what_if_process_that_dies_fails_the_command_with_its_exit_code(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def killed() -> None:
        os._exit(9)  # as a process the kernel's OOM killer ended

    with pytest.raises(RuntimeError, match="without a result \\(exit code 9\\)"):
        _what_if_with_a_copy_that(config, tmp_path, monkeypatch, killed)


def test_an_examples_reasons_past_the_first_four_are_counted_not_dropped() -> None:
    from leadsync.cli.sync import format_what_if
    from leadsync.sync.whatif import Example, WhatIf

    reasons = tuple(f"+{n} reason {n}" for n in range(1, 7))
    found = WhatIf(leads=1, stage_moves=Counter({("lead", "mql"): 1}))
    found.examples["lead -> mql"] = [Example("L1", "a@example.com", "lead", "mql", reasons)]
    text = format_what_if(found)
    lines = text.splitlines()
    assert "        +4 reason 4" in lines
    assert "+5 reason 5" not in text
    assert lines[lines.index("        +4 reason 4") + 1] == "        … and 2 more"
    # Four or fewer: all shown, no "more" line.
    found.examples["lead -> mql"] = [Example("L1", None, "lead", "mql", reasons[:4])]
    assert "more" not in format_what_if(found)
