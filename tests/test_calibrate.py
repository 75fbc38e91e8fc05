"""`leadsync calibrate` on stores whose outcomes follow a known rule: it recovers the rule's
threshold and balance, shows the evidence on a held-back part, and writes nothing."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from leadsync.calibrate import calibrate, format_calibration
from leadsync.cli import main
from leadsync.mapping.definition import LeadDefinition, load_definition
from leadsync.mapping.fields import load_mapping
from leadsync.sync.model import Lead
from leadsync.sync.related import Related
from leadsync.sync.store import Store

EXAMPLES = Path(__file__).resolve().parents[1] / "leadsync" / "examples"
DEFINITION = EXAMPLES / "lead_definition.toml"
NOW = datetime(2026, 4, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def definition() -> LeadDefinition:
    fields = load_mapping(EXAMPLES / "mapping.toml").canonical_types()
    return load_definition(DEFINITION, fields=fields)


def fill(store: Store, won: Callable[[int, int], bool], *, people: int = 400) -> None:
    """`people` leads with random fit and engagement (0..50 each), each with a closed
    opportunity, won exactly when `won(fit, engagement)`."""
    draw = random.Random(5)
    leads, links, related = [], [], []
    for n in range(people):
        fit, engagement = draw.randint(0, 50), draw.randint(0, 50)
        lead_id, record = f"L{n:04d}", f"00Q{n:04d}"
        leads.append(Lead(lead_id, {}, score=fit + engagement, fit=fit, engagement=engagement))
        links.append(("salesforce", record, lead_id, "new"))
        outcome = {"IsClosed": True, "IsWon": won(fit, engagement)}
        related.append(
            Related("salesforce", "Opportunity", f"006{n:04d}", NOW, outcome, False, record)
        )
    store.save_decisions(leads=leads, links=links, run_id="r0")
    store.save_page("salesforce", [], position=None, related=related, run_id="r0")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path / 'calibrate.db'}") as opened:
        yield opened


def test_outcomes_that_follow_a_score_threshold_give_back_that_threshold(
    store: Store, definition: LeadDefinition
) -> None:
    fill(store, lambda fit, engagement: fit + engagement >= 70)
    before = DEFINITION.read_text()
    result = calibrate(store, definition, DEFINITION)
    assert result.outcome == "won"
    assert result.current is not None
    assert result.proposed is not None
    assert (result.current.threshold, result.proposed.threshold) == (60, 70)
    assert (result.proposed.fit_cap, result.proposed.engagement_cap) == (50, 50)
    held = result.evidence["held_back"]
    assert result.counts["held_back"] > 50
    # Every won deal stays above the threshold; the lost ones above it fall away.
    assert held["proposed"]["good_above_threshold"] == 1.0
    assert held["proposed"]["bad_above_threshold"] == 0.0
    assert held["current"]["bad_above_threshold"] > 0.1  # the lost scoring 60 to 69
    assert '-  { field = "score", gte = 60 },' in result.diff
    assert '+  { field = "score", gte = 70 },' in result.diff
    assert DEFINITION.read_text() == before  # it proposes; it writes nothing
    assert "nothing was written" in format_calibration(result)


def test_outcomes_that_only_fit_predicts_lower_the_engagement_cap(
    store: Store, definition: LeadDefinition
) -> None:
    fill(store, lambda fit, engagement: fit >= 35)
    result = calibrate(store, definition, DEFINITION)
    assert result.proposed is not None
    assert result.proposed.fit_cap == 50
    assert result.proposed.engagement_cap < 20
    held = result.evidence["held_back"]
    assert held["proposed"]["auc"] > held["current"]["auc"] + 0.1
    assert "+cap = " in result.diff
    top = held["proposed"]["bands"][-1]
    assert top["band"] == "80-100"


def test_too_few_outcomes_propose_nothing_and_say_why(
    store: Store, definition: LeadDefinition
) -> None:
    fill(store, lambda fit, engagement: fit + engagement >= 95, people=30)
    result = calibrate(store, definition, DEFINITION)
    assert result.proposed is None
    assert result.diff == ""
    assert "not enough outcomes" in result.message


def test_the_command_prints_json_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        fill(store, lambda fit, engagement: fit + engagement >= 70)
    config = tmp_path / "leadsync.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "c.db"}"\n\n[files]\n'
        f'mapping = "{EXAMPLES / "mapping.toml"}"\ndefinition = "{DEFINITION}"\n'
    )
    assert main(["calibrate", "--config", str(config), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["proposed"]["mql_threshold"] == 70
    assert set(body["evidence"]) == {"learning", "held_back"}


def test_a_proposal_worse_on_the_held_back_part_keeps_the_current_definition(
    store: Store, definition: LeadDefinition
) -> None:
    # The learning part says fit alone predicts (so it lowers the engagement cap); the
    # held-back part says engagement alone does: the proposal ranks those worse than today.
    from leadsync.calibrate import _held_back

    draw = random.Random(7)
    leads, links, related = [], [], []
    for n in range(400):
        fit, engagement = draw.randint(0, 50), draw.randint(0, 50)
        lead_id, record = f"L{n:04d}", f"00Q{n:04d}"
        won = engagement >= 10 if _held_back(lead_id) else fit >= 35
        leads.append(Lead(lead_id, {}, score=fit + engagement, fit=fit, engagement=engagement))
        links.append(("salesforce", record, lead_id, "new"))
        outcome = {"IsClosed": True, "IsWon": won}
        related.append(
            Related("salesforce", "Opportunity", f"006{n:04d}", NOW, outcome, False, record)
        )
    store.save_decisions(leads=leads, links=links, run_id="r0")
    store.save_page("salesforce", [], position=None, related=related, run_id="r0")

    result = calibrate(store, definition, DEFINITION)
    held = result.evidence["held_back"]
    assert result.rejected is not None  # what the learning part alone would have proposed
    assert held["proposed"]["auc"] < held["current"]["auc"]
    assert result.proposed is None
    assert result.diff == ""
    text = format_calibration(result)
    assert "the current definition is kept" in text
    assert f"AUC {held['proposed']['auc']:g}" in text
    assert f"{held['current']['auc']:g}" in text
    assert "+cap" not in text
