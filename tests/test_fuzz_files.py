"""A small, seeded slice of tools/fuzz_files.py: mutants of the three files through `check`,
`check --online` and `sync --once` against the sandbox. No traceback, every problem located,
and nothing `check` accepts fails later. (The full run, with `run` too, is in docs/FUZZ.md.)"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from leadsync.config import load_config
from leadsync.crm_setup import set_up_crms
from leadsync.sandbox import HubSpotSettings, Sandbox, SandboxSettings
from tools.fuzz_files import FILES, Outcome, Workspace, fuzz, mutate, summary

MUTANTS = 45


@pytest.fixture
def no_secrets_around(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in [name for name in os.environ if name.startswith("LEADSYNC_")]:
        monkeypatch.delenv(variable)  # the files alone decide


@pytest.mark.usefixtures("no_secrets_around")
def test_a_seeded_fuzz_of_the_three_files_finds_no_traceback_and_no_late_failure(
    tmp_path: Path,
) -> None:
    limits = HubSpotSettings(ten_second_limit=10**6, searches_per_second=10**6)
    with Sandbox(SandboxSettings(port=0, seed=5, leads=30, hubspot=limits)) as sandbox:
        workspace = Workspace(tmp_path, sandbox.url)
        workspace.write("config", workspace.texts["config"])
        set_up_crms(load_config(workspace.paths["config"]), None)
        outcomes = list(fuzz(workspace, mutants=MUTANTS, seed=1, run_seconds=None))
    figures = summary(outcomes)
    assert figures["tracebacks"] == 0, _shown(o for o in outcomes if o.tracebacks)
    assert figures["problems without key or line"] == 0, _shown(o for o in outcomes if o.unlocated)
    assert figures["accepted, then failed"] == 0, _shown(o for o in outcomes if o.failed_later)
    assert figures["other exit codes at check"] == 0
    # The slice exercises both sides: mutants refused, and mutants used.
    assert figures["refused by check"] >= MUTANTS // 3
    assert figures["synced"] >= 5


def test_the_mutations_are_seeded_and_varied() -> None:
    text = FILES["definition"].read_text()

    def edits(seed: int) -> list[str]:
        chance = random.Random(seed)
        return [mutate(text, chance)[1] for _ in range(20)]

    assert edits(3) == edits(3)
    assert edits(3) != edits(4)
    assert len(set(edits(3))) > 15


def _shown(outcomes: object) -> str:
    return "\n".join(
        f"{o.file}: {o.edit}: {[*o.tracebacks, *o.unlocated]}"
        for o in outcomes  # type: ignore[attr-defined]
        if isinstance(o, Outcome)
    )
