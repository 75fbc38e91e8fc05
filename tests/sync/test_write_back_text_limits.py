"""A write-back text field shorter than leadsync's own text: a Salesforce admin makes
`Leadsync_Score_Reasons__c` a Text of a few dozen characters rather than a Long Text Area.
Leadsync's reasons are cut to what the field holds (whole lines, then "…"), as its describe
says: before, the best-scored leads, those with the most reasons, were refused every day."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from leadsync.config import Config
from leadsync.sandbox import Sandbox, SandboxSettings
from leadsync.sync.plan import ELLIPSIS, fit_text
from tests.sync.test_first_contact import (
    ENGINE_DECIDES,
    NOW,
    SETTINGS,
    bare_config,
    cycle,
    set_up,
    write_calls,
)

REASONS = "Leadsync_Score_Reasons__c"
ROOM = 60


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return replace(SETTINGS, leads=120)


@pytest.fixture
def config(sandbox: Sandbox, tmp_path: Path, database_url: str) -> Config:
    lead = sandbox.salesforce.objects["lead"]
    fields = tuple(
        replace(spec, type="string", length=ROOM) if spec.name == REASONS else spec
        for spec in lead.fields
    )
    sandbox.salesforce.objects["lead"] = replace(lead, fields=fields)
    return set_up(bare_config(sandbox, tmp_path, database_url))


def test_fit_text_keeps_whole_lines_then_an_ellipsis() -> None:
    text = "+20 employees ≥ 200\n+10 title\n+5 visits"
    assert fit_text(text, len(text)) == text
    assert fit_text(text, 31) == "+20 employees ≥ 200\n+10 title\n" + ELLIPSIS
    assert fit_text(text, 12) == "+20 employe" + ELLIPSIS  # no whole line fits: cut in one
    assert fit_text(42, 1) == 42


@ENGINE_DECIDES
def test_reasons_longer_than_the_salesforce_field_are_cut_to_fit_not_refused_every_day(
    sandbox: Sandbox, config: Config
) -> None:
    summary = cycle(config)
    salesforce = summary.crms["salesforce"]
    assert salesforce.written > 0
    assert salesforce.failed == 0, salesforce.causes()
    held = [str(r[REASONS]) for r in sandbox.salesforce.snapshot("Lead") if r.get(REASONS)]
    assert held
    assert all(len(text) <= ROOM for text in held)
    assert any(text.endswith(ELLIPSIS) for text in held)  # some had more to say
    # The cut text is what the field holds: the next runs find nothing to write.
    for minutes in (10, 20):
        sandbox.stats.clear()
        cycle(config, now=NOW + timedelta(minutes=minutes))
        assert write_calls(sandbox) == 0
